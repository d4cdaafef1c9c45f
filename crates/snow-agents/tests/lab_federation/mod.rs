//! A federation on 127.0.0.1 for the agents' tests: the PO (`po.example`,
//! `require_e2e` on) and the lab server `lab.example` as its replica, GP
//! 1111111 at the PO and GP 2222222 at the lab, the lab's statistics and
//! its search agent `search@lab.example`.

// Each test file uses its own part of this.
#![allow(dead_code)]

#[path = "../../../snow-server/tests/support/mod.rs"]
pub mod support;

use std::path::Path;
use std::time::Duration;

use snow_agents::detect::DetectionConfig;
use snow_agents::{AgentConfig, Attach, SearchAgent, SearchSettings};
use snow_client::Session;
use snow_core::stats::{Area, Granularity, Period, StatsAnswer, StatsQuery};
use snow_core::SiteHome;
use snow_crypto::Identity;
use snow_server::ServerHandle;
use snow_store::{AggRow, LabDb};
use support::{Replica, Site};
use tokio::sync::watch;

/// The lab's search agent as a GP searches it.
pub const AGENT: &str = "search@lab.example/agent";

/// One test result: analysis, municipality, week of 2026, patient, positive.
pub type Row<'a> = (&'a str, &'a str, u8, u32, bool);

/// Imports `rows` into the lab database at `db` as one file: the n-th row
/// (from 1) is sample n, of its patient, aged 25-44, female.
pub fn import_rows<'a>(db: &Path, hash: &str, file: &str, rows: impl IntoIterator<Item = Row<'a>>) {
    let mut db = LabDb::open(db).unwrap();
    let mut imp = db.begin().unwrap();
    for (n, (analysis, municipality, week, patient, positive)) in (1u32..).zip(rows) {
        let (sample, patient) = (format!("{n:032x}"), format!("{patient:064x}"));
        imp.add(&AggRow {
            sample_id: &sample,
            patient: &patient,
            analysis,
            municipality,
            year: 2026,
            week,
            age_group: "25-44",
            sex: "F",
            positive,
            record_key: test_key(&sample),
        })
        .unwrap();
    }
    imp.commit(hash, file, 0).unwrap();
}

/// The PO and the lab as its replica (with external `components`), GP
/// 1111111 at the PO and GP 2222222 at the lab.
pub fn sites(components: &[&str]) -> (Site, Replica) {
    let mut po = Site::with_domain("po.example");
    po.settings.require_e2e = true;
    let lab = po.replica_with_components("lab.example", components);
    po.add_user("1111111");
    po.add_user_at("2222222", "lab.example");
    (po, lab)
}

