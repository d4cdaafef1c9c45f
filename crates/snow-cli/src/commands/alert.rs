//! `snow alert …`: a GP's outbreak alerts (docs/architecture.md §5, §6): subscribe per
//! area and analysis at the PO's pubsub service, list what arrived
//! (decrypted with your key, each signature checked: issue 20), confirm an
//! alert, send your own (signed with your key).

use anyhow::{bail, Context};
use snow_client::alert::{self, Item};
use snow_client::Session;
use snow_core::alert::{Alert, AlertKind};
use snow_core::stats::Area;

use super::Ctx;
use crate::cli::{AlertCommand, AlertService};

pub fn run(ctx: &Ctx, cmd: AlertCommand) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    rt.block_on(async {
        match cmd {
            AlertCommand::Subscribe { at, analysis, area } => {
                let (analysis, area) = series_of(&analysis, &area)?;
                let (session, _, _, service) = connect(ctx, &at).await?;
                let me = bare(&session);
                for node in alert::subscription_nodes(&analysis, &area) {
                    let reply = session.iq().request(alert::subscribe_iq(&service, &node, &me)).await?;
                    alert::read_subscriptions(&service, &reply, "jid")?;
                    println!("Subscribed to {node} at {service}");
                }
                session.close().await?;
            }
            AlertCommand::List { at, limit } => {
                let (session, identity, ca_der, service) = connect(ctx, &at).await?;
                let nonces = alert_nonces(ctx, &at)?;
                let got = alert::received(session.iq(), &service, &identity, &ca_der, &nonces, limit).await?;
                session.close().await?;
                print!("{}", table(&got.alerts));
                if got.alerts.is_empty() {
                    println!("No alerts (subscribe with `snow alert subscribe --analysis … --area …`).");
                }
                print!("{}", dropped(&got));
            }
            AlertCommand::Confirm { at, id, comment } => {
                alert::check_text(comment.as_deref())?;
                let (session, identity, ca_der, service) = connect(ctx, &at).await?;
                let nonces = alert_nonces(ctx, &at)?;
                let got = alert::received(session.iq(), &service, &identity, &ca_der, &nonces, 200).await?;
                let Some((_, original)) = got.alerts.iter().find(|(_, a)| a.id == id) else {
                    bail!("no alert {id} among the alerts you received (see `snow alert list`)");
                };
                if original.kind == AlertKind::Confirmation {
                    bail!("{id} is a confirmation; confirm the alert it confirms");
                }
                let me = bare(&session);
                let confirmation = alert::confirmation(original, &me, comment, now());
                let also = [me.as_str(), original.author.as_str()];
                let published =
                    alert::publish(session.iq(), &service, &confirmation, &also, &identity, &ca_der).await?;
                session.close().await?;
                report(&Alert { id: published.id.clone(), ..confirmation }, &published, &me);
            }
            AlertCommand::Send { at, analysis, area, text } => {
                let (analysis, area) = series_of(&analysis, &area)?;
                alert::check_text(Some(&text))?;
                let (session, identity, ca_der, service) = connect(ctx, &at).await?;
                let me = bare(&session);
                let a = alert::gp_alert(analysis, area, text, &me, now());
                let published = alert::publish(session.iq(), &service, &a, &[&me], &identity, &ca_der).await?;
                session.close().await?;
                report(&Alert { id: published.id.clone(), ..a }, &published, &me);
            }
        }
        anyhow::Ok(())
    })
}

/// Logs in; the requests of a command run on one [`Session`].
async fn connect(ctx: &Ctx, at: &AlertService) -> anyhow::Result<(Session, snow_crypto::Identity, Vec<u8>, String)> {
    let (client, identity, ca_der) = super::chat::connect_with_identity(ctx, &at.conn).await?;
    let session = client.into_session();
    let service = match &at.service {
        Some(s) => s.parse::<snow_core::Domain>().context("--service is not a domain name")?.to_string(),
        None => bare(&session).split('@').nth(1).unwrap_or_default().to_owned(),
    };
    Ok((session, identity, ca_der, service))
}

/// The alerts' nonces taken by `snow alert` for this key store:
/// `alert-nonces` in the key store's directory, beside `snow chat`'s
/// `chat-nonces`, so an alert signed once is shown for its own item only
/// (re-listing it is fine, the same signed alert under another item is a
/// replay), also in a later run or another process.
fn alert_nonces(ctx: &Ctx, at: &AlertService) -> anyhow::Result<std::sync::Mutex<snow_core::nonce_cache::NonceCache>> {
    let path = ctx.key_store(&at.conn.key).dir().join("alert-nonces");
    let cache = alert::open_nonces(&path).context("cannot open the record of received alerts")?;
    Ok(std::sync::Mutex::new(cache))
}

/// What a listing left out: a count of the items not encrypted to us, and
/// each unverified one as `NODE ITEM: unverified message dropped: REASON`
/// (as `snow chat` shows a chat that does not verify), never its content.
fn dropped(got: &alert::Received) -> String {
    let mut out = String::new();
    if got.unreadable > 0 {
        out.push_str(&format!(
            "({} alerts are not shown: published before you subscribed, so not encrypted to you)\n",
            got.unreadable
        ));
    }
    for (node, id, why) in &got.unverified {
        out.push_str(&format!("{node} {id}: unverified message dropped: {why}\n"));
    }
    out
}

