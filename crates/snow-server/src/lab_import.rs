//! The lab server's drop-directory importer: every `scan_interval_secs` it
//! imports the complete files in `data/in` (see `snow_lab::import`). The
//! work runs on the blocking pool; a crash mid-import leaves the file in
//! `in/` and the database unchanged, so the next scan imports it once.

use std::sync::Arc;
use std::time::Duration;

use snow_lab::import::DropDir;

use crate::server::Shared;

pub(crate) async fn run(shared: Arc<Shared>) {
    if !shared.config.lab.import {
        return;
    }
    let data = shared.config.data_dir.clone();
    let interval = Duration::from_secs(shared.config.lab.scan_interval_secs.max(1));
    let mut shutdown = shared.shutdown.clone();
    let settings = shared.config.lab.lab_settings();
    let _ = std::fs::create_dir_all(data.join("in"));
    tracing::info!(dir = %data.join("in").display(), "watching for lab files");
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
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
