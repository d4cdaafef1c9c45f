//! `snow lab audit`: the lab's record of the searches it was asked
//! (`snow_store::AuditDb`), as a table, CSV or JSON.

use anyhow::{bail, Context};
use snow_store::{AuditDb, AuditFilter, SearchRecord};

use super::Ctx;

pub fn run(
    ctx: &Ctx,
    since: Option<&str>,
    requester: Option<&str>,
    last: Option<u32>,
    format: &str,
) -> anyhow::Result<()> {
    if !["table", "csv", "json"].contains(&format) {
        bail!("--format must be table, csv or json");
    }
    let since = since.map(start_of_day).transpose()?;
    let path = ctx.paths.search_audit();
    // Listing must not create it: no file is no search yet.
    if !path.exists() {
        if format == "table" {
            println!("No searches recorded yet ({} does not exist).", path.display());
        } else if format == "csv" {
            print!("{}", snow_core::csv::line(HEADER));
        } else {
            println!("[]");
        }
        return Ok(());
    }
    let db = AuditDb::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let records = db.list(&AuditFilter { since, requester, limit: last })?;
    match format {
        "csv" => {
            let mut out = snow_core::csv::line(HEADER);
            for r in &records {
                let cells = cells(r);
                out.push_str(&snow_core::csv::line(cells.iter().map(String::as_str)));
            }
            print!("{out}");
        }
        "json" => {
            let rows: Vec<serde_json::Value> = records
                .iter()
                .map(|r| {
                    let q = r.query.as_ref();
                    serde_json::json!({
                        "time": time_of(r.at),
                        "requester": r.requester,
                        "analysis": q.map(|q| &q.analysis),
                        "period": q.map(|q| &q.period),
                        "area": q.map(|q| &q.area),
                        "granularity": q.map(|q| &q.granularity),
                        "age_group": q.and_then(|q| q.age_group.as_ref()),
                        "sex": q.and_then(|q| q.sex.as_ref()),
                        "cells": r.cells,
                        "outcome": r.outcome,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        _ => {
            if records.is_empty() {
                println!(
                    "No searches recorded{}.",
                    if since.is_some() || requester.is_some() { " that match" } else { "" }
                );
                return Ok(());
            }
            let rows: Vec<Vec<String>> = records.iter().map(cells).collect();
            let widths: Vec<usize> = (0..HEADER.len())
                .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([HEADER[i].len()]).max().unwrap_or(0))
                .collect();
            let line = |cells: Vec<&str>| {
                let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
                println!("{}", padded.join("  ").trim_end());
            };
            line(HEADER.to_vec());
            for r in &rows {
                line(r.iter().map(String::as_str).collect());
            }
            let answered = records.iter().filter(|r| r.outcome == snow_store::audit_db::ANSWERED).count();
            println!("{} searches: {answered} answered, {} refused.", records.len(), records.len() - answered);
        }
    }
    Ok(())
}

const HEADER: [&str; 10] =
    ["time", "requester", "analysis", "period", "area", "granularity", "age_group", "sex", "cells", "outcome"];

fn cells(r: &SearchRecord) -> Vec<String> {
    let q = r.query.as_ref();
    let text = |f: fn(&snow_store::AuditedQuery) -> Option<&str>| q.and_then(f).unwrap_or_default().to_owned();
    vec![
        time_of(r.at),
        r.requester.clone(),
        text(|q| Some(&q.analysis)),
        text(|q| Some(&q.period)),
        text(|q| Some(&q.area)),
        text(|q| Some(&q.granularity)),
        text(|q| q.age_group.as_deref()),
        text(|q| q.sex.as_deref()),
        r.cells.to_string(),
        r.outcome.clone(),
    ]
}

/// `2026-12-03 21:40:12Z`.
fn time_of(at: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(at) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => at.to_string(),
    }
}

/// The Unix time of 00:00 UTC on `day` (YYYY-MM-DD).
fn start_of_day(day: &str) -> anyhow::Result<i64> {
    let bad = || {
        anyhow::anyhow!("--since must be a date like 2026-12-01, not {:?}", day.chars().take(40).collect::<String>())
    };
    let mut parts = day.split('-');
    let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let (y, m, d): (i32, u8, u8) =
        (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    let month = time::Month::try_from(m).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(y, month, d).map_err(|_| bad())?;
    Ok(date.midnight().assume_utc().unix_timestamp())
}
