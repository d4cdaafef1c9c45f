//! The detection agent: after every import into the lab's store it runs
//! the configured algorithm over the affected weekly series (positive
//! tests per analysis × municipality and analysis × county), and turns
//! each new alarm in the most recent weeks into an alert
//! (`urn:snow:alert:1`) published on the pubsub node of that analysis and
//! area, signed by the agent and end-to-end encrypted to the node's
//! subscribers (issue 20; `snow_client::alert`). An alert is sent
//! once per series and week: the lab store records it, and a restart does
//! not send it again. The agent subscribes to the nodes it publishes on, so
//! GPs' confirmations come back to it. The PO's pubsub service takes
//! signals only from the agents `[pubsub] signal_publishers` names there
//! (by default `search@LAB` and `search.LAB` for each lab server it
//! replicates to), each
//! under the signal's id (`Alert::signal_id`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use snow_client::alert;
use snow_client::{ClientError, IqClient};
use snow_core::alert::{Alert, AlertKind};
use snow_core::stats::{Area, Count, IsoWeek};
use snow_lab::detect::{Detector, Fitted};
use snow_store::{LabDb, SentAlert, StoreError, WeeklyFilter};
use snow_xml::Element;

/// What the detection agent runs and where it publishes.
#[derive(Debug, Clone)]
pub struct DetectionConfig {
    /// The pubsub service (the PO's domain).
    pub service: String,
    /// How many of the newest weeks are evaluated after an import.
    pub recent_weeks: usize,
    /// The algorithm for analyses without their own.
    pub default: Detector,
    pub per_analysis: HashMap<String, Detector>,
    /// How often the store is checked for new imports.
    pub poll: Duration,
    /// What was last said about each analysis's history (said again only
    /// when it changes, not after every import).
    pub said: Said,
}

/// The last note logged per analysis (or per series: any key).
#[derive(Debug, Clone, Default)]
pub struct Said(Arc<std::sync::Mutex<HashMap<String, String>>>);

impl Said {
    /// True if `note` is news for `analysis` (and remembers it).
    fn is_new(&self, analysis: &str, note: &str) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.get(analysis).map(String::as_str) == Some(note) {
            return false;
        }
        m.insert(analysis.to_owned(), note.to_owned());
        true
    }
}

impl DetectionConfig {
    fn detector(&self, analysis: &str) -> &Detector {
        self.per_analysis.get(analysis).unwrap_or(&self.default)
    }
}

