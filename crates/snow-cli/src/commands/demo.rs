//! `snow demo`: the whole system on one computer, in one command. A PO
//! server and a lab server on 127.0.0.1, federated, with a fresh CA, two
//! GPs and the lab's search agent; a synthetic winter season goes through
//! the lab's pseudonymising export and the drop directory; a GP searches
//! across the federation; then a cluster of *Mycoplasma pneumoniae* arrives
//! in a second file, the lab's detection agent raises an alert, one GP
//! confirms it and the other sees the confirmation. Everything is real
//! (TLS, SASL EXTERNAL, s2s, end-to-end encryption, `require_e2e` on,
//! XEP-0060 pubsub); only the data are made up.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use snow_client::{alert, Client, ConnectOptions, Session};
use snow_core::alert::{Alert, AlertKind};
use snow_core::files::{self, Mode};
use snow_core::stats::{Area, Granularity, IsoWeek, Period, StatsQuery, YearMonth};
use snow_core::SiteHome;
use snow_crypto::{one_time_password, pkcs12, FileKeyStore, Identity};
use snow_lab::config::{DetectionSettings, LabServerSettings};
use snow_pki::{outbox, Ca, PkiSettings};
use snow_server::{S2sSettings, ServerSettings};

use super::serve::Site;
use super::Ctx;
use crate::cli::DemoArgs;
use crate::config::Config;

const PO: &str = "po.example";
const LAB: &str = "lab.example";
const GPS: [&str; 2] = ["1000001", "1000002"];
/// Two winter seasons of synthetic data.
const WEEKS: u32 = 104;
/// The demo's outbreak: Mycoplasma pneumoniae in Tromsø, last week.
const CLUSTER: (&str, &str, u64) = ("MYCPN", "5401", 30);
/// Steps of the demo, for "[n/STEPS]".
const STEPS: u32 = 6;

pub fn run(_ctx: &Ctx, args: DemoArgs) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    // Ctrl-C, SIGTERM and SIGHUP all end the demo the same way, at any
    // moment: the servers stop and its folder (with the CA passphrase and
    // keys) is removed. So the handlers are installed before the folder
    // exists: a signal before that finds nothing to clean, and one after
    // it never takes its default action (ending the process and leaving
    // the folder).
    let mut stop = {
        let _in_runtime = rt.enter();
        Stop::install()?
    };
    let (_temp, dir) = match &args.dir {
        Some(d) => {
            if d.exists() && std::fs::read_dir(d).map(|mut r| r.next().is_some()).unwrap_or(true) {
                bail!("{} is not empty: give the demo a new or empty directory", d.display());
            }
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            (None, d.canonicalize()?)
        }
        None => {
            let t = tempfile::Builder::new().prefix("snow-demo-").tempdir()?;
            let p = t.path().to_owned();
            (Some(t), p)
        }
    };
    let stopping = Arc::new(AtomicBool::new(false));
    let result = rt.block_on(async {
        // The stop first: a signal that came during a step is acted on as
        // soon as the step yields, whatever else is ready.
        tokio::select! {
            biased;
            r = stop.requested() => {
                say("Stopping…");
                r
            }
            r = demo(&dir, args.once, &stopping) => r,
        }
    });
    // A step on the blocking pool (keys, synthetic data) ends at its next
    // checkpoint; the folder is removed (`_temp`) only after it has.
    stopping.store(true, Ordering::SeqCst);
    rt.shutdown_timeout(Duration::from_secs(30));
    result
}

/// Ctrl-C, SIGTERM and SIGHUP, registered at once (`tokio::signal::ctrl_c`
/// alone would install its handler only when first polled).
struct Stop {
    #[cfg(unix)]
    signals: [tokio::signal::unix::Signal; 3],
}

impl Stop {
    /// Takes the three signals from now on. Must be called within the
    /// runtime.
    fn install() -> anyhow::Result<Stop> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signals = [
                signal(SignalKind::interrupt()).context("cannot take Ctrl-C")?,
                signal(SignalKind::terminate()).context("cannot take SIGTERM")?,
                signal(SignalKind::hangup()).context("cannot take SIGHUP")?,
            ];
            Ok(Stop { signals })
        }
        #[cfg(not(unix))]
        Ok(Stop {})
    }

    /// Resolves on the first of the three.
    async fn requested(&mut self) -> anyhow::Result<()> {
        #[cfg(unix)]
        {
            let [int, term, hup] = &mut self.signals;
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
            Ok(())
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await?;
            Ok(())
        }
    }
}

