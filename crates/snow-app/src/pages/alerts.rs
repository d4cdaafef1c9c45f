//! Alerts: the inbox (new, confirmed, dismissed; newest first), one
//! alert with its series and threshold, confirming with a comment,
//! sending an alert, and the areas subscribed to. New alerts arrive live
//! (the page reloads its list on the `alert` event).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{html, Markup};
use serde::Deserialize;
use snow_client::alert::{self, Item};
use snow_core::alert::{Alert, AlertKind};
use snow_core::stats::{Area, Granularity, Period, StatsQuery};

use super::layout::{action, notice, page, when, Section};
use crate::chart::{self, Bar, Threshold};
use crate::guard::WebSession;
use crate::live::{now, Live, Status};
use crate::texts::Texts;
use crate::AppState;

/// Weeks of the series shown with a signal (up to its week).
const SERIES_WEEKS: u32 = 12;

#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    show: Option<String>,
    sent: Option<String>,
}

fn kind_name(t: &Texts, k: AlertKind) -> &'static str {
    match k {
        AlertKind::Signal => t.alert_signal,
        AlertKind::Gp => t.alert_gp,
        AlertKind::Confirmation => t.alert_confirmation,
    }
}

/// The inbox's list, by filter (`new` by default).
fn list_markup(live: &Live, t: &Texts, show: &str) -> Markup {
    let d = live.data();
    let shown: Vec<&(Item, Alert)> = d
        .alerts
        .iter()
        .filter(|(_, a)| a.kind != AlertKind::Confirmation)
        .filter(|(_, a)| match show {
            "all" => true,
            "confirmed" => live.status(&d, a) == Status::Confirmed,
            "dismissed" => live.status(&d, a) == Status::Dismissed,
            _ => live.status(&d, a) == Status::New,
        })
        .collect();
    html! {
        div id="alert-list" data-show=(show) {
            @if shown.is_empty() { p { (t.alerts_none) } }
            @else {
                ul class="cards" {
                    @for (_, a) in shown {
                        li class=(format!("card {}", a.kind)) {
                            h3 {
                                a href=(format!("/alerts/{}", a.id)) {
                                    (kind_name(t, a.kind)) ": " (a.analysis) " " (a.area.code()) ", " (t.alert_week) " " (a.week)
                                }
                            }
                            (summary(t, a))
                            p class="meta" {
                                (when(a.issued)) " · " (t.alert_from) " " (a.author)
                                @if show == "all" {
                                    @match live.status(&d, a) {
                                        Status::New => { " · " (t.alerts_new) }
                                        Status::Confirmed => { " · " (t.alerts_confirmed) }
                                        Status::Dismissed => { " · " (t.alerts_dismissed) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if d.unreadable > 0 {
                p class="hint" { (t.alerts_unreadable.replace("{n}", &d.unreadable.to_string())) }
            }
            // Dropped alerts as their reason, never their content (it may
            // be a forgery), as chat shows an unverified message.
            @for u in &d.unverified {
                p class="warn" { (t.unverified_dropped) ": " (u.why) " (" (u.node) ", " (u.id) ")" }
            }
        }
    }
}

fn summary(t: &Texts, a: &Alert) -> Markup {
    html! {
        @if a.kind == AlertKind::Signal {
            p {
                (t.alert_observed) " " (a.observed.map(|o| o.to_string()).unwrap_or_else(|| "?".into()))
                ", " (t.alert_threshold) " " (a.threshold.map(|v| format!("{v:.1}")).unwrap_or_else(|| "?".into()))
                @if let Some(alg) = &a.algorithm { " (" (alg) ")" }
            }
        }
        @if let Some(text) = &a.text { p class="text" { (text) } }
    }
}

fn tabs(t: &Texts, show: &str) -> Markup {
    html! {
        nav aria-label=(t.alerts_title) class="tabs" {
            @for (key, name) in [("new", t.alerts_new), ("confirmed", t.alerts_confirmed), ("dismissed", t.alerts_dismissed), ("all", t.alerts_all)] {
                a href=(format!("/alerts?show={key}")) aria-current=[(key == show).then_some("page")] { (name) }
            }
        }
    }
}

fn show_of(f: &Filter) -> &str {
    match f.show.as_deref() {
        Some(s @ ("all" | "confirmed" | "dismissed")) => s,
        _ => "new",
    }
}

pub async fn index(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<WebSession>,
    Query(f): Query<Filter>,
) -> Response {
    let Some(live) = app.live() else { return Redirect::to("/").into_response() };
    let t = s.lang.texts();
    let show = show_of(&f);
    let subs = live.data().subscriptions.clone();
    let body = html! {
        @if let Some(n) = f.sent.as_deref() {
            @match n.parse::<usize>() {
                Ok(0) => (notice("info", t.alert_nobody)),
                Ok(n) => (notice("info", &t.alert_sent.replace("{n}", &n.to_string()))),
                Err(_) => {}
            }
        }
        (tabs(t, show))
        (list_markup(&live, t, show))
        section aria-labelledby="send-title" {
            h2 id="send-title" { (t.send_alert_title) }
            form method="post" action=(action(&s, "/alerts/send")) class="stack narrow" {
                (series_fields(t, "send"))
                label for="send-text" { (t.send_alert_text) }
                textarea id="send-text" name="text" required maxlength="2000" rows="3" {}
                button type="submit" { (t.send_alert_submit) }
            }
        }
        section aria-labelledby="subs-title" {
            h2 id="subs-title" { (t.subs_title) }
            @if subs.is_empty() { p { (t.subs_none) } }
            @else {
                ul class="plain" {
                    @for node in &subs {
                        li {
                            (node.strip_prefix("alerts/").unwrap_or(node))
                            " "
                            form method="post" action=(action(&s, "/alerts/unsubscribe")) class="inline" {
                                input type="hidden" name="node" value=(node);
                                button type="submit" class="secondary" { (t.subs_remove) }
                            }
                        }
                    }
                }
            }
            form method="post" action=(action(&s, "/alerts/subscribe")) class="stack narrow" {
                (series_fields(t, "sub"))
                button type="submit" { (t.subs_add) }
            }
        }
    };
    page(&app, &s, Section::Alerts, t.alerts_title, body).into_response()
}

/// Analysis and area inputs (ids prefixed per form).
fn series_fields(t: &Texts, prefix: &str) -> Markup {
    html! {
        label for=(format!("{prefix}-analysis")) { (t.search_analysis) }
        input id=(format!("{prefix}-analysis")) name="analysis" required maxlength="16" autocomplete="off";
        label for=(format!("{prefix}-area")) { (t.search_area) }
        input id=(format!("{prefix}-area")) name="area" required maxlength="4" inputmode="numeric"
            aria-describedby=(format!("{prefix}-area-help"));
        small id=(format!("{prefix}-area-help")) { (t.area_help) }
    }
}

/// The list alone, for the live update.
pub async fn list(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<WebSession>,
    Query(f): Query<Filter>,
) -> Response {
    let Some(live) = app.live() else { return StatusCode::NO_CONTENT.into_response() };
    list_markup(&live, s.lang.texts(), show_of(&f)).into_response()
}

fn find(live: &Live, id: &str) -> Option<Alert> {
    live.data().alerts.iter().find(|(_, a)| a.id == id && a.kind != AlertKind::Confirmation).map(|(_, a)| a.clone())
}

pub async fn detail(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<String>,
) -> Response {
    let Some(live) = app.live() else { return Redirect::to("/").into_response() };
    let t = s.lang.texts();
    let Some(a) = find(&live, &id) else {
        return (
            StatusCode::NOT_FOUND,
            page(&app, &s, Section::Alerts, t.alerts_title, notice("error", t.alert_not_found)),
        )
            .into_response();
    };
    let series = if a.kind == AlertKind::Signal { Some(series(&live, &a, t).await) } else { None };
    let (status, confirmations) = {
        let d = live.data();
        let c: Vec<Alert> = d
            .alerts
            .iter()
            .filter(|(_, c)| c.kind == AlertKind::Confirmation && c.confirms.as_deref() == Some(a.id.as_str()))
            .map(|(_, c)| c.clone())
            .collect();
        (live.status(&d, &a), c)
    };
    let title = format!("{}: {} {}, {} {}", kind_name(t, a.kind), a.analysis, a.area.code(), t.alert_week, a.week);
    let body = html! {
        (summary(t, &a))
        p class="meta" { (when(a.issued)) " · " (t.alert_from) " " (a.author) }
        @match &series {
            Some(Ok(chart)) => section aria-labelledby="series-title" { h2 id="series-title" { (t.alert_series) } figure { (chart) } },
            Some(Err(e)) => (notice("error", &format!("{}: {e}", t.search_failed))),
            None => {}
        }
        @if !confirmations.is_empty() {
            h2 { (t.alert_confirmed_by) }
            ul class="plain" {
                @for c in &confirmations {
                    li { (c.author) " · " (when(c.issued)) @if let Some(text) = &c.text { ": " (text) } }
                }
            }
        }
        @if status != Status::Confirmed && a.author != live.me {
            form method="post" action=(action(&s, &format!("/alerts/{}/confirm", a.id))) class="stack narrow" {
                label for="comment" { (t.alert_comment) }
                textarea id="comment" name="comment" maxlength="2000" rows="3" {}
                button type="submit" { (t.alert_confirm) }
            }
        }
        @if status != Status::Confirmed {
            form method="post" action=(action(&s, &format!("/alerts/{}/dismiss", a.id))) class="inline" {
                input type="hidden" name="dismissed" value=(if status == Status::Dismissed { "false" } else { "true" });
                button type="submit" class="secondary" {
                    @if status == Status::Dismissed { (t.alert_undismiss) } @else { (t.alert_dismiss) }
                }
            }
        }
    };
    page(&app, &s, Section::Alerts, &title, body).into_response()
}

/// The signal's series: the last weeks up to its week, asked of the agent
/// that holds it, with the threshold on its week.
async fn series(live: &Live, a: &Alert, t: &Texts) -> Result<Markup, String> {
    let agent = a.series.clone().ok_or_else(|| "no series".to_owned())?;
    let q = StatsQuery {
        analysis: a.analysis.clone(),
        period: Period::Weeks { from: a.week.minus(SERIES_WEEKS - 1), to: a.week },
        area: a.area.clone(),
        age_group: None,
        sex: None,
        granularity: Granularity::Week,
    };
    let answer = live.iq().search(&agent, &q, &live.identity, &live.target.ca_der).await.map_err(|e| e.to_string())?;
    let bars: Vec<Bar> = answer.buckets.iter().map(Bar::positive).collect();
    let week = a.week.to_string();
    let threshold =
        a.threshold.and_then(|v| bars.iter().position(|b| b.label == week).map(|bar| Threshold { bar, value: v }));
    let title = format!("{} {} {}", a.analysis, a.area.code(), a.week);
    Ok(chart::bars(&title, &bars, threshold, t))
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    comment: Option<String>,
}

pub async fn confirm(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<String>,
    Form(f): Form<ConfirmForm>,
) -> Response {
    let Some(live) = app.live() else { return Redirect::to("/").into_response() };
    let t = s.lang.texts();
    let Some(original) = find(&live, &id) else { return Redirect::to("/alerts").into_response() };
    let comment = f.comment.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
    if let Err(e) = alert::check_text(comment.as_deref()) {
        return error_page(&app, &s, &e.to_string());
    }
    let c = alert::confirmation(&original, &live.me, comment, now());
    let me = live.me.clone();
    let also = [me.as_str(), original.author.as_str()];
    match alert::publish(&live.iq(), &live.service, &c, &also, &live.identity, &live.target.ca_der).await {
        Ok(p) if !p.id.is_empty() => {
            live.reload_alerts().await;
            Redirect::to(&format!("/alerts/{}", original.id)).into_response()
        }
        Ok(_) => error_page(&app, &s, t.alert_nobody),
        Err(e) => error_page(&app, &s, &e.to_string()),
    }
}

fn error_page(app: &AppState, s: &WebSession, text: &str) -> Response {
    let t = s.lang.texts();
    (StatusCode::BAD_REQUEST, page(app, s, Section::Alerts, t.alerts_title, notice("error", text))).into_response()
}

#[derive(Deserialize)]
pub struct DismissForm {
    dismissed: String,
}

pub async fn dismiss(State(app): State<Arc<AppState>>, Path(id): Path<String>, Form(f): Form<DismissForm>) -> Response {
    if snow_core::alert::valid_id(&id) {
        app.dismiss(&id, f.dismissed == "true");
        if let Some(live) = app.live() {
            live.tell("alert", None);
        }
    }
    Redirect::to("/alerts").into_response()
}

#[derive(Deserialize)]
pub struct SeriesForm {
    analysis: Option<String>,
    area: Option<String>,
    text: Option<String>,
    node: Option<String>,
}

impl SeriesForm {
    /// The analysis and area typed, read as `snow alert` reads them.
    fn series(&self) -> Result<(String, Area), snow_core::stats::StatsError> {
        alert::series_of(self.analysis.as_deref().unwrap_or_default(), self.area.as_deref().unwrap_or_default())
    }
}

pub async fn send(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<WebSession>,
    Form(f): Form<SeriesForm>,
) -> Response {
    let Some(live) = app.live() else { return Redirect::to("/").into_response() };
    let (analysis, area) = match f.series() {
        Ok(x) => x,
        Err(e) => return error_page(&app, &s, &e.to_string()),
    };
    let text = f.text.unwrap_or_default().trim().to_owned();
    if let Err(e) = alert::check_text(Some(&text)) {
        return error_page(&app, &s, &e.to_string());
    }
    let a = alert::gp_alert(analysis, area, text, &live.me, now());
    let me = live.me.clone();
    match alert::publish(&live.iq(), &live.service, &a, &[&me], &live.identity, &live.target.ca_der).await {
        Ok(p) => {
            live.reload_alerts().await;
            let others = p.recipients.iter().filter(|j| **j != me).count();
            Redirect::to(&format!("/alerts?sent={others}")).into_response()
        }
        Err(e) => error_page(&app, &s, &e.to_string()),
    }
}

pub async fn subscribe(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<WebSession>,
    Form(f): Form<SeriesForm>,
) -> Response {
    let Some(live) = app.live() else { return Redirect::to("/").into_response() };
    let (analysis, area) = match f.series() {
        Ok(x) => x,
        Err(e) => return error_page(&app, &s, &e.to_string()),
    };
    for node in alert::subscription_nodes(&analysis, &area) {
        let r = live.iq().request(alert::subscribe_iq(&live.service, &node, &live.me)).await;
        if let Err(e) = r
            .map_err(|e| e.to_string())
            .and_then(|r| alert::read_subscriptions(&live.service, &r, "jid").map_err(|e| e.to_string()))
        {
            return error_page(&app, &s, &e);
        }
    }
    live.reload_alerts().await;
    Redirect::to("/alerts").into_response()
}

pub async fn unsubscribe(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<WebSession>,
    Form(f): Form<SeriesForm>,
) -> Response {
    let Some(live) = app.live() else { return Redirect::to("/").into_response() };
    let Some(node) = f.node.filter(|n| Alert::parse_node(n).is_some()) else {
        return error_page(&app, &s, "node");
    };
    if let Err(e) = live.iq().request(alert::unsubscribe_iq(&live.service, &node, &live.me)).await {
        return error_page(&app, &s, &e.to_string());
    }
    live.reload_alerts().await;
    Redirect::to("/alerts").into_response()
}
