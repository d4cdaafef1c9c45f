//! The log lines a test's code writes, captured in memory (plain text, no
//! colours), for tests that check what an administrator would read.

use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let out = self.clone();
        tracing_subscriber::fmt().with_ansi(false).with_writer(move || out.clone()).finish()
    }

    /// Everything this test binary logs from now on (its tasks included):
    /// for a binary with one test, the only one to set it.
    #[allow(dead_code)]
    pub fn capture() -> Log {
        let log = Log::default();
        tracing::subscriber::set_global_default(log.subscriber()).unwrap();
        log
    }

    /// What `f` logs on this thread.
    #[allow(dead_code)]
    pub fn during(f: impl FnOnce()) -> String {
        let log = Log::default();
        tracing::subscriber::with_default(log.subscriber(), f);
        log.text()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}