/// A record key for a test row: fixed per sample, spread over u32.
pub fn test_key(sample: &str) -> u32 {
    sample.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// A certificate from the PO's CA for the agent `jid`, as its identity.
pub fn agent_identity(po: &mut Site, jid: &str) -> Identity {
    let cert = po.ca.issue_agent(&jid.parse().unwrap()).unwrap();
    snow_agents::load_identity(&cert.cert_path, &cert.key_path).unwrap()
}

/// The PO's server and the lab's.
pub async fn start_servers(po: &Site, lab: &Replica) -> (ServerHandle, ServerHandle) {
    let po_server = po.start().await;
    let lab_server = po.start_replica(&lab.home, "lab.example", lab.s2s.clone()).await;
    (po_server, lab_server)
}

/// The lab's search agent on the lab database in `lab_home`, one search
/// at a time with `queue` waiting, and the switch that stops it.
pub fn start_agent(
    po: &Site,
    lab_home: &Path,
    attach: Attach,
    identity: Identity,
    queue: usize,
    detection: Option<DetectionConfig>,
) -> (SearchAgent, watch::Sender<bool>) {
    start_agent_with(po, lab_home, attach, identity, queue, detection, exact())
}

/// The default search settings but exact counts (no perturbation): for
/// tests of the sums themselves.
pub fn exact() -> SearchSettings {
    SearchSettings { perturbation: None, ..SearchSettings::default() }
}

/// [`start_agent`] with the search settings given.
pub fn start_agent_with(
    po: &Site,
    lab_home: &Path,
    attach: Attach,
    identity: Identity,
    queue: usize,
    detection: Option<DetectionConfig>,
    settings: SearchSettings,
) -> (SearchAgent, watch::Sender<bool>) {
    let (stop, stopped) = watch::channel(false);
    let agent = SearchAgent::start(
        AgentConfig {
            attach,
            ca_der: po.ca.cert_der().to_vec(),
            identity,
            lab_db: SiteHome::new(lab_home).lab_db(),
            nonces: snow_agents::open_search_nonces(&SiteHome::new(lab_home).agent_nonces("search@lab.example"))
                .unwrap(),
            audit: snow_store::AuditDb::open(&SiteHome::new(lab_home).search_audit()).unwrap(),
            settings,
            workers: 1,
            queue,
            detection,
        },
        stopped,
    );
    (agent, stop)
}

/// Waits until `jid`'s key is valid in the directory `c` looks keys up in.
pub async fn wait_for_key(c: &Session, jid: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let e = c.iq().lookup_keys(&[jid]).await.unwrap();
        if e.first().is_some_and(|e| e.status == "valid") {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{jid} never reached the key directory");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GP 1111111 logged in at the PO once the agent `agent_jid`'s key is in
/// the PO's directory, and GP 2222222 at the lab once 1111111's key is in
/// the lab's replica of it (the agent needs it).
pub async fn log_in_gps(
    po: &Site,
    po_server: &ServerHandle,
    lab_server: &ServerHandle,
    agent_jid: &str,
) -> (Session, Session) {
    let gp = po.login(po_server, "1111111").await.unwrap().into_session();
    wait_for_key(&gp, agent_jid).await;
    let lab_gp = po.login_at(lab_server, "lab.example", "2222222").await.unwrap().into_session();
    wait_for_key(&lab_gp, "1111111@po.example").await;
    (gp, lab_gp)
}

/// INFA by week over `from`..=`to` in `area`.
pub fn query(area: Area, from: &str, to: &str) -> StatsQuery {
    StatsQuery {
        analysis: "INFA".into(),
        period: Period::parse(from, to).unwrap(),
        area,
        age_group: None,
        sex: None,
        granularity: Granularity::Week,
    }
}

/// The first answer of the agent `to` to `q`: the agent logs in
/// asynchronously, so this retries until it answers.
pub async fn first_answer(gp: &Session, to: &str, q: &StatsQuery, identity: &Identity, ca: &[u8]) -> StatsAnswer {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match gp.iq().search(to, q, identity, ca).await {
            Ok(a) => return a,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "{to} never answered: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The whole federation running: both servers, the lab's search agent
/// attached to the lab server as a client, and GP 1111111 logged in at
/// the PO with the keys in place.
pub struct Federation {
    pub po: Site,
    pub po_server: ServerHandle,
    pub lab_server: ServerHandle,
    pub agent: SearchAgent,
    stop: watch::Sender<bool>,
    /// GP 1111111's session, identity, and the CA.
    pub gp: Session,
    pub identity: Identity,
    pub ca: Vec<u8>,
    _lab_gp: Session,
    _lab: Replica,
}

impl Federation {
    /// Starts it all with `rows` in the lab's statistics and `queue`
    /// searches waiting at the agent at most.
    pub async fn start<'a>(queue: usize, rows: impl IntoIterator<Item = Row<'a>>) -> Federation {
        Federation::start_with(queue, rows, exact()).await
    }

    /// [`Federation::start`] with the agent's search settings given.
    pub async fn start_with<'a>(
        queue: usize,
        rows: impl IntoIterator<Item = Row<'a>>,
        settings: SearchSettings,
    ) -> Federation {
        let (mut po, lab) = sites(&[]);
        let identity = agent_identity(&mut po, "search@lab.example");
        import_rows(&SiteHome::new(&lab.home).lab_db(), "h", "test.csv", rows);
        let (po_server, lab_server) = start_servers(&po, &lab).await;
        let attach = Attach::Client { server: lab_server.c2s_addr, domain: "lab.example".into() };
        let (agent, stop) = start_agent_with(&po, &lab.home, attach, identity, queue, None, settings);
        let (gp, lab_gp) = log_in_gps(&po, &po_server, &lab_server, "search@lab.example").await;
        let identity = po.identity("1111111");
        let ca = po.ca.cert_der().to_vec();
        Federation { po, po_server, lab_server, agent, stop, gp, identity, ca, _lab_gp: lab_gp, _lab: lab }
    }

    /// The lab server's home (its data directory holds the audit).
    pub fn lab_home(&self) -> &Path {
        &self._lab.home
    }

    /// Stops the agent, then the servers.
    pub async fn shutdown(self) {
        self.stop.send(true).unwrap();
        self.agent.join().await;
        self.po_server.shutdown(Duration::from_secs(5)).await;
        self.lab_server.shutdown(Duration::from_secs(5)).await;
    }
}
