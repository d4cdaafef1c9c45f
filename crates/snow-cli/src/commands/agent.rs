//! `snow agent …`

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use snow_agents::component::{ComponentLink, ComponentOptions, LinkAuth, LinkError};
use snow_agents::{Attach, SearchAgent};
use snow_core::AgentJid;
use snow_crypto::msgauth::{Receiver, Sender};

use super::Ctx;
use crate::cli::AgentCommand;

pub fn run(ctx: &Ctx, cmd: AgentCommand) -> anyhow::Result<()> {
    match cmd {
        AgentCommand::Cert { jid, ca } => {
            let jid: AgentJid = jid.parse()?;
            let mut ca = ctx.open_ca(&ca)?;
            let issued = ca.issue_agent(&jid)?;
            println!("Issued the agent certificate for {jid}");
            println!("  certificate  {}", issued.cert_path.display());
            println!("  key          {}", issued.key_path.display());
            println!("  serial       {}", issued.serial_hex);
            println!("  valid until  {}", super::show_time(issued.not_after));
            if !issued.superseded.is_empty() {
                println!("  revoked as superseded: {}", issued.superseded.join(", "));
            }
            Ok(())
        }
        AgentCommand::Revoke { jid, reason, ca } => {
            let jid: AgentJid = jid.parse()?;
            let reason: snow_pki::RevocationReason = reason.parse().map_err(anyhow::Error::msg)?;
            let mut ca = ctx.open_ca(&ca)?;
            let done = ca.revoke_agent(&jid, reason)?;
            println!(
                "Revoked the agent certificate of {jid} ({reason}; serial {}); the new CRL is {}",
                done.serials.join(", "),
                done.crl.display()
            );
            println!("  {}", crl_note());
            if matches!(jid, AgentJid::Component(_)) {
                println!(
                    "  Its component link is closed and refused at every server that has the new CRL; \
                     its secret ([[components]] secret_file) is no longer any use."
                );
            }
            Ok(())
        }
        AgentCommand::Run { agent, server, domain, secret_file, hmac, source, server_source, confidential, wait } => {
            if agent != "echo" && agent != "search" {
                bail!("unknown agent {agent:?}: the agents that run as components are echo and search");
            }
            let domain: snow_core::Domain = domain.parse().context("--domain is not a domain name")?;
            let addr: std::net::SocketAddr =
                server.parse().context("--server must be HOST:PORT, like 127.0.0.1:5347")?;
            let secret = snow_core::files::read_limited(&secret_file, 4096)
                .with_context(|| format!("cannot read the secret {}", secret_file.display()))?;
            let secret = zeroize::Zeroizing::new(String::from_utf8_lossy(&secret).trim().to_owned());
            let auth = if hmac {
                let store = super::msgauth::load_keys(ctx)?;
                let source = source.unwrap_or_else(|| domain.to_string());
                let server_source = match server_source {
                    Some(s) => s,
                    None => domain.as_str().split_once('.').map(|(_, parent)| parent.to_owned()).unwrap_or_default(),
                };
                // The replay window of what the server sends, kept across
                // restarts beside the key file, under this agent's source.
                let state_file = snow_crypto::msgauth::state_path(&super::msgauth::key_file(ctx), &source);
                let state = snow_crypto::msgauth::ReplayState::open(&state_file, ctx.config.msgauth.window_secs)?;
                Some(LinkAuth {
                    sender: Arc::new(Sender::new(Arc::clone(&store), &source)?.confidential(confidential)),
                    receiver: Arc::new(Receiver::with_state(store, Arc::new(state)).confidential(confidential)),
                    server_source,
                })
            } else {
                None
            };
            let opts = ComponentOptions {
                server: addr,
                domain: domain.to_string(),
                secret,
                auth,
                timeout: Duration::from_secs(15),
            };
            let wait = Duration::from_secs(wait);
            if agent == "search" {
                return run_search(ctx, opts, wait);
            }
            let rt = super::runtime()?;
            rt.block_on(async move {
                let hmac = opts.auth.is_some();
                let link = super::retry_refused(
                    &waiting_for(addr),
                    wait,
                    |e: &LinkError| matches!(e, LinkError::Connect { source, .. } if super::is_refused(source)),
                    || ComponentLink::connect(opts.clone()),
                )
                .await?;
                let Some(link) = link else { bail!("{}", nobody_at(addr, &domain)) };
                println!(
                    "Echo agent {domain} attached to {addr}{} (Ctrl-C to stop)",
                    if hmac { " with message authentication" } else { "" }
                );
                let _ = std::io::Write::flush(&mut std::io::stdout());
                let (stop, stopped) = tokio::sync::watch::channel(false);
                let task = tokio::spawn(snow_agents::echo::run(link, stopped));
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => { let _ = stop.send(true); }
                    r = async { super::serve::terminated().await } => { r?; let _ = stop.send(true); }
                }
                let n = task.await??;
                println!("Echoed {n} stanzas");
                anyhow::Ok(())
            })
        }
    }
}

