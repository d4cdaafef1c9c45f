//! One module per command group; `run` dispatches.

mod agent;
mod alert;
mod app;
mod bench;
mod bench_abuse;
mod ca;
mod chat;
mod contacts;
mod crypt;
mod demo;
mod key;
mod lab;
mod lab_audit;
mod msgauth;
mod outbox;
mod search;
mod serve;
mod server;
mod site;
mod user;

use crate::cli::{CaSecret, Cli, Command};
use crate::config::Config;
use crate::secrets::Source;

/// What every command gets: the site's paths and its configuration.
pub struct Ctx {
    pub paths: snow_core::SiteHome,
    pub config: Config,
    /// Where the configuration is read from (it may not exist yet):
    /// --config, else SNOW_HOME/snow.toml.
    pub config_path: std::path::PathBuf,
}

impl Ctx {
    /// A path from the configuration: under SNOW_HOME unless absolute.
    pub fn resolve(&self, p: &std::path::Path) -> std::path::PathBuf {
        self.paths.resolve(p)
    }

    /// The key store these arguments name (default: SNOW_HOME/keystore).
    pub fn key_store(&self, args: &crate::cli::KeyStoreArgs) -> snow_crypto::FileKeyStore {
        snow_crypto::FileKeyStore::new(args.keystore.clone().unwrap_or_else(|| self.paths.keystore()))
    }

    /// Opens the CA with the admin passphrase.
    pub fn open_ca(&self, secret: &CaSecret) -> anyhow::Result<snow_pki::Ca> {
        // Fail on a missing CA before asking for a passphrase.
        snow_pki::ca_certificate(&self.paths)?;
        let pass = Source::ca_passphrase(secret).get()?;
        Ok(snow_pki::Ca::open(&self.paths, &pass, &self.config.pki)?)
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let paths = snow_core::SiteHome::new(&cli.home);
    let config = Config::load(cli.config.as_deref(), &paths)?;
    let config_path = cli.config.clone().unwrap_or_else(|| paths.config_file());
    let ctx = Ctx { paths, config, config_path };
    match cli.command {
        Command::Ca(c) => ca::run(&ctx, c),
        Command::Server(c) => server::run(&ctx, c),
        Command::Agent(c) => agent::run(&ctx, c),
        Command::Msgauth(c) => msgauth::run(&ctx, c),
        Command::Outbox(crate::cli::OutboxCommand::Send) => outbox::send(&ctx),
        Command::Search(args) => search::run(&ctx, args),
        Command::Alert(c) => alert::run(&ctx, c),
        Command::Demo(args) => demo::run(&ctx, args),
        Command::User(c) => user::run(&ctx, c),
        Command::Key(c) => key::run(&ctx, c),
        Command::Serve => serve::run(&ctx),
        Command::Chat(c) => chat::run(&ctx, c),
        Command::Bench(crate::cli::BenchCommand::C2s(args)) => bench::c2s(&ctx, args),
        Command::Bench(crate::cli::BenchCommand::S2s(args)) => bench::s2s(&ctx, args),
        Command::Bench(crate::cli::BenchCommand::Abuse(args)) => bench_abuse::run(&ctx, args),
        Command::Keys(crate::cli::KeysCommand::Lookup { conn, jids }) => chat::lookup(&ctx, conn, jids),
        Command::Crypt(c) => crypt::run(&ctx, c),
        Command::Lab(c) => lab::run(&ctx, c),
        Command::Site(crate::cli::SiteCommand::AddLab { domain, lab_home, same_host, ca }) => site::add_lab(
            &ctx,
            &ca,
            site::AddLab { domain: &domain, lab_home: &lab_home, same_host, po_config: &ctx.config_path },
        ),
        Command::Presence { conn, show, status, listen } => chat::presence(&ctx, conn, show, status, listen),
        Command::Contacts(c) => contacts::run(&ctx, c),
        Command::App(args) => app::run(&ctx, args),
    }
}

/// A multi-threaded tokio runtime for the commands that do network I/O.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Makes a connection with `attempt` while the peer refuses it (`refused`
/// says which errors are a refused connection), for up to `wait`: `snow
/// serve &` followed at once by a client is a race the client should win.
/// If that takes more than a second, says once on standard error that it
/// is waiting for `what`. `Ok(None)`: still refused when `wait` was over
/// (a zero `wait` tries once). Any other error ends it at once.
pub async fn retry_refused<T, E, F, Fut>(
    what: &str,
    wait: std::time::Duration,
    refused: impl Fn(&E) -> bool,
    mut attempt: F,
) -> Result<Option<T>, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    use std::time::Duration;
    let start = tokio::time::Instant::now();
    let mut told = false;
    let mut pause = Duration::from_millis(50);
    loop {
        match attempt().await {
            Ok(t) => return Ok(Some(t)),
            Err(e) if refused(&e) => {}
            Err(e) => return Err(e),
        }
        let waited = start.elapsed();
        if waited >= wait {
            return Ok(None);
        }
        if !told && waited >= Duration::from_secs(1) {
            eprintln!("waiting for {what}…");
            told = true;
        }
        tokio::time::sleep(pause.min(wait - waited)).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Whether a connection failed because nothing listens there (yet).
pub fn is_refused(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::ConnectionRefused
}

/// A date as people read it: `2026-11-22 14:03 UTC`.
pub fn show_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
}
