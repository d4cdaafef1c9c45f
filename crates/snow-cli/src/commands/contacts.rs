//! `snow contacts list|add|remove`: the GP's roster (RFC 6121), who sees
//! whose presence, in words.

use anyhow::bail;
use snow_client::{ClientError, Contact};

use super::Ctx;
use crate::cli::ContactsCommand;

/// Longest name given with `--name`.
const MAX_NAME_CHARS: usize = 100;

pub fn run(ctx: &Ctx, cmd: ContactsCommand) -> anyhow::Result<()> {
    match cmd {
        ContactsCommand::List { conn } => {
            let rt = super::runtime()?;
            rt.block_on(async {
                let session = super::chat::connect(ctx, &conn).await?.into_session();
                let contacts = session.iq().contacts().await;
                session.close().await?;
                let contacts = contacts?;
                if contacts.is_empty() {
                    println!("No contacts yet: add one with `snow contacts add JID`.");
                }
                for c in &contacts {
                    println!("  {}: {}", label(c), state(c));
                }
                Ok(())
            })
        }
        ContactsCommand::Add { conn, jid, name } => {
            let jid = contact_jid(&jid)?;
            if let Some(n) = &name {
                if n.trim().is_empty() || n.chars().count() > MAX_NAME_CHARS || n.chars().any(char::is_control) {
                    bail!("--name must be 1 to {MAX_NAME_CHARS} characters on one line");
                }
            }
            let rt = super::runtime()?;
            rt.block_on(async {
                let session = super::chat::connect(ctx, &conn).await?.into_session();
                let me = session.jid().split('/').next().unwrap_or_default().to_owned();
                if me.eq_ignore_ascii_case(&jid) {
                    bail!("{jid} is you: add someone else");
                }
                let added = session.iq().add_contact(&jid, name.as_deref().map(str::trim)).await;
                session.close().await?;
                let added = match added {
                    Ok(a) => a,
                    Err(ClientError::Refused { text: Some(t), .. }) => bail!("cannot add {jid}: {t}"),
                    Err(ClientError::Refused { condition, .. }) => {
                        bail!("cannot add {jid}: your server refused ({condition})")
                    }
                    Err(e) => return Err(e.into()),
                };
                let c = &added.contact;
                println!("{} {}", if added.was_contact { "Updated" } else { "Added" }, label(c));
                if added.approved {
                    println!("  You accepted their request: they see your presence.");
                }
                if added.asked && !c.you_see_them {
                    println!("  You asked to see their presence.");
                }
                println!("  Now: {}", state(c));
                let domain = |j: &str| j.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
                if domain(&jid) != domain(&me) {
                    println!("  Note: presence is not passed between sites yet; {jid} stays in your contacts.");
                }
                Ok(())
            })
        }
        ContactsCommand::Remove { conn, jid } => {
            let jid = contact_jid(&jid)?;
            let rt = super::runtime()?;
            rt.block_on(async {
                let session = super::chat::connect(ctx, &conn).await?.into_session();
                let removed = session.iq().remove_contact(&jid).await;
                session.close().await?;
                if !removed? {
                    bail!("{jid} is not one of your contacts (see `snow contacts list`)");
                }
                println!("Removed {jid}: neither of you sees the other's presence any more.");
                Ok(())
            })
        }
    }
}

/// A contact's bare JID as given on the command line, checked.
fn contact_jid(given: &str) -> anyhow::Result<String> {
    let given = given.trim();
    if let Some((bare, _)) = given.split_once('/') {
        bail!("give the contact's JID without a resource: {bare}, not {given}");
    }
    match given.parse::<snow_core::BareJid>() {
        Ok(j) => Ok(j.to_string()),
        Err(e) => bail!("{given:?} is not a JID like 9144889@po.example ({e})"),
    }
}

/// `JID (name)`, or the JID alone.
pub(super) fn label(c: &Contact) -> String {
    match &c.name {
        Some(n) => format!("{} ({n})", c.jid),
        None => c.jid.clone(),
    }
}

/// A contact that is nothing but their request to see your presence.
pub(super) fn only_a_request(c: &Contact) -> bool {
    c.they_asked && !c.you_see_them && !c.they_see_you && !c.you_asked
}

/// Who sees whose presence, and what waits for whom, in words.
pub(super) fn state(c: &Contact) -> String {
    let mut parts: Vec<String> = Vec::new();
    match (c.you_see_them, c.they_see_you) {
        (true, true) => parts.push("you see each other's presence".into()),
        (true, false) => parts.push("you see their presence; they do not see yours".into()),
        (false, true) => parts.push("they see your presence; you do not see theirs".into()),
        (false, false) if !c.you_asked && !c.they_asked => {
            parts.push("neither of you sees the other's presence".into())
        }
        (false, false) => {}
    }
    if c.you_asked {
        parts.push("waiting for them to accept".into());
    }
    if c.they_asked {
        parts.push(format!("they asked to see your presence — accept with `snow contacts add {}`", c.jid));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(you_see_them: bool, they_see_you: bool, you_asked: bool, they_asked: bool) -> Contact {
        Contact { jid: "2222222@po.example".into(), name: None, you_see_them, they_see_you, you_asked, they_asked }
    }

    #[test]
    fn states_in_words() {
        assert_eq!(state(&c(true, true, false, false)), "you see each other's presence");
        assert_eq!(state(&c(false, false, true, false)), "waiting for them to accept");
        assert_eq!(
            state(&c(false, false, false, true)),
            "they asked to see your presence — accept with `snow contacts add 2222222@po.example`"
        );
        assert_eq!(
            state(&c(false, true, true, false)),
            "they see your presence; you do not see theirs; waiting for them to accept"
        );
        assert_eq!(state(&c(false, false, false, false)), "neither of you sees the other's presence");
        assert!(only_a_request(&c(false, false, false, true)) && !only_a_request(&c(false, false, true, true)));
    }

    #[test]
    fn jids_are_checked() {
        assert_eq!(contact_jid(" 2222222@po.example ").unwrap(), "2222222@po.example");
        let e = contact_jid("2222222@po.example/laptop").unwrap_err().to_string();
        assert!(e.contains("without a resource"), "{e}");
        let e = contact_jid("not a jid").unwrap_err().to_string();
        assert!(e.contains("is not a JID like 9144889@po.example"), "{e}");
    }
}
