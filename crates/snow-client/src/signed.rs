//! Signed payloads: who wrote a message, for whom, what kind, and when
//! (issue 20, docs/architecture.md §6).
//!
//! End-to-end encryption hides a payload but says nothing of its author:
//! anyone who can reach the recipient can encrypt to it. So every
//! end-to-end payload is signed first, then encrypted: the signed element
//! binds the content to its context, and the receiver checks that context
//! against the stanza it came in before anything is shown.
//!
//! ```xml
//! <signed xmlns='urn:snow:signed:1' kind='chat' from='BARE-JID'
//!         ts='UNIX-SECONDS' nonce='32-HEX'
//!         [answers='REQUEST-ID' request-digest='64-HEX']>
//!   <to jid='BARE-JID'/>…
//!   <content>…the payload: text, or a Snow element…</content>
//!   <ds:Signature>…enveloped, exclusive c14n, RSA-SHA256, the signer's
//!   certificate in KeyInfo (snow_crypto::xmldsig)…</ds:Signature>
//! </signed>
//! ```
//!
//! [`open`] checks, in order: the shape; the signature (the content and
//! context unchanged); the kind; that the signer is the stanza's sender
//! (`from`, and the certificate's xmppAddr); that we are one of the stated
//! recipients; for an answer, that it answers our request (its id and the
//! digest of the signed request); the time (not older than the kind's
//! maximum age, not ahead of our clock); and last the nonce, taken once
//! ([`NonceCache`], kept across restarts). What it cannot check alone is
//! whether the signer's certificate is the valid one the key directory
//! lists for `from` (chain, revocation): the caller compares
//! [`Opened::signer_cert`] with the directory's answer, as when it
//! encrypts.

use snow_core::nonce_cache::{NonceCache, NonceError};
use snow_crypto::xmldsig::{self, DsigError};
use snow_crypto::{CertInfo, Identity};
use snow_xml::{Element, Node};

pub const NS_SIGNED: &str = "urn:snow:signed:1";
/// Stated recipients at most (an alert to a node's subscribers).
pub const MAX_RECIPIENTS: usize = 1024;

/// What a signed payload is; each kind is accepted only where it belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    SearchRequest,
    SearchAnswer,
    Alert,
    Confirmation,
    GpAlert,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::SearchRequest => "search-request",
            Kind::SearchAnswer => "search-answer",
            Kind::Alert => "alert",
            Kind::Confirmation => "confirmation",
            Kind::GpAlert => "gp-alert",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        [Kind::Chat, Kind::SearchRequest, Kind::SearchAnswer, Kind::Alert, Kind::Confirmation, Kind::GpAlert]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// How old a payload of this kind may be when it arrives: a chat may
    /// wait in offline storage (up to its retention); a search is
    /// answered while the GP waits. An alert, a confirmation or a GP's
    /// alert stays on its pubsub node (kept by count, not by age) and is
    /// read again at every listing, long after it was signed: a GP looks
    /// back over a season and compares it with the same weeks a year
    /// before, so 400 days (a year and a month of slack). An older one is
    /// no longer shown (its nonce has left the cache, so only its age
    /// keeps a copy of it out).
    pub fn max_age_secs(self) -> i64 {
        match self {
            Kind::SearchRequest | Kind::SearchAnswer => 10 * 60,
            Kind::Chat => 60 * 24 * 3600,
            Kind::Alert | Kind::Confirmation | Kind::GpAlert => 400 * 24 * 3600,
        }
    }
}

/// The request an answer answers: its stanza id and the digest of its
/// signed element ([`Opened::digest`] at the agent, [`digest`] at the GP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRef {
    pub id: String,
    pub digest: String,
}