/// An alarm not yet sent.
#[derive(Debug, Clone)]
pub struct Pending {
    pub analysis: String,
    pub area: Area,
    pub week: IsoWeek,
    pub observed: f64,
    /// The cell key of the observed count (positives in the area and
    /// week): the alert publishes it as a search would.
    pub observed_key: u32,
    pub upperbound: f64,
    pub algorithm: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Detect(#[from] snow_lab::detect::DetectError),
}

fn week_of(yw: i32) -> Option<IsoWeek> {
    IsoWeek::new(yw / 100, (yw % 100) as u8)
}

/// The new alarms in the store: every analysis and area, the newest
/// `recent_weeks` weeks, minus those already sent.
pub fn find_alarms(db: &LabDb, cfg: &DetectionConfig, analyses: &[String]) -> Result<Vec<Pending>, DetectError> {
    let mut out = Vec::new();
    for analysis in analyses {
        let Some((first, last)) = db.week_span(analysis)? else { continue };
        let (Some(first_week), Some(last_week)) = (week_of(first), week_of(last)) else { continue };
        let weeks: Vec<IsoWeek> = std::iter::successors(Some(first_week), |w| (*w < last_week).then(|| w.next()))
            .take(snow_lab::detect::series::MAX_WEEKS)
            .collect();
        let index: HashMap<i32, usize> = weeks.iter().enumerate().map(|(i, w)| (w.key(), i)).collect();
        let mondays: Vec<time::Date> = weeks.iter().map(|w| w.thursday() - time::Duration::days(3)).collect();
        // Every area of an analysis spans the same weeks: one choice each.
        let substitute;
        let detector = match cfg.detector(analysis).for_history(weeks.len()) {
            Fitted::Configured => cfg.detector(analysis),
            Fitted::Substitute(d, why) => {
                // It still detects: said at the default level, not as a fault.
                if cfg.said.is_new(analysis, &why) {
                    tracing::info!("outbreak detection of {analysis} (its series in every area): {why}");
                }
                substitute = d;
                &substitute
            }
            Fitted::TooShort { needed } => {
                // Named series by series (analysis and area, as the GP
                // writes them), once each per process: not a line per area
                // at every import.
                let configured = cfg.detector(analysis);
                let start = configured.history_to_start();
                for code in db.areas(analysis)? {
                    if !cfg.said.is_new(&format!("too short {analysis} {code}"), "") {
                        continue;
                    }
                    let until = if start < needed {
                        format!("; detection starts, with a substitute, at {start} weeks")
                    } else {
                        String::new()
                    };
                    let area = if code.len() == 4 { Area::Municipality(code) } else { Area::County(code) };
                    tracing::warn!(
                        "outbreak detection cannot run yet on {analysis} in {}: {} needs {needed} weeks of \
                         history and the series has {}{until}",
                        area.describe(),
                        configured.describe(),
                        weeks.len(),
                    );
                }
                continue;
            }
        };
        for code in db.areas(analysis)? {
            let area = if code.len() == 4 { Area::Municipality(code.clone()) } else { Area::County(code.clone()) };
            let mut y = vec![0.0; weeks.len()];
            let mut keys = vec![0u32; weeks.len()];
            for w in db.weekly(&WeeklyFilter::new(analysis, &code, (first, last)))? {
                if let Some(&i) = index.get(&(i32::from(w.week) + w.year * 100)) {
                    y[i] = w.positive as f64;
                    keys[i] = w.keys.positive;
                }
            }
            for s in detector.alarms(&y, &mondays, cfg.recent_weeks)? {
                let week = weeks[s.t - 1];
                if db.alert_sent(analysis, &code, week.key())? {
                    continue;
                }
                out.push(Pending {
                    analysis: analysis.clone(),
                    area: area.clone(),
                    week,
                    observed: s.observed,
                    observed_key: keys[s.t - 1],
                    upperbound: s.upperbound,
                    algorithm: detector.label(),
                });
            }
        }
    }
    Ok(out)
}

/// Who the agent is, for the alerts it signs with its name.
#[derive(Debug, Clone)]
pub struct AgentName {
    /// Bare JID (the certificate's): the alerts' author.
    pub bare: String,
    /// Where GPs search its series (`snow search --agent`).
    pub search: String,
}

/// The observed count as the alert states it: what a search for the
/// area and week (all ages and sexes) publishes — the same cell, so the
/// same perturbed count — then disclosure control (issue 21: an alert
/// discloses no more than a search).
pub fn published_observed(p: &Pending, disclosure: &crate::search::SearchSettings) -> Count {
    let n = p.observed.max(0.0) as u64;
    let published = disclosure.perturbation.as_ref().map_or(n, |t| t.publish(n, p.observed_key));
    Count::disclose(published, disclosure.threshold)
}

/// The threshold as the alert states it. An alarm says the true count is
/// above the algorithm's upper bound, which comes from true counts; stated
/// exactly, with a perturbed or hidden observed count, it would narrow the
/// true count down (a bound of 3.2 and "0" leave only 4). With
/// perturbation on, it is rounded up to a multiple of the disclosure
/// threshold (at least that): it then says only that the true count is
/// above the stated value minus the threshold. Exact counts state it as
/// computed.
pub fn published_threshold(upperbound: f64, disclosure: &crate::search::SearchSettings) -> f64 {
    if disclosure.perturbation.is_none() || !upperbound.is_finite() {
        return upperbound;
    }
    let step = f64::from(disclosure.threshold.max(1));
    ((upperbound / step).ceil() * step).max(step)
}

/// Publishes one alarm as an alert, after subscribing the agent to the
/// node (so confirmations come back). Recording it ([`sent`]) is the
/// caller's part, once this succeeded.
pub async fn send(
    r: &IqClient,
    cfg: &DetectionConfig,
    me: &AgentName,
    identity: &snow_crypto::Identity,
    ca_der: &[u8],
    disclosure: &crate::search::SearchSettings,
    p: &Pending,
) -> Result<alert::Published, ClientError> {
    let a = Alert {
        id: Alert::signal_id(&p.analysis, &p.area, p.week),
        kind: AlertKind::Signal,
        analysis: p.analysis.clone(),
        area: p.area.clone(),
        week: p.week,
        observed: Some(published_observed(p, disclosure)),
        threshold: Some(published_threshold(p.upperbound, disclosure)),
        algorithm: Some(p.algorithm.clone()),
        series: Some(me.search.clone()),
        author: me.bare.clone(),
        issued: time::OffsetDateTime::now_utc().unix_timestamp(),
        confirms: None,
        text: None,
    };
    // Subscribed to its own nodes: confirmations come back to the agent.
    let node = Alert::node(&a.analysis, &a.area);
    let reply = r.request(alert::subscribe_iq(&cfg.service, &node, &me.bare)).await?;
    alert::read_subscriptions(&cfg.service, &reply, "jid")?;
    alert::publish(r, &cfg.service, &a, &[&me.bare], identity, ca_der).await
}

/// The record of a sent alert.
pub fn sent(p: &Pending, recipients: usize) -> SentAlert {
    SentAlert {
        analysis: p.analysis.clone(),
        area: p.area.code().to_owned(),
        yw: p.week.key(),
        algorithm: p.algorithm.clone(),
        observed: p.observed as i64,
        threshold: p.upperbound,
        recipients: recipients as i64,
        sent_at: time::OffsetDateTime::now_utc().unix_timestamp(),
    }
}

/// Logs the confirmations in a pubsub notification the agent received,
/// from what the service vouches for: the kind in clear, which it checked
/// against the publisher it authenticated, the node and the item. The
/// agent does not open them: what is inside is a GP's signed word, shown
/// only once verified ([`alert::open_item`]: signature, nonce, key
/// directory), and the agent keeps no record of alerts received for that;
/// the GPs' clients verify and show them.
pub fn note_confirmations(message: &Element, _identity: &snow_crypto::Identity) {
    for item in alert::event_items(message) {
        if item.payload.attr(snow_core::alert::KIND_ATTR) == Some(AlertKind::Confirmation.as_str()) {
            tracing::info!(node = %item.node, item = %item.id, publisher = %item.publisher, "a GP published a confirmation (not opened by the agent)");
        }
    }
}

/// Runs detection now and then: on start and after each new import.
#[allow(clippy::too_many_arguments)] // the agent's parts a detection loop uses, each once
pub(crate) async fn run_loop(
    r: IqClient,
    cfg: Arc<DetectionConfig>,
    me: AgentName,
    identity: snow_crypto::Identity,
    lab_db: std::path::PathBuf,
    analyses: Vec<String>,
    ca_der: Vec<u8>,
    disclosure: crate::search::SearchSettings,
) {
    let mut done: Option<Option<i64>> = None;
    loop {
        let (path, c, a) = (lab_db.clone(), Arc::clone(&cfg), analyses.clone());
        let found = tokio::task::spawn_blocking(move || -> Result<(Option<i64>, Option<Vec<Pending>>), DetectError> {
            let db = LabDb::open(&path)?;
            let latest = db.latest_import()?;
            if done == Some(latest) {
                return Ok((latest, None));
            }
            Ok((latest, Some(find_alarms(&db, &c, &a)?)))
        })
        .await;
        match found {
            Ok(Ok((latest, Some(pending)))) => {
                let mut all_sent = true;
                for p in &pending {
                    match send(&r, &cfg, &me, &identity, &ca_der, &disclosure, p).await {
                        Ok(published) => {
                            let n = published.recipients.iter().filter(|j| **j != me.bare).count();
                            if !published.skipped.is_empty() {
                                tracing::warn!(
                                    skipped = published.skipped.len(),
                                    "subscribers without a valid certificate were left out"
                                );
                            }
                            tracing::info!(analysis = %p.analysis, area = %p.area.code(), week = %p.week, recipients = n, "outbreak alert sent");
                            let (path, rec) = (lab_db.clone(), sent(p, n));
                            let stored =
                                tokio::task::spawn_blocking(move || LabDb::open(&path)?.record_alert(&rec)).await;
                            let failed = match stored {
                                Ok(Ok(_)) => None,
                                Ok(Err(e)) => Some(e.to_string()),
                                Err(e) => Some(e.to_string()),
                            };
                            if let Some(e) = failed {
                                tracing::error!(error = %e, "cannot record a sent alert; it may be sent again");
                                all_sent = false;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, analysis = %p.analysis, area = %p.area.code(), week = %p.week, "alert not sent; retrying later");
                            all_sent = false;
                        }
                    }
                }
                // Anything unsent is tried again at the next poll.
                done = if all_sent { Some(latest) } else { None };
            }
            Ok(Ok((_, None))) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "outbreak detection failed"),
            Err(e) => tracing::error!(error = %e, "outbreak detection task failed"),
        }
        tokio::time::sleep(cfg.poll).await;
    }
}
