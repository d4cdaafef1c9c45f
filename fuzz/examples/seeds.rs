//! Writes the test PKI in `fuzz/fixtures/` and the seed corpus in
//! `fuzz/corpus/<target>/`: valid inputs for every fuzz target, each made
//! by the project's own code (snow-pki's CA, snow-crypto's envelopes and
//! message authentication, snow-client's builders) or copied from
//! `docs/examples/`. Run from `fuzz/`:
//!
//! ```text
//! cargo run --example seeds
//! ```
//!
//! A run makes a new CA and keys, so fixtures and seeds always change
//! together (the targets include the fixtures at build time: rebuild
//! them after). The msgauth seeds are signed at the time of the run; a
//! target's default receiver finds them stale five minutes later (after
//! their MAC has been checked), its wide-window receiver does not.

use std::path::{Path, PathBuf};

use base64::Engine;
use snow_client::stats::{answer_element, catalogue_element, query_element, NS_STATS};
use snow_core::alert::{Alert, AlertKind};
use snow_core::stats::{
    AnalysisChoice, Area, AreaChoice, Bucket, Catalogue, Count, Counts, Granularity, IsoWeek, Period, Sex, StatsAnswer,
    StatsQuery,
};
use snow_core::{Domain, SiteHome};
use snow_crypto::e2e::{self, KeyTransport};
use snow_crypto::msgauth::{self, Sender};
use snow_crypto::{pem, pkcs12, pkcs8_file};
use snow_pki::{Ca, PkiSettings, RevocationReason};
use snow_xml::{Element, NS_CLIENT, NS_PUBSUB, NS_PUBSUB_EVENT, NS_SASL};
use time::{Duration, OffsetDateTime};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Out {
    fuzz: PathBuf,
    total: usize,
}

impl Out {
    fn seed(&mut self, target: &str, name: &str, bytes: impl AsRef<[u8]>) -> Res<()> {
        let dir = self.fuzz.join("corpus").join(target);
        std::fs::create_dir_all(&dir)?;
        let bytes = bytes.as_ref();
        self.total += bytes.len();
        std::fs::write(dir.join(name), bytes)?;
        Ok(())
    }

    fn fixture(&mut self, name: &str, bytes: impl AsRef<[u8]>) -> Res<()> {
        let dir = self.fuzz.join("fixtures");
        std::fs::create_dir_all(&dir)?;
        self.total += bytes.as_ref().len();
        std::fs::write(dir.join(name), bytes)?;
        Ok(())
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn parse(xml: &str) -> Res<Element> {
    Ok(snow_xml::parse_document(xml.as_bytes(), snow_xml::Limits::default())?)
}

/// The one-time password at the end of the SMS snow-pki wrote.
fn sms_password(path: &Path) -> Res<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.split_whitespace().last().ok_or("empty SMS")?.to_owned())
}

