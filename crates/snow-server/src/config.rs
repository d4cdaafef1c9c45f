//! The server's sections of `snow.toml` — `[server]`, `[s2s]`,
//! `[[components]]`, `[msgauth]` and `[pubsub]` — and the resolved configuration
//! (docs/architecture.md §6).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use snow_core::{Domain, SiteHome};

use crate::ServerError;

/// Every tunable of the server, with defaults fit for a real site.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// The site's XMPP domain; default: the CA's domain in SNOW_HOME.
    pub domain: Option<String>,
    /// Client port with STARTTLS (RFC 6120).
    pub c2s_bind: String,
    /// Client port with direct TLS (XEP-0368); empty to disable.
    pub direct_tls_bind: String,
    /// Most connections in all.
    pub max_connections: usize,
    /// Most connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Largest stanza in bytes.
    pub max_stanza_bytes: usize,
    /// Deepest element nesting (the stream is level 1, a stanza level 2).
    pub max_depth: usize,
    /// Most attributes on one element.
    pub max_attributes: usize,
    /// Most elements in one stanza.
    pub max_elements: usize,
    /// Sustained stanzas per second one connection may send (a faster
    /// sender is slowed down: the server stops reading from it).
    pub stanza_rate: f64,
    /// Stanzas a connection may send in a burst above the rate.
    pub stanza_burst: f64,
    /// Sustained stanzas per second one account may send across all its
    /// sessions; past it a stanza is refused with `policy-violation`, and
    /// a session whose account keeps on (more refused within a minute than
    /// the burst) is closed. Above `stanza_rate`, so one session alone is
    /// only ever slowed down: this stops an account multiplying its rate
    /// with sessions.
    pub account_stanza_rate: f64,
    /// Stanzas one account may send in a burst above its rate.
    pub account_stanza_burst: f64,
    /// Connections to the client ports one address may open per minute
    /// (each is a login attempt); more are refused with `policy-violation`.
    pub login_attempts_per_minute: u32,
    /// Sustained stanzas per second one external component may send, and
    /// its burst (as for an account).
    pub component_stanza_rate: f64,
    pub component_stanza_burst: f64,
    /// Seconds from accept by which TLS must be established (STARTTLS or
    /// direct TLS; s2s too), whatever the peer sends meanwhile.
    pub tls_handshake_timeout_secs: u64,
    /// Seconds from accept by which a connection must have authenticated
    /// (and a client bound its resource; a component done its handshake),
    /// whatever the peer sends meanwhile.
    pub auth_deadline_secs: u64,
    /// Connections from one address that have not authenticated yet; more
    /// are refused (a smaller cap than `max_connections_per_ip`).
    pub max_preauth_per_ip: usize,
    /// Seconds allowed for each step of stream negotiation.
    pub negotiation_timeout_secs: u64,
    /// Seconds of silence after which an authenticated connection is closed.
    pub idle_timeout_secs: u64,
    /// Stanzas queued for one slow reader before it is disconnected.
    pub outbound_queue: usize,
    /// Seconds a client session with stream management (XEP-0198) may be
    /// resumed after its connection broke; until then what was sent to it
    /// and not acknowledged waits for it, then goes to offline storage.
    /// 0: no resumption (acknowledgements only). Sensible: 0 to 3600
    /// (longer keeps the session's queue in memory for nothing).
    pub sm_resume_secs: u64,
    /// Stanzas a stream-managed session may have written and not yet
    /// acknowledged (kept for retransmission); at the limit the server
    /// asks for an ack and writes nothing more until it comes, so a client
    /// that never acknowledges is a slow reader. Sensible: 1 to 100,000.
    pub sm_max_unacked: usize,
    /// Refuse chat and normal messages whose body is clear text: only
    /// end-to-end encrypted bodies (XML Encryption) are stored or forwarded.
    pub require_e2e: bool,
    /// Port for external components (XEP-0114), used only when
    /// components are configured. Plain TCP: keep it on loopback.
    pub component_bind: String,
    /// Whether client sessions must announce the Snow client (XEP-0115
    /// caps node `urn:snow:client`) before they talk to anyone but the
    /// server: a convenience check that keeps users on the restricted
    /// client, not a security boundary (any client can send the caps).
    pub client_check: ClientCheck,
    /// Offline messages kept for one recipient; past it (or past
    /// `offline_max_bytes`) the sender gets `resource-constraint`.
    pub offline_max_messages: u64,
    /// Bytes of offline messages kept for one recipient.
    pub offline_max_bytes: u64,
    /// Offline messages one sender may have waiting for one recipient, so
    /// no single sender fills a recipient's store.
    pub offline_max_per_sender: u64,
    /// Megabytes that must stay free on the file system of `server.db`;
    /// below it no offline message is stored (0: no watermark).
    pub offline_min_free_mb: u64,
    /// Contacts in one roster.
    pub max_roster_items: usize,
}

