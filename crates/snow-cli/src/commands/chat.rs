//! `snow chat …` and `snow presence`: the GP's client on the command line.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use snow_client::{Client, ClientError, ConnectOptions, Contact};
use snow_crypto::{CertInfo, KeyStore};
use snow_xml::{Element, NS_CLIENT, NS_PING};

use super::Ctx;
use crate::cli::{ChatCommand, ConnArgs};

pub fn run(ctx: &Ctx, cmd: ChatCommand) -> anyhow::Result<()> {
    match cmd {
        ChatCommand::Send { conn, to, plain, text } => {
            // A bare or full JID, or a service's domain (a component).
            let bare = to.split_once('/').map(|(b, _)| b).unwrap_or(&to);
            if bare.parse::<snow_core::BareJid>().is_err() && bare.parse::<snow_core::Domain>().is_err() {
                bare.parse::<snow_core::BareJid>()?;
            }
            let rt = super::runtime()?;
            rt.block_on(async {
                let (client, identity, ca_der) = connect_with_identity(ctx, &conn).await?;
                let mut session = client.into_session();
                if plain {
                    session.iq().send(snow_client::chat_message(&to, &text)).await?;
                } else {
                    session.iq().send_encrypted_chat(&to, &text, &identity, &ca_der).await?;
                }
                // A ping round trip: any error about the message arrives first.
                let ping =
                    Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_child(Element::new(NS_PING, "ping"));
                session.iq().request(ping).await?;
                while let Some(el) = session.try_next_stanza() {
                    if el.name() == "message" && el.attr("type") == Some("error") {
                        bail!("the message to {to} was not delivered: {}", condition(&el));
                    }
                }
                session.close().await?;
                println!("Sent to {to}{}", if plain { " (clear text)" } else { " (end-to-end encrypted)" });
                Ok(())
            })
        }
        ChatCommand::Listen { conn, count, timeout } => {
            let rt = super::runtime()?;
            rt.block_on(async {
                let (client, identity, ca_der) = connect_with_identity(ctx, &conn).await?;
                let nonces = chat_nonces(ctx, &conn)?;
                // A session: the key directory is asked (for each signer)
                // while messages keep arriving.
                let mut session = client.into_session();
                session.iq().send_presence().await?;
                eprintln!("Listening as {} (Ctrl-C to stop)…", session.jid());
                let deadline = timeout.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
                let mut seen = 0usize;
                loop {
                    if count.is_some_and(|c| seen >= c) {
                        break;
                    }
                    let left = match deadline {
                        Some(d) => d.saturating_duration_since(tokio::time::Instant::now()),
                        None => Duration::from_secs(3600),
                    };
                    if left.is_zero() {
                        break;
                    }
                    let el = tokio::select! {
                        _ = tokio::signal::ctrl_c() => break,
                        r = session.next_stanza(left) => match r {
                            Ok(el) => el,
                            Err(ClientError::Framed(snow_xml::FramedError::Timeout(_))) => continue,
                            Err(e) => return Err(e.into()),
                        },
                    };
                    let Some(line) = message_line(session.iq(), &el, &identity, &ca_der, &nonces).await else {
                        continue;
                    };
                    println!("{line}");
                    seen += 1;
                }
                session.close().await?;
                Ok(())
            })
        }
    }
}