/// Runs a CPU-heavy step of the demo on the blocking pool, so that a stop
/// is noticed while it runs; the step itself returns at its next
/// checkpoint (`stopping`) once the demo is stopping.
async fn blocking<T: Send + 'static>(
    stopping: &Arc<AtomicBool>,
    step: impl FnOnce(&dyn Fn() -> anyhow::Result<()>) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let stopping = stopping.clone();
    tokio::task::spawn_blocking(move || {
        let checkpoint = || -> anyhow::Result<()> {
            if stopping.load(Ordering::SeqCst) {
                bail!("the demo is stopping");
            }
            Ok(())
        };
        step(&checkpoint)
    })
    .await
    .context("a step of the demo failed")?
}

fn say(text: impl AsRef<str>) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{}", text.as_ref());
    let _ = out.flush();
}

fn secret_file(path: &Path, secret: &str) -> anyhow::Result<()> {
    files::write(path, format!("{secret}\n").as_bytes(), Mode::Private)
        .with_context(|| format!("cannot write {}", path.display()))
}

async fn demo(dir: &Path, once: bool, stopping: &Arc<AtomicBool>) -> anyhow::Result<()> {
    say(format!("Snow demo in {}", dir.display()));
    let po_paths = SiteHome::new(dir.join("po"));
    let lab_paths = SiteHome::new(dir.join("lab"));

    // 1. The PKI: CA, server, agent and GP certificates.
    say(format!("[1/{STEPS}] Creating the CA of {PO} and the certificates of both servers, the agent and two GPs…"));
    let (d, po_p, lab_p) = (dir.to_owned(), po_paths.clone(), lab_paths.clone());
    let (ca_der, gps) = blocking(stopping, move |checkpoint| pki(&d, &po_p, &lab_p, checkpoint)).await?;

    // 2. The lab: its database's export, pseudonymised inside the lab and
    //    pushed to the lab server's drop directory.
    say(format!(
        "[2/{STEPS}] Generating {WEEKS} weeks of synthetic lab results and exporting them (keyed pseudonyms, age groups)…"
    ));
    let (d, incoming) = (dir.to_owned(), lab_paths.incoming());
    let rows = blocking(stopping, move |checkpoint| lab_data(&d, &incoming, checkpoint)).await?;
    say(format!("      {rows} rows pushed to {}", lab_paths.incoming().join("winter.csv").display()));

    // 3. Both servers, federated; the lab also runs its search agent.
    say(format!("[3/{STEPS}] Starting {PO} and {LAB} on 127.0.0.1 (federated, require_e2e on) and the search agent…"));
    let (po_s2s, lab_s2s) = (
        format!("127.0.0.1:{}", snow_core::spare_port::spare_port()?),
        format!("127.0.0.1:{}", snow_core::spare_port::spare_port()?),
    );
    let server = |domain: &str| ServerSettings {
        domain: Some(domain.into()),
        c2s_bind: "127.0.0.1:0".into(),
        direct_tls_bind: String::new(),
        require_e2e: true,
        ..ServerSettings::default()
    };
    let mut po_cfg = Config {
        server: server(PO),
        s2s: S2sSettings { bind: po_s2s.clone(), replicas: vec![LAB.into()], ..S2sSettings::default() },
        ..Config::default()
    };
    po_cfg.s2s.routes.insert(LAB.into(), lab_s2s.clone());
    let mut lab_cfg = Config {
        server: server(LAB),
        s2s: S2sSettings { bind: lab_s2s, master: Some(PO.into()), ..S2sSettings::default() },
        lab: LabServerSettings {
            import: true,
            scan_interval_secs: 1,
            search_agent: true,
            // The defaults a real lab gets (Farrington-flexible, b = 5):
            // with the demo's two years the agent says so and uses b = 1.
            detection: DetectionSettings { enabled: true, poll_secs: 1, ..DetectionSettings::default() },
            ..Default::default()
        },
        ..Config::default()
    };
    lab_cfg.s2s.routes.insert(PO.into(), po_s2s);
    // The lab first: the PO starts pushing keys to it at once.
    let lab = Site::start(&lab_paths, &lab_cfg).await?;
    let po = match Site::start(&po_paths, &po_cfg).await {
        Ok(p) => p,
        Err(e) => {
            lab.stop().await;
            return Err(e);
        }
    };
    let result = run_demo(dir, &po, &lab, &ca_der, &gps, once).await;
    say("Stopping…");
    lab.stop().await;
    po.stop().await;
    result
}