/// `[server] client_check`: what the server does with a client session
/// that has not announced itself as the Snow client (docs/architecture.md
/// §4). The check only keeps honest users on the usual path to the
/// restricted client; a determined user can announce the Snow node from
/// any client, so nothing may rely on it for security.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientCheck {
    /// No check.
    Off,
    /// Everything passes; the first stanza `require` would refuse is
    /// logged once per session (a warning with the session's JID).
    #[default]
    Warn,
    /// Until the session has announced the Snow client, only presence and
    /// IQs for the server itself pass; everything else is refused with
    /// `policy-violation` and a text naming the Snow client.
    Require,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            domain: None,
            c2s_bind: "127.0.0.1:5222".into(),
            direct_tls_bind: "127.0.0.1:5223".into(),
            max_connections: 20_000,
            max_connections_per_ip: 200,
            max_stanza_bytes: 256 * 1024,
            max_depth: 32,
            max_attributes: 64,
            max_elements: 4096,
            stanza_rate: 50.0,
            stanza_burst: 200.0,
            account_stanza_rate: 100.0,
            account_stanza_burst: 400.0,
            login_attempts_per_minute: 120,
            component_stanza_rate: 500.0,
            component_stanza_burst: 5000.0,
            tls_handshake_timeout_secs: 10,
            auth_deadline_secs: 30,
            max_preauth_per_ip: 32,
            negotiation_timeout_secs: 30,
            idle_timeout_secs: 900,
            outbound_queue: 1000,
            sm_resume_secs: 300,
            sm_max_unacked: 1000,
            require_e2e: false,
            component_bind: "127.0.0.1:5347".into(),
            client_check: ClientCheck::Warn,
            offline_max_messages: 10_000,
            offline_max_bytes: 100 * 1024 * 1024,
            offline_max_per_sender: 1000,
            offline_min_free_mb: 512,
            max_roster_items: 1000,
        }
    }
}

/// The `[s2s]` section: links to other sites' servers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S2sSettings {
    /// Server-to-server port; "" disables incoming links.
    pub bind: String,
    /// Where to reach other domains: `"lab.example" = "127.0.0.1:15269"`.
    /// Without a route, `DOMAIN:5269` is looked up in DNS.
    pub routes: std::collections::BTreeMap<String, String>,
    /// CA certificates (PEM files) whose servers are trusted as peers.
    /// Empty: only servers of this site's own CA.
    pub trusted_cas: Vec<PathBuf>,
    /// The CRLs (PEM files) of the CAs in `trusted_cas` other than this
    /// site's: a peer certificate of a CA without a current CRL here has
    /// unknown revocation status and is refused.
    pub trusted_crls: Vec<PathBuf>,
    /// Seconds to establish a link before queued stanzas are bounced.
    pub connect_timeout_secs: u64,
    /// Stanzas that may wait for one remote domain.
    pub queue: usize,
    /// Seconds an idle outgoing link stays open.
    pub idle_timeout_secs: u64,
    /// On the PO (the site with the CA): servers whose key directory and
    /// CRL this server keeps up to date.
    pub replicas: Vec<String>,
    /// On a replica: the PO domain allowed to push key changes.
    pub master: Option<String>,
    /// Milliseconds between checks of the CA database for new changes.
    pub replication_interval_ms: u64,
    /// Other domains this server federates with, besides `master` and
    /// `replicas` (a listed domain covers its subdomains). Stanzas for any
    /// other domain are refused with `remote-server-not-found` and no
    /// connection is attempted; a route in `routes` does not list a domain.
    pub federate_with: Vec<String>,
    /// Outgoing links being connected at once; more wait their turn.
    pub max_outbound_attempts: usize,
    /// Sustained stanzas per second one peer domain may send on its
    /// incoming link; past it a stanza is refused with `policy-violation`,
    /// and a link that keeps on (more refused within a minute than the
    /// burst) is closed.
    pub stanza_rate: f64,
    /// Stanzas one peer domain may send in a burst above its rate.
    pub stanza_burst: f64,
}

