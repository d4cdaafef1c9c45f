//! Listeners, shared state and shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use snow_store::{ServerDb, StoreError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::limits::ConnectionLimits;
use crate::router::{Outbound, Router};
use crate::trust::TrustStore;
use crate::{session, tls, ServerConfig, ServerError};

/// State every connection shares.
pub(crate) struct Shared {
    pub config: ServerConfig,
    pub trust: TrustStore,
    pub acceptor: TlsAcceptor,
    pub db: Arc<Mutex<ServerDb>>,
    pub router: Router,
    pub links: crate::s2s::Links,
    pub pushes: crate::directory::Pushes,
    pub conns: Arc<ConnectionLimits>,
    pub components: crate::component::Components,
    pub shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// Runs a database call on the blocking pool.
    pub async fn db<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut ServerDb) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        match tokio::task::spawn_blocking(move || f(&mut db.lock().unwrap_or_else(|p| p.into_inner()))).await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Io("database task".into(), std::io::Error::other(e.to_string()))),
        }
    }
}

/// Starts servers.
pub struct Server;

/// A running server: its addresses, and the way to stop it.
pub struct ServerHandle {
    pub c2s_addr: SocketAddr,
    pub direct_tls_addr: Option<SocketAddr>,
    pub s2s_addr: Option<SocketAddr>,
    /// Where external components connect (XEP-0114), if any are configured.
    pub component_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    listeners: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Loads certificates, opens the database and starts listening.
    pub async fn start(config: ServerConfig) -> Result<ServerHandle, ServerError> {
        config.validate()?;
        let trust = TrustStore::load(&config.ca_cert, &config.crl, &config.s2s.trusted_cas)?;
        let acceptor = TlsAcceptor::from(tls::server_config(&config)?);
        let connector = tokio_rustls::TlsConnector::from(tls::client_config(&config, trust.peer_cas())?);
        let db = ServerDb::open(&config.database)?;
        let components = crate::component::Components::load(&config)?;
        if let Some(ca_db) = &config.ca_db {
            // At the PO, every user the CA issued is a known account.
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            match snow_store::CaDb::open(ca_db).and_then(|c| c.users()) {
                Ok(users) => {
                    for u in users.iter().filter(|u| u.revoked.is_none()) {
                        db.add_account(&u.jid, now)?;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not read the CA's users"),
            }
        }
        let c2s = bind(&config.settings.c2s_bind).await?;
        let direct = match config.settings.direct_tls_bind.trim() {
            "" => None,
            addr => Some(bind(addr).await?),
        };
        let s2s = match config.s2s.bind.trim() {
            "" => None,
            addr => Some(bind(addr).await?),
        };
        let component_listener = match config.settings.component_bind.trim() {
            _ if components.is_empty() => None,
            "" => None,
            addr => Some(bind(addr).await?),
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let conns = ConnectionLimits::new(config.settings.max_connections, config.settings.max_connections_per_ip);
        let shared = Arc::new(Shared {
            config,
            trust,
            acceptor,
            db: Arc::new(Mutex::new(db)),
            router: Router::default(),
            links: crate::s2s::Links::new(connector),
            pushes: Default::default(),
            conns,
            components,
            shutdown: shutdown_rx,
        });
        let c2s_addr = c2s.local_addr().map_err(|source| ServerError::Bind { addr: "c2s".into(), source })?;
        let direct_tls_addr = match &direct {
            Some(l) => Some(l.local_addr().map_err(|source| ServerError::Bind { addr: "direct TLS".into(), source })?),
            None => None,
        };
        let s2s_addr = match &s2s {
            Some(l) => Some(l.local_addr().map_err(|source| ServerError::Bind { addr: "s2s".into(), source })?),
            None => None,
        };
        let mut listeners = vec![tokio::spawn(accept_loop(Arc::clone(&shared), c2s, Kind::StartTls))];
        if let Some(l) = direct {
            listeners.push(tokio::spawn(accept_loop(Arc::clone(&shared), l, Kind::DirectTls)));
        }
        if let Some(l) = s2s {
            listeners.push(tokio::spawn(accept_loop(Arc::clone(&shared), l, Kind::S2s)));
        }
        let component_addr = match component_listener {
            Some(l) => {
                let a = l.local_addr().map_err(|source| ServerError::Bind { addr: "component".into(), source })?;
                listeners.push(tokio::spawn(accept_loop(Arc::clone(&shared), l, Kind::Component)));
                Some(a)
            }
            None => None,
        };
        listeners.push(tokio::spawn(crate::directory::replicate(Arc::clone(&shared))));
        listeners.push(tokio::spawn(crate::lab_import::run(Arc::clone(&shared))));
        tracing::info!(domain = %shared.config.domain, %c2s_addr, ?direct_tls_addr, ?s2s_addr, "server listening");
        Ok(ServerHandle { c2s_addr, direct_tls_addr, s2s_addr, component_addr, shared, shutdown_tx, listeners })
    }
}

async fn bind(addr: &str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr: addr.to_owned(), source })
}

/// What a listener serves.
#[derive(Clone, Copy)]
enum Kind {
    StartTls,
    DirectTls,
    S2s,
    Component,
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, kind: Kind) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(slot) = shared.conns.acquire(peer.ip()) else {
            tracing::warn!(%peer, "connection limit reached: refusing");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _slot = slot;
            match kind {
                Kind::StartTls => session::run_starttls(shared, tcp, peer).await,
                Kind::DirectTls => session::run_direct_tls(shared, tcp, peer).await,
                Kind::S2s => crate::s2s::run_incoming(shared, tcp, peer).await,
                Kind::Component => crate::component::run(shared, tcp, peer).await,
            }
        });
    }
}

impl ServerHandle {
    /// Re-reads the CRL: revoked certificates can no longer log in.
    pub fn reload_crl(&self) -> Result<(), ServerError> {
        self.shared.trust.reload_crl()
    }

    pub fn open_connections(&self) -> usize {
        self.shared.conns.open_connections()
    }

    pub fn domain(&self) -> &snow_core::Domain {
        &self.shared.config.domain
    }

    /// Stops accepting, closes every stream with `<system-shutdown/>`, and
    /// waits (at most `grace`) for the connections to finish.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shutdown_tx.send(true);
        for s in self.shared.router.all() {
            s.send(Outbound::Close(snow_xml::stream_error_xml("system-shutdown", "the server is shutting down")));
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.shared.conns.open_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for l in self.listeners {
            // Wait until the listening socket is really closed, so the port
            // can be bound again at once (a restart).
            l.abort();
            let _ = l.await;
        }
        tracing::info!("server stopped");
    }
}
