//! `snow server …`

use snow_core::Domain;
use snow_pki::RevocationReason;

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
            if !issued.superseded.is_empty() {
                println!(
                    "  revoked as superseded: {} (restart a server still running with it)",
                    issued.superseded.join(", ")
                );
            }
            Ok(())
        }
        ServerCommand::Revoke { domain, reason, ca } => {
            let domain: Domain = domain.parse()?;
            let reason: RevocationReason = reason.parse().map_err(anyhow::Error::msg)?;
            let mut ca = ctx.open_ca(&ca)?;
            let done = ca.revoke_server(&domain, reason)?;
            println!(
                "Revoked the server certificate of {domain} ({reason}; serial {}); the new CRL is {}",
                done.serials.join(", "),
                done.crl.display()
            );
            println!("  {}", super::agent::crl_note());
            Ok(())
        }
    }
}
