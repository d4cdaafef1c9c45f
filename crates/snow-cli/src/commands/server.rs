//! `snow server …`

use snow_core::Domain;

use super::Ctx;
use crate::cli::ServerCommand;

pub fn run(ctx: &Ctx, cmd: ServerCommand) -> anyhow::Result<()> {
    match cmd {
        ServerCommand::Cert { domain, components, ca } => {
            let mut ca = ctx.open_ca(&ca)?;
            let domain: Domain = match domain {
                Some(d) => d.parse()?,
                None => ca.domain().clone(),
            };
            let components = components
                .iter()
                .map(|c| c.parse().map_err(|e| anyhow::anyhow!("--component {c}: {e}")))
                .collect::<anyhow::Result<Vec<Domain>>>()?;
            let issued = ca.issue_server(&domain, &components)?;
            println!("Issued the server certificate for {domain}");
            for c in &components {
                println!("  also for     {c} (component)");
            }
            println!("  certificate  {}", issued.cert_path.display());
            println!("  key          {}", issued.key_path.display());
            println!("  serial       {}", issued.serial_hex);
            println!("  valid until  {}", super::show_time(issued.not_after));
            Ok(())
        }
    }
}
