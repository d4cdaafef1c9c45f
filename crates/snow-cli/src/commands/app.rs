//! `snow app`: the GP's app in the browser (crates/snow-app).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};

use super::Ctx;
use crate::cli::AppArgs;

pub fn run(ctx: &Ctx, args: AppArgs) -> anyhow::Result<()> {
    let settings = &ctx.config.app;
    let lang_code = args.lang.as_deref().unwrap_or(&settings.language);
    let Some(lang) = snow_app::Lang::parse(lang_code) else {
        bail!("--lang must be nb or en (not {lang_code:?})");
    };
    let server = args.server.clone().unwrap_or_else(|| settings.server.clone());
    for lab in &args.labs {
        lab.parse::<snow_core::Domain>().with_context(|| format!("--lab {lab:?} is not a domain name"))?;
    }
    let rt = super::runtime()?;
    rt.block_on(async {
        let server_addr: SocketAddr = match server.parse() {
            Ok(a) => a,
            Err(_) => tokio::net::lookup_host(&server)
                .await
                .with_context(|| format!("cannot resolve the server {server}"))?
                .next()
                .with_context(|| format!("{server} has no address"))?,
        };
        let keystore: PathBuf = args.keystore.clone().unwrap_or_else(|| ctx.paths.keystore());
        let opts = snow_app::AppOptions {
            state_file: ctx.paths.home().join("app-state.json"),
            keystore,
            server_addr,
            direct_tls: settings.direct_tls,
            labs: if args.labs.is_empty() { settings.labs.clone() } else { args.labs.clone() },
            alert_service: settings.alert_service.clone(),
            min_passphrase_length: ctx.config.pki.min_passphrase_length,
            bind: SocketAddr::from(([127, 0, 0, 1], args.port.unwrap_or(settings.port))),
            lang,
        };
        let app = snow_app::start(opts).await?;
        println!("Snow is running at http://127.0.0.1:{}/ (this computer only).", app.addr.port());
        println!("Open it with this link (it works once):\n  {}", app.url);
        if !args.no_browser {
            open_browser(&app.url);
        }
        println!("Ctrl-C stops it.");
        let _ = tokio::signal::ctrl_c().await;
        app.shutdown().await;
        anyhow::Ok(())
    })
}

/// Opens `url` with the platform's opener; the link is printed anyway.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        ("open", vec![url])
    } else if cfg!(target_os = "windows") {
        ("cmd", vec!["/C", "start", "", url])
    } else {
        ("xdg-open", vec![url])
    };
    match std::process::Command::new(opener.0)
        .args(&opener.1)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => {}
        Err(_) => eprintln!("(could not open the browser: open the link above yourself)"),
    }
}
