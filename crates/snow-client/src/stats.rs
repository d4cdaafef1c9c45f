//! The statistics search on the wire (`urn:snow:stats:1`), shared by the
//! GP's client and the lab's search agent.
//!
//! A search is an IQ to the agent's full JID; the payload's content is
//! end-to-end encrypted (XML Encryption, docs/architecture.md §6), to the agent for
//! the request and to the asking GP for the answer:
//!
//! ```xml
//! <iq type='get' to='search@lab.example/agent'>
//!   <search xmlns='urn:snow:stats:1'><EncryptedData …/></search></iq>
//!
//! decrypted request content:
//!   <query analysis='INFA' from='2026-W01' to='2026-W08' area='municipality:5401'
//!          granularity='week' age-group='25-44' sex='F'/>
//!   (from/to: ISO weeks 2026-W01 or months 2026-01, both the same kind;
//!    area: all | county:NN | municipality:NNNN; age-group and sex optional;
//!    granularity: week | month | total. Codes are read in any case — infa,
//!    f, Week — and written in this one.)
//!
//! <iq type='result'><search xmlns='urn:snow:stats:1'><EncryptedData …/></search></iq>
//!
//! decrypted answer content:
//!   <answer threshold='5'>
//!     <query …the query answered…/>
//!     <bucket period='2025-W52' no-data='true'/>
//!     <bucket period='2026-W01' tested='120' positive='14' persons='13'/>
//!     <bucket period='2026-W02' tested='97' positive='<5' persons='<5'/> …
//!   </answer>
//! ```
//!
//! Counts from 1 to threshold − 1 are never sent, only `<threshold`. A
//! bucket whose weeks all lie outside the weeks the lab has data for (in
//! any analysis and area) is `no-data='true'` with no counts; inside them,
//! a bucket without rows counts `0`. A refused search is an IQ error:
//! `bad-request` with the parameter and the reason in the text (never the
//! value) — for an area the lab has never had a row for, in any analysis,
//! the text `area: no data for municipality 9999` (or `county 99`; read
//! back with [`StatsError::no_data_area`]) — `resource-constraint` when the
//! agent's queue is full, `not-acceptable` for a request that is not
//! encrypted to the agent: none of its EncryptedKeys names the agent's
//! certificate by issuer and serial, or it has more than 16
//! (`snow_crypto::e2e::MAX_ENCRYPTED_KEYS`, refused before any RSA
//! operation).
//!
//! The agent's catalogue — the choices a search may use, for a search
//! form — is asked and answered in clear text: it holds no personal data
//! (the lab's codes, the areas it has data for, which refusing an unknown
//! area tells any searcher anyway, and the weeks its data covers), so the
//! asker needs no certificate lookup and the agent no RSA operation:
//!
//! ```xml
//! <iq type='get' to='search@lab.example/agent'><catalogue xmlns='urn:snow:stats:1'/></iq>
//!
//! <iq type='result'><catalogue xmlns='urn:snow:stats:1'>
//!   <analysis code='INFA' name='Influensa A'/> …
//!   <area code='county:54'/><area code='municipality:5401'/> …
//!   <age-group code='0-4'/> …
//!   <sex code='M'/><sex code='F'/><sex code='U'/>
//!   <granularity code='week'/><granularity code='month'/><granularity code='total'/>
//!   <coverage from='2024-W01' to='2026-W48'/>
//! </catalogue></iq>
//! ```
//!
//! Each code is written as the query's attribute of that name takes it
//! (an area in the wire form; `all` is always a choice and not listed);
//! `name` is optional, on an analysis or an area; `<coverage/>` is absent
//! before the lab's first import. At most [`MAX_CATALOGUE_ENTRIES`]
//! children, each listed once; elements of other names are skipped (a
//! later version's choices).

use std::collections::HashSet;

use snow_core::stats::{
    check_age_group, check_choice_name, normalize_analysis, AnalysisChoice, Area, AreaChoice, Bucket, Catalogue, Count,
    Counts, Granularity, IsoWeek, Period, Sex, StatsAnswer, StatsError, StatsQuery,
};
use snow_crypto::Identity;
use snow_xml::{Element, NS_CLIENT};

