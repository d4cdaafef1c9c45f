//! The lab server's drop-directory importer: it imports the complete files
//! in `data/in` (see `snow_lab::import`) as soon as the kernel reports a
//! change there (inotify, through `notify`), and every scan interval in any
//! case, so an event lost (or a file system without notifications) only
//! delays a file. A file a writer still holds open (a write seen and no
//! close-after-write yet) is never taken while the importer runs, however
//! long the writer pauses; the settle time (`[lab] settle_ms`) is the rule
//! for the rest (a file already open when the importer started, or no
//! notifications at all). The work runs on the blocking pool; a crash mid-import
//! leaves the file in `in/` and the database unchanged, so the next scan
//! imports it once.
//!
//! It is lab-side work, so it runs next to the search agent (`snow serve`
//! starts both when `[lab] import` is on), not inside the XMPP server: the
//! server knows nothing of lab files (issue 15).

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use snow_core::SiteHome;
use snow_lab::config::LabServerSettings;
use snow_lab::import::DropDir;
use snow_lab::LabSettings;
use tokio::sync::{mpsc, watch};

/// After a change in `in/`, wait this long for more before scanning: an
/// upload renamed from `.part` arrives as a burst of events.
const SETTLE: Duration = Duration::from_millis(200);

/// What the importer needs, and nothing else: where the files and the
/// store are, how often to rescan, and what rows are valid.
#[derive(Debug, Clone)]
pub struct ImporterConfig {
    /// `in/`, `done/`, `rejected/`.
    pub drop: DropDir,
    /// The lab store the aggregates go to (the search agent reads it).
    pub lab_db: PathBuf,
    /// Time between full scans, the fallback to change notifications.
    pub scan_interval: Duration,
    /// The analyses and age groups rows are checked against.
    pub settings: LabSettings,
}

impl ImporterConfig {
    /// The importer of the site in `home` with its `[lab]` section: the
    /// drop directory and lab store where `SiteHome` puts them.
    pub fn for_home(home: &SiteHome, lab: &LabServerSettings) -> Self {
        ImporterConfig {
            drop: DropDir::of(home).with_settle(Duration::from_millis(lab.settle_ms)),
            lab_db: home.lab_db(),
            // A zero interval would scan in a busy loop.
            scan_interval: Duration::from_secs(lab.scan_interval_secs.max(1)),
            settings: lab.lab_settings(),
        }
    }
}

/// A running importer.
pub struct Importer {
    task: tokio::task::JoinHandle<()>,
}

impl Importer {
    /// Starts importing: one pass at once, then one after every change in
    /// `in/` and every scan interval, until `shutdown` turns true (or its
    /// sender goes away). Must be called within a tokio runtime.
    pub fn start(config: ImporterConfig, shutdown: watch::Receiver<bool>) -> Importer {
        Importer { task: tokio::spawn(run(config, shutdown)) }
    }

    /// Waits for the loop to end after shutdown. A pass under way finishes
    /// first: an import is one transaction, never cut in half.
    pub async fn join(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "lab importer task failed");
        }
    }
}

/// The names in `in/` that a writer holds open, as the kernel's change
/// notifications tell it: a name with a create or a write and no
/// close-after-write since is being written (docs/architecture.md §5).
/// The kernel sends the close when the writer's last descriptor for it
/// goes, a crashed writer's included, so no name stays here for ever.
#[derive(Debug, Clone, Default)]
struct Writing(Arc<Mutex<HashSet<OsString>>>);

impl Writing {
    fn names(&self) -> std::sync::MutexGuard<'_, HashSet<OsString>> {
        // A panic while holding the lock leaves a set that is still a set.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a writer still holds `name` open.
    fn holds(&self, name: &OsStr) -> bool {
        self.names().contains(name)
    }