pub fn presence(
    ctx: &Ctx,
    conn: ConnArgs,
    show: Option<String>,
    status: Option<String>,
    listen: u64,
) -> anyhow::Result<()> {
    if let Some(s) = &show {
        if !matches!(s.as_str(), "away" | "chat" | "dnd" | "xa") {
            bail!("--show must be away, chat, dnd or xa");
        }
    }
    let rt = super::runtime()?;
    rt.block_on(async {
        let (client, identity, ca_der) = connect_with_identity(ctx, &conn).await?;
        let nonces = chat_nonces(ctx, &conn)?;
        let mut session = client.into_session();
        let contacts = session.iq().contacts().await?;
        let mut p = snow_client::caps::presence();
        if let Some(s) = show {
            p.push_child(Element::new(NS_CLIENT, "show").with_text(s));
        }
        if let Some(s) = status {
            p.push_child(Element::new(NS_CLIENT, "status").with_text(s));
        }
        session.iq().send(p).await?;
        // Bare JID → how they are, as their latest presence says.
        let mut online: Vec<(String, String)> = Vec::new();
        // Requests that arrive while we listen (the roster was read before).
        let mut asking: Vec<String> = Vec::new();
        let mut messages: Vec<String> = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(listen);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let el = match session.next_stanza(left).await {
                Ok(el) => el,
                Err(_) => break,
            };
            let from = el.attr("from").unwrap_or("?");
            let bare = from.split('/').next().unwrap_or(from).to_owned();
            match (el.name(), el.attr("type")) {
                ("presence", None) => {
                    let show = el.child(NS_CLIENT, "show").map(|s| s.text()).unwrap_or_else(|| "online".into());
                    let show = match el.child(NS_CLIENT, "status").map(|s| s.text()) {
                        Some(st) if !st.is_empty() => format!("{show} ({st})"),
                        _ => show,
                    };
                    online.retain(|(b, _)| *b != bare);
                    online.push((bare, show));
                }
                ("presence", Some("unavailable")) => online.retain(|(b, _)| *b != bare),
                ("presence", Some("subscribe")) if !asking.contains(&bare) => asking.push(bare),
                // Stored messages come with the first presence: shown, not lost.
                ("message", _) => messages.extend(message_line(session.iq(), &el, &identity, &ca_der, &nonces).await),
                _ => {}
            }
        }
        println!("You are online as {}", session.jid());
        // A contact that is only a request is listed with the requests.
        let listed: Vec<&Contact> = contacts.iter().filter(|c| !super::contacts::only_a_request(c)).collect();
        if listed.is_empty() {
            println!("No contacts yet: add one with `snow contacts add JID`.");
        }
        for c in &listed {
            let state = if c.you_see_them {
                online
                    .iter()
                    .find(|(b, _)| b.eq_ignore_ascii_case(&c.jid))
                    .map(|(_, s)| s.clone())
                    .unwrap_or_else(|| "offline".into())
            } else {
                "-".into()
            };
            println!("  {:<40} {:<16} {}", super::contacts::label(c), state, super::contacts::state(c));
        }
        // The requests the roster shows, and any that came while we
        // listened; not one already accepted (a stored copy of an old one).
        for c in contacts.iter().filter(|c| c.they_asked) {
            if !asking.iter().any(|a| a.eq_ignore_ascii_case(&c.jid)) {
                asking.push(c.jid.clone());
            }
        }
        asking.retain(|a| !contacts.iter().any(|c| c.jid.eq_ignore_ascii_case(a) && c.they_see_you));
        if !asking.is_empty() {
            println!("Waiting for your answer:");
            for a in &asking {
                println!("  {a} asked to see your presence — accept with `snow contacts add {a}`");
            }
        }
        if !messages.is_empty() {
            println!("Messages that waited for you:");
            for m in messages {
                println!("  {m}");
            }
        }
        session.close().await?;
        Ok(())
    })
}

/// `snow keys lookup`.
pub fn lookup(ctx: &Ctx, conn: ConnArgs, jids: Vec<String>) -> anyhow::Result<()> {
    for j in &jids {
        j.parse::<snow_core::BareJid>().with_context(|| format!("{j:?} is not a JID"))?;
    }
    let rt = super::runtime()?;
    rt.block_on(async {
        let session = connect(ctx, &conn).await?.into_session();
        let asked: Vec<&str> = jids.iter().map(String::as_str).collect();
        for entry in session.iq().lookup_keys(&asked).await? {
            let words = match entry.status.as_str() {
                "unknown" => " — no such user in the key directory",
                "revoked" => " — the certificate has been revoked",
                _ => "",
            };
            println!("{}: {}{words}", entry.jid, entry.status);
            if let Some(der) = entry.certificate {
                let info = CertInfo::from_der(&der).context("the server sent a malformed certificate")?;
                println!("  subject      {}", info.subject);
                println!("  issuer       {}", info.issuer);
                println!("  valid until  {}", super::show_time(info.not_after));
                println!("  SHA-256      {}", info.fingerprint_sha256);
            }
        }
        session.close().await?;
        Ok(())
    })
}

