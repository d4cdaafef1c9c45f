//! Message authentication between components (docs/architecture.md §6, the second
//! seed document): every message carries its *source* and an *HMAC*; the
//! receiver verifies before anything else sees the message.
//!
//! One core, many carriers. The core signs
//!
//! ```text
//! "snow-msgauth/1" 0 carrier 0 source 0 kid 0 epoch 0 seq 0 ts 0 payload
//! ```
//!
//! (numbers in decimal), so a tag binds the message to its carrier, its
//! sender, the key, and its place in the sender's sequence. `epoch` is the
//! sender's start time: a restarted sender begins a new sequence, which
//! the receiver tells apart from lost messages. The receiver detects a
//! changed byte (the MAC), a replay (a sequence number it has seen, or one
//! from an older epoch), a stale message (timestamp outside the window),
//! and loss (a gap in the sequence, reported as an event with the missing
//! range). MACs are compared in constant time. What a receiver has seen
//! is kept across its restarts by [`replay::ReplayState`] (a file beside
//! the key file), so a message captured before a restart is still a
//! replay after it.
//!
//! HMAC-SHA256 is the default; HMAC-MD5 produces the seed's legacy
//! 24-character Base64 MAC.

pub mod http;
pub mod keys;
pub mod replay;
pub mod shim;
pub mod stanza;
pub mod text;
pub mod xml_message;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::Engine;
pub use keys::{Algorithm, Key, KeyStore, Mac};
pub use replay::{state_path, ReplayState, ReplayStateError};

/// How many sequence numbers below the newest are remembered, so a late
/// message is accepted once and a replay is refused.
pub const REPLAY_WINDOW: u64 = 64;
/// Default tolerance for the sender's clock, in seconds.
pub const DEFAULT_WINDOW_SECS: i64 = 300;

/// Which carrier a tag travels in: part of what is signed, so a tag cannot
/// be moved from one kind of message to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    Stanza,
    Shim,
    Xml,
    Text,
    Http,
}

impl Carrier {
    pub fn as_str(self) -> &'static str {
        match self {
            Carrier::Stanza => "stanza",
            Carrier::Shim => "shim",
            Carrier::Xml => "xml",
            Carrier::Text => "text",
            Carrier::Http => "http",
        }
    }
}

/// What a sender attaches to a message.
#[derive(Clone, PartialEq, Eq)]
pub struct Tag {
    pub source: String,
    pub kid: String,
    pub epoch: u64,
    pub seq: u64,
    /// Unix seconds at the sender.
    pub ts: i64,
    pub mac: Vec<u8>,
}

impl std::fmt::Debug for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tag({} kid={} epoch={} seq={} ts={})", self.source, self.kid, self.epoch, self.seq, self.ts)
    }
}

impl Tag {
    pub fn mac_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.mac)
    }

    /// Reads a Base64 MAC (at most 128 characters).
    pub fn decode_mac(s: &str) -> Result<Vec<u8>, AuthError> {
        if s.len() > 128 {
            return Err(AuthError::Malformed("the MAC is too long".into()));
        }
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|_| AuthError::Malformed("the MAC is not Base64".into()))
    }
}

/// Why a message was refused. The texts name the source and the reason,
/// never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the message carries no authentication")]
    Missing,
    #[error("malformed authentication: {0}")]
    Malformed(String),
    #[error("unknown source {0:?}")]
    UnknownSource(String),
    #[error("source {sender:?} has no usable key {kid:?} (unknown, not yet valid, or retired)")]
    UnknownKey { sender: String, kid: String },
    #[error("the MAC from {0:?} does not match: the message was changed or the key is wrong")]
    BadMac(String),
    #[error("replayed message from {sender:?} (sequence {seq})")]
    Replay { sender: String, seq: u64 },
    #[error("message from {sender:?} is {age} s from our clock (allowed: {window} s)")]
    Stale { sender: String, age: i64, window: i64 },
    #[error("no signing key for source {0:?}")]
    NoSigningKey(String),
    /// The replay window could not be written before taking the message
    /// (`replay::ReplayState`): refused rather than taken unrecorded.
    #[error("cannot record the replay window in {path} ({why}): the message is refused")]
    Unrecorded { path: String, why: String },
}