/// A GP of the demo: JID, home, unlocked identity.
type Gp = (String, PathBuf, Identity);

/// Step 1, CPU-heavy (RSA keys): the CA in `po`, the certificates of both
/// servers, the agent and the GPs, the lab server's copies in `lab`, the
/// GPs' key stores under `dir`. Returns the CA certificate and the GPs.
fn pki(
    dir: &Path,
    po: &SiteHome,
    lab: &SiteHome,
    checkpoint: &dyn Fn() -> anyhow::Result<()>,
) -> anyhow::Result<(Vec<u8>, Vec<Gp>)> {
    let ca_pass = one_time_password::generate(24)?;
    secret_file(&dir.join("ca-passphrase.txt"), &ca_pass)?;
    checkpoint()?;
    let mut ca = Ca::init(po, &PO.parse()?, &ca_pass, &PkiSettings::default())?;
    checkpoint()?;
    ca.issue_server(&PO.parse()?, &[])?;
    checkpoint()?;
    let lab_server = ca.issue_server(&LAB.parse()?, &[])?;
    checkpoint()?;
    let agent_jid = format!("search@{LAB}");
    let agent = ca.issue_agent(&agent_jid.parse()?)?;
    // The lab server's home gets what the PO admin would copy to it.
    for (from, to) in [
        (po.ca_cert(), lab.ca_cert()),
        (po.crl(), lab.crl()),
        (lab_server.cert_path.clone(), lab.server_cert(LAB)),
        (lab_server.key_path.clone(), lab.server_key(LAB)),
        (agent.cert_path.clone(), lab.agent_cert(&agent_jid)),
        (agent.key_path.clone(), lab.agent_key(&agent_jid)),
    ] {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&from, &to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    }
    let gp_pass = one_time_password::generate(20)?;
    secret_file(&dir.join("gp-passphrase.txt"), &gp_pass)?;
    let mut gps = Vec::new();
    for (i, hpnr) in GPS.iter().enumerate() {
        checkpoint()?;
        let issued = ca.add_user(
            &hpnr.parse()?,
            &format!("+479000000{}", i + 1).parse()?,
            &format!("gp{}@demo.example", i + 1).parse()?,
        )?;
        let sms = std::fs::read_to_string(&issued.delivery.sms)?;
        let otp = outbox::password_of(&sms).context("the SMS in the outbox holds no password")?;
        let contents = pkcs12::read(&issued.p12, &otp, "the demo GP's key file")?;
        let identity = Identity::new(contents.key_pkcs8, contents.chain)?;
        let home = dir.join(format!("gp-{hpnr}"));
        FileKeyStore::new(SiteHome::new(&home).keystore()).save(&identity, &gp_pass, false)?;
        gps.push((issued.jid.to_string(), home, identity));
    }
    Ok((ca.cert_der().to_vec(), gps))
}

