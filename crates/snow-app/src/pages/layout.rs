//! The frame of every page: language, title, the navigation with its
//! badges, the connection state, and the live region that announces new
//! alerts to a screen reader.

use maud::{html, Markup, DOCTYPE};

use crate::guard::WebSession;
use crate::texts::{Lang, Texts};
use crate::AppState;

/// Which section a page belongs to (its tab is marked current).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Search,
    Alerts,
    Chat,
    Start,
}

impl Section {
    /// Where the section starts (where a language change returns to).
    pub fn path(self) -> &'static str {
        match self {
            Section::Search => "/search",
            Section::Alerts => "/alerts",
            Section::Chat => "/chat",
            Section::Start => "/",
        }
    }

    fn code(self) -> &'static str {
        match self {
            Section::Search => "search",
            Section::Alerts => "alerts",
            Section::Chat => "chat",
            Section::Start => "start",
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        (DOCTYPE)
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " – Snow" }
            link rel="stylesheet" href="/assets/app.css";
            script src="/assets/app.js" defer {}
        }
    }
}

/// A page with no session (refusals): title and one sentence.
pub fn bare(lang: Lang, title: &str, text: &str) -> Markup {
    html! {
        html lang=(lang.code()) {
            (head(title))
            body {
                main id="main" class="narrow" {
                    h1 { (title) }
                    p { (text) }
                }
            }
        }
    }
}

/// A form action with the session's CSRF token.
pub fn action(s: &WebSession, path: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}csrf={}", s.csrf)
}

/// A page of the app, with its navigation when the GP is logged in.
pub fn page(app: &AppState, s: &WebSession, section: Section, title: &str, body: Markup) -> Markup {
    let t: &Texts = s.lang.texts();
    let live = app.live();
    let (new_alerts, unread) = match &live {
        Some(l) => {
            let d = l.data();
            (l.new_alerts(&d), d.conversations.values().map(|c| c.unread).sum::<usize>())
        }
        None => (0, 0),
    };
    let other = match s.lang {
        Lang::Nb => Lang::En,
        Lang::En => Lang::Nb,
    };
    html! {
        html lang=(s.lang.code()) {
            (head(title))
            body data-page=(section.code()) {
                a class="skip" href="#main" { (t.skip) }
                header class="top" {
                    span class="brand" { "Snow" }
                    @if let Some(l) = &live {
                        nav aria-label="Snow" {
                            ul {
                                li { a href="/search" aria-current=[(section == Section::Search).then_some("page")] { (t.nav_search) } }
                                li {
                                    a href="/alerts" aria-current=[(section == Section::Alerts).then_some("page")] {
                                        (t.nav_alerts)
                                        " "
                                        span id="badge-alerts" class="badge" hidden[new_alerts == 0] { (new_alerts) }
                                    }
                                }
                                li {
                                    a href="/chat" aria-current=[(section == Section::Chat).then_some("page")] {
                                        (t.nav_chat)
                                        " "
                                        span id="badge-chat" class="badge" hidden[unread == 0] { (unread) }
                                    }
                                }
                            }
                        }
                        span id="conn" class=(if l.online() { "conn online" } else { "conn offline" })
                            data-online=(t.online_as) data-offline=(t.offline) {
                            @if l.online() { (t.online_as) " " (l.me) } @else { (t.offline) }
                        }
                        form method="post" action=(action(s, "/lock")) class="inline" {
                            button type="submit" class="secondary" { (t.lock) }
                        }
                    }
                    form method="post" action=(action(s, "/lang")) class="inline" {
                        input type="hidden" name="lang" value=(other.code());
                        input type="hidden" name="back" value=(section.path());
                        button type="submit" class="secondary" lang=(other.code()) { (t.other_lang) }
                    }
                }
                div id="live" class="visually-hidden" aria-live="polite" data-new-alert=(t.new_alert_live) {}
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// An error or notice box.
pub fn notice(kind: &str, text: &str) -> Markup {
    html! {
        p class=(format!("notice {kind}")) role=(if kind == "error" { "alert" } else { "status" }) { (text) }
    }
}

/// A time as the GP reads it (UTC, minutes).
pub fn when(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC")).ok())
        .unwrap_or_default()
}
