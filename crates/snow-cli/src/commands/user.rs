//! `snow user …`

use anyhow::Context;
use snow_core::{Email, Hpnr, Phone};
use snow_pki::RevocationReason;

use super::{show_time, Ctx};
use crate::cli::UserCommand;

pub fn run(ctx: &Ctx, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add { hpnr, phone, email, p12_out, domain, ca } => {
            // Validate everything before asking for the passphrase.
            let hpnr: Hpnr = hpnr.parse()?;
            let phone: Phone = phone.parse()?;
            let email: Email = email.parse()?;
            let domain: Option<snow_core::Domain> = domain.map(|d| d.parse()).transpose()?;
            let mut ca = ctx.open_ca(&ca)?;
            let issued = match &domain {
                Some(d) => ca.add_user_at(&hpnr, &phone, &email, d)?,
                None => ca.add_user(&hpnr, &phone, &email)?,
            };
            println!(
                "Created {} (certificate {}, valid until {})",
                issued.jid,
                issued.serial_hex,
                show_time(issued.not_after)
            );
            report_delivery(&issued, p12_out.as_deref(), "created")
        }
        UserCommand::List => {
            let users = snow_pki::list_users(&ctx.paths)?;
            if users.is_empty() {
                println!("No users yet (add one with `snow user add`).");
                return Ok(());
            }
            println!("{:<10} {:<32} {:<28} VALID UNTIL", "HPNR", "JID", "STATUS");
            for u in users {
                let status = match u.revoked {
                    Some((_, code)) => format!(
                        "revoked ({})",
                        RevocationReason::from_code(code).map(|r| r.name()).unwrap_or("unspecified")
                    ),
                    None => "active".to_owned(),
                };
                let until = time::OffsetDateTime::from_unix_timestamp(u.not_after).map(show_time).unwrap_or_default();
                println!("{:<10} {:<32} {:<28} {}", u.hpnr, u.jid, status, until);
            }
            Ok(())
        }
        UserCommand::Rekey { hpnr, p12_out, ca } => {
            let hpnr: Hpnr = hpnr.parse()?;
            let mut ca = ctx.open_ca(&ca)?;
            let issued = ca.rekey_user(&hpnr)?;
            println!(
                "Re-keyed {} (new certificate {}, valid until {}); the old one is revoked as superseded",
                issued.jid,
                issued.serial_hex,
                show_time(issued.not_after)
            );
            report_delivery(&issued, p12_out.as_deref(), "re-keyed")?;
            println!("{}", withdrawn_line(&issued.withdrawn, "the old certificate"));
            Ok(())
        }
        UserCommand::Revoke { hpnr, reason, ca } => {
            let hpnr: Hpnr = hpnr.parse()?;
            let reason: RevocationReason = reason.parse().map_err(anyhow::Error::msg)?;
            let mut ca = ctx.open_ca(&ca)?;
            let done = ca.revoke_user(&hpnr, reason)?;
            if done.already_revoked {
                println!("{} was already revoked; its key deliveries were still in the outbox", done.jid);
            } else {
                println!("Revoked {} ({reason}); the new CRL is {}", done.jid, done.crl.display());
            }
            println!("{}", withdrawn_line(&done.withdrawn, "this user"));
            Ok(())
        }
    }
}

/// How many unsent key deliveries were taken out of the outbox, in words.
fn withdrawn_line(w: &snow_pki::Withdrawn, whose: &str) -> String {
    if w.is_empty() {
        return format!("  Nothing for {whose} was waiting in the outbox.");
    }
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "  Withdrew {} from the outbox ({} and {}): they will not be sent.",
        plural(w.count(), "unsent key delivery file", "unsent key delivery files"),
        plural(w.emails.len(), "e-mail", "e-mails"),
        plural(w.sms.len(), "SMS", "SMS"),
    )
}

/// Writes the optional hand-delivery copy of the key file and lists where
/// the delivery went. `done` says what already happened to the user.
fn report_delivery(issued: &snow_pki::IssuedUser, p12_out: Option<&std::path::Path>, done: &str) -> anyhow::Result<()> {
    if let Some(out) = p12_out {
        snow_core::files::write_new(out, &issued.p12, snow_core::files::Mode::Private).with_context(|| {
            format!("the user was {done}, but the key file could not be written to {}", out.display())
        })?;
    }
    println!("  e-mail with the key file   {}", issued.delivery.email.display());
    println!("  SMS with the password      {}", issued.delivery.sms.display());
    if let Some(out) = p12_out {
        println!("  key file                   {}", out.display());
    }
    Ok(())
}
