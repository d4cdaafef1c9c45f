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

use snow_core::stats::{
    normalize_analysis, Area, Bucket, Count, Counts, Granularity, Period, Sex, StatsAnswer, StatsError, StatsQuery,
};
use snow_crypto::Identity;
use snow_xml::{Element, NS_CLIENT};

use crate::ClientError;

pub const NS_STATS: &str = "urn:snow:stats:1";
/// Most buckets an answer may hold (ten years of weeks, with room).
pub const MAX_BUCKETS: usize = 600;

fn bad(field: &'static str, reason: &str) -> StatsError {
    StatsError { field, reason: reason.into() }
}

/// The IQ that asks `agent` (a full JID) for `query`, encrypted to the
/// agent's certificate `agent_cert` (checked by the caller).
pub fn search_request(agent: &str, query: &StatsQuery, agent_cert: &[u8]) -> Result<Element, ClientError> {
    let mut search = Element::new(NS_STATS, "search").with_child(query_element(query));
    snow_crypto::e2e::encrypt_content(&mut search, NS_STATS, &[agent_cert], snow_crypto::e2e::KeyTransport::default())?;
    Ok(Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_attr("to", agent).with_child(search))
}

/// The answer in the agent's reply to [`search_request`], decrypted with
/// our key (only the EncryptedKey naming our certificate is tried, at most
/// 16 read); a stanza error becomes [`ClientError::Refused`]. Which reply
/// answers the request — the one with its id from the agent asked — is
/// [`crate::IqClient::request`]'s business.
pub fn read_search_answer(agent: &str, reply: &Element, identity: &Identity) -> Result<StatsAnswer, ClientError> {
    if reply.attr("type") == Some("error") {
        let (condition, text) = snow_xml::stanza::error_of(reply);
        return Err(ClientError::Refused { who: agent.to_owned(), condition, text });
    }
    let bad = |why: String| ClientError::BadAnswer { who: agent.to_owned(), why };
    let mut payload = reply.child(NS_STATS, "search").cloned().ok_or_else(|| bad("no <search/> payload".into()))?;
    snow_crypto::e2e::decrypt_content(&mut payload, NS_STATS, identity.key_pkcs8(), identity.certificate())
        .map_err(|e| bad(format!("cannot decrypt it: {e}")))?;
    let el = payload.child(NS_STATS, "answer").ok_or_else(|| bad("no <answer/> inside".into()))?;
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
    Ok(StatsAnswer { query, threshold, buckets })
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
}
