pub fn run(_ctx: &super::Ctx, _a: crate::cli::DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("todo")
}