impl S2sSettings {
    /// The domains this server federates with: `master`, `replicas` and
    /// `federate_with`.
    pub fn federation(&self) -> Vec<String> {
        let mut all: Vec<String> =
            self.master.iter().chain(&self.replicas).chain(&self.federate_with).cloned().collect();
        all.sort();
        all.dedup();
        all
    }
}

impl Default for S2sSettings {
    fn default() -> Self {
        S2sSettings {
            bind: "127.0.0.1:5269".into(),
            routes: Default::default(),
            trusted_cas: Vec::new(),
            trusted_crls: Vec::new(),
            connect_timeout_secs: 10,
            queue: 1000,
            idle_timeout_secs: 600,
            replicas: Vec::new(),
            master: None,
            replication_interval_ms: 1000,
            federate_with: Vec::new(),
            max_outbound_attempts: 8,
            stanza_rate: 500.0,
            stanza_burst: 5000.0,
        }
    }
}

/// One `[[components]]` entry: an external component (XEP-0114), such as
/// an agent, attached to this server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSettings {
    /// The component's address, a subdomain: `echo.po.example`.
    pub domain: String,
    /// File with the shared secret of the handshake (relative paths are
    /// under SNOW_HOME); owner-only.
    pub secret_file: PathBuf,
    /// Authenticate every stanza in both directions (`[msgauth]` keys).
    #[serde(default)]
    pub hmac: bool,
    /// The source the component signs with (default: its domain).
    #[serde(default)]
    pub source: Option<String>,
    /// Also encrypt every stanza's content both ways (AES-256-GCM under a
    /// key derived from the msgauth keys; needs `hmac`): the component
    /// port is plain TCP. The component must have it on too; a stanza in
    /// the other form is refused with `not-authorized`, saying why.
    #[serde(default)]
    pub confidential: bool,
}

/// The `[msgauth]` section: message authentication between components
/// (docs/architecture.md §6).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MsgAuthSettings {
    /// The key file (relative paths are under SNOW_HOME); owner-only.
    pub keys: PathBuf,
    /// Seconds an old key is still accepted after a newer one starts.
    pub overlap_secs: i64,
    /// Seconds a sender's clock may differ from ours.
    pub window_secs: i64,
    /// The source name this server signs with (default: its domain).
    pub source: Option<String>,
}

impl Default for MsgAuthSettings {
    fn default() -> Self {
        MsgAuthSettings { keys: PathBuf::from("msgauth.keys"), overlap_secs: 86_400, window_secs: 300, source: None }
    }
}

/// The analysis codes with alert nodes when `[pubsub] analyses` is not set
/// and nothing else filled it in (`snow serve` uses `[lab] analyses`,
/// whose default this is).
pub const DEFAULT_ALERT_ANALYSES: &[&str] = &["INFA", "INFB", "RSV", "SARS2", "MPV", "MYCPN"];

/// The `[pubsub]` section: which alert nodes exist, who publishes what on
/// them, and the caps (docs/architecture.md §3, §6).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PubsubSettings {
    /// Analysis codes that have alert nodes (`alerts/ANALYSIS/AREA`).
    /// Unset: `[lab] analyses` (by `snow serve`), else
    /// [`DEFAULT_ALERT_ANALYSES`].
    pub analyses: Option<Vec<String>>,
    /// Area codes that have alert nodes: counties (`54`) and
    /// municipalities (`5401`; a listed municipality brings its county).
    /// `all` always has one. Empty: every well-formed code.
    pub areas: Vec<String>,
    /// The detection agents that publish outbreak signals, each with the
    /// analyses it may signal (empty: every analysis):
    /// `"search@lab.example" = ["INFA"]`. Unset: for every `[s2s]
    /// replicas` R, its in-process agent `search@R` and its component
    /// agent `search.R`, for every analysis. Nobody else publishes
    /// signals, and these agents publish nothing else.
    pub signal_publishers: Option<std::collections::BTreeMap<String, Vec<String>>>,
    /// Bare JIDs that own every alert node: they may change anyone's
    /// subscription (pubsub#owner). Empty: subscriptions change only by
    /// their subscriber.
    pub owners: Vec<String>,
    /// Items a node keeps in all; the oldest expire.
    pub max_items_per_node: u32,
    /// Items one publisher keeps on one node; its own oldest expire, so a
    /// flood never pushes out another publisher's items.
    pub max_items_per_publisher: u32,
    /// Publications a GP may make in a burst (then `publish_per_hour`).
    pub publish_burst: u32,
    /// Publications per hour a GP may make, sustained.
    pub publish_per_hour: u32,
    /// The same two for a signal publisher (an import may raise many).
    pub signal_publish_burst: u32,
    pub signal_publish_per_hour: u32,
    /// Largest item (the `<alert/>` as stored) in bytes; a larger one is
    /// refused with `resource-constraint`. An alert carries about 1 KB per
    /// subscriber it is encrypted to (2048-bit keys), so the default, the
    /// largest stanza, lets a broadcast reach as many as a stanza holds.
    pub max_item_bytes: usize,
}

