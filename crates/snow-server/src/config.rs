//! The `[server]` section of `snow.toml` and the resolved configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use snow_core::Domain;

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
    /// Sustained stanzas per second one connection may send.
    pub stanza_rate: f64,
    /// Stanzas a connection may send in a burst above the rate.
    pub stanza_burst: f64,
    /// Seconds allowed for the TLS handshake.
    pub tls_handshake_timeout_secs: u64,
    /// Seconds allowed for each step of stream negotiation.
    pub negotiation_timeout_secs: u64,
    /// Seconds of silence after which an authenticated connection is closed.
    pub idle_timeout_secs: u64,
    /// Stanzas queued for one slow reader before it is disconnected.
    pub outbound_queue: usize,
    /// Refuse chat and normal messages whose body is clear text: only
    /// end-to-end encrypted bodies (XML Encryption) are stored or forwarded.
    pub require_e2e: bool,
    /// Port for external components (XEP-0114), used only when
    /// components are configured. Plain TCP: keep it on loopback.
    pub component_bind: String,
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
            tls_handshake_timeout_secs: 10,
            negotiation_timeout_secs: 30,
            idle_timeout_secs: 900,
            outbound_queue: 1000,
            require_e2e: false,
            component_bind: "127.0.0.1:5347".into(),
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
}

impl Default for S2sSettings {
    fn default() -> Self {
        S2sSettings {
            bind: "127.0.0.1:5269".into(),
            routes: Default::default(),
            trusted_cas: Vec::new(),
            connect_timeout_secs: 10,
            queue: 1000,
            idle_timeout_secs: 600,
            replicas: Vec::new(),
            master: None,
            replication_interval_ms: 1000,
        }
    }
}

/// The `[lab]` section: a lab server imports what the lab pushes and
/// answers GPs' searches.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabServerSettings {
    /// Import files dropped in SNOW_HOME/data/in.
    pub import: bool,
    /// Seconds between full scans of the drop directory (the fallback to
    /// change notifications).
    pub scan_interval_secs: u64,
    /// Analysis codes the lab reports; rows and searches with others are refused.
    pub analyses: Vec<String>,
    /// Age groups (`LOW-HIGH` or `LOW+`), in order.
    pub age_groups: Vec<String>,
    /// Run the search agent (`urn:snow:stats:1`).
    pub search_agent: bool,
    /// The agent's local name: it is `NAME@domain/agent`.
    pub search_agent_name: String,
    /// Counts from 1 to threshold − 1 are answered as `<threshold`.
    pub disclosure_threshold: u32,
    /// Searches running at once.
    pub max_search_agents: usize,
    /// Searches waiting behind them; more are refused with resource-constraint.
    pub search_queue: usize,
    /// Outbreak detection by the agent after each import.
    pub detection: DetectionSettings,
}

/// The `[lab.detection]` section: the agent runs an algorithm over the
/// weekly series after each import and publishes alerts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectionSettings {
    pub enabled: bool,
    /// The newest weeks evaluated after an import (older alarms are
    /// history, not news).
    pub recent_weeks: usize,
    /// The pubsub service GPs subscribe at (default: the `[s2s]` master,
    /// the PO; else this server).
    pub service: Option<String>,
    /// Seconds between checks for new imports.
    pub poll_secs: u64,
    /// The algorithm for every analysis without its own entry.
    pub default: DetectionParams,
    /// Per analysis code: `[lab.detection.analyses.INFA]`.
    pub analyses: std::collections::BTreeMap<String, DetectionParams>,
}

impl Default for DetectionSettings {
    fn default() -> Self {
        DetectionSettings {
            enabled: false,
            recent_weeks: 2,
            service: None,
            poll_secs: 5,
            default: DetectionParams::default(),
            analyses: Default::default(),
        }
    }
}

/// One analysis's algorithm and parameters, with the R package's
/// defaults (SURVEILLANCE.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectionParams {
    /// `farrington`, `C1`, `C2` or `C3`.
    pub algorithm: String,
    /// Default: 0.05 for Farrington, 0.001 for C1/C2, 0.025 for C3.
    pub alpha: Option<f64>,
    /// EARS: baseline weeks.
    pub baseline: usize,
    /// EARS: floor for the standard deviation.
    pub min_sigma: f64,
    /// Farrington: past years.
    pub b: usize,
    /// Farrington: window half-width.
    pub w: usize,
    pub reweight: bool,
    pub weights_threshold: f64,
    pub trend: bool,
    pub p_threshold_trend: f64,
    /// Farrington: at least `[cases, weeks]` for an alarm.
    pub limit54: [u32; 2],
    /// `2/3`, `1/2` or `none`.
    pub powertrans: String,
    pub no_periods: usize,
    pub past_weeks_not_included: Option<usize>,
    /// `delta`, `nbPlugin` or `muan`.
    pub threshold_method: String,
    /// Farrington: reference weeks by calendar date, not by 52 positions.
    pub epoch_as_date: bool,
}

