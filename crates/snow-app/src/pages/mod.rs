//! One module per screen; `layout` is the frame they share.

pub mod alerts;
pub mod chat;
pub mod layout;
pub mod search;
pub mod start;
