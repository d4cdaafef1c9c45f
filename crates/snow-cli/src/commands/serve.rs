//! `snow serve`: run the site's XMPP server (and, on a lab server, its
//! search agent and the importer of its drop directory).

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use snow_agents::{AgentConfig, Attach, Importer, ImporterConfig, SearchAgent, SearchSettings};
use snow_core::{Domain, SiteHome};
use snow_server::{Server, ServerConfig, ServerHandle};
use tokio::sync::watch;

use super::Ctx;
use crate::config::Config;

pub fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    rt.block_on(async move {
        let site = Site::start(&ctx.paths, &ctx.config).await?;
        let server = &site.server;
        // A server must outlive whoever reads its stdout: write errors
        // (a closed pipe) are ignored rather than fatal.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "Snow server for {} listening on {} (STARTTLS)", server.domain(), server.c2s_addr);
        if let Some(a) = server.direct_tls_addr {
            let _ = writeln!(out, "                    and on {a} (direct TLS)");
        }
        if let Some(a) = server.s2s_addr {
            let _ = writeln!(out, "                    and on {a} (server-to-server)");
        }
        if let Some(a) = server.component_addr {
            let _ = writeln!(out, "                    and on {a} (external components)");
        }
        if let Some(jid) = &site.agent_jid {
            let _ = writeln!(out, "Search agent {jid} answers searches");
        }
        let _ = out.flush();
        wait_for_stop(server).await?;
        tracing::info!("shutting down");
        site.stop().await;
        anyhow::Ok(())
    })
}

/// One running site: its server and, if configured, its search agent and
/// its lab importer (lab-side work, beside the server rather than in it).
pub struct Site {
    pub server: ServerHandle,
    pub agent: Option<SearchAgent>,
    /// The agent's full JID.
    pub agent_jid: Option<String>,
    /// Imports the files pushed to `data/in` (`[lab] import`).
    pub importer: Option<Importer>,
    /// The site's files (the lab's drop directory, `lab.db`, …).
    pub home: SiteHome,
    /// Stops the agent and the importer.
    stop_lab: watch::Sender<bool>,
}

/// The server configuration of the site in `paths`: `snow.toml` over the
/// defaults, the domain from it or from the CA certificate.
pub fn server_config(paths: &SiteHome, config: &Config) -> anyhow::Result<ServerConfig> {
    let domain: Domain = match &config.server.domain {
        Some(d) => d.parse().context("bad [server] domain in the configuration")?,
        None if !paths.ca_db().exists() => bail!(
            "{home} has no CA and its configuration names no [server] domain, so this server does not know \
             which site it is. At the PO: create the site's CA with `snow ca init --domain DOMAIN`. On a lab \
             server: make its home at the PO with `snow site add-lab --domain DOMAIN --lab-home DIR` and use \
             that directory here, or set [server] domain in {config}",
            home = paths.home().display(),
            config = paths.config_file().display()
        ),
        None => snow_pki::ca_certificate(paths)?.0,
    };
    if !paths.ca_cert().exists() {
        bail!(
            "no CA certificate at {}: a lab server needs the PO's ca/ca.pem and ca/crl.pem (`snow site add-lab` \
             at the PO copies them)",
            paths.ca_cert().display()
        );
    }
    let mut sc = ServerConfig::for_home(paths, domain, config.server.clone(), config.s2s.clone());
    sc.msgauth = config.msgauth.clone();
    sc.components = config.components.clone();
    sc.pubsub = config.pubsub.clone();
    // Alert nodes exist for the analyses the site knows, unless [pubsub] says.
    sc.pubsub.analyses.get_or_insert_with(|| config.lab.analyses.clone());
    Ok(sc)
}

