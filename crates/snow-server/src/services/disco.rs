//! XEP-0030 service discovery. The server's features are the registry's:
//! every service announces what it adds, so the list cannot drift from
//! what is answered. A user's own bare JID answers as their account.

use snow_xml::stanza::{error_reply, iq_result, Condition};
use snow_xml::{Element, NS_DISCO_INFO, NS_DISCO_ITEMS};

use super::{Access, Cx, IqRequest, IqRoute, Service};
use crate::routing::BoxFuture;

pub(crate) struct Disco;

impl Service for Disco {
    fn name(&self) -> &'static str {
        "disco"
    }
    fn features(&self) -> &'static [&'static str] {
        &[NS_DISCO_INFO, NS_DISCO_ITEMS]
    }
    fn iqs(&self) -> &'static [IqRoute] {
        const ROUTES: &[IqRoute] = &[
            IqRoute::get(NS_DISCO_INFO, "query", Access::Anyone),
            IqRoute::get(NS_DISCO_ITEMS, "query", Access::Anyone),
        ];
        ROUTES
    }
    fn iq<'a>(&'a self, cx: &'a Cx<'a>, req: IqRequest<'a>) -> BoxFuture<'a, Element> {
        Box::pin(async move {
            if req.payload.ns() == NS_DISCO_ITEMS {
                return iq_result(req.iq, Some(Element::new(NS_DISCO_ITEMS, "query")));
            }
            if req.payload.attr("node").is_some() {
                // No nodes here.
                return error_reply(req.iq, Condition::ServiceUnavailable, None);
            }
            let mut q = Element::new(NS_DISCO_INFO, "query");
            if req.own_account {
                q.push_child(
                    Element::new(NS_DISCO_INFO, "identity")
                        .with_attr("category", "account")
                        .with_attr("type", "registered"),
                );
            } else {
                q.push_child(
                    Element::new(NS_DISCO_INFO, "identity")
                        .with_attr("category", "server")
                        .with_attr("type", "im")
                        .with_attr("name", "Snow"),
                );
                for f in cx.features {
                    q.push_child(Element::new(NS_DISCO_INFO, "feature").with_attr("var", *f));
                }
            }
            iq_result(req.iq, Some(q))
        })
    }
}