impl Default for PubsubSettings {
    fn default() -> Self {
        PubsubSettings {
            analyses: None,
            areas: Vec::new(),
            signal_publishers: None,
            owners: Vec::new(),
            max_items_per_node: 1000,
            max_items_per_publisher: 100,
            publish_burst: 10,
            publish_per_hour: 60,
            signal_publish_burst: 500,
            signal_publish_per_hour: 5000,
            max_item_bytes: 256 * 1024,
        }
    }
}

impl PubsubSettings {
    /// The analyses with alert nodes.
    pub fn node_analyses(&self) -> Vec<String> {
        match &self.analyses {
            Some(a) => a.clone(),
            None => DEFAULT_ALERT_ANALYSES.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// Each signal publisher (a bare JID) and the analyses it may signal:
    /// the configured ones, or `search@R` and `search.R` for every replica R.
    pub fn signal_publishers(&self, replicas: &[String]) -> Vec<(String, Vec<String>)> {
        let every = self.node_analyses();
        let of = |list: &Vec<String>| if list.is_empty() { every.clone() } else { list.clone() };
        match &self.signal_publishers {
            Some(map) => map.iter().map(|(jid, list)| (jid.clone(), of(list))).collect(),
            None => replicas
                .iter()
                .flat_map(|r| [format!("search@{r}"), format!("search.{r}")])
                .map(|jid| (jid, every.clone()))
                .collect(),
        }
    }

    /// Checks `[pubsub]`: the codes and JIDs, and every number in its range.
    pub fn validate(&self) -> Result<(), ServerError> {
        let bad = |m: String| Err(ServerError::Config(m));
        let analyses = self.node_analyses();
        for a in &analyses {
            if snow_core::stats::check_analysis(a).is_err() {
                return bad(format!("[pubsub] analyses: {a:?} is not an analysis code (1 to 16 of A-Z 0-9)"));
            }
        }
        for a in &self.areas {
            if !(a.len() == 2 || a.len() == 4) || !a.bytes().all(|b| b.is_ascii_digit()) {
                return bad(format!("[pubsub] areas: {a:?} is not a county (2 digits) or municipality (4 digits)"));
            }
        }
        let is_bare = |j: &str| {
            j.split_once('@').is_some_and(|(l, d)| !l.is_empty() && !l.contains('/') && d.parse::<Domain>().is_ok())
                || j.parse::<Domain>().is_ok()
        };
        for (jid, list) in self.signal_publishers.iter().flatten() {
            if !is_bare(jid) {
                return bad(format!("[pubsub] signal_publishers: {jid:?} is not a bare JID"));
            }
            if let Some(a) = list.iter().find(|a| !analyses.contains(a)) {
                return bad(format!("[pubsub] signal_publishers: {jid}: {a:?} is not one of the alert analyses"));
            }
        }
        if let Some(o) = self.owners.iter().find(|o| !is_bare(o)) {
            return bad(format!("[pubsub] owners: {o:?} is not a bare JID"));
        }
        range("[pubsub] max_items_per_node", self.max_items_per_node, 1, 1_000_000)?;
        range("[pubsub] max_items_per_publisher", self.max_items_per_publisher, 1, self.max_items_per_node)?;
        range("[pubsub] publish_burst", self.publish_burst, 1, 1_000_000)?;
        range("[pubsub] publish_per_hour", self.publish_per_hour, 1, 3_600_000)?;
        range("[pubsub] signal_publish_burst", self.signal_publish_burst, 1, 1_000_000)?;
        range("[pubsub] signal_publish_per_hour", self.signal_publish_per_hour, 1, 3_600_000)?;
        range("[pubsub] max_item_bytes", self.max_item_bytes, 1024, 16 * 1024 * 1024)
    }
}

/// The settings plus where the site's files are, resolved and checked.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub settings: ServerSettings,
    pub s2s: S2sSettings,
    pub domain: Domain,
    pub ca_cert: PathBuf,
    pub crl: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub database: PathBuf,
    /// The CA database, if this site has one (the PO): its users are
    /// known accounts from the start.
    pub ca_db: Option<PathBuf>,
    /// SNOW_HOME, against which relative paths are resolved.
    pub home: PathBuf,
    pub components: Vec<ComponentSettings>,
    pub msgauth: MsgAuthSettings,
    pub pubsub: PubsubSettings,
}

impl ServerConfig {
    /// The configuration of the site in `home`.
    pub fn for_home(home: &SiteHome, domain: Domain, settings: ServerSettings, s2s: S2sSettings) -> Self {
        let ca_db = home.ca_db();
        ServerConfig {
            ca_cert: home.ca_cert(),
            crl: home.crl(),
            server_cert: home.server_cert(domain.as_str()),
            server_key: home.server_key(domain.as_str()),
            database: home.server_db(),
            ca_db: ca_db.exists().then_some(ca_db),
            domain,
            settings,
            s2s,
            home: home.home().to_owned(),
            components: Vec::new(),
            msgauth: MsgAuthSettings::default(),
            pubsub: PubsubSettings::default(),
        }
    }

