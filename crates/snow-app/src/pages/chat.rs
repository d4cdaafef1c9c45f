//! Chat: contacts with presence, conversations, and one conversation.
//! Before the first message of a conversation leaves — one the GP starts,
//! or one someone else started and the GP answers — the GP confirms in a
//! dialog that it will hold nothing sensitive or classified. The page
//! opens the dialog; the server refuses to send until it was confirmed,
//! whatever the page does.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{html, Markup};
use serde::Deserialize;
use snow_core::BareJid;

use super::layout::{action, notice, page, when, Section};
use crate::guard::WebSession;
use crate::live::{now, Line, LineKind, Live};
use crate::texts::Texts;
use crate::AppState;

/// Longest chat message, in bytes (what a stanza carries comfortably).
const MAX_MESSAGE: usize = 10_000;

fn presence_of(live: &Live, jid: &str, t: &Texts) -> (&'static str, &'static str) {
    match live.data().presence.get(jid).map(String::as_str) {
        None => ("offline", t.presence_offline),
        Some("available" | "chat") => ("online", t.presence_online),
        Some(_) => ("away", t.presence_away),
    }
}

/// A JID from the URL or a form: a bare JID, normalised.
fn jid_of(s: &str) -> Option<String> {
    s.trim().parse::<BareJid>().ok().map(|j| j.to_string())
}

