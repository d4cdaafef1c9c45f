//! Getting in: the one-time link, the first run (importing the key the
//! administrator sent), unlocking, locking, the language, and the stream
//! of live events every page listens to.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Multipart, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use futures_util::Stream;
use maud::{html, Markup};
use serde::Deserialize;
use snow_client::keys::{self, KeyFileError, LoginTarget};
use snow_crypto::{FileKeyStore, KeyStore};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;
use zeroize::Zeroizing;

use super::layout::{action, notice, page, Section};
use crate::guard::WebSession;
use crate::live::Live;
use crate::texts::Lang;
use crate::AppState;

/// Where the GP goes: the first run, unlocking, or the alerts.
pub async fn home(State(app): State<Arc<AppState>>) -> Redirect {
    if app.live().is_some() {
        Redirect::to("/alerts")
    } else if store(&app).exists() {
        Redirect::to("/unlock")
    } else {
        Redirect::to("/setup")
    }
}

fn store(app: &AppState) -> FileKeyStore {
    FileKeyStore::new(&app.opts.keystore)
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// The one-time link: a session cookie, once.
pub async fn exchange(State(app): State<Arc<AppState>>, Query(q): Query<TokenQuery>) -> Response {
    let Some(session) = q.token.as_deref().and_then(|t| app.guard.exchange(t)) else {
        let lang = app.opts.lang;
        let t = lang.texts();
        return (StatusCode::FORBIDDEN, super::layout::bare(lang, t.denied_title, t.denied_text)).into_response();
    };
    let cookie = format!("{}={}; HttpOnly; SameSite=Strict; Path=/", app.guard.cookie_name(), session.id);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

pub async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("../../assets/app.css"))
}

pub async fn js() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("../../assets/app.js"))
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// The first-run page.
pub async fn setup_page(State(app): State<Arc<AppState>>, Extension(s): Extension<WebSession>) -> Response {
    if store(&app).exists() {
        return Redirect::to("/").into_response();
    }
    setup_form(&app, &s, None).into_response()
}

fn setup_form(app: &AppState, s: &WebSession, error: Option<&str>) -> Markup {
    let t = s.lang.texts();
    let min = app.opts.min_passphrase_length;
    page(
        app,
        s,
        Section::Start,
        t.setup_title,
        html! {
            p { (t.setup_intro) }
            @if let Some(e) = error { (notice("error", e)) }
            form method="post" action=(action(s, "/setup")) enctype="multipart/form-data" class="stack narrow" {
                label for="file" { (t.setup_file) }
                input id="file" name="file" type="file" accept=".p12,.pfx,application/x-pkcs12" required
                    aria-describedby="file-help";
                small id="file-help" { (t.setup_file_help) }
                label for="password" { (t.setup_password) }
                input id="password" name="password" type="password" autocomplete="off" required
                    aria-describedby="password-help";
                small id="password-help" { (t.setup_password_help) }
                label for="passphrase" { (t.passphrase_new) }
                input id="passphrase" name="passphrase" type="password" autocomplete="new-password" required
                    minlength=(min) aria-describedby="passphrase-help";
                small id="passphrase-help" { (t.passphrase_new_help.replace("{min}", &min.to_string())) }
                label for="passphrase2" { (t.passphrase_again) }
                input id="passphrase2" name="passphrase2" type="password" autocomplete="new-password" required;
                button type="submit" { (t.setup_submit) }
            }
        },
    )
}

/// The first run: the same checks as `snow key import`, then log in.
pub async fn setup(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<WebSession>,
    mut form: Multipart,
) -> Response {
    let t = s.lang.texts();
    let _one = app.unlocking.lock().await;
    if store(&app).exists() {
        return Redirect::to("/").into_response();
    }
    let mut file: Option<Vec<u8>> = None;
    let mut password = Zeroizing::new(String::new());
    let mut pass = Zeroizing::new(String::new());
    let mut pass2 = Zeroizing::new(String::new());
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return (StatusCode::BAD_REQUEST, setup_form(&app, &s, Some(&e.body_text()))).into_response(),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let Ok(bytes) = field.bytes().await else {
            return (StatusCode::BAD_REQUEST, setup_form(&app, &s, Some(t.setup_no_file))).into_response();
        };
        match name.as_str() {
            "file" => file = Some(bytes.to_vec()),
            "password" => *password = String::from_utf8_lossy(&bytes).trim().to_owned(),
            "passphrase" => *pass = String::from_utf8_lossy(&bytes).into_owned(),
            "passphrase2" => *pass2 = String::from_utf8_lossy(&bytes).into_owned(),
            _ => {}
        }
    }
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        return (StatusCode::BAD_REQUEST, setup_form(&app, &s, Some(t.setup_no_file))).into_response();
    };
    let checked = (|| {
        if *pass != *pass2 {
            return Err(KeyFileError::PassphrasesDiffer);
        }
        keys::check_new_passphrase(&pass, app.opts.min_passphrase_length)
    })();
    if let Err(e) = checked {
        return (StatusCode::BAD_REQUEST, setup_form(&app, &s, Some(&e.to_string()))).into_response();
    }
    let dir = app.opts.keystore.clone();
    let pass_for_store = pass.clone();
    // PKCS#12 key derivation and the key store's encryption take a while.
    let imported = tokio::task::spawn_blocking(move || {
        let identity = keys::open_key_file(&file, None, &password, "the key file")?;
        FileKeyStore::new(dir).save(&identity, &pass_for_store, false)?;
        Ok::<_, KeyFileError>(identity)
    })
    .await;
    let identity = match imported {
        Ok(Ok(i)) => i,
        Ok(Err(e)) => return (StatusCode::BAD_REQUEST, setup_form(&app, &s, Some(&e.to_string()))).into_response(),
        Err(e) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, setup_form(&app, &s, Some(&e.to_string()))).into_response()
        }
    };
    tracing::info!(keystore = %app.opts.keystore.display(), "the key was imported");
    match go_online(&app, identity).await {
        Ok(()) => Redirect::to("/").into_response(),
        // The key is in the store now: unlocking again is the way on.
        Err(e) => (StatusCode::BAD_GATEWAY, unlock_form(&app, &s, Some(&e))).into_response(),
    }
}