/// Why a payload was not taken as genuine; shown to the user as
/// "unverified message dropped: {reason}".
#[derive(Debug, thiserror::Error)]
pub enum Unverified {
    #[error("it is not signed")]
    NotSigned,
    #[error("the signed wrapper is malformed: {0}")]
    Malformed(String),
    #[error("the signature does not hold: {0}")]
    Signature(#[from] DsigError),
    #[error("it is a {found}, where a {expected} was expected")]
    WrongKind { expected: &'static str, found: String },
    #[error("it was signed as {claimed}, but came from {sender}")]
    NotFromSender { claimed: String, sender: String },
    #[error("the signer's certificate is not {0}'s")]
    CertificateNotSigners(String),
    #[error("it is not addressed to {0}")]
    NotForUs(String),
    #[error("it does not answer our request")]
    WrongRequest,
    #[error("its time: {0}")]
    Time(NonceError),
    #[error("it was received before (a replay)")]
    Replayed,
    #[error("it cannot be recorded as received: {0}")]
    Unrecorded(NonceError),
    /// The signer's certificate verified, but the key directory lists
    /// another valid one for the sender (a second certificate with their
    /// address, from another CA or a replaced key).
    #[error("the signer's certificate is not the one the key directory lists for {0}")]
    NotDirectorys(String),
    #[error("{0}'s certificate has been revoked")]
    Revoked(String),
    #[error("{0} is not in the key directory")]
    NotInDirectory(String),
    /// An alert whose signed content does not agree with the pubsub item
    /// it came in (its clear kind, publisher, node or id).
    #[error("it does not match its item: {0}")]
    NotItsItem(String),
    /// The signer may not sign this kind: a signal only a lab's detection
    /// agent, a GP's alert or confirmation only a GP.
    #[error("{signer} may not sign a {kind}: {why}")]
    WrongSigner { signer: String, kind: &'static str, why: &'static str },
    /// The directory could not be asked, or its certificate did not pass
    /// our checks: nothing proves the signer's certificate is valid.
    #[error("the key directory's certificate for {jid} cannot be checked: {why}")]
    Directory { jid: String, why: String },
}

/// A payload whose signature and context held.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The signer: the sender's bare JID.
    pub from: String,
    pub to: Vec<String>,
    pub ts: i64,
    /// The `<content>` element: its text or children are the payload.
    pub content: Element,
    /// The signer's certificate (DER): compare it with the key directory's.
    pub signer_cert: Vec<u8>,
    /// The digest of the whole signed element, for an answer to name it.
    pub digest: String,
}

/// What the receiver expects of a payload.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub kind: Kind,
    /// Who must have signed it: the stanza's sender (bare JID), or for a
    /// lab's alert the detection agent configured for that lab.
    pub sender: &'a str,
    /// Our bare JID: it must be among the recipients.
    pub me: &'a str,
    /// For an answer: the request it must answer.
    pub answers: Option<&'a RequestRef>,
}

/// Signs `content` (the children of `<content>`) as `kind` from the
/// identity's JID to `to`, answering `answers` if given, at `now` (Unix
/// seconds). The result goes inside the encryption.
pub fn sign(
    kind: Kind,
    content: Vec<Node>,
    to: &[&str],
    answers: Option<&RequestRef>,
    identity: &Identity,
    now: i64,
) -> Result<Element, SignError> {
    let from = CertInfo::from_der(identity.certificate())
        .ok()
        .and_then(|c| c.jid().map(str::to_owned))
        .ok_or(SignError::NoJid)?;
    if to.is_empty() || to.len() > MAX_RECIPIENTS {
        return Err(SignError::Recipients(to.len()));
    }
    let nonce = snow_crypto::one_time_password::random_hex(16).map_err(|e| SignError::Random(e.to_string()))?;
    let mut el = Element::new(NS_SIGNED, "signed")
        .with_attr("kind", kind.as_str())
        .with_attr("from", from)
        .with_attr("ts", now.to_string())
        .with_attr("nonce", nonce);
    if let Some(r) = answers {
        el.set_attr("answers", r.id.clone());
        el.set_attr("request-digest", r.digest.clone());
    }
    for jid in to {
        el.push_child(Element::new(NS_SIGNED, "to").with_attr("jid", bare(jid)));
    }
    let mut c = Element::new(NS_SIGNED, "content");
    for n in content {
        match n {
            Node::Element(e) => c.push_child(e),
            Node::Text(t) => c.push_text(t),
        }
    }
    el.push_child(c);
    Ok(xmldsig::sign_enveloped(&el, identity)?)
}

/// Why a payload could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("our certificate names no JID")]
    NoJid,
    #[error("a signed payload states 1 to {MAX_RECIPIENTS} recipients, not {0}")]
    Recipients(usize),
    #[error("no random nonce: {0}")]
    Random(String),
    #[error(transparent)]
    Signature(#[from] DsigError),
}

/// The digest of a signed element: what an answer names its request by.
pub fn digest(signed: &Element) -> String {
    snow_crypto::cert::sha256_hex(snow_xml::c14n::exclusive(signed).as_bytes())
}

/// Checks a signed payload against what the receiver expects (module doc)
/// and takes its nonce; `now` in Unix seconds.
pub fn open(signed: &Element, expect: &Expect<'_>, nonces: &mut NonceCache, now: i64) -> Result<Opened, Unverified> {
    let (opened, nonce) = verify(signed, expect, now)?;
    take_nonce(&opened.from, &nonce, opened.ts, None, nonces, now)?;
    Ok(opened)
}

/// [`open`] for a payload kept where it arrived and read there again (an
/// alert on its pubsub node, listed at every login): its nonce is taken
/// for `holder` (a token naming that place, see
/// `snow_core::nonce_cache`), so reading it there again is no replay,
/// while the same signed payload found anywhere else is. `accept` checks
/// the opened payload against the place first: one that does not belong
/// there takes no nonce, so a misplaced copy cannot use up the genuine
/// one's.
pub fn open_held<T>(
    signed: &Element,
    expect: &Expect<'_>,
    holder: &str,
    nonces: &mut NonceCache,
    now: i64,
    accept: impl FnOnce(&Opened) -> Result<T, Unverified>,
) -> Result<(Opened, T), Unverified> {
    let (opened, nonce) = verify(signed, expect, now)?;
    let accepted = accept(&opened)?;
    take_nonce(&opened.from, &nonce, opened.ts, Some(holder), nonces, now)?;
    Ok((opened, accepted))
}

