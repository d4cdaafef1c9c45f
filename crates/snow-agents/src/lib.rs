//! Snow's agents (docs/architecture.md §2): programs that act in the federation as
//! XMPP entities. The lab's search agent answers GPs' statistics searches
//! (`urn:snow:stats:1`) with its own certificate, in-process as a client of
//! the lab server or as an external component (XEP-0114); with detection
//! on, it also turns alarms on the lab's weekly series into outbreak
//! alerts (`detect`). The echo agent, the seed's test agent, attaches as a
//! component with message authentication on every stanza. The lab
//! server's importer (`importer`) turns files pushed to `data/in` into the
//! aggregates the search agent answers from.

pub mod component;
pub mod detect;
pub mod echo;
pub mod importer;
pub mod queue;
pub mod runtime;
pub mod search;

pub use importer::{Importer, ImporterConfig};
pub use runtime::{
    load_identity, open_search_nonces, AgentConfig, AgentError, Attach, SearchAgent, AGENT_RESOURCE, SEARCH_NONCES,
};
pub use search::{SearchError, SearchSettings};