/// Logs in with an unlocked key.
async fn go_online(app: &AppState, identity: snow_crypto::Identity) -> Result<(), String> {
    let target = LoginTarget::of(identity.chain()).map_err(|e| e.to_string())?;
    let live = Live::start(&app.opts, identity, target, Arc::clone(&app.dismissed), app.events.clone())
        .await
        .map_err(|e| e.to_string())?;
    app.set_live(Some(live));
    Ok(())
}

pub async fn unlock_page(State(app): State<Arc<AppState>>, Extension(s): Extension<WebSession>) -> Response {
    if app.live().is_some() {
        return Redirect::to("/").into_response();
    }
    if !store(&app).exists() {
        return Redirect::to("/setup").into_response();
    }
    unlock_form(&app, &s, None).into_response()
}

fn unlock_form(app: &AppState, s: &WebSession, error: Option<&str>) -> Markup {
    let t = s.lang.texts();
    page(
        app,
        s,
        Section::Start,
        t.unlock_title,
        html! {
            p { (t.unlock_intro) }
            @if let Some(e) = error { (notice("error", e)) }
            form method="post" action=(action(s, "/unlock")) class="stack narrow" {
                label for="passphrase" { (t.passphrase) }
                input id="passphrase" name="passphrase" type="password" autocomplete="current-password" required autofocus;
                button type="submit" { (t.unlock_submit) }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct UnlockForm {
    passphrase: String,
}

pub async fn unlock(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<WebSession>,
    Form(f): Form<UnlockForm>,
) -> Response {
    let t = s.lang.texts();
    let pass = Zeroizing::new(f.passphrase);
    let _one = app.unlocking.lock().await;
    if app.live().is_some() {
        return Redirect::to("/").into_response();
    }
    let dir = app.opts.keystore.clone();
    let unlocked = tokio::task::spawn_blocking(move || FileKeyStore::new(dir).unlock(&pass)).await;
    let identity = match unlocked {
        Ok(Ok(i)) => i,
        Ok(Err(snow_crypto::CryptoError::WrongPassphrase(_))) => {
            return (StatusCode::UNAUTHORIZED, unlock_form(&app, &s, Some(t.wrong_passphrase))).into_response()
        }
        Ok(Err(e)) => return (StatusCode::BAD_REQUEST, unlock_form(&app, &s, Some(&e.to_string()))).into_response(),
        Err(e) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, unlock_form(&app, &s, Some(&e.to_string()))).into_response()
        }
    };
    match go_online(&app, identity).await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => {
            let text = format!("{}: {e}", t.cannot_connect);
            (StatusCode::BAD_GATEWAY, unlock_form(&app, &s, Some(&text))).into_response()
        }
    }
}

/// Logs out and forgets the unlocked key.
pub async fn lock(State(app): State<Arc<AppState>>) -> Redirect {
    app.set_live(None);
    Redirect::to("/unlock")
}

#[derive(Deserialize)]
pub struct LangForm {
    lang: String,
    back: Option<String>,
}

pub async fn lang(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<WebSession>,
    Form(f): Form<LangForm>,
) -> Redirect {
    if let Some(l) = Lang::parse(&f.lang) {
        app.guard.set_lang(&s.id, l);
    }
    // Back to a section's start, never to a page given from outside.
    let back = f.back.as_deref().filter(|b| ["/search", "/alerts", "/chat"].contains(b)).unwrap_or("/");
    Redirect::to(back)
}

/// Server-sent events: what changed, for every open page.
pub async fn events(State(app): State<Arc<AppState>>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = BroadcastStream::new(app.events.subscribe()).filter_map(|e| {
        let e = e.ok()?;
        let data = serde_json::to_string(&e).ok()?;
        Some(Ok(SseEvent::default().event(e.kind).data(data)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