fn main() -> Res<()> {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for old in ["corpus"] {
        let _ = std::fs::remove_dir_all(fuzz.join(old));
    }
    let mut out = Out { fuzz: fuzz.clone(), total: 0 };
    let tmp = tempfile::tempdir()?;

    // The PKI, made by snow-pki as `snow ca init` and `snow user add` do,
    // with lifetimes long enough that the fixtures never expire.
    let settings = PkiSettings {
        ca_validity_days: 36_500,
        user_validity_days: 36_500,
        server_validity_days: 36_500,
        crl_validity_days: 36_500,
        ..PkiSettings::default()
    };
    let home = SiteHome::new(tmp.path().join("po"));
    let domain: Domain = "po.example".parse()?;
    let mut ca = Ca::init(&home, &domain, "fuzzing passphrase", &settings)?;
    let (phone, email) = ("+4791234567".parse()?, "gp@po.example".parse()?);
    let user = ca.add_user(&"9144889".parse()?, &phone, &email)?;
    let other = ca.add_user(&"1111111".parse()?, &phone, &email)?;
    let gone = ca.add_user(&"2222222".parse()?, &phone, &email)?;
    // Read before the revocation withdraws the delivery.
    let gone_der = pkcs12::read(&gone.p12, &sms_password(&gone.delivery.sms)?, "key file")?.chain[0].clone();
    ca.revoke_user(&"2222222".parse()?, RevocationReason::KeyCompromise)?;
    let now = OffsetDateTime::now_utc();
    let crl = ca.signed_crl(now - Duration::hours(1), now + Duration::days(36_500))?;
    let stale_crl = ca.signed_crl(now - Duration::days(30), now - Duration::days(1))?;
    let ca_der = ca.cert_der().to_vec();

    let password = sms_password(&user.delivery.sms)?;
    let contents = pkcs12::read(&user.p12, &password, "the user's key file")?;
    let (key, user_der) = (contents.key_pkcs8, contents.chain[0].clone());
    let other_der = pkcs12::read(&other.p12, &sms_password(&other.delivery.sms)?, "key file")?.chain[0].clone();

    // Another CA of the same name: its CRL must be refused.
    let home2 = SiteHome::new(tmp.path().join("forger"));
    let mut forger = Ca::init(&home2, &domain, "fuzzing passphrase", &settings)?;
    let forged_crl = forger.signed_crl(now - Duration::hours(1), now + Duration::days(30))?;

    out.fixture("ca.der", &ca_der)?;
    out.fixture("user.der", &user_der)?;
    out.fixture("user.key", &key[..])?;
    out.fixture("other.der", &other_der)?;
    out.fixture("crl.der", &crl)?;
    out.fixture("now.txt", format!("{}\n", (now + Duration::hours(1)).unix_timestamp()))?;

    // key_files: every format the readers take (passwords "password").
    out.seed("key_files", "ca.pem", pem::encode("CERTIFICATE", &ca_der)?)?;
    out.seed("key_files", "user.der", &user_der)?;
    out.seed("key_files", "user.pkcs8.der", &key[..])?;
    out.seed("key_files", "user.key.pem", pem::encode("PRIVATE KEY", &key)?)?;
    out.seed("key_files", "user.encrypted.pem", pkcs8_file::encrypt_pem(&key, "password")?)?;
    let p12 = pkcs12::build(&key, &[user_der.clone(), ca_der.clone()], "9144889@po.example", "password")?;
    out.seed("key_files", "user.p12", &p12)?;

    // crls: the CRL as the server and the client read it, PEM too, and the
    // ones that must be refused (out of date, signed by another CA).
    out.seed("crls", "current.der", &crl)?;
    out.seed("crls", "current.pem", pem::encode("X509 CRL", &crl)?)?;
    out.seed("crls", "stale.der", &stale_crl)?;
    out.seed("crls", "forged.der", &forged_crl)?;

    // e2e_envelope: byte 0 chooses whether the harness holds the private
    // key (odd: the whole decryption, RSA included) or not (even: up to the
    // EncryptedKey selection); the rest is the XML.
    let mut envelopes: Vec<(&str, String)> = Vec::new();
    let us: &[u8] = &user_der;
    let them: &[u8] = &other_der;
    for (name, plain, to, transport) in [
        ("for-us", &b"<note>hello</note>"[..], vec![us], KeyTransport::RsaOaepSha256),
        ("for-us-mgf1p", &b"opaque bytes"[..], vec![us], KeyTransport::RsaOaepMgf1pSha1),
        ("for-both", &b"<a/><b>2</b>"[..], vec![them, us], KeyTransport::RsaOaepSha256),
        ("not-for-us", &b"secret"[..], vec![them], KeyTransport::RsaOaepSha256),
        ("not-utf8", &b"\xff\xfe<x/>"[..], vec![us], KeyTransport::RsaOaepSha256),
        ("not-xml", &b"<unclosed>"[..], vec![us], KeyTransport::RsaOaepSha256),
    ] {
        let enc = e2e::encrypt(plain, &to, transport)?;
        envelopes.push((name, enc.to_xml("")));
    }
    // A chat message body as snow_client sends it (Type Content).
    let mut body = Element::new(NS_CLIENT, "body").with_text("hello, encrypted");
    e2e::encrypt_content(&mut body, NS_CLIENT, &[us], KeyTransport::default())?;
    let message = Element::new(NS_CLIENT, "message")
        .with_attr("to", "9144889@po.example")
        .with_attr("type", "chat")
        .with_child(body);
    envelopes.push(("chat-message", message.to_xml("")));
    for (name, xml) in &envelopes {
        out.seed("e2e_envelope", &format!("{name}-key"), [&[1u8][..], xml.as_bytes()].concat())?;
        out.seed("e2e_envelope", &format!("{name}-nokey"), [&[0u8][..], xml.as_bytes()].concat())?;
    }

    // key_directory: the directory's answer to a lookup (as the server's
    // services/directory.rs writes it) and a push from the PO.
    let item = |jid: &str, status: &str, serial: &str, der: Option<&[u8]>| {
        let mut i = Element::new(snow_client::NS_KEYS, "item")
            .with_attr("jid", jid.to_owned())
            .with_attr("status", status.to_owned())
            .with_attr("serial", serial.to_owned());
        if let Some(d) = der {
            i.push_child(Element::new(snow_client::NS_KEYS, "certificate").with_text(b64(d)));
        }
        i
    };
    let answer = Element::new(NS_CLIENT, "iq").with_attr("type", "result").with_attr("from", "po.example").with_child(
        Element::new(snow_client::NS_KEYS, "query")
            .with_child(item("9144889@po.example", "valid", &user.serial_hex, Some(&user_der)))
            .with_child(item("2222222@po.example", "revoked", &gone.serial_hex, None))
            .with_child(Element::new(snow_client::NS_KEYS, "item").with_attr("jid", "nobody@po.example"))
            .with_child(Element::new(snow_client::NS_KEYS, "crl").with_text(b64(&crl))),
    );
    out.seed("key_directory", "lookup-answer.xml", answer.to_xml(""))?;
    let one = Element::new(NS_CLIENT, "iq").with_attr("type", "result").with_child(
        Element::new(snow_client::NS_KEYS, "query")
            .with_child(item("1111111@po.example", "valid", &other.serial_hex, Some(&other_der)))
            .with_child(Element::new(snow_client::NS_KEYS, "crl").with_text(b64(&crl))),
    );
    out.seed("key_directory", "lookup-other.xml", one.to_xml(""))?;
    let change = |seq: u32, jid: &str, status: &str, serial: &str, der: &[u8]| {
        item(jid, status, serial, Some(der)).with_attr("seq", seq.to_string())
    };
    let push = Element::new(NS_CLIENT, "iq")
        .with_attr("type", "set")
        .with_attr("from", "po.example")
        .with_attr("to", "lab.example")
        .with_attr("id", "keys-lab.example-3-1")
        .with_child(
            Element::new(snow_client::NS_KEYS, "update")
                .with_child(change(1, "9144889@po.example", "valid", &user.serial_hex, &user_der))
                .with_child(change(2, "2222222@po.example", "valid", &gone.serial_hex, &gone_der))
                .with_child(change(3, "2222222@po.example", "revoked", &gone.serial_hex, &gone_der))
                .with_child(Element::new(snow_client::NS_KEYS, "crl").with_text(b64(&crl))),
        );
    out.seed("key_directory", "push.xml", push.to_xml(""))?;
    out.seed("key_directory", "lookup.xml", snow_client::key_lookup(&["9144889@po.example"]).to_xml(""))?;

    // stats_payloads: a query, an answer, and the query's attributes alone
    // (the harness also reads its input after `<query xmlns='…stats:1' `).
    let q = StatsQuery {
        analysis: "INFA".into(),
        period: Period::parse("2026-W01", "2026-W03")?,
        area: Area::Municipality("5401".into()),
        age_group: Some("25-44".into()),
        sex: Some(Sex::Female),
        granularity: Granularity::Week,
    };
    let a = StatsAnswer {
        query: q.clone(),
        threshold: 5,
        max_noise: 0,
        buckets: vec![
            Bucket { label: "2025-W52".into(), counts: None },
            Bucket {
                label: "2026-W01".into(),
                counts: Some(Counts { tested: Count::Exact(12), positive: Count::Below(5), persons: Count::Exact(0) }),
            },
        ],
    };
    let qx = query_element(&q).to_xml("");
    out.seed("stats_payloads", "query.xml", &qx)?;
    out.seed("stats_payloads", "answer.xml", answer_element(&a).to_xml(""))?;
    let prefix = format!("<query xmlns='{NS_STATS}' ");
    out.seed("stats_payloads", "query-attributes", qx.strip_prefix(&prefix).ok_or("query prefix")?)?;
    let mq = StatsQuery {
        analysis: "RSV".into(),
        period: Period::parse("2026-01", "2026-06")?,
        area: Area::County("54".into()),
        age_group: None,
        sex: None,
        granularity: Granularity::Month,
    };
    out.seed("stats_payloads", "query-months.xml", query_element(&mq).to_xml(""))?;
    out.seed("stats_payloads", "period", "2026-W012026-W03")?;
    let user_id = snow_crypto::Identity::new(key.clone(), contents.chain.clone())?;
    let (request, _) = snow_client::stats::search_request("search@lab.example", &q, &user_der, &user_id)?;
    out.seed("stats_payloads", "search-request.xml", request.to_xml(""))?;

    // stats_catalogue: a catalogue, its children alone, and an IQ reply.
    let c = Catalogue {
        analyses: vec![
            AnalysisChoice { code: "INFA".into(), name: Some("Influensa A".into()) },
            AnalysisChoice { code: "RSV".into(), name: None },
        ],
        areas: vec![
            AreaChoice { area: Area::County("54".into()), name: Some("Troms".into()) },
            AreaChoice { area: Area::Municipality("5401".into()), name: Some("Tromsø".into()) },
        ],
        age_groups: vec!["0-4".into(), "25-44".into()],
        sexes: vec![Sex::Female, Sex::Male],
        granularities: vec![Granularity::Week, Granularity::Month, Granularity::Total],
        coverage: Some((IsoWeek::new(2025, 40).ok_or("week")?, IsoWeek::new(2026, 47).ok_or("week")?)),
    };
    let cx = catalogue_element(&c).to_xml("");
    out.seed("stats_catalogue", "catalogue.xml", &cx)?;
    let inner = cx.split_once('>').ok_or("catalogue")?.1.strip_suffix("</catalogue>").ok_or("catalogue end")?;
    out.seed("stats_catalogue", "catalogue-children", inner)?;
    let reply = Element::new(NS_CLIENT, "iq").with_attr("type", "result").with_child(catalogue_element(&c));
    out.seed("stats_catalogue", "catalogue-reply.xml", reply.to_xml(""))?;
    out.seed("stats_catalogue", "empty.xml", catalogue_element(&Catalogue::default()).to_xml(""))?;

    // alert_payloads and stanzas: a signal, a GP's alert, a confirmation;
    // a pubsub items reply and a notification carrying them sealed to us.
    let area = Area::Municipality("5401".into());
    let week = IsoWeek::new(2026, 47).ok_or("week")?;
    let signal = Alert {
        id: Alert::signal_id("INFA", &area, week),
        kind: AlertKind::Signal,
        analysis: "INFA".into(),
        area: area.clone(),
        week,
        observed: Some(Count::disclose(12, 5)),
        threshold: Some(7.53),
        algorithm: Some("EARS_C2".into()),
        series: Some("search@lab.example/agent".into()),
        author: "search@lab.example".into(),
        issued: 1_763_780_000,
        confirms: None,
        text: None,
    };
    let gp = snow_client::alert::gp_alert(
        "RSV".into(),
        area.clone(),
        "Many cases at the school".into(),
        "9144889@po.example",
        1_763_780_100,
    );
    let mut confirmation =
        snow_client::alert::confirmation(&signal, "9144889@po.example", Some("Seen here too".into()), 1_763_780_200);
    confirmation.id = "c-0123456789abcdef".into();
    let detail = |a: &Alert| snow_client::alert::detail_element(a).to_xml("");
    out.seed("alert_payloads", "signal.xml", detail(&signal))?;
    out.seed("alert_payloads", "gp.xml", detail(&gp))?;
    out.seed("alert_payloads", "confirmation.xml", detail(&confirmation))?;
    let dprefix = format!("<detail xmlns='{}' ", snow_core::alert::NS_ALERT);
    out.seed("alert_payloads", "signal-attributes", detail(&signal).strip_prefix(&dprefix).ok_or("detail prefix")?)?;
    let node = Alert::node("INFA", &area);
    // Signed by us, for us, at the fixtures' time (issue 20): the
    // confirmation, whose publisher we are, passes every check a fuzzed
    // item meets, so mutations reach them all.
    let me = snow_crypto::Identity::new(key.clone(), vec![user_der.clone(), ca_der.clone()])?;
    let signed_at = (now + Duration::hours(1)).unix_timestamp();
    let sealed = |a: &Alert| snow_client::alert::sealed(a, &me, &["9144889@po.example"], &[us], signed_at);
    let items = Element::new(NS_CLIENT, "iq").with_attr("type", "result").with_attr("from", "po.example").with_child(
        Element::new(NS_PUBSUB, "pubsub").with_child(
            Element::new(NS_PUBSUB, "items")
                .with_attr("node", node.clone())
                .with_child(
                    Element::new(NS_PUBSUB, "item")
                        .with_attr("id", signal.id.clone())
                        .with_attr("publisher", "search@lab.example")
                        .with_child(sealed(&signal)?),
                )
                .with_child(
                    Element::new(NS_PUBSUB, "item")
                        .with_attr("id", confirmation.id.clone())
                        .with_attr("publisher", "9144889@po.example")
                        .with_child(sealed(&confirmation)?),
                ),
        ),
    );
    let event = Element::new(NS_CLIENT, "message").with_attr("from", "po.example").with_child(
        Element::new(NS_PUBSUB_EVENT, "event").with_child(
            Element::new(NS_PUBSUB_EVENT, "items").with_attr("node", node.clone()).with_child(
                Element::new(NS_PUBSUB_EVENT, "item")
                    .with_attr("id", signal.id.clone())
                    .with_attr("publisher", "search@lab.example")
                    .with_child(sealed(&signal)?),
            ),
        ),
    );
    let subs = Element::new(NS_CLIENT, "iq").with_attr("type", "result").with_child(
        Element::new(NS_PUBSUB, "pubsub").with_child(
            Element::new(NS_PUBSUB, "subscriptions").with_child(
                Element::new(NS_PUBSUB, "subscription")
                    .with_attr("node", node.clone())
                    .with_attr("jid", "9144889@po.example")
                    .with_attr("subscription", "subscribed"),
            ),
        ),
    );
    let published = Element::new(NS_CLIENT, "iq").with_attr("type", "result").with_child(
        Element::new(NS_PUBSUB, "pubsub").with_child(
            Element::new(NS_PUBSUB, "publish")
                .with_attr("node", node.clone())
                .with_child(Element::new(NS_PUBSUB, "item").with_attr("id", "gp-0123456789abcdef")),
        ),
    );
    let refused = snow_xml::stanza::error_reply(
        &snow_client::alert::items_iq("po.example", &node, 20).with_attr("from", "9144889@po.example"),
        snow_xml::stanza::Condition::Forbidden,
        Some("not subscribed"),
    );
    out.seed("alert_payloads", "items-reply.xml", items.to_xml(""))?;
    out.seed("alert_payloads", "event.xml", event.to_xml(""))?;
    out.seed("alert_payloads", "subscriptions.xml", subs.to_xml(""))?;

    // stanzas: whole stanzas as a client gets them (roster, errors,
    // pubsub replies, disco), requests a server gets (bind, roster set,
    // pubsub), and the SASL EXTERNAL auth with and without an authzid.
    let roster = Element::new(NS_CLIENT, "iq").with_attr("type", "result").with_child(
        Element::new(snow_xml::NS_ROSTER, "query")
            .with_child(
                Element::new(snow_xml::NS_ROSTER, "item")
                    .with_attr("jid", "1111111@po.example")
                    .with_attr("name", "Dr. Other")
                    .with_attr("subscription", "both"),
            )
            .with_child(
                Element::new(snow_xml::NS_ROSTER, "item")
                    .with_attr("jid", "search@lab.example")
                    .with_attr("subscription", "none")
                    .with_attr("ask", "subscribe")
                    .with_child(Element::new(snow_client::NS_SNOW_ROSTER, "pending-in")),
            ),
    );
    let bind = Element::new(NS_CLIENT, "iq").with_attr("type", "set").with_attr("id", "bind-1").with_child(
        Element::new(snow_xml::NS_BIND, "bind")
            .with_child(Element::new(snow_xml::NS_BIND, "resource").with_text("app")),
    );
    let auth = |authzid: Option<&str>| {
        Element::new(NS_SASL, "auth")
            .with_attr("mechanism", "EXTERNAL")
            .with_text(authzid.map(|a| b64(a.as_bytes())).unwrap_or_else(|| "=".into()))
            .to_xml("")
    };
    let disco = snow_client::caps::DiscoInfo::snow().query(None);
    let disco_reply = Element::new(NS_CLIENT, "iq").with_attr("type", "result").with_child(disco);
    let stream_error = parse(&format!(
        "<stream:error xmlns:stream='{}'><conflict xmlns='{}'/><text xmlns='{}'>Replaced by new connection</text></stream:error>",
        snow_xml::NS_STREAMS,
        snow_xml::NS_STREAM_ERRORS,
        snow_xml::NS_STREAM_ERRORS
    ))?;
    for (name, xml) in [
        ("roster-result.xml", roster.to_xml("")),
        ("roster-set.xml", snow_client::roster_set("1111111@po.example", Some("Dr. Other"), false).to_xml("")),
        ("roster-get.xml", snow_client::roster_get().to_xml("")),
        ("bind.xml", bind.to_xml("")),
        ("auth-authzid.xml", auth(Some("9144889@po.example"))),
        ("auth-plain.xml", auth(None)),
        ("items-reply.xml", items.to_xml("")),
        ("event.xml", event.to_xml("")),
        ("subscriptions.xml", subs.to_xml("")),
        ("published.xml", published.to_xml("")),
        ("error.xml", refused.to_xml("")),
        ("subscribe.xml", snow_client::alert::subscribe_iq("po.example", &node, "9144889@po.example").to_xml("")),
        ("publish.xml", snow_client::alert::publish_iq("po.example", &node, None, sealed(&gp)?).to_xml("")),
        ("presence.xml", snow_client::caps::presence().to_xml("")),
        ("disco-info.xml", disco_reply.to_xml("")),
        ("subscription.xml", snow_client::subscription("1111111@po.example", "subscribe").to_xml("")),
        ("stream-error.xml", stream_error.to_xml("")),
        ("chat.xml", snow_client::chat_message("1111111@po.example", "hello").to_xml("")),
    ] {
        out.seed("stanzas", name, xml)?;
    }

    // xmpp_stream: byte 0 is the chunk size; even sizes get the stream
    // header from the harness, odd ones carry their own.
    let header = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
                  to='po.example' version='1.0'>";
    let stanzas = [
        snow_client::chat_message("1111111@po.example", "hello").to_xml(NS_CLIENT),
        snow_client::roster_get().to_xml(NS_CLIENT),
        snow_client::caps::presence().to_xml(NS_CLIENT),
        snow_client::key_lookup(&["9144889@po.example"]).to_xml(NS_CLIENT),
        refused.to_xml(NS_CLIENT),
    ]
    .concat();
    out.seed("xmpp_stream", "stanzas-chunked", [&[16u8][..], stanzas.as_bytes()].concat())?;
    let whole = format!("{header}{stanzas}</stream:stream>");
    out.seed("xmpp_stream", "stream-whole", [&[255u8][..], whole.as_bytes()].concat())?;
    out.seed("xmpp_stream", "stream-bytewise", [&[1u8][..], whole.as_bytes()].concat())?;
    out.seed("xmpp_stream", "items-reply", [&[64u8][..], items.to_xml(NS_CLIENT).as_bytes()].concat())?;

    // lab_files: the examples of docs/examples, whole and cut.
    let docs = fuzz.join("../docs/examples");
    let export = std::fs::read_to_string(docs.join("lab-export.csv"))?;
    let series = std::fs::read_to_string(docs.join("weekly-series.csv"))?;
    let head = |s: &str, n: usize| s.lines().take(n).map(|l| format!("{l}\n")).collect::<String>();
    out.seed("lab_files", "lab-export.csv", &export)?;
    out.seed("lab_files", "lab-export-head.csv", head(&export, 4))?;
    out.seed("lab_files", "lab-export-row", export.lines().nth(1).ok_or("row")?)?;
    out.seed("lab_files", "weekly-series.csv", &series)?;
    out.seed("lab_files", "weekly-series-head.csv", head(&series, 12))?;

    // msgauth_carriers and msgauth_http: messages signed with the target's
    // keys, each carrier, both algorithms.
    let store = snow_fuzz::msgauth_store();
    out.seed("msgauth_carriers", "keys", snow_fuzz::MSGAUTH_KEYS)?;
    for source in ["agent", "legacy"] {
        let tx = Sender::new(std::sync::Arc::clone(&store), source)?;
        out.seed("msgauth_carriers", &format!("{source}-text"), msgauth::text::sign(&tx, "week 47: 12 positive")?)?;
        let doc = "<?xml version='1.0'?><report xmlns='urn:example:report'><week>2026-W47</week></report>";
        out.seed("msgauth_carriers", &format!("{source}-xml"), msgauth::xml_message::sign(&tx, doc)?)?;
        let mut st = snow_client::chat_message("1111111@po.example", "signed").with_attr("from", "echo.po.example");
        msgauth::stanza::sign(&tx, &mut st)?;
        out.seed("msgauth_carriers", &format!("{source}-stanza"), st.to_xml(NS_CLIENT))?;
        let mut sh = snow_client::chat_message("1111111@po.example", "shim").with_attr("from", "echo.po.example");
        msgauth::shim::sign(&tx, &mut sh)?;
        out.seed("msgauth_carriers", &format!("{source}-shim"), sh.to_xml(NS_CLIENT))?;

        let (mut parts, body) = http::Request::post("/stats?week=47").body(b"INFA,5401,12".to_vec())?.into_parts();
        let body = msgauth::http::sign_request(&tx, &mut parts, body)?;
        out.seed(
            "msgauth_http",
            &format!("{source}-request"),
            http_wire(&format!("{} {}", parts.method, parts.uri), &parts.headers, &body),
        )?;
        let (mut parts, body) = http::Request::get("/catalogue").body(Vec::new())?.into_parts();
        let body = msgauth::http::sign_request(&tx, &mut parts, body)?;
        out.seed(
            "msgauth_http",
            &format!("{source}-get"),
            http_wire(&format!("{} {}", parts.method, parts.uri), &parts.headers, &body),
        )?;
        let (mut parts, body) = http::Response::builder().status(200).body(b"ok\n".to_vec())?.into_parts();
        let body = msgauth::http::sign_response(&tx, &mut parts, body)?;
        out.seed(
            "msgauth_http",
            &format!("{source}-response"),
            http_wire(&parts.status.as_u16().to_string(), &parts.headers, &body),
        )?;
    }

    // The same, sealed (confidential): for the targets' confidential
    // receivers.
    let tx = Sender::new(std::sync::Arc::clone(&store), "agent")?.confidential(true);
    out.seed("msgauth_carriers", "sealed-text", msgauth::text::sign(&tx, "week 47: 12 positive")?)?;
    let doc = "<?xml version='1.0'?><report xmlns='urn:example:report'><week>2026-W47</week></report>";
    out.seed("msgauth_carriers", "sealed-xml", msgauth::xml_message::sign(&tx, doc)?)?;
    let mut st = snow_client::chat_message("1111111@po.example", "sealed").with_attr("from", "echo.po.example");
    msgauth::stanza::sign(&tx, &mut st)?;
    out.seed("msgauth_carriers", "sealed-stanza", st.to_xml(NS_CLIENT))?;
    let mut sh = snow_client::chat_message("1111111@po.example", "sealed shim").with_attr("from", "echo.po.example");
    msgauth::shim::sign(&tx, &mut sh)?;
    out.seed("msgauth_carriers", "sealed-shim", sh.to_xml(NS_CLIENT))?;
    let (mut parts, body) = http::Request::post("/stats?week=47").body(b"INFA,5401,12".to_vec())?.into_parts();
    let body = msgauth::http::sign_request(&tx, &mut parts, body)?;
    out.seed(
        "msgauth_http",
        "sealed-request",
        http_wire(&format!("{} {}", parts.method, parts.uri), &parts.headers, &body),
    )?;
    let (mut parts, body) = http::Response::builder().status(200).body(b"ok\n".to_vec())?.into_parts();
    let body = msgauth::http::sign_response(&tx, &mut parts, body)?;
    out.seed("msgauth_http", "sealed-response", http_wire(&parts.status.as_u16().to_string(), &parts.headers, &body))?;

    // server_config: snow.example.toml, and sections with every list filled.
    out.seed("server_config", "snow.example.toml", std::fs::read(fuzz.join("../snow.example.toml"))?)?;
    out.seed(
        "server_config",
        "po.toml",
        "[server]\ndomain = \"po.example\"\nc2s_bind = \"0.0.0.0:5222\"\nstanza_rate = 20.5\nclient_check = \"require\"\n\
         require_e2e = true\n\n[s2s]\nreplicas = [\"lab.example\"]\nfederate_with = [\"other.example\"]\n\
         routes = { \"lab.example\" = \"127.0.0.1:15269\" }\n\n[[components]]\ndomain = \"echo.po.example\"\n\
         secret_file = \"components/echo.secret\"\nhmac = true\nsource = \"echo\"\n\n[msgauth]\nkeys = \"msgauth.keys\"\n\
         window_secs = 120\n\n[pubsub]\nanalyses = [\"INFA\", \"RSV\"]\nareas = [\"54\", \"5401\"]\n\
         owners = [\"9144889@po.example\"]\nsignal_publishers = { \"search@lab.example\" = [\"INFA\"] }\n\
         max_items_per_node = 500\nmax_items_per_publisher = 50\n",
    )?;
    out.seed(
        "server_config",
        "lab.toml",
        "[server]\ndomain = \"lab.example\"\n\n[s2s]\nmaster = \"po.example\"\nbind = \"127.0.0.1:15269\"\n\n\
         [pki]\nuser_key_bits = 3072\ncrl_validity_days = 14\n\n[lab]\n",
    )?;

    // smtp_replies: byte 0 picks STARTTLS (bit 0), a login (bit 1) and
    // CRAM-MD5 (bit 2) or PLAIN; the rest is what the mail server says.
    // Written after RFC 5321 §4.2 and RFC 2195's example (there is no
    // SMTP server in the project to take them from).
    let greeting = "220 mail.po.example ESMTP ready\r\n";
    let ehlo = "250-mail.po.example greets snow\r\n250-PIPELINING\r\n250-AUTH CRAM-MD5 PLAIN\r\n250 8BITMIME\r\n";
    let ehlo_tls = "250-mail.po.example\r\n250-STARTTLS\r\n250 AUTH CRAM-MD5 PLAIN\r\n";
    let cram =
        "334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n235 2.7.0 Authentication successful\r\n";
    let rest =
        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as 12345\r\n\
                221 2.0.0 Bye\r\n";
    out.seed("smtp_replies", "plain-delivery", format!("\x00{greeting}{ehlo}{rest}"))?;
    out.seed("smtp_replies", "cram-md5", format!("\x06{greeting}{ehlo}{cram}{rest}"))?;
    out.seed("smtp_replies", "starttls", format!("\x01{greeting}{ehlo_tls}220 2.0.0 Ready to start TLS\r\n"))?;
    out.seed("smtp_replies", "refused", format!("\x00{greeting}{ehlo}550 5.1.1 No such user\r\n"))?;
    out.seed("smtp_replies", "no-plain-without-tls", format!("\x02{greeting}{ehlo}"))?;

    eprintln!("wrote {} bytes of fixtures and seeds", out.total);
    Ok(())
}

/// A request or response as the msgauth_http target reads it: the first
/// line (`METHOD URI` or a status), `name: value` header lines, an empty
/// line, the body.
fn http_wire(first: &str, headers: &http::HeaderMap, body: &[u8]) -> Vec<u8> {
    let mut s = format!("{first}\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or_default()));
    }
    s.push('\n');
    [s.as_bytes(), body].concat()
}
