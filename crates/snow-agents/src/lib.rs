//! Snow's agents (DESIGN.md §2): programs that act in the federation as
//! XMPP entities with their own certificates. Today: the lab's search
//! agent, which answers GPs' statistics searches (`urn:snow:stats:1`).

pub mod queue;
pub mod runtime;
pub mod search;

pub use runtime::{load_identity, AgentConfig, AgentError, SearchAgent, AGENT_RESOURCE};
pub use search::{SearchError, SearchSettings};