use crate::signed::{self, RequestRef};
use crate::ClientError;

pub const NS_STATS: &str = "urn:snow:stats:1";
/// Most buckets an answer may hold (ten years of weeks, with room).
pub const MAX_BUCKETS: usize = 600;

/// How a bucket outside the lab's data is noted in a GP's CSV, JSON and table.
pub const NO_DATA: &str = "no data";

/// An answer as the GP's CSV (`snow search --format csv`, the app's
/// download): `period,tested,positive,persons,note`, a hidden count as
/// `<5`, a bucket without data with empty counts and the note `no data`.
///
/// The GP opens it in a spreadsheet, and the period labels are the remote
/// agent's words (up to 32 bytes of anything): every cell goes through
/// [`snow_core::csv::cell`], so a hostile site's `=cmd|…` arrives as text,
/// and a comma or quote in a label cannot shift the columns.
pub fn answer_csv(a: &snow_core::stats::StatsAnswer) -> String {
    use snow_core::csv::line;
    let mut out = line(["period", "tested", "positive", "persons", "note"]);
    for b in &a.buckets {
        match &b.counts {
            Some(c) => {
                let [t, p, n] = [c.tested, c.positive, c.persons].map(|x| x.to_string());
                out.push_str(&line([b.label.as_str(), &t, &p, &n, ""]));
            }
            None => out.push_str(&line([b.label.as_str(), "", "", "", NO_DATA])),
        }
    }
    out
}
/// Most children a catalogue may have, of every kind together: every
/// municipality and county of a country, with room, and still well inside
/// one stanza (`snow_xml::Limits`: 4096 elements, 256 KiB).
pub const MAX_CATALOGUE_ENTRIES: usize = 2048;
/// Longest code a catalogue entry may carry (`municipality:NNNN` is 17).
const MAX_CODE_BYTES: usize = 32;

fn bad(field: &'static str, reason: &str) -> StatsError {
    StatsError { field, reason: reason.into() }
}

/// The IQ that asks `agent` (a full JID, or a component's domain) for
/// `query`: the `<query/>` signed by `identity` for the agent's bare JID
/// ([`signed::Kind::SearchRequest`]), then encrypted to the agent's
/// certificate `agent_cert` (checked by the caller). The IQ carries its
/// id already (the signature's answer must name it): send it with
/// [`crate::IqClient::request_as_is`]. The [`RequestRef`] is what the
/// answer must name.
pub fn search_request(
    agent: &str,
    query: &StatsQuery,
    agent_cert: &[u8],
    identity: &Identity,
) -> Result<(Element, RequestRef), ClientError> {
    let bare = agent.split('/').next().unwrap_or(agent);
    let signed_el = signed::sign(
        signed::Kind::SearchRequest,
        vec![snow_xml::Node::Element(query_element(query))],
        &[bare],
        None,
        identity,
        crate::unix_now(),
    )?;
    let request = RequestRef { id: snow_crypto::one_time_password::random_hex(8)?, digest: signed::digest(&signed_el) };
    let mut search = Element::new(NS_STATS, "search").with_child(signed_el);
    snow_crypto::e2e::encrypt_content(&mut search, NS_STATS, &[agent_cert], snow_crypto::e2e::KeyTransport::default())?;
    let iq = Element::new(NS_CLIENT, "iq")
        .with_attr("type", "get")
        .with_attr("to", agent)
        .with_attr("id", request.id.clone())
        .with_child(search);
    Ok((iq, request))
}

