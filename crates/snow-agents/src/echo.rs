//! The echo agent, the seed's test agent: every message it gets goes back
//! to its sender (the bare JID, so every resource of theirs online, or
//! offline storage, gets it), and every IQ get or set is answered with its
//! own payload. With message authentication on, a message that arrives here
//! passed the filter both ways, so the echo proves a carrier end to end.

use std::time::Duration;

use snow_xml::stanza::iq_result;
use snow_xml::{Element, NS_CLIENT};
use tokio::sync::watch;

use crate::component::{ComponentLink, LinkError};

/// The echo of `el`, if it gets one: addresses swapped, content kept.
pub fn echo_of(el: &Element) -> Option<Element> {
    let (from, to) = (el.attr("from")?, el.attr("to")?);
    match (el.name(), el.attr("type")) {
        ("message", Some("error")) | ("iq", Some("result" | "error")) | ("presence", _) => None,
        ("message", _) => {
            let mut m = Element::new(NS_CLIENT, "message");
            for a in el.attrs() {
                m.set_attr_ns(&a.ns, &a.name, a.value.clone());
            }
            m.set_attr("from", to);
            m.set_attr("to", from.split('/').next().unwrap_or(from));
            for c in el.children() {
                m.push_child(c.clone());
            }
            Some(m)
        }
        ("iq", _) => Some(iq_result(el, el.children().next().cloned())),
        _ => None,
    }
}

/// Runs until `shutdown` or the link fails; returns how many it echoed.
pub async fn run(mut link: ComponentLink, mut shutdown: watch::Receiver<bool>) -> Result<u64, LinkError> {
    let mut echoed = 0u64;
    loop {
        let el = tokio::select! {
            _ = shutdown.changed() => return Ok(echoed),
            r = link.next(Duration::from_secs(3600)) => match r {
                Ok(el) => el,
                Err(LinkError::Framed(snow_xml::FramedError::Timeout(_))) => continue,
                Err(e) => return Err(e),
            },
        };
        if let Some(reply) = echo_of(&el) {
            link.send(reply).await?;
            echoed += 1;
        }
    }
}
