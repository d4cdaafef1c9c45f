//! `snow agent …`

use snow_core::BareJid;

use super::Ctx;
use crate::cli::AgentCommand;

pub fn run(ctx: &Ctx, cmd: AgentCommand) -> anyhow::Result<()> {
    match cmd {
        AgentCommand::Cert { jid } => {
            let jid: BareJid = jid.parse()?;
            let mut ca = ctx.open_ca()?;
            let issued = ca.issue_agent(&jid)?;
            println!("Issued the agent certificate for {jid}");
            println!("  certificate  {}", issued.cert_path.display());
            println!("  key          {}", issued.key_path.display());
            println!("  serial       {}", issued.serial_hex);
            println!("  valid until  {}", super::show_time(issued.not_after));
            Ok(())
        }
    }
}