/// The answer in the agent's reply to [`search_request`], decrypted with
/// our key (only the EncryptedKey naming our certificate is tried, at most
/// 16 read), and believed only if it is signed by the agent with
/// `agent_cert` (the key directory's, as the request was encrypted to),
/// for us, answering `request` ([`signed::open_answer`]): anything else is
/// [`ClientError::Unverified`]. A stanza error becomes
/// [`ClientError::Refused`]. Which reply answers the request — the one
/// with its id from the agent asked — is [`crate::IqClient::request`]'s
/// business.
pub fn read_search_answer(
    agent: &str,
    reply: &Element,
    identity: &Identity,
    agent_cert: &[u8],
    request: &RequestRef,
) -> Result<StatsAnswer, ClientError> {
    if reply.attr("type") == Some("error") {
        let (condition, text) = snow_xml::stanza::error_of(reply);
        return Err(ClientError::Refused { who: agent.to_owned(), condition, text });
    }
    let bad = |why: String| ClientError::BadAnswer { who: agent.to_owned(), why };
    let mut payload = reply.child(NS_STATS, "search").cloned().ok_or_else(|| bad("no <search/> payload".into()))?;
    snow_crypto::e2e::decrypt_content(&mut payload, NS_STATS, identity.key_pkcs8(), identity.certificate())
        .map_err(|e| bad(format!("cannot decrypt it: {e}")))?;
    let bare = agent.split('/').next().unwrap_or(agent);
    let unverified = |why: signed::Unverified| ClientError::Unverified { who: bare.to_owned(), why };
    let signed_el = signed::only_signed(&payload).ok_or_else(|| unverified(signed::Unverified::NotSigned))?;
    let me = snow_crypto::CertInfo::from_der(identity.certificate())
        .ok()
        .and_then(|c| c.jid().map(str::to_owned))
        .unwrap_or_default();
    let opened = signed::open_answer(signed_el, bare, &me, request, crate::unix_now()).map_err(unverified)?;
    if opened.signer_cert != agent_cert {
        return Err(unverified(signed::Unverified::NotDirectorys(bare.to_owned())));
    }
    let el = opened.content.child(NS_STATS, "answer").ok_or_else(|| bad("no <answer/> inside".into()))?;
    parse_answer(el).map_err(|e| bad(e.to_string()))
}

/// `<query/>` for `q`.
pub fn query_element(q: &StatsQuery) -> Element {
    let (from, to) = q.period.bounds();
    let mut el = Element::new(NS_STATS, "query")
        .with_attr("analysis", q.analysis.clone())
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("area", q.area.to_string())
        .with_attr("granularity", q.granularity.as_str());
    if let Some(g) = &q.age_group {
        el.set_attr("age-group", g.clone());
    }
    if let Some(s) = q.sex {
        el.set_attr("sex", s.code());
    }
    el
}

/// Reads and checks a `<query/>`: every parameter has its closed type;
/// codes in any case come out in the one form (`infa` → `INFA`).
pub fn parse_query(el: &Element) -> Result<StatsQuery, StatsError> {
    if !el.is(NS_STATS, "query") {
        return Err(bad("query", "expected <query xmlns='urn:snow:stats:1'/>"));
    }
    if el.children().next().is_some() || !el.text().trim().is_empty() {
        return Err(bad("query", "takes attributes only"));
    }
    let need = |name: &'static str| el.attr(name).ok_or_else(|| bad(name, "is missing"));
    let q = StatsQuery {
        analysis: normalize_analysis(need("analysis")?)?,
        period: Period::parse(need("from")?, need("to")?)?,
        area: need("area")?.parse::<Area>()?,
        age_group: el.attr("age-group").map(str::to_owned),
        sex: el.attr("sex").map(str::parse::<Sex>).transpose()?,
        granularity: need("granularity")?.parse::<Granularity>()?,
    };
    q.check()?;
    Ok(q)
}

/// `<answer/>` for `a`.
pub fn answer_element(a: &StatsAnswer) -> Element {
    let mut el = Element::new(NS_STATS, "answer")
        .with_attr("threshold", a.threshold.to_string())
        .with_child(query_element(&a.query));
    if a.max_noise > 0 {
        el.set_attr("max-noise", a.max_noise.to_string());
    }
    for b in &a.buckets {
        let mut bucket = Element::new(NS_STATS, "bucket").with_attr("period", b.label.clone());
        match &b.counts {
            Some(c) => {
                for (name, count) in c.named() {
                    bucket.set_attr(name, count.to_string());
                }
            }
            None => bucket.set_attr("no-data", "true"),
        }
        el.push_child(bucket);
    }
    el
}

