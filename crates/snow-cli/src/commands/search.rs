//! `snow search`: a GP asks a lab's search agent for statistics and sees a
//! table with a sparkline, or CSV / JSON for scripts.
//!
//! Codes are read in any case (`--analysis infa`, `--sex f`,
//! `--granularity Week`, `--format JSON`) and sent in one form; areas are
//! written as the GP types them (`5401`, `54`, `all`) in every error and
//! output. What each format shows:
//!
//! - table: counts, `<5` for a count hidden by disclosure control, `no
//!   data` for a period outside the weeks the lab has data for;
//! - CSV: `period,tested,positive,persons,note`; `<5` as in the table; a
//!   period with no data has empty counts and the note `no data`;
//! - JSON: every count a number, or `null` when it cannot be published
//!   (suppressed, or no data); per bucket `"no_data"` and `"suppressed"`
//!   (the names of the hidden counts), and once at the top
//!   `"suppression_threshold"`.
//!
//! `--choices` asks the agent for its catalogue instead and lists what a
//! search may use: analyses (with names), the areas the lab has data for,
//! age groups, sexes, granularities, and the weeks its data covers; as a
//! table naming the option each goes with, or as JSON.

use anyhow::{bail, Context};
use snow_client::stats::NO_DATA;
use snow_client::ClientError;
use snow_core::stats::{
    normalize_analysis, Area, Bucket, Catalogue, Count, Granularity, IsoWeek, Period, Sex, StatsAnswer, StatsError,
    StatsQuery, YearMonth,
};

use super::Ctx;
use crate::cli::SearchArgs;

/// An output format of `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Table,
    Csv,
    Json,
}

fn format_of(s: &str) -> anyhow::Result<Format> {
    match s.to_ascii_lowercase().as_str() {
        "table" => Ok(Format::Table),
        "csv" => Ok(Format::Csv),
        "json" => Ok(Format::Json),
        _ => bail!("--format must be table, csv or json"),
    }
}

pub fn run(ctx: &Ctx, args: SearchArgs) -> anyhow::Result<()> {
    if args.choices {
        return choices(ctx, &args);
    }
    let query = query_of(&args, time::OffsetDateTime::now_utc().date())?;
    let format = format_of(&args.format)?;
    let (agent, lab) = agent_of(&args)?;
    let rt = super::runtime()?;
    let answer = rt.block_on(async {
        let (client, identity, ca_der) = super::chat::connect_with_identity(ctx, &args.conn).await?;
        let session = client.into_session();
        let answer = session.iq().search(&agent, &query, &identity, &ca_der).await;
        session.close().await?;
        anyhow::Ok(answer)
    })?;
    let answer = answer.map_err(|e| refusal(e, &lab))?;
    let agent_bare = agent.split('/').next().unwrap_or(&agent);
    let text = match format {
        Format::Csv => snow_client::stats::answer_csv(&answer),
        Format::Json => json(&answer, agent_bare)?,
        Format::Table => table(&answer, agent_bare),
    };
    print!("{text}");
    Ok(())
}

/// The agent to ask (`--agent`, or `search@LAB/agent` for `--lab`) and
/// the lab's domain.
fn agent_of(args: &SearchArgs) -> anyhow::Result<(String, String)> {
    Ok(match (&args.agent, &args.lab) {
        (Some(a), _) => {
            let bare = a.split('/').next().unwrap_or(a);
            (a.clone(), bare.split_once('@').map_or(bare, |(_, d)| d).to_owned())
        }
        (None, Some(lab)) => {
            let lab: snow_core::Domain = lab.parse().context("--lab is not a domain name")?;
            (format!("search@{lab}/{}", snow_agents::AGENT_RESOURCE), lab.to_string())
        }
        (None, None) => bail!("say which lab to ask: --lab lab.example (or SNOW_LAB, or --agent JID)"),
    })
}