/// Takes the nonce of a verified payload, its errors in the receiver's
/// words.
fn take_nonce(
    from: &str,
    nonce: &str,
    ts: i64,
    holder: Option<&str>,
    nonces: &mut NonceCache,
    now: i64,
) -> Result<(), Unverified> {
    match nonces.take_for(&from.to_ascii_lowercase(), nonce, ts, now, holder) {
        Ok(()) => Ok(()),
        Err(NonceError::Replayed) => Err(Unverified::Replayed),
        Err(e @ NonceError::OutsideWindow { .. }) | Err(e @ NonceError::Malformed(..)) => Err(Unverified::Time(e)),
        Err(e) => Err(Unverified::Unrecorded(e)),
    }
}

/// Checks a signed answer to `request` from `sender` to `me` (module
/// doc), without a nonce cache: the answer names the digest of our signed
/// request, which holds a fresh random nonce of ours, so an answer to any
/// earlier request, replayed, can never match; and the request's own
/// reply is taken once ([`crate::IqClient::request`]).
pub fn open_answer(
    signed: &Element,
    sender: &str,
    me: &str,
    request: &RequestRef,
    now: i64,
) -> Result<Opened, Unverified> {
    let expect = Expect { kind: Kind::SearchAnswer, sender, me, answers: Some(request) };
    let (opened, _nonce) = verify(signed, &expect, now)?;
    let max_age_secs = Kind::SearchAnswer.max_age_secs();
    if opened.ts > now.saturating_add(snow_core::nonce_cache::MAX_SKEW_SECS) {
        return Err(Unverified::Time(NonceError::OutsideWindow { ts: opened.ts, now, max_age_secs }));
    }
    Ok(opened)
}

/// Every check of [`open`] but the nonce: the opened payload and its
/// nonce, to take once the receiver accepts it.
fn verify(signed: &Element, expect: &Expect<'_>, now: i64) -> Result<(Opened, String), Unverified> {
    if !signed.is(NS_SIGNED, "signed") {
        return Err(Unverified::NotSigned);
    }
    let malformed = |m: &str| Unverified::Malformed(m.to_owned());
    let verified = xmldsig::verify_enveloped(signed)?;
    let el = &verified.content;
    let attr = |name: &str| el.attr(name).ok_or_else(|| malformed(&format!("no {name}")));
    let found = attr("kind")?;
    if Kind::parse(found) != Some(expect.kind) {
        return Err(Unverified::WrongKind { expected: expect.kind.as_str(), found: found.chars().take(32).collect() });
    }
    let from = attr("from")?.to_owned();
    if !from.eq_ignore_ascii_case(bare(expect.sender)) {
        return Err(Unverified::NotFromSender {
            claimed: from.chars().take(256).collect(),
            sender: bare(expect.sender).to_owned(),
        });
    }
    let cert_jid = CertInfo::from_der(&verified.signer).ok().and_then(|c| c.jid().map(str::to_owned));
    if !cert_jid.is_some_and(|j| j.eq_ignore_ascii_case(&from)) {
        return Err(Unverified::CertificateNotSigners(from));
    }
    let mut to = Vec::new();
    let mut content = None;
    for child in el.children() {
        match (child.ns(), child.name()) {
            (NS_SIGNED, "to") if to.len() < MAX_RECIPIENTS => {
                to.push(child.attr("jid").ok_or_else(|| malformed("a <to/> without jid"))?.to_owned())
            }
            (NS_SIGNED, "to") => return Err(malformed("too many recipients")),
            (NS_SIGNED, "content") if content.is_none() => content = Some(child.clone()),
            _ => return Err(malformed("an unexpected element")),
        }
    }
    let content = content.ok_or_else(|| malformed("no <content>"))?;
    if !to.iter().any(|j| j.eq_ignore_ascii_case(bare(expect.me))) {
        return Err(Unverified::NotForUs(bare(expect.me).to_owned()));
    }
    if let Some(r) = expect.answers {
        if el.attr("answers") != Some(r.id.as_str()) || el.attr("request-digest") != Some(r.digest.as_str()) {
            return Err(Unverified::WrongRequest);
        }
    }
    let ts: i64 = attr("ts")?.parse().map_err(|_| malformed("ts is not a number"))?;
    let nonce = attr("nonce")?.to_owned();
    if ts < now.saturating_sub(expect.kind.max_age_secs()) {
        return Err(Unverified::Time(NonceError::OutsideWindow { ts, now, max_age_secs: expect.kind.max_age_secs() }));
    }
    Ok((Opened { from, to, ts, content, signer_cert: verified.signer, digest: digest(signed) }, nonce))
}

/// The one `<signed>` element a decrypted payload holds (whitespace
/// around it allowed); `None` for anything else (an unsigned text, a
/// second element beside it).
pub fn only_signed(payload: &Element) -> Option<&Element> {
    let mut found = None;
    for n in payload.nodes() {
        match n {
            Node::Text(t) if t.trim().is_empty() => {}
            Node::Element(e) if found.is_none() && e.is(NS_SIGNED, "signed") => found = Some(e),
            _ => return None,
        }
    }
    found
}

fn bare(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}