impl Default for DetectionParams {
    fn default() -> Self {
        DetectionParams {
            algorithm: "farrington".into(),
            alpha: None,
            baseline: 7,
            min_sigma: 0.0,
            b: 5,
            w: 3,
            reweight: true,
            weights_threshold: 2.58,
            trend: true,
            p_threshold_trend: 0.05,
            limit54: [5, 4],
            powertrans: "2/3".into(),
            no_periods: 1,
            past_weeks_not_included: None,
            threshold_method: "delta".into(),
            epoch_as_date: false,
        }
    }
}

impl DetectionParams {
    /// The detector these parameters describe, checked.
    pub fn detector(&self) -> Result<snow_lab::detect::Detector, ServerError> {
        use snow_lab::detect::{ears, farrington, Detector};
        let bad = |m: String| ServerError::Config(format!("lab.detection: {m}"));
        let method = match self.algorithm.to_ascii_uppercase().as_str() {
            "C1" => Some(ears::Method::C1),
            "C2" => Some(ears::Method::C2),
            "C3" => Some(ears::Method::C3),
            "FARRINGTON" => None,
            other => return Err(bad(format!("unknown algorithm {other:?} (farrington, C1, C2 or C3)"))),
        };
        let d = match method {
            Some(m) => {
                let p = ears::Params {
                    alpha: self.alpha.unwrap_or(m.default_alpha()),
                    baseline: self.baseline,
                    min_sigma: self.min_sigma,
                    ..ears::Params::new(m)
                };
                // Checked by a run over an empty series.
                ears::ears(&[], &p).map_err(|e| bad(e.to_string()))?;
                Detector::Ears(p)
            }
            None => {
                let powertrans = match self.powertrans.as_str() {
                    "2/3" => farrington::PowerTrans::TwoThirds,
                    "1/2" => farrington::PowerTrans::Half,
                    "none" => farrington::PowerTrans::None,
                    _ => return Err(bad("powertrans must be 2/3, 1/2 or none".into())),
                };
                let d = farrington::Params::default();
                let p = farrington::Params {
                    b: self.b,
                    w: self.w,
                    reweight: self.reweight,
                    weights_threshold: self.weights_threshold,
                    alpha: self.alpha.unwrap_or(d.alpha),
                    trend: self.trend,
                    p_threshold_trend: self.p_threshold_trend,
                    limit54: (f64::from(self.limit54[0]), self.limit54[1] as usize),
                    powertrans,
                    no_periods: self.no_periods,
                    past_weeks_not_included: self.past_weeks_not_included,
                    threshold_method: self
                        .threshold_method
                        .parse()
                        .map_err(|e: farrington::ParamError| bad(e.to_string()))?,
                    epoch_as_date: self.epoch_as_date,
                };
                farrington::farrington_from(&[], Some(&[]), &p, 1).map_err(|e| bad(e.to_string()))?;
                Detector::Farrington(p)
            }
        };
        Ok(d)
    }
}

impl Default for LabServerSettings {
    fn default() -> Self {
        let lab = snow_lab::LabSettings::default();
        LabServerSettings {
            import: false,
            scan_interval_secs: 5,
            analyses: lab.analyses,
            age_groups: lab.age_groups,
            search_agent: false,
            search_agent_name: "search".into(),
            disclosure_threshold: 5,
            max_search_agents: 1,
            search_queue: 16,
            detection: DetectionSettings::default(),
        }
    }
}

impl LabServerSettings {
    /// The enumerations rows and searches are checked against.
    pub fn lab_settings(&self) -> snow_lab::LabSettings {
        snow_lab::LabSettings { analyses: self.analyses.clone(), age_groups: self.age_groups.clone() }
    }

