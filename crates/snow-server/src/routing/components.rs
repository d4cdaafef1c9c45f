//! The external components this server serves (XEP-0114): which domains
//! are configured, and the outbound queue of each connected one. The
//! component transport fills it; routing delivers through it.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use snow_xml::Element;
use tokio::sync::mpsc;

/// Configured component domains and the queues of the connected ones.
#[derive(Default)]
pub(crate) struct ComponentTable {
    domains: HashSet<String>,
    connected: Mutex<HashMap<String, mpsc::Sender<Element>>>,
}

impl ComponentTable {
    /// A table for these (lower-case) domains.
    pub fn new(domains: impl IntoIterator<Item = String>) -> Self {
        ComponentTable { domains: domains.into_iter().collect(), connected: Mutex::default() }
    }

    /// Whether `domain` is one of our components, connected or not.
    pub fn is_component(&self, domain: &str) -> bool {
        self.domains.contains(domain)
    }

    /// Records a connection's queue; false if the component is already
    /// connected (one connection per component).
    pub fn attach(&self, domain: &str, tx: mpsc::Sender<Element>) -> bool {
        let mut connected = self.connected.lock().unwrap_or_else(|p| p.into_inner());
        if connected.get(domain).is_some_and(|t| !t.is_closed()) {
            return false;
        }
        connected.insert(domain.to_owned(), tx);
        true
    }

    pub fn detach(&self, domain: &str) {
        self.connected.lock().unwrap_or_else(|p| p.into_inner()).remove(domain);
    }

    /// Queues `el` for the component; gives it back if the component is
    /// not connected or not keeping up.
    pub fn try_send(&self, domain: &str, el: Element) -> Result<(), Element> {
        let tx = self.connected.lock().unwrap_or_else(|p| p.into_inner()).get(domain).cloned();
        match tx {
            Some(tx) => tx.try_send(el).map_err(|e| match e {
                mpsc::error::TrySendError::Full(el) | mpsc::error::TrySendError::Closed(el) => el,
            }),
            None => Err(el),
        }
    }
}