/// Feeds the head of what a tag's MAC covers,
/// `snow-msgauth/1 0 carrier 0 source 0 kid 0 epoch 0 seq 0 ts 0` (numbers
/// in decimal); the payload follows it. The head is gathered on the stack
/// and fed in one update: each HMAC update call costs more than the bytes.
pub fn feed_head(mac: &mut Mac, carrier: Carrier, tag: &Tag) {
    // 15 + 7 + 2 × 65 (names are at most 64 bytes) + 3 × 21 numbers.
    let mut buf = [0u8; 256];
    let mut len = 0;
    let mut put = |b: &[u8]| {
        // Names longer than valid_name allows go in a separate update.
        if len + b.len() > buf.len() {
            mac.update(&buf[..len]);
            mac.update(b);
            len = 0;
        } else {
            buf[len..len + b.len()].copy_from_slice(b);
            len += b.len();
        }
    };
    put(b"snow-msgauth/1\0");
    for part in [carrier.as_str(), &tag.source, &tag.kid] {
        put(part.as_bytes());
        put(b"\0");
    }
    for (n, neg) in [(tag.epoch, false), (tag.seq, false), (tag.ts.unsigned_abs(), tag.ts < 0)] {
        let mut num = [0u8; 21];
        let mut i = num.len();
        let mut v = n;
        loop {
            i -= 1;
            num[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        if neg {
            i -= 1;
            num[i] = b'-';
        }
        put(&num[i..]);
        put(b"\0");
    }
    mac.update(&buf[..len]);
}

/// A name a source or key id may have: 1 to 64 of `A-Za-z0-9._@-`.
pub fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Signs outgoing messages for one source, numbering them.
pub struct Sender {
    store: Arc<KeyStore>,
    source: String,
    epoch: u64,
    seq: AtomicU64,
}

impl Sender {
    /// A sender for `source`; its epoch is the current time in
    /// microseconds, so a restarted sender starts a newer sequence.
    pub fn new(store: Arc<KeyStore>, source: &str) -> Result<Sender, AuthError> {
        if store.signing_key(source, now()).is_none() {
            return Err(AuthError::NoSigningKey(source.to_owned()));
        }
        let epoch = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000;
        Ok(Sender { store, source: source.to_owned(), epoch: epoch.max(1) as u64, seq: AtomicU64::new(0) })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The tag for the next message, whose carrier-specific bytes are
    /// `payload`. Uses the source's newest valid key.
    pub fn sign(&self, carrier: Carrier, payload: &[u8]) -> Result<Tag, AuthError> {
        self.sign_with(carrier, |m| m.update(payload))
    }

    /// Like [`sign`](Self::sign), with the payload fed into the MAC by
    /// `payload` (a canonicalizer writing straight into it).
    pub fn sign_with(&self, carrier: Carrier, payload: impl FnOnce(&mut Mac)) -> Result<Tag, AuthError> {
        let ts = now();
        let key =
            self.store.signing_key(&self.source, ts).ok_or_else(|| AuthError::NoSigningKey(self.source.clone()))?;
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        let mut tag =
            Tag { source: self.source.clone(), kid: key.kid.clone(), epoch: self.epoch, seq, ts, mac: Vec::new() };
        let mut mac = key.start().ok_or_else(|| AuthError::NoSigningKey(self.source.clone()))?;
        feed_head(&mut mac, carrier, &tag);
        payload(&mut mac);
        tag.mac = mac.finish();
        Ok(tag)
    }
}

/// A message that passed: who sent it, and what was lost before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub source: String,
    pub seq: u64,
    /// Sequence numbers never received, first and last (a loss event).
    pub lost: Option<(u64, u64)>,
    /// The sender started a new sequence (it restarted).
    pub restarted: bool,
}

/// Verifies incoming messages and keeps each source's sequence state
/// (in a [`ReplayState`]: in memory, or kept across restarts in a file).
pub struct Receiver {
    store: Arc<KeyStore>,
    window_secs: i64,
    state: Arc<ReplayState>,
}

impl Receiver {
    /// A receiver whose replay window lives in memory only: a restart
    /// forgets it. Servers and agents use [`with_state`](Self::with_state).
    pub fn new(store: Arc<KeyStore>) -> Receiver {
        Receiver::with_window(store, DEFAULT_WINDOW_SECS)
    }

    /// `window_secs`: how far the sender's clock may be from ours. The
    /// replay window lives in memory only.
    pub fn with_window(store: Arc<KeyStore>, window_secs: i64) -> Receiver {
        Receiver::with_state(store, Arc::new(ReplayState::in_memory(window_secs)))
    }

    /// A receiver whose replay window is `state` (shared by the receivers
    /// of one process; [`ReplayState::open`] keeps it across restarts),
    /// with the state's clock window.
    pub fn with_state(store: Arc<KeyStore>, state: Arc<ReplayState>) -> Receiver {
        Receiver { store, window_secs: state.window_secs(), state }
    }

    /// Where the replay window is kept.
    pub fn state(&self) -> &Arc<ReplayState> {
        &self.state
    }

    /// Checks `tag` over `payload`. The MAC is checked first (constant
    /// time), so nothing about the sequence is learnt from forged tags.
    pub fn verify(&self, carrier: Carrier, tag: &Tag, payload: &[u8]) -> Result<Verified, AuthError> {
        self.verify_at(carrier, tag, |m| m.update(payload), now())
    }

    /// Like [`verify`](Self::verify), with the payload fed into the MAC by
    /// `payload`.
    pub fn verify_with(
        &self,
        carrier: Carrier,
        tag: &Tag,
        payload: impl FnOnce(&mut Mac),
    ) -> Result<Verified, AuthError> {
        self.verify_at(carrier, tag, payload, now())
    }

    fn verify_at(
        &self,
        carrier: Carrier,
        tag: &Tag,
        payload: impl FnOnce(&mut Mac),
        now: i64,
    ) -> Result<Verified, AuthError> {
        if tag.seq == 0 || tag.epoch == 0 {
            return Err(AuthError::Malformed("sequence numbers and epochs start at 1".into()));
        }
        if !self.store.knows(&tag.source) {
            return Err(AuthError::UnknownSource(tag.source.clone()));
        }
        let key = self
            .store
            .accepting_key(&tag.source, &tag.kid, now)
            .ok_or_else(|| AuthError::UnknownKey { sender: tag.source.clone(), kid: tag.kid.clone() })?;
        let mut mac = key.start().ok_or_else(|| AuthError::BadMac(tag.source.clone()))?;
        feed_head(&mut mac, carrier, tag);
        payload(&mut mac);
        if aws_lc_rs::constant_time::verify_slices_are_equal(&mac.finish(), &tag.mac).is_err() {
            return Err(AuthError::BadMac(tag.source.clone()));
        }
        let age = now - tag.ts;
        if age.abs() > self.window_secs {
            return Err(AuthError::Stale { sender: tag.source.clone(), age, window: self.window_secs });
        }
        let (lost, restarted) = self.state.admit(tag, now)?;
        Ok(Verified { source: tag.source.clone(), seq: tag.seq, lost, restarted })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn store() -> Arc<KeyStore> {
        Arc::new(
            KeyStore::parse(
                "# test keys\n\
                 agent  k1  hmac-sha256  c2VjcmV0IGtleSBvZiB0aGUgYWdlbnQsIDMyIGJ5dGVzIQ==  0\n\
                 legacy k1  hmac-md5     bGVnYWN5IGtleSBvZiAxNiBieXRlcyE=  0\n",
                3600,
            )
            .unwrap(),
        )
    }

    /// Runs every attack against one carrier. `sign(sender, i)` gives the
    /// wire form of message `i`, `verify` the message it carries, and
    /// `original(i)` what the sender's filter got.
    pub(crate) fn check_carrier(
        sign: impl Fn(&Sender, u32) -> String,
        verify: impl Fn(&Receiver, &str) -> Result<(Verified, String), AuthError>,
        original: impl Fn(u32) -> String,
    ) {
        let s = store();
        let tx = Sender::new(Arc::clone(&s), "agent").unwrap();
        let rx = Receiver::new(Arc::clone(&s));
        // Round trip: the receiver sees the original.
        let w1 = sign(&tx, 1);
        let (v, got) = verify(&rx, &w1).unwrap();
        assert_eq!((v.source.as_str(), v.seq, got), ("agent", 1, original(1)));
        // A replay.
        assert!(matches!(verify(&rx, &w1), Err(AuthError::Replay { .. })), "replay");
        // A changed byte in the message.
        let w2 = sign(&tx, 2);
        let changed = w2.replacen('2', "3", 1);
        assert_ne!(changed, w2);
        assert!(matches!(verify(&rx, &changed), Err(AuthError::BadMac(_))), "changed byte");
        // A missing message: message 3 is never delivered.
        let _lost = sign(&tx, 3);
        let (v, _) = verify(&rx, &sign(&tx, 4)).unwrap();
        assert_eq!(v.lost, Some((2, 3)), "gap");
        // An unknown source and a wrong key.
        let other = Arc::new(
            KeyStore::parse(
                &(keys::generate_line("intruder", "k1", Algorithm::HmacSha256, 0).unwrap()
                    + &keys::generate_line("agent", "k1", Algorithm::HmacSha256, 0).unwrap()),
                0,
            )
            .unwrap(),
        );
        let intruder = Sender::new(Arc::clone(&other), "intruder").unwrap();
        assert!(matches!(verify(&rx, &sign(&intruder, 5)), Err(AuthError::UnknownSource(_))), "unknown source");
        let wrong_key = Sender::new(other, "agent").unwrap();
        assert!(matches!(verify(&rx, &sign(&wrong_key, 5)), Err(AuthError::BadMac(_))), "wrong key");
        // No tag at all.
        assert!(verify(&rx, &original(6)).is_err(), "untagged");
    }

    #[test]
    fn the_signed_head_is_as_documented() {
        let s = store();
        let key = s.signing_key("agent", 0).unwrap();
        let tag = Tag { source: "agent".into(), kid: "k1".into(), epoch: 17, seq: 3, ts: -5, mac: Vec::new() };
        let mut m = key.start().unwrap();
        feed_head(&mut m, Carrier::Text, &tag);
        m.update(b"payload");
        let want =
            key.algorithm.mac(key.secret(), b"snow-msgauth/1\x00text\x00agent\x00k1\x0017\x003\x00-5\x00payload");
        assert_eq!(m.finish(), want);
    }

    #[test]
    fn sign_and_verify_with_replay_loss_and_late_arrival() {
        let s = store();
        let tx = Sender::new(Arc::clone(&s), "agent").unwrap();
        let rx = Receiver::new(Arc::clone(&s));
        let tags: Vec<Tag> = (0..6).map(|i| tx.sign(Carrier::Text, format!("m{i}").as_bytes()).unwrap()).collect();
        let v = |i: usize| rx.verify(Carrier::Text, &tags[i], format!("m{i}").as_bytes());
        assert_eq!(v(0).unwrap().lost, None);
        assert!(matches!(v(0), Err(AuthError::Replay { seq: 1, .. })));
        // 2 and 3 go missing: a loss event for exactly them.
        assert_eq!(v(3).unwrap().lost, Some((2, 3)));
        assert_eq!(v(4).unwrap().lost, None);
        // A late message is taken once.
        assert_eq!(v(1).unwrap().lost, None);
        assert!(matches!(v(1), Err(AuthError::Replay { seq: 2, .. })));
        // A changed byte, the wrong carrier, a wrong MAC.
        assert!(matches!(rx.verify(Carrier::Text, &tags[5], b"m5!"), Err(AuthError::BadMac(_))));
        assert!(matches!(rx.verify(Carrier::Xml, &tags[5], b"m5"), Err(AuthError::BadMac(_))));
        let mut forged = tags[5].clone();
        forged.mac[0] ^= 1;
        assert!(matches!(rx.verify(Carrier::Text, &forged, b"m5"), Err(AuthError::BadMac(_))));
        assert!(rx.verify(Carrier::Text, &tags[5], b"m5").is_ok());
    }

    #[test]
    fn unknown_source_wrong_key_and_stale() {
        let s = store();
        let tx = Sender::new(Arc::clone(&s), "agent").unwrap();
        let rx = Receiver::new(Arc::clone(&s));
        let mut t = tx.sign(Carrier::Stanza, b"x").unwrap();
        t.source = "intruder".into();
        assert!(matches!(rx.verify(Carrier::Stanza, &t, b"x"), Err(AuthError::UnknownSource(_))));
        // Signed as "agent" with the legacy source's key: wrong key.
        let legacy = Sender::new(Arc::clone(&s), "legacy").unwrap();
        let mut t = legacy.sign(Carrier::Stanza, b"x").unwrap();
        t.source = "agent".into();
        assert!(matches!(rx.verify(Carrier::Stanza, &t, b"x"), Err(AuthError::BadMac(_))));
        let mut t = tx.sign(Carrier::Stanza, b"x").unwrap();
        t.kid = "k9".into();
        assert!(matches!(rx.verify(Carrier::Stanza, &t, b"x"), Err(AuthError::UnknownKey { .. })));
        let t = tx.sign(Carrier::Stanza, b"x").unwrap();
        assert!(matches!(
            rx.verify_at(Carrier::Stanza, &t, |m| m.update(b"x"), t.ts + 301),
            Err(AuthError::Stale { .. })
        ));
        // The legacy algorithm gives the seed's 24-character MAC.
        assert_eq!(legacy.sign(Carrier::Text, b"x").unwrap().mac_base64().len(), 24);
    }

    #[test]
    fn a_restarted_sender_is_not_a_replay_and_an_old_epoch_is() {
        let s = store();
        let rx = Receiver::new(Arc::clone(&s));
        let old = Sender::new(Arc::clone(&s), "agent").unwrap();
        let t_old = old.sign(Carrier::Text, b"a").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let new = Sender::new(Arc::clone(&s), "agent").unwrap();
        let t1 = new.sign(Carrier::Text, b"b").unwrap();
        let t2 = new.sign(Carrier::Text, b"c").unwrap();
        rx.verify(Carrier::Text, &t_old, b"a").unwrap();
        // The first message of the new epoch went missing.
        let v = rx.verify(Carrier::Text, &t2, b"c").unwrap();
        assert!(v.restarted && v.lost == Some((1, 1)));
        rx.verify(Carrier::Text, &t1, b"b").unwrap();
        let t_old2 = old.sign(Carrier::Text, b"d").unwrap();
        assert!(matches!(rx.verify(Carrier::Text, &t_old2, b"d"), Err(AuthError::Replay { .. })));
    }
}