fn bare(session: &Session) -> String {
    session.jid().split('/').next().unwrap_or_default().to_owned()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// [`alert::series_of`] for the command line.
fn series_of(analysis: &str, area: &str) -> anyhow::Result<(String, Area)> {
    Ok(alert::series_of(analysis, area)?)
}

fn report(a: &Alert, published: &alert::Published, me: &str) {
    // GPs only: the lab's detection agent subscribes to its own nodes.
    let others = published.gps.iter().filter(|j| *j != me).count();
    if published.recipients.is_empty() {
        println!("Nobody can receive {} yet: no subscriber has a valid certificate.", a.id);
    } else {
        let what = match a.kind {
            AlertKind::Signal => "the outbreak signal",
            AlertKind::Confirmation => "your confirmation",
            AlertKind::Gp => "your alert",
        };
        let whom = match others {
            0 => "no other GP subscribes to it yet".to_owned(),
            1 => "1 other GP subscribes to it".to_owned(),
            n => format!("{n} other GPs subscribe to it"),
        };
        let node = Alert::node(&a.analysis, &a.area);
        println!("Sent {what} {} ({} {}) to {node}: {whom}", a.id, a.analysis, a.area.code());
    }
    for (jid, why) in &published.skipped {
        println!("  left out {jid}: {why}");
    }
}

fn when(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]")).ok())
        .unwrap_or_else(|| t.to_string())
}

/// The alerts as a table, confirmations under what they confirm.
pub(super) fn table(alerts: &[(Item, Alert)]) -> String {
    let mut out = String::new();
    for (_, a) in alerts.iter().filter(|(_, a)| a.kind != AlertKind::Confirmation) {
        let what = match a.kind {
            AlertKind::Signal => format!(
                "{} positive in {} (threshold {:.1}, {})",
                a.observed.map(|o| o.to_string()).unwrap_or_else(|| "?".into()),
                a.week,
                a.threshold.unwrap_or(f64::NAN),
                a.algorithm.as_deref().unwrap_or("?")
            ),
            _ => a.text.clone().unwrap_or_default(),
        };
        out.push_str(&format!(
            "{}  {}  {} {}  {}  from {}\n    {what}\n",
            when(a.issued),
            a.id,
            a.analysis,
            a.area.code(),
            a.kind,
            a.author
        ));
        if let (AlertKind::Signal, Some(agent)) = (a.kind, &a.series) {
            out.push_str(&format!(
                "    series: snow search --agent {agent} --analysis {} --area {} --weeks 12\n",
                a.analysis,
                a.area.code()
            ));
        }
        for (_, c) in alerts.iter().filter(|(_, c)| c.confirms.as_deref() == Some(a.id.as_str())) {
            out.push_str(&format!(
                "    confirmed by {} at {}{}\n",
                c.author,
                when(c.issued),
                c.text.as_deref().map(|t| format!(": {t}")).unwrap_or_default()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use snow_core::stats::IsoWeek;

    #[test]
    fn series_are_read_as_snow_search_reads_them() {
        assert_eq!(series_of("infa", "5401").unwrap(), ("INFA".to_owned(), Area::Municipality("5401".into())));
        assert_eq!(series_of("Mycpn", "54").unwrap(), ("MYCPN".to_owned(), Area::County("54".into())));
        for (analysis, area, field) in [
            ("INFA", "all", "area"),
            ("INFA", "540", "area"),
            ("INFA", "54' OR 1=1", "area"),
            ("IN FA", "5401", "analysis"),
        ] {
            let e = series_of(analysis, area).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{field}:")), "{e}");
            assert!(!e.contains("county:") && !e.contains("municipality:") && !e.contains("OR 1=1"), "{e}");
        }
        // One area syntax: the wire form is refused with what to type.
        let e = series_of("INFA", "municipality:5401").unwrap_err().to_string();
        assert!(e.starts_with("area: write municipality 5401 as 5401:"), "{e}");
    }

    #[test]
    fn the_list_names_areas_as_typed() {
        let a = Alert {
            id: "gp-1".into(),
            kind: AlertKind::Gp,
            analysis: "INFA".into(),
            area: Area::Municipality("5401".into()),
            week: IsoWeek::new(2026, 5).unwrap(),
            observed: None,
            threshold: None,
            algorithm: None,
            series: None,
            author: "1@po.example".into(),
            issued: 0,
            confirms: None,
            text: Some("cluster".into()),
        };
        let item = Item {
            node: "alerts/INFA/5401".into(),
            id: "gp-1".into(),
            publisher: "1@po.example".into(),
            payload: snow_xml::Element::new("x", "y"),
        };
        let shown = table(&[(item, a)]);
        assert!(shown.contains(" INFA 5401 ") && !shown.contains("municipality:"), "{shown}");
    }
}
