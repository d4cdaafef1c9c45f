//! Starting a server: the stores, the services, routing and the
//! transports wired together, the listeners, and shutdown. The only
//! module that knows all the others.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use snow_store::ServerDb;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::db::Db;
use crate::limits::{ConnectionLimits, ConnectionSlot, Count, Full, LimitCounters, Limited, RateLimiter};
use crate::routing::{ComponentTable, Federation, Outbound, Policy, Router};
use crate::services::{self, Registry, Service};
use crate::transport::c2s::{self, C2s};
use crate::transport::component::{self, ComponentPort, Components};
use crate::transport::s2s::{self, Incoming, Links};
use crate::transport::stream_management::SmSettings;
use crate::transport::Accepting;
use crate::trust::TrustStore;
use crate::{tls, ServerConfig, ServerError};

/// Starts servers.
pub struct Server;

/// A running server: its addresses, and the way to stop it.
pub struct ServerHandle {
    pub c2s_addr: SocketAddr,
    pub direct_tls_addr: Option<SocketAddr>,
    pub s2s_addr: Option<SocketAddr>,
    /// Where external components connect (XEP-0114), if any are configured.
    pub component_addr: Option<SocketAddr>,
    domain: snow_core::Domain,
    router: Arc<Router>,
    trust: Arc<TrustStore>,
    conns: Arc<ConnectionLimits>,
    counters: Arc<LimitCounters>,
    services: Vec<(&'static str, &'static [&'static str])>,
    shutdown_tx: watch::Sender<bool>,
    listeners: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Loads certificates, opens the database and starts listening.
    pub async fn start(config: ServerConfig) -> Result<ServerHandle, ServerError> {
        config.validate()?;
        let (cas, crls) = (&config.s2s.trusted_cas, &config.s2s.trusted_crls);
        let trust = Arc::new(TrustStore::load(&config.ca_cert, &config.crl, cas, crls)?);
        let acceptor = TlsAcceptor::from(tls::server_config(&config)?);
        let connector = tokio_rustls::TlsConnector::from(tls::client_config(&config, trust.peer_cas())?);
        let db = open_database(&config)?;
        let components = Components::load(&config)?;
        let c2s_listener = bind("[server] c2s_bind", &config.settings.c2s_bind).await?;
        let direct = bind_optional("[server] direct_tls_bind", &config.settings.direct_tls_bind).await?;
        let s2s_listener = bind_optional("[s2s] bind", &config.s2s.bind).await?;
        let component_listener = match components.is_empty() {
            true => None,
            false => bind_optional("[server] component_bind", &config.settings.component_bind).await?,
        };

        let (shutdown_tx, shutdown) = watch::channel(false);
        let domain = config.domain.to_string();
        let settings = &config.settings;
        let counters = Arc::new(LimitCounters::default());
        let accepting = || Accepting {
            domain: domain.clone(),
            limits: config.limits(),
            timeout: config.negotiation_timeout(),
            acceptor: acceptor.clone(),
            deadlines: settings.deadlines(),
            counters: Arc::clone(&counters),
            shutdown: shutdown.clone(),
        };
        let limiter = |kind, rate, burst| RateLimiter::new(kind, rate, burst, Arc::clone(&counters));
        let (registry, directory) = registry(&config, &db, &trust, &counters);
        let listing = registry.listing();
        let links = Links::new(
            connector,
            Arc::clone(&trust),
            config.s2s.clone(),
            config.limits(),
            config.negotiation_timeout(),
            shutdown.clone(),
        );
        let federation = Federation::new(config.s2s.federation(), config.s2s.max_outbound_attempts);
        for d in config.s2s.routes.keys().filter(|d| !federation.allows(d)) {
            tracing::warn!(domain = %d, "[s2s.routes] names a domain outside the federation ([s2s] master, replicas, federate_with): no link to it");
        }
        let router = Arc::new(Router::new(
            domain.clone(),
            Policy { require_e2e: settings.require_e2e, client_check: settings.client_check, federation },
            ComponentTable::new(components.domains()),
            Arc::new(links),
            Arc::new(registry),
            db.clone(),
        ));
        let conns = ConnectionLimits::new(
            settings.max_connections,
            settings.max_connections_per_ip,
            settings.max_preauth_per_ip,
        );
        let logins = f64::from(settings.login_attempts_per_minute);

        let c2s = Arc::new(C2s {
            accepting: accepting(),
            domain: config.domain.clone(),
            trust: Arc::clone(&trust),
            router: Arc::clone(&router),
            db: db.clone(),
            idle: Duration::from_secs(settings.idle_timeout_secs.max(1)),
            rate: (settings.stanza_rate, settings.stanza_burst),
            sm: SmSettings {
                resume: Duration::from_secs(settings.sm_resume_secs),
                max_unacked: settings.sm_max_unacked.max(1),
            },
            resumable: Arc::default(),
            outbound_queue: settings.outbound_queue,
            accounts: limiter(Limited::Account, settings.account_stanza_rate, settings.account_stanza_burst),
            logins: limiter(Limited::Logins, logins / 60.0, logins),
        });
        let c2s_addr = local_addr(&c2s_listener, "c2s")?;
        // Before anyone is served: the directory knows every certificate
        // issued so far.
        directory.catch_up().await;
        let mut listeners = Vec::new();
        // Starts serving a listener (if enabled); its address.
        let mut listen = |l: Option<TcpListener>, what: &str, serve: Handler| match l {
            Some(l) => {
                let addr = local_addr(&l, what)?;
                let conns = (Arc::clone(&conns), Arc::clone(&counters));
                listeners.push(tokio::spawn(accept_loop(l, conns, shutdown.clone(), serve)));
                Ok::<_, ServerError>(Some(addr))
            }
            None => Ok(None),
        };
        let c = Arc::clone(&c2s);
        listen(
            Some(c2s_listener),
            "c2s",
            Box::new(move |tcp, peer, slot| Box::pin(c2s::run_starttls(Arc::clone(&c), tcp, peer, slot))),
        )?;
        let c = Arc::clone(&c2s);
        let direct_tls_addr = listen(
            direct,
            "direct TLS",
            Box::new(move |tcp, peer, slot| Box::pin(c2s::run_direct_tls(Arc::clone(&c), tcp, peer, slot))),
        )?;
        let incoming = Arc::new(Incoming {
            accepting: accepting(),
            trust: Arc::clone(&trust),
            router: Arc::clone(&router),
            idle: Duration::from_secs(config.s2s.idle_timeout_secs.max(1) * 2),
            master: config.s2s.master.clone(),
            peers: limiter(Limited::S2sPeer, config.s2s.stanza_rate, config.s2s.stanza_burst),
        });
        let s2s_addr = listen(
            s2s_listener,
            "s2s",
            Box::new(move |tcp, peer, slot| Box::pin(s2s::run_incoming(Arc::clone(&incoming), tcp, peer, slot))),
        )?;
        let port = Arc::new(ComponentPort {
            accepting: accepting(),
            components,
            router: Arc::clone(&router),
            trust: Arc::clone(&trust),
            db: db.clone(),
            idle: Duration::from_secs(settings.idle_timeout_secs.max(1)),
            outbound_queue: settings.outbound_queue,
            rate: limiter(Limited::Component, settings.component_stanza_rate, settings.component_stanza_burst),
        });
        let component_addr = listen(
            component_listener,
            "component",
            Box::new(move |tcp, peer, slot| Box::pin(component::run(Arc::clone(&port), tcp, peer, slot))),
        )?;
        listeners.push(tokio::spawn(directory.replicate(Arc::clone(&router), shutdown.clone())));
        listeners.push(tokio::spawn(Arc::clone(&trust).watch(shutdown.clone())));
        let or_off = |a: Option<SocketAddr>| a.map_or_else(|| "off".to_owned(), |a| a.to_string());
        tracing::info!(
            "server {domain} listening: c2s {c2s_addr}, direct TLS {}, s2s {}",
            or_off(direct_tls_addr),
            or_off(s2s_addr)
        );
        Ok(ServerHandle {
            c2s_addr,
            direct_tls_addr,
            s2s_addr,
            component_addr,
            domain: config.domain.clone(),
            router,
            trust,
            conns,
            counters,
            services: listing,
            shutdown_tx,
            listeners,
        })
    }
}

/// `server.db`; at the PO every user the CA issued is a known account from
/// the start.
fn open_database(config: &ServerConfig) -> Result<Db, ServerError> {
    let db = ServerDb::open(&config.database)?;
    if let Some(ca_db) = &config.ca_db {
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
    Ok(Db::new(db))
}

/// The server's services, in the order their disco#info features are
/// listed, and the key directory (whose replication loop the server runs).
fn registry(
    config: &ServerConfig,
    db: &Db,
    trust: &Arc<TrustStore>,
    counters: &Arc<LimitCounters>,
) -> (Registry, Arc<services::Directory>) {
    let directory = Arc::new(services::Directory::new(
        db.clone(),
        Arc::clone(trust),
        config.crl.clone(),
        config.s2s.master.clone(),
        config.ca_db.clone(),
        config.s2s.replicas.clone(),
        Duration::from_millis(config.s2s.replication_interval_ms.max(50)),
    ));
    let registry = Registry::new(vec![
        Arc::new(services::Disco) as Arc<dyn Service>,
        Arc::new(services::Ping),
        Arc::new(services::Version),
        Arc::new(services::LegacySession),
        Arc::new(services::Presence { db: db.clone() }),
        Arc::new(services::Roster {
            db: db.clone(),
            max_items: config.settings.max_roster_items,
            counters: Arc::clone(counters),
        }),
        Arc::new(
            services::Offline::new(db.clone(), config.domain.to_string())
                .with_quota(offline_quota(config), Arc::clone(counters)),
        ),
        Arc::new(services::Pubsub::new(db.clone(), &config.pubsub, &config.s2s.replicas, Arc::clone(counters))),
        Arc::clone(&directory) as Arc<dyn Service>,
    ]);
    (registry, directory)
}

/// The offline quotas of `[server]`; the disk watermark is taken on the
/// file system of `server.db`.
fn offline_quota(config: &ServerConfig) -> services::OfflineQuota {
    let s = &config.settings;
    services::OfflineQuota {
        max_messages: s.offline_max_messages,
        max_bytes: s.offline_max_bytes,
        max_per_sender: s.offline_max_per_sender,
        min_free_bytes: s.offline_min_free_mb.saturating_mul(1024 * 1024),
        database: config.database.clone(),
    }
}

/// Listens on `addr`, the value of the configuration key `setting` (named
/// in the error, so a port already taken says what to change).
async fn bind(setting: &'static str, addr: &str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { setting, addr: addr.to_owned(), source })
}

/// Binds `addr` unless it is empty (the listener is disabled).
async fn bind_optional(setting: &'static str, addr: &str) -> Result<Option<TcpListener>, ServerError> {
    match addr.trim() {
        "" => Ok(None),
        a => bind(setting, a).await.map(Some),
    }
}

fn local_addr(l: &TcpListener, what: &str) -> Result<SocketAddr, ServerError> {
    l.local_addr().map_err(|source| ServerError::Bind { setting: "the listening addresses", addr: what.into(), source })
}

/// Serves one accepted connection.
type Handler = Box<
    dyn Fn(TcpStream, SocketAddr, ConnectionSlot) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync,
>;

async fn accept_loop(
    listener: TcpListener,
    (conns, counters): (Arc<ConnectionLimits>, Arc<LimitCounters>),
    mut shutdown: watch::Receiver<bool>,
    serve: Handler,
) {
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
        let slot = match conns.acquire(peer.ip()) {
            Ok(slot) => slot,
            Err(full) => {
                let n = match full {
                    Full::PreAuth => counters.add(Count::PreauthRefused),
                    Full::Total | Full::PerIp => counters.add(Count::ConnectionsRefused),
                };
                // The 1st, 2nd, 4th, 8th… and every 1000th: a flood must not flood the log.
                if n.is_power_of_two() || n % 1000 == 0 {
                    tracing::warn!(%peer, ?full, refused = n, "connection limit reached: refusing");
                }
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        // The slot goes with the connection: a transport may hand it on
        // to a task that outlives this one (a bound client session).
        tokio::spawn(serve(tcp, peer, slot));
    }
}

impl ServerHandle {
    /// Re-reads the CRL: revoked certificates can no longer log in.
    /// Sessions and links whose certificate it revokes are closed.
    pub fn reload_crl(&self) -> Result<(), ServerError> {
        self.trust.reload_crl().map(|_| ())
    }

    /// The revocation status this server works with (unknown: every login
    /// and server link is refused).
    pub fn revocation_status(&self) -> crate::trust::RevocationStatus {
        self.trust.status()
    }

    /// Refused CRLs and key pushes, sessions and links closed on
    /// revocation, … since start.
    pub fn trust_stats(&self) -> crate::trust::TrustStats {
        self.trust.stats()
    }

    /// What the rate limits, quotas and pre-authentication limits
    /// refused since start.
    pub fn limit_stats(&self) -> crate::limits::LimitStats {
        self.counters.stats()
    }

    pub fn open_connections(&self) -> usize {
        self.conns.open_connections()
    }

    pub fn domain(&self) -> &snow_core::Domain {
        &self.domain
    }

    /// The registered services and the disco#info features each adds, in
    /// registration order.
    pub fn services(&self) -> &[(&'static str, &'static [&'static str])] {
        &self.services
    }

    /// Stops accepting, closes every stream with `<system-shutdown/>`, and
    /// waits (at most `grace`) for the connections to finish.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shutdown_tx.send(true);
        for s in self.router.sessions.all() {
            s.send(Outbound::Close(snow_xml::stream_error_xml("system-shutdown", "the server is shutting down")));
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.conns.open_connections() > 0 && tokio::time::Instant::now() < deadline {
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