/// `snow search --choices`: the agent's catalogue, as a table or JSON.
fn choices(ctx: &Ctx, args: &SearchArgs) -> anyhow::Result<()> {
    let format = match format_of(&args.format)? {
        Format::Csv => bail!("--choices prints a table or json, not csv"),
        f => f,
    };
    let (agent, lab) = agent_of(args)?;
    let rt = super::runtime()?;
    let catalogue = rt.block_on(async {
        let session = super::chat::connect(ctx, &args.conn).await?.into_session();
        let catalogue = session.iq().catalogue(&agent).await;
        session.close().await?;
        anyhow::Ok(catalogue)
    })?;
    let catalogue = catalogue.map_err(|e| match &e {
        // Nobody answers for the agent: its server or ours said so.
        ClientError::Refused { condition, .. }
            if ["service-unavailable", "remote-server-not-found", "item-not-found"].contains(&condition.as_str()) =>
        {
            anyhow::anyhow!(
                "the search agent {agent} of {lab} did not list its choices ({condition}): it is not online, \
                 cannot be reached from your server, or is too old to list them"
            )
        }
        _ => e.into(),
    })?;
    let agent_bare = agent.split('/').next().unwrap_or(&agent);
    let text = match format {
        Format::Json => choices_json(&catalogue, agent_bare)?,
        _ => choices_table(&catalogue, agent_bare),
    };
    print!("{text}");
    Ok(())
}

