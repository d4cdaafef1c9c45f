//! `snow serve`: run the site's XMPP server.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use snow_core::Domain;
use snow_server::{Server, ServerConfig};

use super::Ctx;

pub fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let domain: Domain = match &ctx.config.server.domain {
        Some(d) => d.parse().context("bad server.domain in the configuration")?,
        None => snow_pki::ca_certificate(&ctx.paths)?.0,
    };
    let mut config =
        ServerConfig::for_home(ctx.paths.home(), domain.clone(), ctx.config.server.clone(), ctx.config.s2s.clone());
    config.lab = ctx.config.lab.clone();
    if !config.server_cert.exists() {
        bail!(
            "no server certificate for {domain} in {} (issue one with `snow server cert --domain {domain}`)",
            config.server_cert.display()
        );
    }
    let rt = super::runtime()?;
    rt.block_on(async move {
        let server = Server::start(config).await?;
        // A server must outlive whoever reads its stdout: write errors
        // (a closed pipe) are ignored rather than fatal.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "Snow server for {domain} listening on {} (STARTTLS)", server.c2s_addr);
        if let Some(a) = server.direct_tls_addr {
            let _ = writeln!(out, "                    and on {a} (direct TLS)");
        }
        if let Some(a) = server.s2s_addr {
            let _ = writeln!(out, "                    and on {a} (server-to-server)");
        }
        let _ = out.flush();
        wait_for_stop(&server).await?;
        tracing::info!("shutting down");
        server.shutdown(Duration::from_secs(10)).await;
        anyhow::Ok(())
    })
}

/// Waits for Ctrl-C or SIGTERM; SIGHUP re-reads the CRL meanwhile.
async fn wait_for_stop(server: &snow_server::ServerHandle) -> anyhow::Result<()> {
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