    pub fn validate(&self) -> Result<(), ServerError> {
        let bad = |m: String| Err(ServerError::Config(m));
        if self.analyses.is_empty() || self.age_groups.is_empty() {
            return bad("lab.analyses and lab.age_groups must not be empty".into());
        }
        for a in &self.analyses {
            if let Err(e) = snow_core::stats::check_analysis(a) {
                return bad(format!("lab.analyses: {e}"));
            }
        }
        let lab = self.lab_settings();
        for g in &self.age_groups {
            if snow_core::stats::check_age_group(g).is_err() || !lab.age_group_is_well_formed(g) {
                return bad(format!("lab.age_groups: {g:?} is not LOW-HIGH or LOW+"));
            }
        }
        if !(1..=1000).contains(&self.disclosure_threshold) {
            return bad("lab.disclosure_threshold must be 1 to 1000".into());
        }
        if self.max_search_agents == 0 || self.search_queue == 0 {
            return bad("lab.max_search_agents and lab.search_queue must be positive".into());
        }
        if self.search_agent_name.parse::<snow_core::BareJid>().is_ok()
            || format!("{}@x.example", self.search_agent_name).parse::<snow_core::BareJid>().is_err()
        {
            return bad("lab.search_agent_name must be a JID's local part, like \"search\"".into());
        }
        let d = &self.detection;
        if d.recent_weeks == 0 || d.recent_weeks > 52 || d.poll_secs == 0 {
            return bad("lab.detection.recent_weeks must be 1 to 52 and poll_secs positive".into());
        }
        d.default.detector()?;
        for (code, p) in &d.analyses {
            if !self.analyses.contains(code) {
                return bad(format!("lab.detection.analyses.{code}: not one of lab.analyses"));
            }
            p.detector()?;
        }
        Ok(())
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
}

/// The `[msgauth]` section: message authentication between components
/// (DESIGN.md §3.2).
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

/// The settings plus where the site's files are, resolved and checked.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub settings: ServerSettings,
    pub s2s: S2sSettings,
    pub lab: LabServerSettings,
    /// The lab server's data directory (`in/`, `done/`, `rejected/`, `lab.db`).
    pub data_dir: PathBuf,
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
}

impl ServerConfig {
    /// The configuration of the site in `home` (layout as `snow-pki`'s
    /// `SitePaths`: `ca/`, `server/`, `data/`).
    pub fn for_home(home: &Path, domain: Domain, settings: ServerSettings, s2s: S2sSettings) -> Self {
        let ca_db = home.join("ca").join("ca.db");
        ServerConfig {
            ca_cert: home.join("ca").join("ca.pem"),
            crl: home.join("ca").join("crl.pem"),
            server_cert: home.join("server").join(format!("{domain}.pem")),
            server_key: home.join("server").join(format!("{domain}.key.pem")),
            database: home.join("data").join("server.db"),
            ca_db: ca_db.exists().then_some(ca_db),
            domain,
            settings,
            s2s,
            lab: LabServerSettings::default(),
            data_dir: home.join("data"),
            home: home.to_owned(),
            components: Vec::new(),
            msgauth: MsgAuthSettings::default(),
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

    pub fn validate(&self) -> Result<(), ServerError> {
        let s = &self.settings;
        let bad = |m: &str| Err(ServerError::Config(m.to_owned()));
        if s.max_stanza_bytes < 4096 {
            return bad("server.max_stanza_bytes must be at least 4096");
        }
        if s.max_depth < 4 || s.max_attributes < 8 || s.max_elements < 16 {
            return bad("server.max_depth (>= 4), max_attributes (>= 8) and max_elements (>= 16) are too small");
        }
        if s.stanza_rate <= 0.0 || s.stanza_burst < 1.0 {
            return bad("server.stanza_rate must be positive and server.stanza_burst at least 1");
        }
        if s.outbound_queue == 0 || s.max_connections == 0 || s.max_connections_per_ip == 0 {
            return bad("server.outbound_queue, max_connections and max_connections_per_ip must be positive");
        }
        self.lab.validate()?;
        for c in &self.components {
            let sub = c.domain.strip_suffix(&format!(".{}", self.domain));
            if c.domain.parse::<Domain>().is_err() || sub.is_none_or(|s| s.is_empty()) {
                return bad(&format!("components: {:?} must be a subdomain of {}", c.domain, self.domain));
            }
            if c.source.as_deref().is_some_and(|s| !snow_crypto::msgauth::valid_name(s)) {
                return bad(&format!("components: {}: source must be 1 to 64 of A-Z a-z 0-9 . _ @ -", c.domain));
            }
        }
        if self.s2s.queue == 0 || self.s2s.connect_timeout_secs == 0 {
            return bad("s2s.queue and s2s.connect_timeout_secs must be positive");
        }
        for (domain, addr) in &self.s2s.routes {
            if domain.parse::<Domain>().is_err()
                || addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none()
            {
                return Err(ServerError::Config(format!(
                    "s2s.routes: {domain:?} = {addr:?} is not DOMAIN = \"HOST:PORT\""
                )));
            }
        }
        Ok(())
    }
}