    /// `p` under SNOW_HOME unless absolute.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.home.join(p)
        }
    }

    pub fn limits(&self) -> snow_xml::Limits {
        snow_xml::Limits {
            max_stanza_bytes: self.settings.max_stanza_bytes,
            max_depth: self.settings.max_depth,
            max_attributes: self.settings.max_attributes,
            max_elements: self.settings.max_elements,
        }
    }

    pub fn negotiation_timeout(&self) -> Duration {
        Duration::from_secs(self.settings.negotiation_timeout_secs.max(1))
    }

    /// Checks the whole configuration before anything starts: each
    /// section's own check (every number in its range), then what involves
    /// several sections. The one place the server's settings are checked.
    pub fn validate(&self) -> Result<(), ServerError> {
        self.settings.validate()?;
        self.s2s.validate()?;
        self.msgauth.validate()?;
        self.pubsub.validate()?;
        let bad = |m: String| Err(ServerError::Config(m));
        for c in &self.components {
            let sub = c.domain.strip_suffix(&format!(".{}", self.domain));
            if c.domain.parse::<Domain>().is_err() || sub.is_none_or(|s| s.is_empty()) {
                return bad(format!("[[components]] domain {:?} must be a subdomain of {}", c.domain, self.domain));
            }
            if c.source.as_deref().is_some_and(|s| !snow_crypto::msgauth::valid_name(s)) {
                return bad(format!("[[components]] {}: source must be 1 to 64 of A-Z a-z 0-9 . _ @ -", c.domain));
            }
            if c.confidential && !c.hmac {
                return bad(format!(
                    "[[components]] {}: confidential = true needs hmac = true (its key comes from the msgauth keys)",
                    c.domain
                ));
            }
        }
        if !self.components.is_empty() {
            loopback_only("[server] component_bind", &self.settings.component_bind)?;
        }
        Ok(())
    }
}

/// [`snow_core::settings::range`] as a configuration error.
fn range<T: PartialOrd + std::fmt::Display>(key: &str, value: T, lo: T, hi: T) -> Result<(), ServerError> {
    snow_core::settings::range(key, value, lo, hi).map_err(ServerError::Config)
}

/// Checks that a plain-TCP listener (`key` = `addr`) is on loopback: the
/// component port has no TLS (XEP-0114), so its secrets and stanzas must
/// never cross a network. `""` (disabled) and `localhost:PORT` pass.
fn loopback_only(key: &str, addr: &str) -> Result<(), ServerError> {
    let addr = addr.trim();
    let on_loopback = match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => a.ip().is_loopback(),
        Err(_) => {
            addr.is_empty() || addr.rsplit_once(':').is_some_and(|(h, p)| h == "localhost" && p.parse::<u16>().is_ok())
        }
    };
    if on_loopback {
        return Ok(());
    }
    Err(ServerError::Config(format!(
        "{key} = {addr:?} is not a loopback address: the component port is plain TCP (XEP-0114, no TLS), so it \
         listens on this computer only; set {key} to 127.0.0.1:PORT or [::1]:PORT and run the components here"
    )))
}