/// What happens to a new CRL, for `snow server|agent revoke`.
pub(super) fn crl_note() -> &'static str {
    "This site's snow serve reads the new CRL within a second, closes the revoked certificate's sessions and \
     links, and pushes the CRL to its replicas."
}

/// What `snow agent run` says while the component port refuses.
fn waiting_for(addr: std::net::SocketAddr) -> String {
    format!("the Snow server's component port at {addr}")
}

/// What `snow agent run` says when the component port still refuses.
fn nobody_at(addr: std::net::SocketAddr, domain: &snow_core::Domain) -> String {
    format!(
        "no Snow server answers at the component port {addr}: start `snow serve` on a site whose snow.toml \
         lists {domain} in [[components]] and has [server] component_bind = \"{addr}\", or give --server"
    )
}

/// The search agent as a component of the lab server: it answers at its
/// domain (`search.lab.example`) with the certificate issued for that
/// domain, from this site's lab store, until Ctrl-C. It waits up to
/// `wait` for the component port to accept connections; after that the
/// agent reconnects by itself whenever the link drops.
fn run_search(ctx: &Ctx, opts: ComponentOptions, wait: Duration) -> anyhow::Result<()> {
    let sc = super::serve::server_config(&ctx.paths, &ctx.config)?;
    let server_domain = sc.domain.to_string();
    let (domain, addr, hmac) = (opts.domain.clone(), opts.server, opts.auth.is_some());
    let attach = Attach::Component { options: opts, server_domain };
    let config = super::serve::search_agent_config(&ctx.paths, &sc, &ctx.config, &domain, attach)?;
    let rt = super::runtime()?;
    rt.block_on(async move {
        // Only a look at the port (the agent logs in by itself): a
        // connection opened and closed at once, which the server ignores.
        let port =
            super::retry_refused(&waiting_for(addr), wait, super::is_refused, || tokio::net::TcpStream::connect(addr))
                .await
                .with_context(|| format!("cannot connect to {addr}"))?;
        if port.is_none() {
            let domain: snow_core::Domain = domain.parse()?;
            bail!("{}", nobody_at(addr, &domain));
        }
        drop(port);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let agent = SearchAgent::start(config, stopped);
        println!(
            "Search agent {domain} attaching to {addr}{} (Ctrl-C to stop)",
            if hmac { " with message authentication" } else { "" }
        );
        let _ = std::io::Write::flush(&mut std::io::stdout());
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            r = async { super::serve::terminated().await } => r?,
        }
        let _ = stop.send(true);
        let stats = std::sync::Arc::clone(agent.stats());
        agent.join().await;
        println!("Took {} searches; refused {} (busy)", stats.accepted(), stats.rejected());
        anyhow::Ok(())
    })
}