/// A search agent of the site `sc` answering as `jid` and reaching its
/// server by `attach`: its certificate and key (issued at the PO with
/// `snow agent cert`, copied to SNOW_HOME/agents/), the CA, the lab store
/// and the `[lab]` settings.
pub fn search_agent_config(
    paths: &SiteHome,
    sc: &ServerConfig,
    config: &Config,
    jid: &str,
    attach: Attach,
) -> anyhow::Result<AgentConfig> {
    let (cert, key) = (paths.agent_cert(jid), paths.agent_key(jid));
    if !cert.exists() || !key.exists() {
        bail!(
            "the search agent {jid} has no certificate ({} is missing): issue it at the PO with \
             `snow agent cert --jid {jid}` and copy SNOW_HOME/agents/ here",
            cert.display()
        );
    }
    let identity = snow_agents::load_identity(&cert, &key)?;
    let ca_text = snow_core::files::read_limited(&sc.ca_cert, snow_crypto::MAX_KEY_FILE_BYTES)
        .with_context(|| format!("cannot read {}", sc.ca_cert.display()))?;
    let ca_der = snow_crypto::pem::certificates(&ca_text, "the CA certificate")?.remove(0);
    let d = &config.lab.detection;
    let detection = if d.enabled {
        let service = d.service.clone().or_else(|| config.s2s.master.clone()).unwrap_or_else(|| sc.domain.to_string());
        let mut per_analysis = std::collections::HashMap::new();
        for (code, p) in &d.analyses {
            per_analysis.insert(code.clone(), p.detector()?);
        }
        Some(snow_agents::detect::DetectionConfig {
            service,
            recent_weeks: d.recent_weeks,
            default: d.default.detector()?,
            per_analysis,
            poll: std::time::Duration::from_secs(d.poll_secs),
            said: Default::default(),
        })
    } else {
        None
    };
    Ok(AgentConfig {
        detection,
        attach,
        ca_der,
        identity,
        lab_db: paths.lab_db(),
        settings: SearchSettings {
            lab: config.lab.lab_settings(),
            threshold: config.lab.disclosure_threshold,
            budget: snow_agents::search::Budget {
                per_hour: config.lab.searches_per_hour,
                per_day: config.lab.searches_per_day,
            },
            perturbation: config.lab.ptable()?.map(std::sync::Arc::new),
        },
        workers: config.lab.max_search_agents,
        queue: config.lab.search_queue,
        nonces: snow_agents::open_search_nonces(&paths.agent_nonces(jid))?,
        audit: snow_store::AuditDb::open(&paths.search_audit())?,
    })
}

impl Site {
    /// Starts the server of the site in `paths`, its search agent and its
    /// lab importer.
    pub async fn start(paths: &SiteHome, config: &Config) -> anyhow::Result<Site> {
        let sc = server_config(paths, config)?;
        let domain = sc.domain.clone();
        if !sc.server_cert.exists() {
            bail!(
                "no server certificate for {domain} in {} (issue one with `snow server cert --domain {domain}`)",
                sc.server_cert.display()
            );
        }
        // Checked before the server starts, so a missing certificate stops nothing.
        let agent_config = if config.lab.search_agent {
            let jid = format!("{}@{domain}", config.lab.search_agent_name);
            // The server's address is known once it runs.
            let attach = Attach::Client { server: SocketAddr::from(([127, 0, 0, 1], 0)), domain: domain.to_string() };
            Some((search_agent_config(paths, &sc, config, &jid, attach)?, jid))
        } else {
            None
        };
        let server = Server::start(sc).await?;
        let (stop_lab, stopped) = watch::channel(false);
        let importer =
            config.lab.import.then(|| Importer::start(ImporterConfig::for_home(paths, &config.lab), stopped.clone()));
        let mut site = Site { server, agent: None, agent_jid: None, importer, home: paths.clone(), stop_lab };
        if let Some((mut agent_config, jid)) = agent_config {
            let mut addr = site.server.c2s_addr;
            if addr.ip().is_unspecified() {
                addr = SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port());
            }
            agent_config.attach = Attach::Client { server: addr, domain: domain.to_string() };
            site.agent = Some(SearchAgent::start(agent_config, stopped));
            site.agent_jid = Some(format!("{jid}/{}", snow_agents::AGENT_RESOURCE));
        }
        Ok(site)
    }

    /// Stops the lab side first (an import under way finishes), then the
    /// server.
    pub async fn stop(self) {
        let _ = self.stop_lab.send(true);
        if let Some(i) = self.importer {
            i.join().await;
        }
        if let Some(a) = self.agent {
            a.join().await;
        }
        self.server.shutdown(Duration::from_secs(10)).await;
    }
}

/// Resolves on SIGTERM (never elsewhere than Unix).
pub async fn terminated() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?.recv().await;
        Ok(())
    }
    #[cfg(not(unix))]
    std::future::pending().await
}

/// Waits for Ctrl-C or SIGTERM; SIGHUP re-reads the CRL meanwhile.
async fn wait_for_stop(server: &ServerHandle) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = term.recv() => return Ok(()),
                _ = hup.recv() => match server.reload_crl() {
                    Ok(()) => tracing::info!("CRL reloaded"),
                    Err(e) => tracing::error!(error = %e, "CRL reload failed; the old CRL stays in force"),
                },
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = server;
        tokio::signal::ctrl_c().await?;
        Ok(())
    }
}