impl ServerSettings {
    /// Checks `[server]`: every number in its range, and the two deadlines
    /// in order.
    pub fn validate(&self) -> Result<(), ServerError> {
        let s = self;
        range("[server] max_connections", s.max_connections, 1, 1_000_000)?;
        range("[server] max_connections_per_ip", s.max_connections_per_ip, 1, 1_000_000)?;
        range("[server] max_preauth_per_ip", s.max_preauth_per_ip, 1, 1_000_000)?;
        range("[server] max_stanza_bytes", s.max_stanza_bytes, 4096, 16 * 1024 * 1024)?;
        range("[server] max_depth", s.max_depth, 4, 1000)?;
        range("[server] max_attributes", s.max_attributes, 8, 10_000)?;
        range("[server] max_elements", s.max_elements, 16, 1_000_000)?;
        range("[server] stanza_rate", s.stanza_rate, 0.001, 1e6)?;
        range("[server] stanza_burst", s.stanza_burst, 1.0, 1e6)?;
        range("[server] account_stanza_rate", s.account_stanza_rate, 0.001, 1e6)?;
        range("[server] account_stanza_burst", s.account_stanza_burst, 1.0, 1e6)?;
        range("[server] sm_resume_secs", s.sm_resume_secs, 0, 3600)?;
        range("[server] sm_max_unacked", s.sm_max_unacked, 1, 100_000)?;
        range("[server] login_attempts_per_minute", s.login_attempts_per_minute, 1, 1_000_000)?;
        range("[server] component_stanza_rate", s.component_stanza_rate, 0.001, 1e6)?;
        range("[server] component_stanza_burst", s.component_stanza_burst, 1.0, 1e6)?;
        range("[server] tls_handshake_timeout_secs", s.tls_handshake_timeout_secs, 1, 3600)?;
        range("[server] auth_deadline_secs", s.auth_deadline_secs, s.tls_handshake_timeout_secs, 3600)?;
        range("[server] negotiation_timeout_secs", s.negotiation_timeout_secs, 1, 3600)?;
        range("[server] idle_timeout_secs", s.idle_timeout_secs, 1, 7 * 86_400)?;
        range("[server] outbound_queue", s.outbound_queue, 1, 1_000_000)?;
        range("[server] offline_max_messages", s.offline_max_messages, 1, 100_000_000)?;
        range("[server] offline_max_bytes", s.offline_max_bytes, 4096, 1 << 40)?;
        range("[server] offline_max_per_sender", s.offline_max_per_sender, 1, 100_000_000)?;
        range("[server] offline_min_free_mb", s.offline_min_free_mb, 0, 100_000_000)?;
        range("[server] max_roster_items", s.max_roster_items, 1, 100_000)
    }

    /// The TLS and authentication deadlines, from accept.
    pub fn deadlines(&self) -> (Duration, Duration) {
        (Duration::from_secs(self.tls_handshake_timeout_secs), Duration::from_secs(self.auth_deadline_secs))
    }
}

impl S2sSettings {
    /// Checks `[s2s]`: every number in its range, the federation's domains
    /// and the routes.
    pub fn validate(&self) -> Result<(), ServerError> {
        range("[s2s] connect_timeout_secs", self.connect_timeout_secs, 1, 3600)?;
        range("[s2s] queue", self.queue, 1, 1_000_000)?;
        range("[s2s] idle_timeout_secs", self.idle_timeout_secs, 1, 7 * 86_400)?;
        range("[s2s] replication_interval_ms", self.replication_interval_ms, 50, 3_600_000)?;
        range("[s2s] max_outbound_attempts", self.max_outbound_attempts, 1, 10_000)?;
        range("[s2s] stanza_rate", self.stanza_rate, 0.001, 1e6)?;
        range("[s2s] stanza_burst", self.stanza_burst, 1.0, 1e6)?;
        if let Some(d) = self.federate_with.iter().find(|d| d.parse::<Domain>().is_err()) {
            return Err(ServerError::Config(format!("[s2s] federate_with: {d:?} is not a domain")));
        }
        for (domain, addr) in &self.routes {
            if domain.parse::<Domain>().is_err()
                || addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none()
            {
                return Err(ServerError::Config(format!(
                    "[s2s.routes] {domain:?} = {addr:?} is not DOMAIN = \"HOST:PORT\""
                )));
            }
        }
        Ok(())
    }
}

impl MsgAuthSettings {
    /// Checks `[msgauth]`: the key overlap and the clock window in range.
    pub fn validate(&self) -> Result<(), ServerError> {
        range("[msgauth] overlap_secs", self.overlap_secs, 0, 366 * 86_400)?;
        range("[msgauth] window_secs", self.window_secs, 1, 86_400)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error as ValueError, StrDeserializer};
    use serde::de::IntoDeserializer;

    fn client_check(s: &str) -> Result<ClientCheck, String> {
        let d: StrDeserializer<'_, ValueError> = s.into_deserializer();
        ClientCheck::deserialize(d).map_err(|e| e.to_string())
    }