/// Step 2: the lab's synthetic export under `dir/lab-lan`, pseudonymised
/// and pushed to `incoming` as `winter.csv`. Returns the rows.
fn lab_data(dir: &Path, incoming: &Path, checkpoint: &dyn Fn() -> anyhow::Result<()>) -> anyhow::Result<u64> {
    let lab_side = dir.join("lab-lan");
    std::fs::create_dir_all(&lab_side)?;
    let today = time::OffsetDateTime::now_utc().date();
    let raw_path = lab_side.join("lab-db-export.csv");
    let rows =
        snow_lab::synth::raw_export(std::io::BufWriter::new(std::fs::File::create(&raw_path)?), today, WEEKS, 2026)?;
    checkpoint()?;
    let secret = one_time_password::random_hex(32)?;
    secret_file(&lab_side.join("pseudonym-secret"), &secret)?;
    std::fs::create_dir_all(incoming)?;
    checkpoint()?;
    let part = incoming.join("winter.csv.part");
    let pseudonymiser = snow_lab::export::Pseudonymiser::new(secret.as_bytes())?;
    snow_lab::export::export(
        std::io::BufReader::new(std::fs::File::open(&raw_path)?),
        std::io::BufWriter::new(std::fs::File::create(&part)?),
        &pseudonymiser,
        &snow_lab::LabSettings::default(),
        today,
        |_| {},
    )?;
    // Uploaded as .part and renamed, as scp jobs do: only whole files count.
    std::fs::rename(&part, incoming.join("winter.csv"))?;
    Ok(rows)
}

async fn run_demo(
    dir: &Path,
    po: &Site,
    lab: &Site,
    ca_der: &[u8],
    gps: &[(String, PathBuf, Identity)],
    once: bool,
) -> anyhow::Result<()> {
    let home = &lab.home;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while !home.done().join("winter.csv").exists() {
        if home.rejected().join("winter.csv").exists() {
            let why = std::fs::read_to_string(home.rejected().join("winter.csv.error")).unwrap_or_default();
            bail!("the lab server rejected the demo file: {why}");
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the lab server did not import the demo file in time");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    say("      the lab server imported the file into its weekly aggregates");

    // 4. A GP at the PO searches the lab's statistics.
    let (gp_jid, _, identity) = &gps[0];
    let agent = lab.agent_jid.clone().context("the lab runs no search agent")?;
    say(format!("[4/{STEPS}] {gp_jid} logs in to {PO} and asks {agent}, end-to-end encrypted:"));
    let mut client = login(po, ca_der, identity).await?;
    let today = time::OffsetDateTime::now_utc().date();
    let this_week = IsoWeek::of(today);
    let recent = StatsQuery {
        analysis: "INFA".into(),
        period: Period::Weeks { from: this_week.minus(7), to: this_week },
        area: Area::Municipality("5401".into()),
        age_group: None,
        sex: None,
        granularity: Granularity::Week,
    };
    // The last complete winter: October to May.
    let season_end = if u8::from(today.month()) >= 6 { today.year() } else { today.year() - 1 };
    let season = StatsQuery {
        analysis: "INFA".into(),
        period: Period::Months {
            from: YearMonth::new(season_end - 1, 10).context("date out of range")?,
            to: YearMonth::new(season_end, 5).context("date out of range")?,
        },
        area: Area::County("54".into()),
        age_group: None,
        sex: None,
        granularity: Granularity::Month,
    };
    // Key replication and the agent's login run in the background: the
    // first search may come too early.
    let agent_bare = agent.split('/').next().unwrap_or(&agent).to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let first = loop {
        match client.iq().search(&agent, &recent, identity, ca_der).await {
            Ok(a) => break a,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "search not answered yet; retrying");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => return Err(e).context("the search agent did not answer"),
        }
    };
    say(format!("\n$ snow search --lab {LAB} --analysis INFA --area 5401 --weeks 8\n"));
    say(super::search::table(&first, &agent_bare));
    let second = client.iq().search(&agent, &season, identity, ca_der).await?;
    let (from, to) = season.period.bounds();
    say(format!("$ snow search --lab {LAB} --analysis INFA --area 54 --from {from} --to {to}\n"));
    say(super::search::table(&second, &agent_bare));

    // 5. An outbreak: a cluster in a new file, the detection agent's alert,
    //    a GP's confirmation seen by the other GP.
    outbreak(dir, po, lab, ca_der, gps, &mut client, this_week).await?;
    client.close().await?;

    // 5. How to join in.
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "snow".into());
    let server = po.server.c2s_addr;
    let pass = dir.join("gp-passphrase.txt");
    let (gp1, gp1_home, _) = &gps[0];
    let (gp2, gp2_home, _) = &gps[1];
    if once {
        say(format!(
            "[6/{STEPS}] Done: the lab's files were imported, {gp1} searched them across the federation, \
             the detection agent raised the outbreak alert, {gp1} confirmed it and {gp2} saw the confirmation. \
             The demo's servers stop now and its folder is removed."
        ));
        return Ok(());
    }
    say(format!("[6/{STEPS}] The demo is running. From another terminal, as the two GPs:"));
    say(format!(
        "\n  export SNOW_SERVER={server} SNOW_LAB={LAB}\n  \
         {exe} --home {} chat listen --passphrase-file {}\n  \
         {exe} --home {} chat send --passphrase-file {} --to {gp2} \"Seeing influenza A in Tromsø?\"\n  \
         {exe} --home {} search --passphrase-file {} --analysis RSV --area 54 --weeks 12\n  \
         {exe} --home {} search --passphrase-file {} --analysis INFA --area all --months 6 --format json\n  \
         {exe} --home {} alert list --passphrase-file {}\n  \
         {exe} --home {} alert send --passphrase-file {} --analysis MYCPN --area 5401 --text \"Two more children with atypical pneumonia\"\n  \
         {exe} --home {} app        # the GP's app in the browser (passphrase: the first line of {})\n",
        // listen, send: GP 2 listens, GP 1 writes; then searches and alerts.
        gp2_home.display(),
        pass.display(),
        gp1_home.display(),
        pass.display(),
        gp1_home.display(),
        pass.display(),
        gp2_home.display(),
        pass.display(),
        gp1_home.display(),
        pass.display(),
        gp2_home.display(),
        pass.display(),
        gp1_home.display(),
        pass.display(),
    ));
    say(format!(
        "  {gp1} and {gp2} are users of {PO}; the CA passphrase is in {}.\n  \
         Push more lab files to {} (write NAME.csv.part, then rename it to NAME.csv: only whole files are imported);\n  \
         they are imported within a second.",
        dir.join("ca-passphrase.txt").display(),
        lab.home.incoming().display()
    ));
    say("\nPress Ctrl-C to stop.");
    std::future::pending().await
}

