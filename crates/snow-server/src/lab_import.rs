//! The lab server's drop-directory importer: it imports the complete files
//! in `data/in` (see `snow_lab::import`) as soon as the kernel reports a
//! change there (inotify, through `notify`), and every
//! `scan_interval_secs` in any case, so an event lost (or a file system
//! without notifications) only delays a file. The work runs on the
//! blocking pool; a crash mid-import leaves the file in `in/` and the
//! database unchanged, so the next scan imports it once.

use std::time::Duration;

use snow_lab::import::DropDir;

/// After a change in `in/`, wait this long for more before scanning: an
/// upload renamed from `.part` arrives as a burst of events.
const SETTLE: Duration = Duration::from_millis(200);

/// Watches `dir`; every change sends a wake-up (coalesced: a full channel
/// already holds one). `None` if watching is not possible here.
fn watch(dir: &std::path::Path) -> Option<(notify::RecommendedWatcher, tokio::sync::mpsc::Receiver<()>)> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let handler = move |event: notify::Result<notify::Event>| {
        if let Ok(e) = event {
            if matches!(e.kind, EventKind::Create(_) | EventKind::Modify(_)) {
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

pub(crate) async fn run(config: crate::ServerConfig, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    if !config.lab.import {
        return;
    }
    let data = config.data_dir.clone();
    let interval = Duration::from_secs(config.lab.scan_interval_secs.max(1));
    let settings = config.lab.lab_settings();
    let _ = std::fs::create_dir_all(data.join("in"));
    tracing::info!(dir = %data.join("in").display(), "watching for lab files");
    // The watcher lives as long as this loop.
    let (_watcher, mut changes) = match watch(&data.join("in")) {
        Some((w, rx)) => (Some(w), Some(rx)),
        None => (None, None),
    };
    loop {
        let (d, settings) = (data.clone(), settings.clone());
        let pass = tokio::task::spawn_blocking(move || -> Result<usize, String> {
            let mut db = snow_store::LabDb::open(&d.join("lab.db")).map_err(|e| e.to_string())?;
            let today = time::OffsetDateTime::now_utc().date();
            Ok(DropDir::new(&d).process(&mut db, &settings, today).len())
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
                    rx.recv().await;
                    tokio::time::sleep(SETTLE).await;
                    // Events during the pause are covered by this scan.
                    while rx.try_recv().is_ok() {}
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(interval) => {}
            _ = changed => {}
        }
    }
}