    #[test]
    fn client_check_takes_three_words_and_names_them_when_wrong() {
        assert_eq!(client_check("off"), Ok(ClientCheck::Off));
        assert_eq!(client_check("warn"), Ok(ClientCheck::Warn));
        assert_eq!(client_check("require"), Ok(ClientCheck::Require));
        assert_eq!(ServerSettings::default().client_check, ClientCheck::Warn);
        let err = client_check("strict").unwrap_err();
        assert!(err.contains("strict") && err.contains("`off`, `warn`, `require`"), "{err}");
        assert!(client_check("Require").is_err(), "the words are lower case, as written in snow.example.toml");
    }

    /// The error of `check`, which must name `key` and a range.
    fn refused(check: Result<(), ServerError>, key: &str) -> String {
        let e = check.expect_err(key).to_string();
        assert!(e.contains(key) && e.contains("it must be from"), "{e}");
        e
    }

    #[test]
    fn every_server_number_is_range_checked_naming_the_key() {
        assert!(ServerSettings::default().validate().is_ok());
        let with = |f: &dyn Fn(&mut ServerSettings)| {
            let mut s = ServerSettings::default();
            f(&mut s);
            s.validate()
        };
        let e = refused(with(&|s| s.stanza_rate = f64::NAN), "[server] stanza_rate");
        assert!(e.contains("NaN") && e.contains("0.001 to 1000000"), "{e}");
        refused(with(&|s| s.stanza_rate = f64::INFINITY), "[server] stanza_rate");
        refused(with(&|s| s.stanza_rate = -1.0), "[server] stanza_rate");
        refused(with(&|s| s.stanza_rate = 0.0), "[server] stanza_rate");
        refused(with(&|s| s.stanza_burst = f64::NAN), "[server] stanza_burst");
        refused(with(&|s| s.account_stanza_rate = f64::NAN), "[server] account_stanza_rate");
        refused(with(&|s| s.account_stanza_burst = -3.0), "[server] account_stanza_burst");
        refused(with(&|s| s.component_stanza_rate = f64::NEG_INFINITY), "[server] component_stanza_rate");
        refused(with(&|s| s.component_stanza_burst = 0.5), "[server] component_stanza_burst");
        refused(with(&|s| s.login_attempts_per_minute = 0), "[server] login_attempts_per_minute");
        refused(with(&|s| s.sm_resume_secs = 3601), "[server] sm_resume_secs");
        refused(with(&|s| s.sm_max_unacked = 0), "[server] sm_max_unacked");
        refused(with(&|s| s.max_connections = 0), "[server] max_connections");
        refused(with(&|s| s.max_connections_per_ip = 0), "[server] max_connections_per_ip");
        refused(with(&|s| s.max_preauth_per_ip = 0), "[server] max_preauth_per_ip");
        refused(with(&|s| s.max_stanza_bytes = 100), "[server] max_stanza_bytes");
        refused(with(&|s| s.max_depth = 0), "[server] max_depth");
        refused(with(&|s| s.max_attributes = 0), "[server] max_attributes");
        refused(with(&|s| s.max_elements = 0), "[server] max_elements");
        refused(with(&|s| s.tls_handshake_timeout_secs = 0), "[server] tls_handshake_timeout_secs");
        refused(with(&|s| s.auth_deadline_secs = 0), "[server] auth_deadline_secs");
        let e = refused(with(&|s| s.auth_deadline_secs = 5), "[server] auth_deadline_secs");
        assert!(e.contains("from 10 to 3600"), "not before the TLS deadline: {e}");
        refused(with(&|s| s.negotiation_timeout_secs = 0), "[server] negotiation_timeout_secs");
        refused(with(&|s| s.idle_timeout_secs = 0), "[server] idle_timeout_secs");
        refused(with(&|s| s.idle_timeout_secs = u64::MAX), "[server] idle_timeout_secs");
        refused(with(&|s| s.outbound_queue = 0), "[server] outbound_queue");
        refused(with(&|s| s.offline_max_messages = 0), "[server] offline_max_messages");
        refused(with(&|s| s.offline_max_bytes = 0), "[server] offline_max_bytes");
        refused(with(&|s| s.offline_max_per_sender = 0), "[server] offline_max_per_sender");
        refused(with(&|s| s.offline_min_free_mb = u64::MAX), "[server] offline_min_free_mb");
        refused(with(&|s| s.max_roster_items = 0), "[server] max_roster_items");
        assert!(with(&|s| s.offline_min_free_mb = 0).is_ok(), "0 turns the disk watermark off");
    }