/// Step 5: both GPs subscribe to the cluster's alerts; the lab pushes a
/// file with the cluster; GP 1 receives the alert and confirms it; GP 2
/// sees both and lists them.
async fn outbreak(
    dir: &Path,
    po: &Site,
    lab: &Site,
    ca_der: &[u8],
    gps: &[(String, PathBuf, Identity)],
    gp1: &mut Session,
    this_week: IsoWeek,
) -> anyhow::Result<()> {
    let (analysis, muni, cases) = CLUSTER;
    let area = Area::Municipality(muni.into());
    let node = Alert::node(analysis, &area);
    let ((jid1, home1, id1), (jid2, home2, id2)) = (&gps[0], &gps[1]);
    // Each GP's record of alerts received, where `snow alert` keeps it.
    let nonces = |home: &Path| -> anyhow::Result<std::sync::Mutex<snow_core::nonce_cache::NonceCache>> {
        let path = FileKeyStore::new(SiteHome::new(home).keystore()).dir().join("alert-nonces");
        Ok(std::sync::Mutex::new(alert::open_nonces(&path)?))
    };
    let (nonces1, nonces2) = (nonces(home1)?, nonces(home2)?);
    say(format!("\n[5/{STEPS}] Both GPs subscribe to {node} at {PO}; the lab pushes a file with {cases} cases of {analysis} in {muni} last week…"));
    let mut gp2 = login(po, ca_der, id2).await?;
    for (c, jid) in [(&*gp1, jid1), (&gp2, jid2)] {
        let reply = c.iq().request(alert::subscribe_iq(PO, &node, jid)).await?;
        alert::read_subscriptions(PO, &reply, "jid")?;
        c.iq().send_presence().await?;
    }
    // The cluster: exported in the lab with the same secret, pushed as before.
    let lab_side = dir.join("lab-lan");
    let raw = lab_side.join("cluster-export.csv");
    let monday = this_week.minus(1).thursday() - time::Duration::days(3);
    snow_lab::synth::cluster(std::io::BufWriter::new(std::fs::File::create(&raw)?), analysis, muni, monday, cases, 47)?;
    let secret = std::fs::read_to_string(lab_side.join("pseudonym-secret"))?;
    let incoming = lab.home.incoming();
    let part = incoming.join("cluster.csv.part");
    snow_lab::export::export(
        std::io::BufReader::new(std::fs::File::open(&raw)?),
        std::io::BufWriter::new(std::fs::File::create(&part)?),
        &snow_lab::export::Pseudonymiser::new(secret.trim().as_bytes())?,
        &snow_lab::LabSettings::default(),
        time::OffsetDateTime::now_utc().date(),
        |_| {},
    )?;
    std::fs::rename(&part, incoming.join("cluster.csv"))?;

    let wait = Duration::from_secs(60);
    let (item, a) = next_alert(gp1, (id1, ca_der, &nonces1), wait, |a| a.kind == AlertKind::Signal)
        .await
        .context("no alert arrived from the lab's detection agent")?;
    say(format!(
        "      {jid1} received alert {} from {} ({}):\n        {} positive {} tests in {} in {} (threshold {:.1}, {})",
        a.id,
        item.publisher,
        item.node,
        a.observed.map(|o| o.to_string()).unwrap_or_default(),
        a.analysis,
        muni,
        a.week,
        a.threshold.unwrap_or(f64::NAN),
        a.algorithm.as_deref().unwrap_or(""),
    ));
    let comment = "Confirmed: four children with atypical pneumonia at our practice this week";
    // The PO's pubsub service assigns the confirmation's id.
    let confirmation = Alert {
        id: String::new(),
        kind: AlertKind::Confirmation,
        confirms: Some(a.id.clone()),
        text: Some(comment.into()),
        author: jid1.clone(),
        issued: time::OffsetDateTime::now_utc().unix_timestamp(),
        observed: None,
        threshold: None,
        algorithm: None,
        series: None,
        ..a.clone()
    };
    alert::publish(gp1.iq(), PO, &confirmation, &[jid1, &a.author], id1, ca_der).await?;
    say(format!("      {jid1} confirms it: \"{comment}\""));
    let (_, c) = next_alert(&mut gp2, (id2, ca_der, &nonces2), wait, |c| c.kind == AlertKind::Confirmation)
        .await
        .context("the other GP did not see the confirmation")?;
    say(format!("      {jid2} sees the confirmation of {} by {}", c.confirms.as_deref().unwrap_or(""), c.author));
    let got = alert::received(gp2.iq(), PO, id2, ca_der, &nonces2, 50).await?;
    say(format!("\n$ snow alert list   (as {jid2})\n"));
    say(super::alert::table(&got.alerts));
    gp2.close().await?;
    Ok(())
}

