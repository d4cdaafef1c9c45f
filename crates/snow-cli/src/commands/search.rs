//! `snow search`: a GP asks a lab's search agent for statistics and sees a
//! table with a sparkline, or CSV / JSON for scripts.

use anyhow::{bail, Context};
use snow_core::stats::{Area, Count, Granularity, IsoWeek, Period, Sex, StatsAnswer, StatsQuery, YearMonth};

use super::Ctx;
use crate::cli::SearchArgs;

pub fn run(ctx: &Ctx, args: SearchArgs) -> anyhow::Result<()> {
    let query = query_of(&args, time::OffsetDateTime::now_utc().date())?;
    let format = args.format.as_str();
    if !matches!(format, "table" | "csv" | "json") {
        bail!("--format must be table, csv or json");
    }
    let agent = match (&args.agent, &args.lab) {
        (Some(a), _) => a.clone(),
        (None, Some(lab)) => {
            let lab: snow_core::Domain = lab.parse().context("--lab is not a domain name")?;
            format!("search@{lab}/{}", snow_agents::AGENT_RESOURCE)
        }
        (None, None) => bail!("say which lab to ask: --lab lab.example (or SNOW_LAB, or --agent JID)"),
    };
    let rt = super::runtime()?;
    let answer = rt.block_on(async {
        let (client, identity, ca_der) = super::chat::connect_with_identity(ctx, &args.conn).await?;
        let session = client.into_session();
        let answer = session.iq().search(&agent, &query, &identity, &ca_der).await?;
        session.close().await?;
        anyhow::Ok(answer)
    })?;
    let agent_bare = agent.split('/').next().unwrap_or(&agent);
    let text = match format {
        "csv" => csv(&answer),
        "json" => json(&answer, agent_bare)?,
        _ => table(&answer, agent_bare),
    };
    print!("{text}");
    Ok(())
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
        analysis: args.analysis.clone(),
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
    let area = match &q.area {
        Area::All => "all areas".to_owned(),
        Area::County(c) => format!("county {c}"),
        Area::Municipality(m) => format!("municipality {m}"),
    };
    let (from, to) = q.period.bounds();
    let mut who = String::new();
    if let Some(g) = &q.age_group {
        who.push_str(&format!(", age {g}"));
    }
    if let Some(s) = q.sex {
        who.push_str(&format!(", sex {}", s.code()));
    }
    format!("{} tests, {area}{who}, {from} to {to}", q.analysis)
}

/// Eight levels; a suppressed count is drawn at the bottom.
pub fn sparkline(counts: &[Count]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = counts.iter().filter_map(|c| if let Count::Exact(n) = c { Some(*n) } else { None }).max().unwrap_or(0);
    counts
        .iter()
        .map(|c| match c {
            Count::Exact(n) if max > 0 => BARS[((n * 7 + max / 2) / max).min(7) as usize],
            _ => BARS[0],
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
        out.push_str(&format!(
            "{:<w$}  {:>8}  {:>8}  {:>8}\n",
            b.label,
            b.tested.to_string(),
            b.positive.to_string(),
            b.persons.to_string()
        ));
    }
    if a.buckets.len() > 1 {
        let pos: Vec<Count> = a.buckets.iter().map(|b| b.positive).collect();
        out.push_str(&format!("positive  {}\n", sparkline(&pos)));
    }
    out.push_str(&format!(
        "Counts from 1 to {} are shown as <{} (disclosure control).\n",
        a.threshold.saturating_sub(1),
        a.threshold
    ));
    out
}

fn csv(a: &StatsAnswer) -> String {
    let mut out = String::from("period,tested,positive,persons\n");
    for b in &a.buckets {
        out.push_str(&format!("{},{},{},{}\n", b.label, b.tested, b.positive, b.persons));
    }
    out
}

fn json(a: &StatsAnswer, agent: &str) -> anyhow::Result<String> {
    // A suppressed count is a string ("<5"), an exact one a number.
    let count = |c: Count| match c {
        Count::Exact(n) => serde_json::Value::from(n),
        Count::Below(_) => serde_json::Value::from(c.to_string()),
    };
    let (from, to) = a.query.period.bounds();
    let v = serde_json::json!({
        "agent": agent,
        "analysis": a.query.analysis,
        "area": a.query.area.to_string(),
        "from": from,
        "to": to,
        "age_group": a.query.age_group,
        "sex": a.query.sex.map(|s| s.code()),
        "granularity": a.query.granularity.as_str(),
        "threshold": a.threshold,
        "buckets": a.buckets.iter().map(|b| serde_json::json!({
            "period": b.label,
            "tested": count(b.tested),
            "positive": count(b.positive),
            "persons": count(b.persons),
        })).collect::<Vec<_>>(),
    });
    Ok(serde_json::to_string_pretty(&v)? + "\n")
}