    #[test]
    fn every_s2s_number_is_range_checked_naming_the_key() {
        assert!(S2sSettings::default().validate().is_ok());
        let with = |f: &dyn Fn(&mut S2sSettings)| {
            let mut s = S2sSettings::default();
            f(&mut s);
            s.validate()
        };
        refused(with(&|s| s.stanza_rate = f64::NAN), "[s2s] stanza_rate");
        refused(with(&|s| s.stanza_rate = -5.0), "[s2s] stanza_rate");
        refused(with(&|s| s.stanza_burst = 0.0), "[s2s] stanza_burst");
        refused(with(&|s| s.connect_timeout_secs = 0), "[s2s] connect_timeout_secs");
        refused(with(&|s| s.queue = 0), "[s2s] queue");
        refused(with(&|s| s.idle_timeout_secs = 0), "[s2s] idle_timeout_secs");
        refused(with(&|s| s.replication_interval_ms = 0), "[s2s] replication_interval_ms");
        refused(with(&|s| s.max_outbound_attempts = 0), "[s2s] max_outbound_attempts");
    }

    #[test]
    fn every_pubsub_number_is_range_checked_naming_the_key() {
        assert!(PubsubSettings::default().validate().is_ok());
        let with = |f: &dyn Fn(&mut PubsubSettings)| {
            let mut s = PubsubSettings::default();
            f(&mut s);
            s.validate()
        };
        refused(with(&|s| s.max_items_per_node = 0), "[pubsub] max_items_per_node");
        refused(with(&|s| s.max_items_per_publisher = 0), "[pubsub] max_items_per_publisher");
        refused(with(&|s| s.max_items_per_publisher = 2000), "[pubsub] max_items_per_publisher");
        refused(with(&|s| s.publish_burst = 0), "[pubsub] publish_burst");
        refused(with(&|s| s.publish_per_hour = 0), "[pubsub] publish_per_hour");
        refused(with(&|s| s.signal_publish_burst = 0), "[pubsub] signal_publish_burst");
        refused(with(&|s| s.signal_publish_per_hour = 0), "[pubsub] signal_publish_per_hour");
        refused(with(&|s| s.max_item_bytes = 0), "[pubsub] max_item_bytes");
    }

    #[test]
    fn every_msgauth_number_is_range_checked_naming_the_key() {
        assert!(MsgAuthSettings::default().validate().is_ok());
        let with = |f: &dyn Fn(&mut MsgAuthSettings)| {
            let mut s = MsgAuthSettings::default();
            f(&mut s);
            s.validate()
        };
        refused(with(&|s| s.overlap_secs = -1), "[msgauth] overlap_secs");
        refused(with(&|s| s.window_secs = 0), "[msgauth] window_secs");
        refused(with(&|s| s.window_secs = -300), "[msgauth] window_secs");
        assert!(with(&|s| s.overlap_secs = 0).is_ok(), "no overlap is a choice");
    }

    /// `confidential` needs `hmac` (its key is derived from the msgauth
    /// keys): refused naming the component, not silently ignored.
    #[test]
    fn a_confidential_component_needs_hmac() {
        let c = ComponentSettings {
            domain: "echo.po.example".into(),
            secret_file: "e".into(),
            hmac: true,
            source: None,
            confidential: true,
        };
        let mut config = ServerConfig::for_home(
            &snow_core::SiteHome::new(std::path::Path::new("/nonexistent")),
            "po.example".parse().unwrap(),
            ServerSettings::default(),
            S2sSettings::default(),
        );
        config.components = vec![c];
        assert!(config.validate().is_ok());
        config.components[0].hmac = false;
        let e = config.validate().unwrap_err().to_string();
        assert!(e.contains("echo.po.example") && e.contains("confidential = true needs hmac = true"), "{e}");
    }

    #[test]
    fn a_plain_component_port_must_be_on_loopback() {
        for ok in ["127.0.0.1:5347", "[::1]:5347", "127.0.0.2:0", "localhost:5347", ""] {
            assert!(loopback_only("[server] component_bind", ok).is_ok(), "{ok}");
        }
        for bad in ["0.0.0.0:5347", "[::]:5347", "192.0.2.1:5347", "lab.example:5347", "5347"] {
            let e = loopback_only("[server] component_bind", bad).unwrap_err().to_string();
            assert!(e.contains("[server] component_bind") && e.contains("loopback"), "{e}");
        }
    }
}