/// The next alert notification that `want` accepts, decrypted and
/// verified ([`alert::open_item`]) with the GP's identity, the CA and the
/// GP's record of alerts received; one that does not verify is said and
/// left out.
async fn next_alert(
    c: &mut Session,
    (identity, ca_der, nonces): (&Identity, &[u8], &std::sync::Mutex<snow_core::nonce_cache::NonceCache>),
    wait: Duration,
    want: impl Fn(&Alert) -> bool,
) -> Option<(alert::Item, Alert)> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let el = c.next_stanza(left).await.ok()?;
        for item in alert::event_items(&el) {
            match alert::open_item(c.iq(), &item, identity, ca_der, nonces).await {
                Ok(a) if want(&a) => return Some((item, a)),
                Ok(_) => {}
                Err(e @ alert::Dropped::Unverified(_)) => say(format!("      {} {}: {e}", item.node, item.id)),
                Err(alert::Dropped::Unreadable { .. }) => {}
            }
        }
    }
}

/// A demo GP's login at the PO (resource `demo`).
async fn login(po: &Site, ca_der: &[u8], identity: &Identity) -> anyhow::Result<Session> {
    let opts = ConnectOptions {
        addr: po.server.c2s_addr,
        domain: PO.into(),
        ca_der: ca_der.to_vec(),
        direct_tls: false,
        resource: Some("demo".into()),
        timeout: Duration::from_secs(15),
    };
    Ok(Client::connect(&opts, identity).await?.into_session())
}
