//! `snow msgauth …`: keys, and signing or checking a message by hand.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use snow_crypto::msgauth::{self, keys, Algorithm, KeyStore, Receiver, Sender};

use super::Ctx;
use crate::cli::MsgauthCommand;

/// Largest message read.
const MAX_MESSAGE: u64 = 16 * 1024 * 1024;

pub fn key_file(ctx: &Ctx) -> PathBuf {
    ctx.resolve(&ctx.config.msgauth.keys)
}

pub fn load_keys(ctx: &Ctx) -> anyhow::Result<Arc<KeyStore>> {
    let path = key_file(ctx);
    Ok(Arc::new(
        KeyStore::load(&path, ctx.config.msgauth.overlap_secs)
            .with_context(|| format!("the message-authentication keys in {}", path.display()))?,
    ))
}

fn read_input(input: Option<&Path>) -> anyhow::Result<String> {
    let bytes = match input {
        Some(p) => {
            snow_core::files::read_limited(p, MAX_MESSAGE).with_context(|| format!("cannot read {}", p.display()))?
        }
        None => {
            let mut b = Vec::new();
            std::io::stdin().take(MAX_MESSAGE + 1).read_to_end(&mut b)?;
            if b.len() as u64 > MAX_MESSAGE {
                bail!("the message is larger than {MAX_MESSAGE} bytes");
            }
            b
        }
    };
    String::from_utf8(bytes).context("the message is not UTF-8 text")
}

fn parse_stanza(text: &str) -> anyhow::Result<snow_xml::Element> {
    snow_xml::parse_document(text.as_bytes(), msgauth::xml_message::limits())
        .map_err(|e| anyhow::anyhow!("not a well-formed stanza: {}", e.detail))
}

pub fn run(ctx: &Ctx, cmd: MsgauthCommand) -> anyhow::Result<()> {
    match cmd {
        MsgauthCommand::Keygen { source, kid, algorithm, valid_from } => {
            let algorithm = Algorithm::from_name(&algorithm).context("--algorithm must be hmac-sha256 or hmac-md5")?;
            let now = time::OffsetDateTime::now_utc();
            let from = match valid_from {
                Some(v) => time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339)
                    .context("--valid-from must be RFC 3339, like 2026-12-01T00:00:00Z")?
                    .unix_timestamp(),
                None => now.unix_timestamp(),
            };
            let kid = kid.unwrap_or_else(|| format!("{:04}-{:02}", now.year(), u8::from(now.month())));
            if !msgauth::valid_name(&source) || !msgauth::valid_name(&kid) {
                bail!("--source and --kid are 1 to 64 of A-Z a-z 0-9 . _ @ -");
            }
            let path = key_file(ctx);
            let mut text = String::new();
            if path.exists() {
                let existing = KeyStore::load(&path, 0).with_context(|| format!("the key file {}", path.display()))?;
                if existing.accepting_key(&source, &kid, i64::MAX / 2).is_some()
                    || existing.signing_key(&source, i64::MAX / 2).is_some_and(|k| k.kid == kid)
                {
                    bail!("{} already has key {kid:?} for {source:?}: choose another --kid", path.display());
                }
                text = String::from_utf8(snow_core::files::read_limited(&path, keys::MAX_KEY_FILE_BYTES)?)?;
            }
            text.push_str(&keys::generate_line(&source, &kid, algorithm, from)?);
            // Parse what we are about to write: never leave a broken file.
            KeyStore::parse(&text, 0).context("the new key file would not parse")?;
            snow_core::files::write(&path, text.as_bytes(), snow_core::files::Mode::Private)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("Added key {kid:?} ({}) for source {source:?} to {}", algorithm.name(), path.display());
            println!("Copy the file (owner-only) to every component that talks to {source:?}.");
            Ok(())
        }
        MsgauthCommand::Sign { source, carrier, input } => {
            let store = load_keys(ctx)?;
            let sender = Sender::new(store, &source)?;
            let message = read_input(input.as_deref())?;
            let out = match carrier.as_str() {
                "text" => msgauth::text::sign(&sender, &message)?,
                "xml" => msgauth::xml_message::sign(&sender, &message)?,
                "stanza" | "shim" => {
                    let mut el = parse_stanza(&message)?;
                    if carrier == "stanza" {
                        msgauth::stanza::sign(&sender, &mut el)?;
                    } else {
                        msgauth::shim::sign(&sender, &mut el)?;
                    }
                    el.to_xml("")
                }
                _ => bail!("--carrier must be text, xml, stanza or shim"),
            };
            std::io::stdout().write_all(out.as_bytes())?;
            Ok(())
        }
        MsgauthCommand::Canonical { input } => {
            let el = parse_stanza(&read_input(input.as_deref())?)?;
            std::io::stdout().write_all(snow_xml::c14n::exclusive(&el).as_bytes())?;
            Ok(())
        }
        MsgauthCommand::Verify { carrier, input } => {
            let store = load_keys(ctx)?;
            let receiver = Receiver::with_window(store, ctx.config.msgauth.window_secs);
            let message = read_input(input.as_deref())?;
            let (verified, out) = match carrier.as_str() {
                "text" => msgauth::text::verify(&receiver, &message).map(|(v, m)| (v, m.into_owned()))?,
                "xml" => msgauth::xml_message::verify(&receiver, &message)?,
                "stanza" | "shim" => {
                    let mut el = parse_stanza(&message)?;
                    let v = if carrier == "stanza" {
                        msgauth::stanza::verify(&receiver, &mut el)?
                    } else {
                        msgauth::shim::verify(&receiver, &mut el)?
                    };
                    (v, el.to_xml(""))
                }
                _ => bail!("--carrier must be text, xml, stanza or shim"),
            };
            eprintln!("Authentic: from source {:?}, sequence {}", verified.source, verified.seq);
            std::io::stdout().write_all(out.as_bytes())?;
            Ok(())
        }
    }
}