/// A received chat message as `FROM (sent STAMP): [encrypted, signed by
/// JID] TEXT`, its signature checked first ([`snow_client::open_chat`]);
/// one that does not verify is `FROM: unverified message dropped: REASON`,
/// without its text. `None` for anything else.
async fn message_line(
    iq: &snow_client::IqClient,
    el: &Element,
    identity: &snow_crypto::Identity,
    ca_der: &[u8],
    nonces: &std::sync::Mutex<snow_core::nonce_cache::NonceCache>,
) -> Option<String> {
    if el.name() != "message" || el.attr("type") == Some("error") {
        return None;
    }
    let body = match snow_client::open_chat(iq, el, identity, ca_der, nonces).await? {
        snow_client::Body::Verified { text, signer } => format!("[encrypted, signed by {signer}] {text}"),
        snow_client::Body::Clear(t) => format!("[NOT encrypted] {t}"),
        snow_client::Body::Unreadable(why) => format!("[encrypted, cannot read: {why}]"),
        snow_client::Body::Unverified(why) => format!("unverified message dropped: {why}"),
    };
    let from = el.attr("from").unwrap_or("?");
    let when = el
        .child(snow_xml::NS_DELAY, "delay")
        .and_then(|d| d.attr("stamp"))
        .map(|s| format!(" (sent {s})"))
        .unwrap_or_default();
    Some(format!("{from}{when}: {body}"))
}

/// The chats' nonces taken by `snow chat` for this key store:
/// `chat-nonces` in the key store's directory, one per identity (the GP
/// app keeps its own, `app-nonces`), so a replayed chat is dropped also
/// in a later run.
fn chat_nonces(ctx: &Ctx, conn: &ConnArgs) -> anyhow::Result<std::sync::Mutex<snow_core::nonce_cache::NonceCache>> {
    let path = ctx.key_store(&conn.key).dir().join("chat-nonces");
    let cache = snow_client::open_chat_nonces(&path).context("cannot open the record of received chats")?;
    Ok(std::sync::Mutex::new(cache))
}

fn condition(el: &Element) -> String {
    snow_xml::stanza::error_of(el).0
}

/// Unlocks the key store and logs in.
pub(super) async fn connect(ctx: &Ctx, conn: &ConnArgs) -> anyhow::Result<Client> {
    Ok(connect_with_identity(ctx, conn).await?.0)
}

/// Logs in and keeps the identity and the CA certificate for end-to-end
/// encryption.
pub(super) async fn connect_with_identity(
    ctx: &Ctx,
    conn: &ConnArgs,
) -> anyhow::Result<(Client, snow_crypto::Identity, Vec<u8>)> {
    let store = ctx.key_store(&conn.key);
    let snow_client::keys::LoginTarget { jid, ca_der } =
        snow_client::keys::LoginTarget::of(&store.certificate_chain()?)?;
    let pass = crate::secrets::Source::personal_passphrase(&conn.key).get()?;
    let identity = store.unlock(&pass)?;
    let addr: SocketAddr = match conn.server.parse() {
        Ok(a) => a,
        Err(_) => tokio::net::lookup_host(&conn.server)
            .await
            .with_context(|| format!("cannot resolve {}", conn.server))?
            .next()
            .with_context(|| format!("{} has no address", conn.server))?,
    };
    let opts = ConnectOptions {
        addr,
        domain: jid.domain().to_string(),
        ca_der: ca_der.clone(),
        direct_tls: conn.direct_tls,
        resource: conn.resource.clone(),
        timeout: Duration::from_secs(15),
    };
    // `snow serve &` and a client right after: wait while it starts.
    let client = super::retry_refused(
        &format!("the Snow server at {}", conn.server),
        Duration::from_secs(conn.wait),
        |e: &ClientError| matches!(e, ClientError::Connect { source, .. } if super::is_refused(source)),
        || Client::connect(&opts, &identity),
    )
    .await?;
    let Some(client) = client else {
        bail!("no Snow server answers at {}: start it with `snow serve`, or give --server", conn.server);
    };
    Ok((client, identity, ca_der))
}