/// Reads an `<answer/>`.
pub fn parse_answer(el: &Element) -> Result<StatsAnswer, StatsError> {
    if !el.is(NS_STATS, "answer") {
        return Err(bad("answer", "expected <answer xmlns='urn:snow:stats:1'/>"));
    }
    let threshold = el
        .attr("threshold")
        .and_then(|t| t.parse::<u32>().ok())
        .filter(|t| *t <= 1000)
        .ok_or_else(|| bad("threshold", "must be a number up to 1000"))?;
    let max_noise = match el.attr("max-noise") {
        None => 0,
        Some(n) => {
            n.parse::<u32>().ok().filter(|n| *n <= 50).ok_or_else(|| bad("max-noise", "must be a number up to 50"))?
        }
    };
    let query = parse_query(el.child(NS_STATS, "query").ok_or_else(|| bad("answer", "names no query"))?)?;
    let mut buckets = Vec::new();
    for b in el.children().filter(|c| c.is(NS_STATS, "bucket")) {
        if buckets.len() == MAX_BUCKETS {
            return Err(bad("answer", "has too many buckets"));
        }
        let count = |name: &'static str| -> Result<Count, StatsError> {
            b.attr(name).ok_or_else(|| bad(name, "is missing"))?.parse()
        };
        let label = b.attr("period").filter(|p| p.len() <= 32).ok_or_else(|| bad("period", "is missing"))?;
        let counts = match b.attr("no-data") {
            None => Some(Counts { tested: count("tested")?, positive: count("positive")?, persons: count("persons")? }),
            Some("true") if ["tested", "positive", "persons"].iter().all(|n| b.attr(n).is_none()) => None,
            Some("true") => return Err(bad("bucket", "with no data has no counts")),
            Some(_) => return Err(bad("no-data", "must be true when present")),
        };
        buckets.push(Bucket { label: label.to_owned(), counts });
    }
    Ok(StatsAnswer { query, threshold, max_noise, buckets })
}

/// The IQ that asks `agent` (a full JID, or a component's domain) for its
/// catalogue. Not encrypted: the catalogue holds no personal data.
pub fn catalogue_request(agent: &str) -> Element {
    Element::new(NS_CLIENT, "iq")
        .with_attr("type", "get")
        .with_attr("to", agent)
        .with_child(Element::new(NS_STATS, "catalogue"))
}

/// The catalogue in the agent's reply to [`catalogue_request`]; a stanza
/// error becomes [`ClientError::Refused`], a malformed catalogue
/// [`ClientError::BadAnswer`].
pub fn read_catalogue(agent: &str, reply: &Element) -> Result<Catalogue, ClientError> {
    if reply.attr("type") == Some("error") {
        let (condition, text) = snow_xml::stanza::error_of(reply);
        return Err(ClientError::Refused { who: agent.to_owned(), condition, text });
    }
    let bad = |why: String| ClientError::BadAnswer { who: agent.to_owned(), why };
    let el = reply.child(NS_STATS, "catalogue").ok_or_else(|| bad("no <catalogue/> payload".into()))?;
    parse_catalogue(el).map_err(|e| bad(e.to_string()))
}

/// `<catalogue/>` for `c`.
pub fn catalogue_element(c: &Catalogue) -> Element {
    let entry = |name: &str, code: String, label: Option<&String>| {
        let mut e = Element::new(NS_STATS, name.to_owned()).with_attr("code", code);
        if let Some(label) = label {
            e.set_attr("name", label.clone());
        }
        e
    };
    let mut el = Element::new(NS_STATS, "catalogue");
    for a in &c.analyses {
        el.push_child(entry("analysis", a.code.clone(), a.name.as_ref()));
    }
    for a in &c.areas {
        el.push_child(entry("area", a.area.to_string(), a.name.as_ref()));
    }
    for g in &c.age_groups {
        el.push_child(entry("age-group", g.clone(), None));
    }
    for s in &c.sexes {
        el.push_child(entry("sex", s.code().to_owned(), None));
    }
    for g in &c.granularities {
        el.push_child(entry("granularity", g.as_str().to_owned(), None));
    }
    if let Some((from, to)) = c.coverage {
        el.push_child(
            Element::new(NS_STATS, "coverage").with_attr("from", from.to_string()).with_attr("to", to.to_string()),
        );
    }
    el
}