    /// Takes one event in `in/` into account.
    fn update(&self, event: &notify::Event) {
        use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
        use notify::EventKind;
        let name = |i: usize| event.paths.get(i).and_then(|p| p.file_name()).map(OsStr::to_owned);
        let mut names = self.names();
        match event.kind {
            _ if event.need_rescan() => {
                // Events were lost (the kernel's queue overflowed): a close
                // may be among them, so no name is known to be open any
                // more; the settle time is the rule until the next write.
                if !names.is_empty() {
                    tracing::warn!(
                        "change notifications were lost; files in the drop directory are taken by their settle time"
                    );
                }
                names.clear();
            }
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
                if let Some(n) = name(0) {
                    names.insert(n);
                }
            }
            EventKind::Access(AccessKind::Close(AccessMode::Write)) | EventKind::Remove(_) => {
                if let Some(n) = name(0) {
                    names.remove(&n);
                }
            }
            // Renamed while open (a `.part` renamed before its close): the
            // new name is as open as the old one was.
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                if let (Some(from), Some(to)) = (name(0), name(1)) {
                    if names.remove(&from) {
                        names.insert(to);
                    } else {
                        names.remove(&to);
                    }
                }
            }
            // Another file under this name, moved in: not one we saw
            // opened. (The `From` half of a rename changes nothing: `Both`
            // follows when both ends are in `in/`; a name moved out and
            // left here is replaced by whatever event brings the name
            // back.)
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                if let Some(n) = name(0) {
                    names.remove(&n);
                }
            }
            _ => {}
        }
    }
}

/// Watches `dir`; every change sends a wake-up (coalesced: a full channel
/// already holds one), and every event updates `writing`. `None` if
/// watching is not possible here.
fn watch(dir: &Path, writing: Writing) -> Option<(notify::RecommendedWatcher, mpsc::Receiver<()>)> {
    use notify::event::{AccessKind, AccessMode};
    use notify::{EventKind, RecursiveMode, Watcher};
    let (tx, rx) = mpsc::channel(1);
    let handler = move |event: notify::Result<notify::Event>| {
        if let Ok(e) = event {
            writing.update(&e);
            // A close after writing is a file that may now be ready.
            if matches!(
                e.kind,
                EventKind::Create(_) | EventKind::Modify(_) | EventKind::Access(AccessKind::Close(AccessMode::Write))
            ) {
                let _ = tx.try_send(());
            }
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the drop directory; scanning periodically only");
            return None;
        }
    };
    if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
        tracing::warn!(error = %e, "cannot watch the drop directory; scanning periodically only");
        return None;
    }
    Some((watcher, rx))
}

async fn run(config: ImporterConfig, mut shutdown: watch::Receiver<bool>) {
    if *shutdown.borrow() {
        return;
    }
    let incoming = config.drop.incoming();
    if let Err(e) = std::fs::create_dir_all(&incoming) {
        tracing::warn!(dir = %incoming.display(), error = %e, "cannot create the drop directory");
    }
    tracing::info!(dir = %incoming.display(), "watching for lab files");
    // The watcher lives as long as this loop.
    // Filled by the watcher; empty without one (the settle time alone).
    let writing = Writing::default();
    let (_watcher, mut changes) = match watch(&incoming, writing.clone()) {
        Some((w, rx)) => (Some(w), Some(rx)),
        None => (None, None),
    };
    loop {
        let (drop, db_path, settings) = (config.drop.clone(), config.lab_db.clone(), config.settings.clone());
        let open = writing.clone();
        let pass = tokio::task::spawn_blocking(move || -> Result<usize, String> {
            let mut db = snow_store::LabDb::open(&db_path).map_err(|e| e.to_string())?;
            let today = time::OffsetDateTime::now_utc().date();
            Ok(drop.process_unless(&mut db, &settings, today, &|name| open.holds(name)).len())
        })
        .await;
        match pass {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(files = n, "drop directory processed"),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot open the lab database"),
            Err(e) => tracing::error!(error = %e, "lab import task failed"),
        }
        let changed = async {
            match changes.as_mut() {
                Some(rx) => {
                    if rx.recv().await.is_none() {
                        // The watcher is gone: periodic scans only.
                        std::future::pending::<()>().await;
                    }
                    tokio::time::sleep(SETTLE).await;
                    // Events during the pause are covered by this scan.
                    while rx.try_recv().is_ok() {}
                }
                None => std::future::pending().await,
            }
        };
        // A file still settling is looked at again as soon as it may be ready.
        let (drop, open) = (config.drop.clone(), writing.clone());
        let settling =
            tokio::task::spawn_blocking(move || drop.next_ready_unless(&|name| open.holds(name))).await.ok().flatten();
        let wait = settling.map_or(config.scan_interval, |s| s.min(config.scan_interval) + SETTLE);
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = changed => {}
        }
    }
}