pub async fn index(State(app): State<Arc<AppState>>, Extension(s): Extension<WebSession>) -> Response {
    let Some(live) = app.live() else { return Redirect::to("/").into_response() };
    let t = s.lang.texts();
    let (contacts, asking, conversations) = {
        let d = live.data();
        let conv: Vec<(String, usize, Option<i64>)> =
            d.conversations.iter().map(|(k, c)| (k.clone(), c.unread, c.lines.back().map(|l| l.at))).collect();
        (d.contacts.clone(), d.asking.clone(), conv)
    };
    let body = html! {
        div class="columns" {
            section aria-labelledby="contacts-title" {
                h2 id="contacts-title" { (t.contacts) }
                div id="contacts" {
                @if contacts.is_empty() { p { (t.contacts_none) } }
                @else {
                    ul class="plain contacts" {
                        @for c in &contacts {
                            @let (class, word) = presence_of(&live, &c.jid, t);
                            li {
                                span class=(format!("dot {class}")) aria-hidden="true" {}
                                a href=(format!("/chat/with/{}", c.jid)) { (c.name.as_deref().unwrap_or(&c.jid)) }
                                " "
                                span class="presence" { "(" (word) ")" }
                            }
                        }
                    }
                }
                }
                @for j in &asking {
                    form method="post" action=(action(&s, "/chat/approve")) class="inline" {
                        (j) " " (t.contact_asks) " "
                        input type="hidden" name="jid" value=(j);
                        button type="submit" { (t.contact_approve) }
                    }
                }
                form method="post" action=(action(&s, "/chat/contacts")) class="stack narrow" {
                    label for="jid" { (t.contact_jid) }
                    input id="jid" name="jid" required maxlength="300" autocomplete="off";
                    button type="submit" { (t.contact_add) }
                }
            }
            section aria-labelledby="conv-title" {
                h2 id="conv-title" { (t.conversations) }
                @if conversations.is_empty() { p { (t.conversations_none) } }
                @else {
                    ul class="plain" {
                        @for (jid, unread, last) in &conversations {
                            li {
                                a href=(format!("/chat/with/{jid}")) { (jid) }
                                @if *unread > 0 { " " span class="badge" { (unread) } }
                                @if let Some(at) = last { " " span class="meta" { (when(*at)) } }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&app, &s, Section::Chat, t.chat_title, body).into_response()
}

fn lines_markup(live: &Live, t: &Texts, with: &str) -> Markup {
    let d = live.data();
    let lines: Vec<Line> = d.conversations.get(with).map(|c| c.lines.iter().cloned().collect()).unwrap_or_default();
    html! {
        ol id="lines" class="lines" aria-live="polite" {
            @for l in &lines {
                li class=(if l.mine { "mine" } else { "theirs" }) {
                    span class="who" { @if l.mine { (t.you) } @else { (with) } }
                    " "
                    span class="meta" { (when(l.at)) }
                    @match l.kind {
                        // Received: signed by the sender, checked
                        // against the key directory (open_chat).
                        LineKind::Encrypted if !l.mine => {
                            " " span class="verified" title=(with) { "✓ " (t.verified_sender) }
                        }
                        LineKind::Encrypted => {}
                        LineKind::Clear => { " " span class="warn" { "[" (t.not_encrypted) "]" } }
                        LineKind::Unreadable => { " " span class="warn" { "[" (t.unreadable) "]" } }
                        LineKind::Failed => { " " span class="warn" { "[" (t.not_delivered) "]" } }
                        LineKind::Unverified => {}
                    }
                    @if l.kind == LineKind::Unverified {
                        p class="warn" { (t.unverified_dropped) ": " (l.text) }
                    } @else {
                        p { (l.text) }
                    }
                }
            }
        }
    }
}

/// Reading a conversation marks it read.
fn mark_read(live: &Live, with: &str) {
    let changed = {
        let mut d = live.data();
        match d.conversations.get_mut(with) {
            Some(c) if c.unread > 0 => {
                c.unread = 0;
                true
            }
            _ => false,
        }
    };
    if changed {
        live.tell("message", None);
    }
}

pub async fn conversation(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<WebSession>,
    Path(jid): Path<String>,
) -> Response {
    let Some(live) = app.live() else { return Redirect::to("/").into_response() };
    let t = s.lang.texts();
    let Some(with) = jid_of(&jid) else {
        return (StatusCode::BAD_REQUEST, page(&app, &s, Section::Chat, t.chat_title, notice("error", t.bad_jid)))
            .into_response();
    };
    mark_read(&live, &with);
    conversation_page(&app, &s, &live, &with, None).into_response()
}

fn conversation_page(app: &AppState, s: &WebSession, live: &Live, with: &str, error: Option<&str>) -> Markup {
    let t = s.lang.texts();
    let confirmed = live.data().conversations.get(with).is_some_and(|c| c.confirmed);
    let (class, word) = presence_of(live, with, t);
    let body = html! {
        p { span class=(format!("dot {class}")) aria-hidden="true" {} " " (word) }
        @if let Some(e) = error { (notice("error", e)) }
        div data-with=(with) id="conversation" { (lines_markup(live, t, with)) }
        @if !confirmed {
            dialog id="sensitivity" aria-labelledby="dialog-title" {
                form method="post" action=(action(s, &format!("/chat/with/{with}/confirm"))) class="stack" {
                    h2 id="dialog-title" { (t.dialog_title) }
                    p { (t.dialog_text) }
                    div class="actions" {
                        button type="submit" id="dialog-confirm" { (t.dialog_confirm) }
                        button type="button" id="dialog-cancel" class="secondary" { (t.dialog_cancel) }
                    }
                }
            }
            // Without script the dialog's form shows here.
            noscript { (notice("info", t.must_confirm)) }
        }
        form method="post" action=(action(s, &format!("/chat/with/{with}/send"))) class="stack" id="send-form"
            data-confirmed=(confirmed) {
            label for="text" { (t.message) }
            textarea id="text" name="text" required maxlength=(MAX_MESSAGE) rows="3" {}
            button type="submit" { (t.send) }
        }
    };
    page(app, s, Section::Chat, with, body)
}

/// The lines alone, for the live update.
pub async fn lines(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<WebSession>,
    Path(jid): Path<String>,
) -> Response {
    let (Some(live), Some(with)) = (app.live(), jid_of(&jid)) else { return StatusCode::NO_CONTENT.into_response() };
    mark_read(&live, &with);
    lines_markup(&live, s.lang.texts(), &with).into_response()
}

/// The GP confirmed the dialog for this conversation.
pub async fn confirm(State(app): State<Arc<AppState>>, Path(jid): Path<String>) -> Response {
    let (Some(live), Some(with)) = (app.live(), jid_of(&jid)) else { return StatusCode::BAD_REQUEST.into_response() };
    live.data().conversations.entry(with.clone()).or_default().confirmed = true;
    Redirect::to(&format!("/chat/with/{with}")).into_response()
}

#[derive(Deserialize)]
pub struct SendForm {
    text: String,
}

pub async fn send(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<WebSession>,
    Path(jid): Path<String>,
    Form(f): Form<SendForm>,
) -> Response {
    let Some(live) = app.live() else { return Redirect::to("/").into_response() };
    let t = s.lang.texts();
    let Some(with) = jid_of(&jid) else { return StatusCode::BAD_REQUEST.into_response() };
    let confirmed = live.data().conversations.get(&with).is_some_and(|c| c.confirmed);
    if !confirmed {
        // Nothing leaves before the dialog was confirmed.
        return (StatusCode::CONFLICT, conversation_page(&app, &s, &live, &with, Some(t.must_confirm))).into_response();
    }
    let text = f.text.trim().to_owned();
    if text.is_empty() {
        return Redirect::to(&format!("/chat/with/{with}")).into_response();
    }
    if text.len() > MAX_MESSAGE {
        return (StatusCode::BAD_REQUEST, conversation_page(&app, &s, &live, &with, Some(t.text_too_long)))
            .into_response();
    }
    match live.iq().send_encrypted_chat(&with, &text, &live.identity, &live.target.ca_der).await {
        Ok(()) => {
            live.add_line(&with, Line { mine: true, text, kind: LineKind::Encrypted, at: now() });
            Redirect::to(&format!("/chat/with/{with}")).into_response()
        }
        Err(e) => {
            (StatusCode::BAD_GATEWAY, conversation_page(&app, &s, &live, &with, Some(&e.to_string()))).into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct JidForm {
    jid: String,
}

pub async fn add_contact(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<WebSession>,
    Form(f): Form<JidForm>,
) -> Response {
    let Some(live) = app.live() else { return Redirect::to("/").into_response() };
    let t = s.lang.texts();
    let Some(jid) = jid_of(&f.jid).filter(|j| *j != live.me) else {
        return (StatusCode::BAD_REQUEST, page(&app, &s, Section::Chat, t.chat_title, notice("error", t.bad_jid)))
            .into_response();
    };
    if let Err(e) = live.iq().add_contact(&jid, None).await {
        return (StatusCode::BAD_GATEWAY, page(&app, &s, Section::Chat, t.chat_title, notice("error", &e.to_string())))
            .into_response();
    }
    live.reload().await;
    Redirect::to("/chat").into_response()
}

/// Lets someone who asked see our presence (and asks to see theirs).
pub async fn approve(State(app): State<Arc<AppState>>, Form(f): Form<JidForm>) -> Response {
    let (Some(live), Some(jid)) = (app.live(), jid_of(&f.jid)) else { return Redirect::to("/chat").into_response() };
    let _ = live.iq().send(snow_client::subscription(&jid, "subscribed")).await;
    let _ = live.iq().add_contact(&jid, None).await;
    live.data().asking.retain(|j| *j != jid);
    live.reload().await;
    Redirect::to("/chat").into_response()
}