/// Reads and checks a `<catalogue/>`: every code has the shape (and, read
/// in any case, the one form) a query takes; names are short single
/// lines; nothing is listed twice; at most [`MAX_CATALOGUE_ENTRIES`]
/// children. Errors name the entry's kind, never its value.
pub fn parse_catalogue(el: &Element) -> Result<Catalogue, StatsError> {
    if !el.is(NS_STATS, "catalogue") {
        return Err(bad("catalogue", "expected <catalogue xmlns='urn:snow:stats:1'/>"));
    }
    let mut c = Catalogue::default();
    let mut seen: HashSet<(&'static str, String)> = HashSet::new();
    for (n, e) in el.children().enumerate() {
        if n == MAX_CATALOGUE_ENTRIES {
            return Err(bad("catalogue", "lists too many choices"));
        }
        let field: &'static str = match (e.ns(), e.name()) {
            (NS_STATS, "analysis") => "analysis",
            (NS_STATS, "area") => "area",
            (NS_STATS, "age-group") => "age-group",
            (NS_STATS, "sex") => "sex",
            (NS_STATS, "granularity") => "granularity",
            (NS_STATS, "coverage") => {
                if c.coverage.is_some() {
                    return Err(bad("coverage", "is listed twice"));
                }
                c.coverage = Some(coverage(e)?);
                continue;
            }
            // A later version's choices, or someone else's.
            _ => continue,
        };
        let code = e
            .attr("code")
            .filter(|code| code.len() <= MAX_CODE_BYTES)
            .ok_or_else(|| bad(field, "needs a code of at most 32 bytes"))?;
        let name = || e.attr("name").map(|n| check_choice_name(n).map(|()| n.to_owned())).transpose();
        let canonical = match field {
            "analysis" => {
                let code = normalize_analysis(code)?;
                c.analyses.push(AnalysisChoice { code: code.clone(), name: name()? });
                code
            }
            "area" => {
                let area = code.parse::<Area>()?;
                if area == Area::All {
                    return Err(bad("area", "all is always a choice and is not listed"));
                }
                let wire = area.to_string();
                c.areas.push(AreaChoice { area, name: name()? });
                wire
            }
            "age-group" => {
                check_age_group(code)?;
                c.age_groups.push(code.to_owned());
                code.to_owned()
            }
            "sex" => {
                let sex = code.parse::<Sex>()?;
                c.sexes.push(sex);
                sex.code().to_owned()
            }
            _ /* granularity */ => {
                let g = code.parse::<Granularity>()?;
                c.granularities.push(g);
                g.as_str().to_owned()
            }
        };
        if !seen.insert((field, canonical)) {
            return Err(bad(field, "is listed twice"));
        }
    }
    Ok(c)
}

