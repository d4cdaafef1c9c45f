//! `snow server …`

use snow_core::Domain;

use super::Ctx;
use crate::cli::ServerCommand;

pub fn run(ctx: &Ctx, cmd: ServerCommand) -> anyhow::Result<()> {
    match cmd {
        ServerCommand::Cert { domain } => {
            let mut ca = ctx.open_ca()?;
            let domain: Domain = match domain {
                Some(d) => d.parse()?,
                None => ca.domain().clone(),
            };
            let issued = ca.issue_server(&domain)?;
            println!("Issued the server certificate for {domain}");
            println!("  certificate  {}", issued.cert_path.display());
            println!("  key          {}", issued.key_path.display());
            println!("  serial       {}", issued.serial_hex);
            println!("  valid until  {}", super::show_time(issued.not_after));
            Ok(())
        }
    }
}
