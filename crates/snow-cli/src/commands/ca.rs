//! `snow ca …`

use anyhow::Context;
use snow_core::Domain;
use snow_pki::Ca;

use super::Ctx;
use crate::cli::CaCommand;

pub fn run(ctx: &Ctx, cmd: CaCommand) -> anyhow::Result<()> {
    match cmd {
        CaCommand::Init { domain, ca } => {
            let domain: Domain = domain.parse()?;
            if ctx.paths.ca_cert().exists() {
                return Err(snow_pki::PkiError::CaExists(ctx.paths.ca_dir()).into());
            }
            let pass = crate::secrets::Source::ca_passphrase(&ca).get_new()?;
            let ca = Ca::init(&ctx.paths, &domain, &pass, &ctx.config.pki)?;
            let info = snow_crypto::CertInfo::from_der(ca.cert_der())?;
            println!("Created the CA for {domain} in {}", ctx.paths.ca_dir().display());
            println!("  certificate  {}", ctx.paths.ca_cert().display());
            println!("  valid until  {}", super::show_time(info.not_after));
            println!("  SHA-256      {}", info.fingerprint_sha256);
            println!("Keep the CA passphrase safe: without it no user can be added or revoked.");
            Ok(())
        }
        CaCommand::Crl { out, ca } => {
            let mut ca = ctx.open_ca(&ca)?;
            let path = ca.write_crl()?;
            if let Some(out) = out {
                let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
                snow_core::files::write(&out, &bytes, snow_core::files::Mode::Public)
                    .with_context(|| format!("cannot write {}", out.display()))?;
                println!("Wrote the CRL to {} and {}", path.display(), out.display());
            } else {
                println!("Wrote the CRL to {}", path.display());
            }
            Ok(())
        }
    }
}
