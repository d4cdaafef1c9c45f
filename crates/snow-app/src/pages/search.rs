//! Search: a form whose choices are the lab's (its agent's catalogue),
//! the answer as a chart and a table with hidden counts marked, and the
//! same answer as CSV.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;
use snow_core::stats::{
    check_age_group, normalize_analysis, Area, Catalogue, Count, Granularity, IsoWeek, Period, Sex, StatsAnswer,
    StatsError, StatsQuery, MAX_PERIOD_WEEKS,
};

use super::layout::{notice, Section};
use crate::chart::{self, Bar};
use crate::guard::WebSession;
use crate::live::Live;
use crate::texts::Texts;
use crate::AppState;

/// The periods the form offers, in weeks back from this week.
const WEEKS: [u32; 6] = [4, 8, 12, 26, 52, 104];
const DEFAULT_WEEKS: u32 = 8;

/// The form's fields (all optional: the first visit has none).
#[derive(Debug, Default, Deserialize)]
pub struct SearchParams {
    lab: Option<String>,
    analysis: Option<String>,
    area: Option<String>,
    weeks: Option<String>,
    granularity: Option<String>,
    age: Option<String>,
    sex: Option<String>,
}

impl SearchParams {
    fn get(v: &Option<String>) -> &str {
        v.as_deref().map(str::trim).unwrap_or_default()
    }

    /// The query these fields make, as of `today`.
    fn query(&self, today: time::Date) -> Result<StatsQuery, StatsError> {
        let analysis = normalize_analysis(Self::get(&self.analysis))?;
        let area = match Self::get(&self.area) {
            "" => Area::All,
            a => Area::parse_loose(a)?,
        };
        let weeks = match Self::get(&self.weeks) {
            "" => DEFAULT_WEEKS,
            w => w
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PERIOD_WEEKS).contains(n))
                .ok_or(StatsError { field: "weeks", reason: format!("must be 1 to {MAX_PERIOD_WEEKS}") })?,
        };
        let this_week = IsoWeek::of(today);
        let granularity = match Self::get(&self.granularity) {
            "" => Granularity::Week,
            g => g.parse()?,
        };
        let age_group = match Self::get(&self.age) {
            "" => None,
            a => {
                check_age_group(a)?;
                Some(a.to_owned())
            }
        };
        let sex = match Self::get(&self.sex) {
            "" => None,
            s => Some(s.parse::<Sex>()?),
        };
        let q = StatsQuery {
            analysis,
            period: Period::Weeks { from: this_week.minus(weeks - 1), to: this_week },
            area,
            age_group,
            sex,
            granularity,
        };
        q.check()?;
        Ok(q)
    }
}

/// The lab asked: the one chosen, if it is one of ours, else the first.
fn lab_of<'a>(app: &'a AppState, p: &SearchParams) -> Option<&'a str> {
    let labs = &app.opts.labs;
    let chosen = SearchParams::get(&p.lab);
    labs.iter().find(|l| l.as_str() == chosen).or(labs.first()).map(String::as_str)
}

/// How long a lab's catalogue is used before it is asked again (a new
/// import brings new weeks and areas).
const CATALOGUE_FOR: std::time::Duration = std::time::Duration::from_secs(300);

/// The lab's catalogue, asked again after [`CATALOGUE_FOR`].
async fn catalogue(live: &Live, lab: &str) -> Result<Catalogue, String> {
    if let Some((at, c)) = live.catalogues.lock().unwrap_or_else(|p| p.into_inner()).get(lab) {
        if at.elapsed() < CATALOGUE_FOR {
            return Ok(c.clone());
        }
    }
    let c = live.iq().catalogue(&snow_core::stats::search_agent_of(lab)).await.map_err(|e| e.to_string())?;
    live.catalogues
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(lab.to_owned(), (std::time::Instant::now(), c.clone()));
    Ok(c)
}