/// `<coverage from to/>`: two ISO weeks, in order.
fn coverage(e: &Element) -> Result<(IsoWeek, IsoWeek), StatsError> {
    let week = |name| e.attr(name).and_then(|w| w.parse::<IsoWeek>().ok());
    match (week("from"), week("to")) {
        (Some(from), Some(to)) if from <= to => Ok((from, to)),
        _ => Err(bad("coverage", "must be from and to, ISO weeks (2026-W01), from not after to")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> StatsQuery {
        StatsQuery {
            analysis: "INFA".into(),
            period: Period::parse("2026-W01", "2026-W03").unwrap(),
            area: Area::Municipality("5401".into()),
            age_group: Some("25-44".into()),
            sex: Some(Sex::Female),
            granularity: Granularity::Week,
        }
    }

    #[test]
    fn round_trips() {
        let q = query();
        assert_eq!(parse_query(&query_element(&q)).unwrap(), q);
        let a = StatsAnswer {
            query: q,
            threshold: 5,
            max_noise: 0,
            buckets: vec![
                Bucket { label: "2025-W52".into(), counts: None },
                Bucket {
                    label: "2026-W01".into(),
                    counts: Some(Counts {
                        tested: Count::Exact(12),
                        positive: Count::Below(5),
                        persons: Count::Exact(0),
                    }),
                },
            ],
        };
        let xml = answer_element(&a).to_xml("");
        assert!(xml.contains("<bucket period='2025-W52' no-data='true'/>"), "{xml}");
        let back = snow_xml::parse_document(xml.as_bytes(), snow_xml::Limits::default()).unwrap();
        assert_eq!(parse_answer(&back).unwrap(), a);
    }

    /// A hostile agent's period labels reach the GP's spreadsheet as text:
    /// a formula gets a `'` in front, a comma or quote cannot shift the
    /// columns, and the counts stay as they are.
    #[test]
    fn the_csv_neutralises_a_hostile_agents_labels() {
        let counts = Some(Counts { tested: Count::Exact(12), positive: Count::Below(5), persons: Count::Exact(0) });
        let labels = ["=cmd|' /C calc'!A0", "+1+1", "@SUM(1)", "-2+3", "\t=1", "\r=1", "a,b", "2026-W01"];
        let a = StatsAnswer {
            query: query(),
            threshold: 5,
            max_noise: 0,
            buckets: labels.iter().map(|l| Bucket { label: (*l).into(), counts }).collect(),
        };
        let csv = answer_csv(&a);
        let lines: Vec<&str> = csv.split('\n').collect();
        assert_eq!(lines[0], "period,tested,positive,persons,note");
        assert_eq!(lines[1], "'=cmd|' /C calc'!A0,12,<5,0,");
        assert_eq!(lines[2], "'+1+1,12,<5,0,");
        assert_eq!(lines[3], "'@SUM(1),12,<5,0,");
        assert_eq!(lines[4], "'-2+3,12,<5,0,");
        assert_eq!(lines[5], "'\t=1,12,<5,0,");
        assert_eq!(lines[6], "\"'\r=1\",12,<5,0,");
        assert_eq!(lines[7], "\"a,b\",12,<5,0,");
        assert_eq!(lines[8], "2026-W01,12,<5,0,");
        let no_data = StatsAnswer { buckets: vec![Bucket { label: "=1".into(), counts: None }], ..a };
        assert_eq!(answer_csv(&no_data), format!("period,tested,positive,persons,note\n'=1,,,,{NO_DATA}\n"));
    }

    /// "No data" is its own mark, never mixed with counts.
    #[test]
    fn a_bucket_is_counts_or_no_data() {
        let answer = |bucket: &str| {
            let xml = format!(
                "<answer xmlns='{NS_STATS}' threshold='5'>{}{bucket}</answer>",
                query_element(&query()).to_xml(NS_STATS)
            );
            parse_answer(&snow_xml::parse_document(xml.as_bytes(), snow_xml::Limits::default()).unwrap())
        };
        assert_eq!(answer("<bucket period='2026-W01' no-data='true'/>").unwrap().buckets[0].counts, None);
        for bad in [
            "<bucket period='2026-W01' no-data='true' tested='0'/>",
            "<bucket period='2026-W01' no-data='false' tested='0' positive='0' persons='0'/>",
            "<bucket period='2026-W01' no-data='yes'/>",
            "<bucket period='2026-W01'/>",
            "<bucket period='2026-W01' tested='' positive='0' persons='0'/>",
        ] {
            assert!(answer(bad).is_err(), "{bad}");
        }
    }

    /// The agent reads codes in any case; the query it answers is in the
    /// one form.
    #[test]
    fn codes_are_read_in_any_case() {
        let mut el = query_element(&query());
        for (attr, value) in [
            ("analysis", "infa"),
            ("sex", "f"),
            ("granularity", "Week"),
            ("area", "Municipality:5401"),
            ("from", "2026-w01"),
        ] {
            el.set_attr(attr, value);
        }
        assert_eq!(parse_query(&el).unwrap(), query());
    }

    #[test]
    fn refuses_sql_looking_and_missing_parameters() {
        let good = query_element(&query());
        for (attr, value) in [
            ("analysis", "INFA' OR '1'='1"),
            ("area", "municipality:5401; DROP TABLE weekly"),
            ("from", "2026-W01 --"),
            ("sex", "F' --"),
            ("age-group", "0-4) OR (1=1"),
            ("granularity", "week UNION SELECT"),
        ] {
            let mut el = good.clone();
            el.set_attr(attr, value);
            let e = parse_query(&el).unwrap_err();
            assert!(!e.to_string().contains(value), "the error echoes the value: {e}");
        }
        let mut el = Element::new(NS_STATS, "query");
        el.set_attr("analysis", "INFA");
        assert_eq!(parse_query(&el).unwrap_err().field, "from");
    }

    fn catalogue() -> Catalogue {
        Catalogue {
            analyses: vec![
                AnalysisChoice { code: "INFA".into(), name: Some("Influensa A".into()) },
                AnalysisChoice { code: "LAB1".into(), name: None },
            ],
            areas: vec![
                AreaChoice { area: Area::County("54".into()), name: None },
                AreaChoice { area: Area::Municipality("5401".into()), name: Some("Tromsø & <omegn>".into()) },
            ],
            age_groups: vec!["0-4".into(), "80+".into()],
            sexes: Sex::ALL.to_vec(),
            granularities: Granularity::ALL.to_vec(),
            coverage: Some(("2024-W01".parse().unwrap(), "2026-W48".parse().unwrap())),
        }
    }

    fn parse_catalogue_xml(inner: &str) -> Result<Catalogue, StatsError> {
        let xml = format!("<catalogue xmlns='{NS_STATS}'>{inner}</catalogue>");
        let limits = snow_xml::Limits { max_elements: 10_000, max_stanza_bytes: 1 << 20, ..Default::default() };
        parse_catalogue(&snow_xml::parse_document(xml.as_bytes(), limits).unwrap())
    }

    #[test]
    fn the_catalogue_round_trips() {
        let c = catalogue();
        let xml = catalogue_element(&c).to_xml("");
        assert!(xml.contains("<analysis code='INFA' name='Influensa A'/>"), "{xml}");
        assert!(xml.contains("<area code='municipality:5401' name="), "{xml}");
        assert!(xml.contains("<coverage from='2024-W01' to='2026-W48'/>"), "{xml}");
        let back = snow_xml::parse_document(xml.as_bytes(), snow_xml::Limits::default()).unwrap();
        assert_eq!(parse_catalogue(&back).unwrap(), c);
        // Codes in any case, as a query's; no coverage before any data;
        // another version's entries skipped.
        let c = parse_catalogue_xml(
            "<analysis code='infa'/><area code='County:54'/><sex code='f'/><granularity code='Week'/>\
             <threshold value='5'/><x xmlns='urn:example'/>",
        )
        .unwrap();
        assert_eq!(c.analyses, [AnalysisChoice { code: "INFA".into(), name: None }]);
        assert_eq!(c.areas[0].area, Area::County("54".into()));
        assert_eq!((c.sexes.as_slice(), c.granularities.as_slice()), (&[Sex::Female][..], &[Granularity::Week][..]));
        assert_eq!(c.coverage, None);
        assert_eq!(parse_catalogue_xml("").unwrap(), Catalogue::default());
    }

    /// An agent's catalogue is input like any other: too many entries, bad
    /// codes, long or multi-line names, repeats are refused with a typed
    /// error naming the kind of entry (never its value), and nothing
    /// panics, whatever the bytes.
    #[test]
    fn the_catalogue_parser_refuses_oversize_and_garbage_answers() {
        let areas = |n: usize| (0..n).map(|i| format!("<area code='municipality:{i:04}'/>")).collect::<String>();
        assert_eq!(parse_catalogue_xml(&areas(MAX_CATALOGUE_ENTRIES)).unwrap().areas.len(), MAX_CATALOGUE_ENTRIES);
        let e = parse_catalogue_xml(&areas(MAX_CATALOGUE_ENTRIES + 1)).unwrap_err();
        assert_eq!(e.field, "catalogue");
        // Skipped entries count too.
        let e = parse_catalogue_xml(&"<x/>".repeat(MAX_CATALOGUE_ENTRIES + 1)).unwrap_err();
        assert_eq!(e.field, "catalogue");

        let long = "x".repeat(snow_core::stats::MAX_CHOICE_NAME_BYTES + 1);
        let long_name = format!("<analysis code='INFA' name='{long}'/>");
        let long_code = format!("<analysis code='{}'/>", "X".repeat(33));
        for (inner, field) in [
            ("<analysis/>", "analysis"),
            ("<analysis code='INFA; DROP TABLE weekly'/>", "analysis"),
            (long_code.as_str(), "analysis"),
            ("<analysis code='INFA' name=''/>", "name"),
            ("<analysis code='INFA' name='two&#10;lines'/>", "name"),
            (long_name.as_str(), "name"),
            ("<analysis code='INFA'/><analysis code='infa'/>", "analysis"),
            ("<area code='all'/>", "area"),
            ("<area code='5401'/>", "area"),
            ("<area code='municipality:54O1'/>", "area"),
            ("<area code='county:54'/><area code='County:54'/>", "area"),
            ("<age-group code='0-4) OR (1=1'/>", "age-group"),
            ("<sex code='X'/>", "sex"),
            ("<granularity code='year'/>", "granularity"),
            ("<coverage from='2026-W10' to='2026-W01'/>", "coverage"),
            ("<coverage from='2026-W01'/>", "coverage"),
            ("<coverage from='2025-W53' to='2026-W01'/>", "coverage"),
            ("<coverage from='2026-W01' to='2026-W02'/><coverage from='2026-W01' to='2026-W02'/>", "coverage"),
        ] {
            let e = parse_catalogue_xml(inner).unwrap_err();
            assert_eq!(e.field, field, "{inner}: {e}");
            for value in ["DROP", "O1", "OR (1=1", "lines", "year"] {
                assert!(!(inner.contains(value) && e.to_string().contains(value)), "echoes {value}: {e}");
            }
        }
        let answer = query_element(&query());
        assert_eq!(parse_catalogue(&answer).unwrap_err().field, "catalogue");

        // Every byte of a good catalogue changed, and every cut of it:
        // parsed or refused, never a panic.
        let xml = catalogue_element(&catalogue()).to_xml("");
        let limits = snow_xml::Limits::default();
        for i in 0..xml.len() {
            for b in [b'\'', b'<', b'-', b'x', b'9', 0xff] {
                let mut bytes = xml.clone().into_bytes();
                bytes[i] = b;
                if let Ok(el) = snow_xml::parse_document(&bytes, limits) {
                    let _ = parse_catalogue(&el);
                }
            }
            if let Ok(el) = snow_xml::parse_document(&xml.as_bytes()[..i], limits) {
                let _ = parse_catalogue(&el);
            }
        }

        // What the GP's client makes of the agent's reply.
        assert!(matches!(read_catalogue("search@lab.example/agent", &reply(None)), Err(ClientError::BadAnswer { .. })));
        let refused = snow_xml::stanza::error_reply(
            &catalogue_request("search@lab.example/agent"),
            snow_xml::stanza::Condition::ServiceUnavailable,
            None,
        );
        assert!(matches!(
            read_catalogue("search@lab.example/agent", &refused),
            Err(ClientError::Refused { condition, .. }) if condition == "service-unavailable"
        ));
        let ok = read_catalogue("search@lab.example/agent", &reply(Some(catalogue_element(&catalogue())))).unwrap();
        assert_eq!(ok, catalogue());
    }

    fn reply(payload: Option<Element>) -> Element {
        snow_xml::stanza::iq_result(&catalogue_request("search@lab.example/agent"), payload)
    }
}
