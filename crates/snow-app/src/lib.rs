//! The GP's Snow application (`snow app`): search, alerts and chat in the
//! browser, served by this process on 127.0.0.1 only.
//!
//! The browser is only a screen: the GP's private key is unlocked here
//! with the personal passphrase and never sent to it; every XMPP exchange
//! (login with the certificate, end-to-end encryption, the search agent,
//! the pubsub alerts) goes through snow-client in this process. Who may
//! use the pages is [`guard`]'s business (one-time link, session cookie,
//! Host and Origin checks, CSRF tokens, strict CSP); every asset is inside
//! the binary, so it works with no internet.
//!
//! Module map: [`guard`] (access), [`live`] (the connection and what it
//! brought), `pages` (one module per screen), [`chart`] (SVG), [`texts`]
//! (Norwegian and English).

pub mod chart;
pub mod guard;
pub mod live;
mod pages;
pub mod texts;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use axum::routing::{get, post};
use axum::Router;
use tokio::sync::broadcast;

pub use texts::Lang;

/// How the app is set up (`snow app`'s options and `[app]` in snow.toml).
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// The GP's key store (made by the first-run page if it is missing).
    pub keystore: PathBuf,
    /// Where the app keeps what only it knows (alerts dismissed).
    pub state_file: PathBuf,
    /// The Snow server (c2s).
    pub server_addr: SocketAddr,
    pub direct_tls: bool,
    /// The labs whose statistics the GP may search (their domains).
    pub labs: Vec<String>,
    /// The pubsub service of the alerts; the GP's own domain if `None`.
    pub alert_service: Option<String>,
    /// `[pki] min_passphrase_length`, as `snow key import` applies it.
    pub min_passphrase_length: usize,
    /// Where to listen: a loopback address (port 0: any free port).
    pub bind: SocketAddr,
    pub lang: Lang,
}

/// Why the app cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("the app listens on this computer only: {0} is not a loopback address (use 127.0.0.1)")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Shared by every request.
pub struct AppState {
    pub opts: AppOptions,
    pub guard: guard::Guard,
    live: RwLock<Option<Arc<live::Live>>>,
    /// Serialises the first run and unlocking.
    pub unlocking: tokio::sync::Mutex<()>,
    pub events: broadcast::Sender<live::Event>,
    pub dismissed: Arc<Mutex<HashSet<String>>>,
}

impl AppState {
    /// The live connection, once the key is unlocked.
    pub fn live(&self) -> Option<Arc<live::Live>> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts a new live session in place; the one it replaces (if any) logs
    /// out.
    fn set_live(&self, l: Option<Arc<live::Live>>) {
        let old = std::mem::replace(&mut *self.live.write().unwrap_or_else(|p| p.into_inner()), l);
        if let Some(old) = old {
            old.stop();
        }
    }

    /// Records that the GP dismissed (or took back) an alert.
    pub fn dismiss(&self, id: &str, dismissed: bool) {
        let list: Vec<String> = {
            let mut d = self.dismissed.lock().unwrap_or_else(|p| p.into_inner());
            if dismissed {
                d.insert(id.to_owned());
            } else {
                d.remove(id);
            }
            let mut v: Vec<String> = d.iter().cloned().collect();
            v.sort();
            v
        };
        if let Err(e) = write_state(&self.opts.state_file, &list) {
            tracing::warn!(error = %e, path = %self.opts.state_file.display(), "cannot save the dismissed alerts");
        }
    }
}

/// Writes the dismissed alerts beside, then renames: never half a file.
fn write_state(path: &std::path::Path, dismissed: &[String]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::json!({ "dismissed": dismissed }).to_string())?;
    std::fs::rename(tmp, path)
}

/// Most dismissed alerts remembered (the file stays small).
const MAX_DISMISSED: usize = 10_000;

fn read_state(path: &std::path::Path) -> HashSet<String> {
    let Ok(bytes) = snow_core::files::read_limited(path, 1 << 20) else { return HashSet::new() };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return HashSet::new() };
    v.get("dismissed")
        .and_then(|d| d.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str())
                .filter(|s| snow_core::alert::valid_id(s))
                .take(MAX_DISMISSED)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The app, running.
pub struct RunningApp {
    pub addr: SocketAddr,
    /// The one-time link that opens it (print it, open it in the browser).
    pub url: String,
    pub state: Arc<AppState>,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningApp {
    /// Stops serving and logs out.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        self.state.set_live(None);
    }

    /// Serves until the task ends (it does not on its own).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Listens on `opts.bind` (loopback only) and serves the app.
pub async fn start(opts: AppOptions) -> Result<RunningApp, AppError> {
    if !opts.bind.ip().is_loopback() {
        return Err(AppError::NotLoopback(opts.bind));
    }
    let listener =
        tokio::net::TcpListener::bind(opts.bind).await.map_err(|source| AppError::Bind { addr: opts.bind, source })?;
    let addr = listener.local_addr().map_err(|source| AppError::Bind { addr: opts.bind, source })?;
    let (guard, token) = guard::Guard::new(addr.port(), opts.lang);
    let (events, _) = broadcast::channel(256);
    let dismissed = Arc::new(Mutex::new(read_state(&opts.state_file)));
    let state = Arc::new(AppState {
        opts,
        guard,
        live: RwLock::new(None),
        unlocking: tokio::sync::Mutex::new(()),
        events,
        dismissed,
    });
    let app = router(Arc::clone(&state));
    let (shutdown, mut stop) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
            tracing::error!(error = %e, "the app stopped serving");
        }
    });
    let url = format!("http://127.0.0.1:{}/start?token={token}", addr.port());
    Ok(RunningApp { addr, url, state, shutdown, task })
}

/// Largest request body: a key file (1 MiB at most) in a form.
const MAX_BODY: usize = 1_200_000;

fn router(state: Arc<AppState>) -> Router {
    use pages::{alerts, chat, search, start};
    Router::new()
        .route("/", get(start::home))
        .route("/start", get(start::exchange))
        .route("/assets/app.css", get(start::css))
        .route("/assets/app.js", get(start::js))
        .route("/setup", get(start::setup_page).post(start::setup))
        .route("/unlock", get(start::unlock_page).post(start::unlock))
        .route("/lock", post(start::lock))
        .route("/lang", post(start::lang))
        .route("/events", get(start::events))
        .route("/search", get(search::index))
        .route("/search.csv", get(search::csv))
        .route("/alerts", get(alerts::index))
        .route("/alerts/list", get(alerts::list))
        .route("/alerts/send", post(alerts::send))
        .route("/alerts/subscribe", post(alerts::subscribe))
        .route("/alerts/unsubscribe", post(alerts::unsubscribe))
        .route("/alerts/{id}", get(alerts::detail))
        .route("/alerts/{id}/confirm", post(alerts::confirm))
        .route("/alerts/{id}/dismiss", post(alerts::dismiss))
        .route("/chat", get(chat::index))
        .route("/chat/contacts", post(chat::add_contact))
        .route("/chat/approve", post(chat::approve))
        .route("/chat/with/{jid}", get(chat::conversation))
        .route("/chat/with/{jid}/lines", get(chat::lines))
        .route("/chat/with/{jid}/confirm", post(chat::confirm))
        .route("/chat/with/{jid}/send", post(chat::send))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), guard::check))
        .with_state(state)
}
