//! The server database handle every layer shares: one SQLite connection
//! behind a mutex, called from the blocking pool so a slow disk never
//! stalls the tasks that move stanzas.

use std::sync::{Arc, Mutex};

use snow_store::{ServerDb, StoreError};

/// A cloneable handle on `server.db`.
#[derive(Clone)]
pub(crate) struct Db(Arc<Mutex<ServerDb>>);

impl Db {
    pub fn new(db: ServerDb) -> Self {
        Db(Arc::new(Mutex::new(db)))
    }

    /// Runs `f` on the blocking pool with the connection.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut ServerDb) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.0);
        match tokio::task::spawn_blocking(move || f(&mut db.lock().unwrap_or_else(|p| p.into_inner()))).await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Io("database task".into(), std::io::Error::other(e.to_string()))),
        }
    }
}