/// The catalogue for a reader: each kind of choice with the option it
/// goes with, codes as the options take them (areas `5401`, `54`).
pub(super) fn choices_table(c: &Catalogue, agent: &str) -> String {
    let mut out = format!("What you may search at {agent}:\n");
    out.push_str("Analyses (--analysis):\n");
    let w = c.analyses.iter().map(|a| a.code.len()).max().unwrap_or(0);
    for a in &c.analyses {
        let line = format!("  {:<w$}  {}", a.code, a.name.as_deref().unwrap_or(""));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str("Areas with data (--area; all is always a choice):\n");
    if c.areas.is_empty() {
        out.push_str("  none yet\n");
    }
    let w = c.areas.iter().map(|a| a.area.code().len()).max().unwrap_or(0);
    for a in &c.areas {
        let name = a.name.as_deref().map(|n| format!(", {n}")).unwrap_or_default();
        out.push_str(&format!("  {:<w$}  {}{name}\n", a.area.code(), a.area.describe()));
    }
    let list = |items: Vec<&str>| if items.is_empty() { "none".to_owned() } else { items.join(", ") };
    out.push_str(&format!("Age groups (--age-group): {}\n", list(c.age_groups.iter().map(String::as_str).collect())));
    out.push_str(&format!("Sexes (--sex): {}\n", list(c.sexes.iter().map(|s| s.code()).collect())));
    out.push_str(&format!(
        "Granularities (--granularity): {}\n",
        list(c.granularities.iter().map(|g| g.as_str()).collect())
    ));
    match c.coverage {
        Some((from, to)) => out.push_str(&format!(
            "Data from {from} to {to} (--from, --to): a period outside it is \"no data\", not 0.\n"
        )),
        None => out.push_str("No data yet: every period is \"no data\".\n"),
    }
    out
}

/// The catalogue for scripts: codes as the options take them, a name or
/// null, each area's kind, the weeks of data or null.
fn choices_json(c: &Catalogue, agent: &str) -> anyhow::Result<String> {
    let kind = |a: &Area| match a {
        Area::Municipality(_) => "municipality",
        Area::County(_) => "county",
        Area::All => "all",
    };
    let v = serde_json::json!({
        "agent": agent,
        "analyses": c.analyses.iter().map(|a| serde_json::json!({ "code": a.code, "name": a.name })).collect::<Vec<_>>(),
        "areas": c
            .areas
            .iter()
            .map(|a| serde_json::json!({ "code": a.area.code(), "kind": kind(&a.area), "name": a.name }))
            .collect::<Vec<_>>(),
        "age_groups": c.age_groups,
        "sexes": c.sexes.iter().map(|s| s.code()).collect::<Vec<_>>(),
        "granularities": c.granularities.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "coverage": c.coverage.map(|(from, to)| serde_json::json!({ "from": from.to_string(), "to": to.to_string() })),
    });
    Ok(serde_json::to_string_pretty(&v)? + "\n")
}

/// The agent's refusal of a search in the GP's words: an area without
/// data by name; any other refusal of the search's parameters
/// (`bad-request`, the agent's text naming the field and why) by its text
/// alone, without the protocol's condition, which tells a GP nothing.
/// Other errors (the agent not reached, …) as they are.
fn refusal(e: ClientError, lab: &str) -> anyhow::Error {
    if let Some(area) = unknown_area(&e) {
        return anyhow::anyhow!("the lab {lab} has no data for {}", area.describe());
    }
    match e {
        ClientError::Refused { condition, text: Some(text), .. } if condition == "bad-request" => {
            anyhow::anyhow!("the lab {lab} refused the search: {text}")
        }
        e => e.into(),
    }
}

/// The area of the agent's refusal of an area it has no data for.
fn unknown_area(e: &ClientError) -> Option<Area> {
    match e {
        ClientError::Refused { condition, text: Some(text), .. } if condition == "bad-request" => {
            StatsError::no_data_area(text)
        }
        _ => None,
    }
}

/// Turns the command line into a query; `today` fixes "the last N weeks".
pub fn query_of(args: &SearchArgs, today: time::Date) -> anyhow::Result<StatsQuery> {
    let this_week = IsoWeek::of(today);
    let this_month = YearMonth::new(today.year(), u8::from(today.month())).context("today is out of range")?;
    let period = match (args.weeks, args.months, &args.from, &args.to) {
        (Some(0), ..) | (_, Some(0), ..) => bail!("--weeks and --months must be at least 1"),
        (Some(n), ..) if n > snow_core::stats::MAX_PERIOD_WEEKS => {
            bail!("--weeks may be at most {}", snow_core::stats::MAX_PERIOD_WEEKS)
        }
        (Some(n), ..) => Period::Weeks { from: this_week.minus(n - 1), to: this_week },
        (None, Some(n), ..) => {
            if n > snow_core::stats::MAX_PERIOD_MONTHS {
                bail!("--months may be at most {}", snow_core::stats::MAX_PERIOD_MONTHS);
            }
            let mut from = this_month;
            for _ in 1..n {
                from = YearMonth::new(
                    if from.month() == 1 { from.year() - 1 } else { from.year() },
                    if from.month() == 1 { 12 } else { from.month() - 1 },
                )
                .context("the period starts too early")?;
            }
            Period::Months { from, to: this_month }
        }
        (None, None, Some(f), Some(t)) => Period::parse(f, t)?,
        _ => Period::Weeks { from: this_week.minus(7), to: this_week },
    };
    let granularity = match &args.granularity {
        Some(g) => g.parse::<Granularity>()?,
        None if matches!(period, Period::Months { .. }) => Granularity::Month,
        None => Granularity::Week,
    };
    let q = StatsQuery {
        // Absent only with --choices, which asks no query.
        analysis: normalize_analysis(args.analysis.as_deref().unwrap_or_default())?,
        period,
        area: Area::parse_loose(&args.area)?,
        age_group: args.age_group.clone(),
        sex: args.sex.as_deref().map(str::parse::<Sex>).transpose()?,
        granularity,
    };
    q.check()?;
    Ok(q)
}

fn describe(a: &StatsAnswer) -> String {
    let q = &a.query;
    let (from, to) = q.period.bounds();
    let mut who = String::new();
    if let Some(g) = &q.age_group {
        who.push_str(&format!(", age {g}"));
    }
    if let Some(s) = q.sex {
        who.push_str(&format!(", sex {}", s.code()));
    }
    format!("{} tests, {}{who}, {from} to {to}", q.analysis, q.area.describe())
}

/// Eight levels; a suppressed count is drawn at the bottom, a period with
/// no data as a gap.
pub fn sparkline(counts: &[Option<Count>]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max =
        counts.iter().filter_map(|c| if let Some(Count::Exact(n)) = c { Some(*n) } else { None }).max().unwrap_or(0);
    counts
        .iter()
        .map(|c| match c {
            None => ' ',
            Some(Count::Exact(n)) if max > 0 => BARS[((n * 7 + max / 2) / max).min(7) as usize],
            Some(_) => BARS[0],
        })
        .collect()
}

pub(super) fn table(a: &StatsAnswer, agent: &str) -> String {
    let mut out = format!("{} (from {agent})\n", describe(a));
    let head = match a.query.granularity {
        Granularity::Week => "week",
        Granularity::Month => "month",
        Granularity::Total => "period",
    };
    let w = a.buckets.iter().map(|b| b.label.len()).max().unwrap_or(0).max(head.len());
    out.push_str(&format!("{head:<w$}  {:>8}  {:>8}  {:>8}\n", "tested", "positive", "persons"));
    for b in &a.buckets {
        let [t, p, n] = match &b.counts {
            Some(c) => c.named().map(|(_, c)| c.to_string()),
            None => [NO_DATA; 3].map(str::to_owned),
        };
        out.push_str(&format!("{:<w$}  {t:>8}  {p:>8}  {n:>8}\n", b.label));
    }
    if a.buckets.len() > 1 {
        let pos: Vec<Option<Count>> = a.buckets.iter().map(|b| b.counts.map(|c| c.positive)).collect();
        out.push_str(&format!("positive  {}\n", sparkline(&pos)));
    }
    if a.max_noise > 0 {
        out.push_str(&format!(
            "Counts carry random noise of at most ±{d} to protect privacy (the same search always gives the same \
             counts); a 0 means 0 to {d}.\n",
            d = a.max_noise
        ));
    } else {
        out.push_str(&format!(
            "Counts from 1 to {} are shown as <{} (disclosure control).\n",
            a.threshold.saturating_sub(1),
            a.threshold
        ));
    }
    if a.buckets.iter().any(Bucket::no_data) {
        out.push_str("\"no data\": outside the weeks the lab has data for (not the same as 0).\n");
    }
    out
}

/// Every count is a number, or null when it cannot be published: hidden by
/// disclosure control (named in the bucket's `suppressed`) or no data (the
/// bucket's `no_data`). The threshold is stated once.
fn json(a: &StatsAnswer, agent: &str) -> anyhow::Result<String> {
    let number = |c: Count| match c {
        Count::Exact(n) => serde_json::Value::from(n),
        Count::Below(_) => serde_json::Value::Null,
    };
    let bucket = |b: &Bucket| {
        let mut v = serde_json::json!({ "period": b.label, "no_data": b.no_data() });
        let suppressed = b.counts.map(|c| c.suppressed()).unwrap_or_default();
        for (name, count) in b.counts.map(|c| c.named().map(|(n, c)| (n, number(c)))).unwrap_or([
            ("tested", serde_json::Value::Null),
            ("positive", serde_json::Value::Null),
            ("persons", serde_json::Value::Null),
        ]) {
            v[name] = count;
        }
        v["suppressed"] = serde_json::Value::from(suppressed);
        v
    };
    let (from, to) = a.query.period.bounds();
    let v = serde_json::json!({
        "agent": agent,
        "analysis": a.query.analysis,
        "area": a.query.area.code(),
        "from": from,
        "to": to,
        "age_group": a.query.age_group,
        "sex": a.query.sex.map(|s| s.code()),
        "granularity": a.query.granularity.as_str(),
        "suppression_threshold": a.threshold,
        "max_noise": a.max_noise,
        "buckets": a.buckets.iter().map(bucket).collect::<Vec<_>>(),
    });
    Ok(serde_json::to_string_pretty(&v)? + "\n")
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use snow_core::stats::Counts;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(extra: &[&str]) -> SearchArgs {
        let cli = Cli::try_parse_from([&["snow", "search"][..], extra].concat()).unwrap();
        match cli.command {
            Command::Search(a) => a,
            other => panic!("{other:?}"),
        }
    }

    fn today() -> time::Date {
        time::Date::from_calendar_date(2026, time::Month::March, 5).unwrap()
    }

    #[test]
    fn codes_are_understood_in_any_case() {
        let q = query_of(
            &args(&["--analysis", "infa", "--sex", "f", "--granularity", "Week", "--area", "ALL", "--weeks", "2"]),
            today(),
        )
        .unwrap();
        assert_eq!(
            (q.analysis.as_str(), q.sex, q.granularity, &q.area),
            ("INFA", Some(Sex::Female), Granularity::Week, &Area::All)
        );
        assert_eq!(format_of("JSON").unwrap(), Format::Json);
        assert_eq!(format_of("Csv").unwrap(), Format::Csv);
        assert!(format_of("xml").is_err());
    }

    #[test]
    fn bad_areas_are_refused_in_the_words_the_cli_takes() {
        for bad in ["540", "54' OR 1=1", "county:5", "everywhere"] {
            let e = query_of(&args(&["--analysis", "INFA", "--area", bad]), today()).unwrap_err().to_string();
            assert!(e.starts_with("area:") && e.contains("5401") && e.contains("54") && e.contains("all"), "{e}");
            assert!(!e.contains("county:") && !e.contains("municipality:") && !e.contains("OR 1=1"), "{e}");
        }
        // One area syntax: the wire form is refused with what to type.
        for (wire, short) in [("county:54", "54"), ("Municipality:5401", "5401")] {
            let e = query_of(&args(&["--analysis", "INFA", "--area", wire]), today()).unwrap_err().to_string();
            assert!(e.starts_with("area: write ") && e.contains(&format!(" as {short}:")), "{e}");
        }
        let e = query_of(&args(&["--analysis", "IN FA"]), today()).unwrap_err().to_string();
        assert!(e.starts_with("analysis:"), "{e}");
        let e = query_of(&args(&["--analysis", "INFA", "--sex", "x"]), today()).unwrap_err().to_string();
        assert!(e.starts_with("sex:"), "{e}");
    }

    #[test]
    fn the_unknown_area_refusal_is_recognised() {
        let refused = |condition: &str, text: &str| ClientError::Refused {
            who: "search@lab.example/agent".into(),
            condition: condition.into(),
            text: Some(text.into()),
        };
        assert_eq!(
            unknown_area(&refused("bad-request", "area: no data for county 99")),
            Some(Area::County("99".into()))
        );
        assert_eq!(unknown_area(&refused("bad-request", "analysis: not an analysis of this lab")), None);
        assert_eq!(unknown_area(&refused("forbidden", "area: no data for county 99")), None);
    }

    /// The GP reads the agent's reason, not the protocol's condition.
    #[test]
    fn a_refused_search_shows_the_reason_without_the_condition() {
        let refused = |condition: &str, text: &str| ClientError::Refused {
            who: "search@lab.example/agent".into(),
            condition: condition.into(),
            text: Some(text.into()),
        };
        let e = refusal(refused("bad-request", "analysis: not an analysis of this lab (known: INFA)"), "lab.example");
        assert_eq!(
            e.to_string(),
            "the lab lab.example refused the search: analysis: not an analysis of this lab (known: INFA)"
        );
        let e = refusal(refused("bad-request", "area: no data for county 99"), "lab.example");
        assert_eq!(e.to_string(), "the lab lab.example has no data for county 99");
        // Anything else keeps what it says (who, and the condition).
        let e = refusal(refused("service-unavailable", "offline"), "lab.example").to_string();
        assert!(e.contains("service-unavailable"), "{e}");
    }

    /// 2026-W01 no data; W02 counts with two suppressed; W03 real zeros.
    fn answer() -> StatsAnswer {
        let counts = |t, p, n| Some(Counts { tested: t, positive: p, persons: n });
        StatsAnswer {
            query: query_of(
                &args(&["--analysis", "infa", "--area", "5401", "--from", "2026-W01", "--to", "2026-W03"]),
                today(),
            )
            .unwrap(),
            threshold: 5,
            max_noise: 0,
            buckets: vec![
                Bucket { label: "2026-W01".into(), counts: None },
                Bucket { label: "2026-W02".into(), counts: counts(Count::Exact(12), Count::Below(5), Count::Below(5)) },
                Bucket { label: "2026-W03".into(), counts: counts(Count::Exact(0), Count::Exact(0), Count::Exact(0)) },
            ],
        }
    }

    #[test]
    fn json_counts_are_numbers_or_null() {
        let v: serde_json::Value = serde_json::from_str(&json(&answer(), "search@lab.example").unwrap()).unwrap();
        assert_eq!(v["suppression_threshold"], 5);
        assert_eq!(v["area"], "5401");
        assert_eq!(v["analysis"], "INFA");
        let buckets = v["buckets"].as_array().unwrap();
        for b in buckets {
            for name in ["tested", "positive", "persons"] {
                assert!(b[name].is_u64() || b[name].is_null(), "{name} in {b}");
            }
            assert!(b["no_data"].is_boolean() && b["suppressed"].is_array(), "{b}");
        }
        assert_eq!(buckets[0]["no_data"], true);
        assert!(buckets[0]["tested"].is_null() && buckets[0]["suppressed"].as_array().unwrap().is_empty());
        assert_eq!(buckets[1]["no_data"], false);
        assert_eq!(buckets[1]["tested"], 12);
        assert!(buckets[1]["positive"].is_null() && buckets[1]["persons"].is_null());
        assert_eq!(buckets[1]["suppressed"], serde_json::json!(["positive", "persons"]));
        assert_eq!((buckets[2]["tested"].as_u64(), buckets[2]["no_data"].as_bool()), (Some(0), Some(false)));
    }

    #[test]
    fn csv_and_table_mark_no_data_apart_from_zero() {
        let a = answer();
        assert_eq!(
            snow_client::stats::answer_csv(&a),
            "period,tested,positive,persons,note\n2026-W01,,,,no data\n2026-W02,12,<5,<5,\n2026-W03,0,0,0,\n"
        );
        let t = table(&a, "search@lab.example");
        assert!(t.starts_with("INFA tests, municipality 5401, 2026-W01 to 2026-W03"), "{t}");
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(
            rows[2].split_whitespace().collect::<Vec<_>>(),
            ["2026-W01", "no", "data", "no", "data", "no", "data"]
        );
        assert_eq!(rows[3].split_whitespace().collect::<Vec<_>>(), ["2026-W02", "12", "<5", "<5"]);
        assert_eq!(rows[4].split_whitespace().collect::<Vec<_>>(), ["2026-W03", "0", "0", "0"]);
        assert!(t.contains("shown as <5") && t.contains("\"no data\": outside the weeks"), "{t}");
        assert_eq!(sparkline(&[None, Some(Count::Exact(4)), Some(Count::Below(5)), Some(Count::Exact(0))]), " █▁▁");
    }

    fn catalogue() -> Catalogue {
        use snow_core::stats::{AnalysisChoice, AreaChoice};
        Catalogue {
            analyses: vec![
                AnalysisChoice { code: "INFA".into(), name: Some("Influensa A".into()) },
                AnalysisChoice { code: "LAB1".into(), name: None },
            ],
            areas: vec![
                AreaChoice { area: Area::County("54".into()), name: None },
                AreaChoice { area: Area::Municipality("5401".into()), name: Some("Tromsø".into()) },
            ],
            age_groups: vec!["0-4".into(), "80+".into()],
            sexes: Sex::ALL.to_vec(),
            granularities: Granularity::ALL.to_vec(),
            coverage: Some((IsoWeek::new(2026, 2).unwrap(), IsoWeek::new(2026, 3).unwrap())),
        }
    }

    #[test]
    fn choices_are_listed_with_their_options() {
        let t = choices_table(&catalogue(), "search@lab.example");
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            [
                "What you may search at search@lab.example:",
                "Analyses (--analysis):",
                "  INFA  Influensa A",
                "  LAB1",
                "Areas with data (--area; all is always a choice):",
                "  54    county 54",
                "  5401  municipality 5401, Tromsø",
                "Age groups (--age-group): 0-4, 80+",
                "Sexes (--sex): M, F, U",
                "Granularities (--granularity): week, month, total",
                "Data from 2026-W02 to 2026-W03 (--from, --to): a period outside it is \"no data\", not 0.",
            ]
        );
        let empty = Catalogue { areas: Vec::new(), coverage: None, ..catalogue() };
        let t = choices_table(&empty, "search@lab.example");
        assert!(
            t.contains("choice):\n  none yet\n") && t.ends_with("No data yet: every period is \"no data\".\n"),
            "{t}"
        );

        let v: serde_json::Value =
            serde_json::from_str(&choices_json(&catalogue(), "search@lab.example").unwrap()).unwrap();
        assert_eq!(v["analyses"][0], serde_json::json!({ "code": "INFA", "name": "Influensa A" }));
        assert!(v["analyses"][1]["name"].is_null());
        assert_eq!(v["areas"][1], serde_json::json!({ "code": "5401", "kind": "municipality", "name": "Tromsø" }));
        assert_eq!(v["sexes"], serde_json::json!(["M", "F", "U"]));
        assert_eq!(v["coverage"], serde_json::json!({ "from": "2026-W02", "to": "2026-W03" }));
        assert!(serde_json::from_str::<serde_json::Value>(&choices_json(&empty, "a").unwrap()).unwrap()["coverage"]
            .is_null());
    }

    #[test]
    fn choices_need_no_analysis_and_take_no_query() {
        let a = args(&["--choices", "--lab", "lab.example"]);
        assert!(a.choices && a.analysis.is_none());
        for extra in [&["--analysis", "INFA"][..], &["--area", "5401"], &["--weeks", "4"], &["--sex", "F"]] {
            let argv = [&["snow", "search", "--choices", "--lab", "lab.example"][..], extra].concat();
            assert!(Cli::try_parse_from(argv).is_err(), "{extra:?}");
        }
        assert!(Cli::try_parse_from(["snow", "search", "--lab", "lab.example"]).is_err(), "a search needs --analysis");
    }
}