pub async fn index(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<WebSession>,
    Query(p): Query<SearchParams>,
) -> Response {
    let Some(live) = app.live() else { return Redirect::to("/").into_response() };
    let t = s.lang.texts();
    let Some(lab) = lab_of(&app, &p) else {
        return super::layout::page(&app, &s, Section::Search, t.search_title, notice("error", t.search_no_labs))
            .into_response();
    };
    let cat = catalogue(&live, lab).await;
    let asked = p.analysis.is_some();
    let result = if asked { Some(run(&live, lab, &p).await) } else { None };
    let status = match &result {
        Some(Err(_)) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let body = html! {
        @match &cat {
            Ok(c) => (form(&app, t, lab, c, &p)),
            Err(e) => (notice("error", &format!("{} ({lab}): {e}", t.search_no_catalogue))),
        }
        @match &result {
            Some(Ok(a)) => (answer(t, a, &p, lab)),
            Some(Err(e)) => (notice("error", &format!("{}: {e}", t.search_failed))),
            None => {}
        }
    };
    (status, super::layout::page(&app, &s, Section::Search, t.search_title, body)).into_response()
}

async fn run(live: &Live, lab: &str, p: &SearchParams) -> Result<StatsAnswer, String> {
    let q = p.query(time::OffsetDateTime::now_utc().date()).map_err(|e| e.to_string())?;
    live.iq().search(&snow_core::stats::search_agent_of(lab), &q, &live.identity, &live.target.ca_der).await.map_err(
        |e| match &e {
            snow_client::ClientError::Refused { condition, text: Some(text), .. } if condition == "bad-request" => {
                text.clone()
            }
            _ => e.to_string(),
        },
    )
}

/// The CSV of the same search (a GET: asking changes nothing).
pub async fn csv(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<WebSession>,
    Query(p): Query<SearchParams>,
) -> Response {
    let Some(live) = app.live() else { return Redirect::to("/").into_response() };
    let t = s.lang.texts();
    let Some(lab) = lab_of(&app, &p) else { return (StatusCode::BAD_REQUEST, t.search_no_labs).into_response() };
    match run(&live, lab, &p).await {
        Ok(a) => {
            let name = format!("snow-{}-{}.csv", a.query.analysis, a.query.area.code());
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
                ],
                snow_client::stats::answer_csv(&a),
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{}: {e}", t.search_failed)).into_response(),
    }
}

fn selected(p: &Option<String>, v: &str) -> bool {
    SearchParams::get(p).eq_ignore_ascii_case(v)
}

fn form(app: &AppState, t: &Texts, lab: &str, c: &Catalogue, p: &SearchParams) -> Markup {
    let weeks = SearchParams::get(&p.weeks).parse::<u32>().unwrap_or(DEFAULT_WEEKS);
    let counties: Vec<_> = c.areas.iter().filter(|a| matches!(a.area, Area::County(_))).collect();
    let municipalities: Vec<_> = c.areas.iter().filter(|a| matches!(a.area, Area::Municipality(_))).collect();
    let label = |code: &str, name: &Option<String>| match name {
        Some(n) => format!("{code} {n}"),
        None => code.to_owned(),
    };
    html! {
        form method="get" action="/search" class="grid" id="search-form" {
            @if app.opts.labs.len() > 1 {
                div {
                    label for="lab" { (t.search_lab) }
                    select id="lab" name="lab" {
                        @for l in &app.opts.labs { option value=(l) selected[l == lab] { (l) } }
                    }
                }
            } @else {
                input type="hidden" name="lab" value=(lab);
            }
            div {
                label for="analysis" { (t.search_analysis) }
                select id="analysis" name="analysis" required {
                    @for a in &c.analyses {
                        option value=(a.code) selected[selected(&p.analysis, &a.code)] { (label(&a.code, &a.name)) }
                    }
                }
            }
            div {
                label for="area" { (t.search_area) }
                select id="area" name="area" {
                    option value="all" { (t.search_area_all) }
                    @if !counties.is_empty() {
                        optgroup label=(t.search_counties) {
                            @for a in &counties {
                                option value=(a.area.code()) selected[selected(&p.area, a.area.code())] { (label(a.area.code(), &a.name)) }
                            }
                        }
                    }
                    @if !municipalities.is_empty() {
                        optgroup label=(t.search_municipalities) {
                            @for a in &municipalities {
                                option value=(a.area.code()) selected[selected(&p.area, a.area.code())] { (label(a.area.code(), &a.name)) }
                            }
                        }
                    }
                }
            }
            div {
                label for="weeks" { (t.search_weeks) }
                select id="weeks" name="weeks" {
                    @for n in WEEKS {
                        option value=(n) selected[n == weeks] { (t.search_weeks_n.replace("{n}", &n.to_string())) }
                    }
                }
            }
            div {
                label for="granularity" { (t.search_granularity) }
                select id="granularity" name="granularity" {
                    @for g in &c.granularities {
                        option value=(g.as_str()) selected[selected(&p.granularity, g.as_str())] { (t.granularity(*g)) }
                    }
                }
            }
            div {
                label for="age" { (t.search_age) }
                select id="age" name="age" {
                    option value="" { (t.search_any) }
                    @for a in &c.age_groups { option value=(a) selected[selected(&p.age, a)] { (a) } }
                }
            }
            div {
                label for="sex" { (t.search_sex) }
                select id="sex" name="sex" {
                    option value="" { (t.search_any) }
                    @for x in &c.sexes { option value=(x.code()) selected[selected(&p.sex, x.code())] { (t.sex(*x)) } }
                }
            }
            div class="actions" { button type="submit" { (t.search_submit) } }
        }
        @if let Some((from, to)) = c.coverage {
            p class="hint" { (t.search_covers.replace("{from}", &from.to_string()).replace("{to}", &to.to_string())) }
        }
    }
}

/// The query string of a search, for the CSV link.
fn query_string(p: &SearchParams, lab: &str) -> String {
    let mut parts = vec![format!("lab={}", enc(lab))];
    for (k, v) in [
        ("analysis", &p.analysis),
        ("area", &p.area),
        ("weeks", &p.weeks),
        ("granularity", &p.granularity),
        ("age", &p.age),
        ("sex", &p.sex),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={}", enc(v)));
        }
    }
    parts.join("&")
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn answer(t: &Texts, a: &StatsAnswer, p: &SearchParams, lab: &str) -> Markup {
    let bars: Vec<Bar> = a.buckets.iter().map(Bar::positive).collect();
    let title = format!("{} – {} – {}", t.chart_title, a.query.analysis, a.query.area.code());
    let cell = |c: Count| match c {
        Count::Exact(n) => html! { (n) },
        Count::Below(th) => html! { span class="hidden-count" title=(t.suppressed) { "<" (th) } },
    };
    html! {
        section aria-labelledby="result-title" id="result" {
            h2 id="result-title" { (t.search_result) ": " (a.query.analysis) ", " (a.query.area.code()) }
            figure { (chart::bars(&title, &bars, None, t)) }
            @if a.max_noise > 0 {
                p class="hint" { (t.perturbed_note.replace("{d}", &a.max_noise.to_string())) }
            } @else {
                p class="hint" { (t.suppressed_note.replace("{t}", &a.threshold.to_string())) }
            }
            table {
                caption { (title) }
                thead { tr {
                    th scope="col" { (t.col_period) } th scope="col" { (t.col_tested) }
                    th scope="col" { (t.col_positive) } th scope="col" { (t.col_persons) } th scope="col" { (t.col_note) }
                } }
                tbody {
                    @for b in &a.buckets {
                        tr {
                            th scope="row" { (b.label) }
                            @match &b.counts {
                                Some(c) => {
                                    td { (cell(c.tested)) } td { (cell(c.positive)) } td { (cell(c.persons)) }
                                    td { @if !c.suppressed().is_empty() { (t.suppressed) } }
                                }
                                None => { td {} td {} td {} td class="no-data" { (t.no_data) } }
                            }
                        }
                    }
                }
            }
            p { a href=(format!("/search.csv?{}", query_string(p, lab))) download { (t.search_csv) } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(analysis: &str, area: &str, weeks: &str) -> SearchParams {
        SearchParams {
            analysis: Some(analysis.into()),
            area: Some(area.into()),
            weeks: Some(weeks.into()),
            ..SearchParams::default()
        }
    }

    #[test]
    fn the_form_makes_the_query_snow_search_would() {
        let today = time::macros::date!(2026 - 11 - 25);
        let q = params("infa", "5401", "8").query(today).unwrap();
        assert_eq!(q.analysis, "INFA");
        assert_eq!(q.area, Area::Municipality("5401".into()));
        assert_eq!(q.period.bounds(), ("2026-W41".to_owned(), "2026-W48".to_owned()));
        for (p, field) in [
            (params("INFA", "540", "8"), "area"),
            (params("IN FA", "5401", "8"), "analysis"),
            (params("INFA", "5401", "0"), "weeks"),
            (params("INFA", "5401", "abc"), "weeks"),
        ] {
            assert_eq!(p.query(today).unwrap_err().field, field);
        }
        assert_eq!(enc("a b&c=d/ø"), "a%20b%26c%3Dd%2F%C3%B8");
    }
}
