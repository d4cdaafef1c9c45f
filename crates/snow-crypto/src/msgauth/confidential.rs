//! Confidential component messages (issue 20 item 4; the message
//! authentication spec calls it desirable): an optional AES-256-GCM layer
//! under the MAC, for every carrier. Off by default; turned on per link
//! (`[[components]] confidential = true` at the server, the agent's side
//! of the same link), on both ends, since a component link is plain TCP
//! (XEP-0114 has no TLS) and the MAC alone hides nothing.
//!
//! # Key
//!
//! No new key material: the encryption key is derived from the source's
//! message-authentication key `K` (the one its tag names by key id) with
//! HKDF-SHA256 (RFC 5869; aws-lc-rs):
//!
//! ```text
//! PRK = HKDF-Extract(salt = "" (32 zero bytes), IKM = K)
//! EK  = HKDF-Expand(PRK, "snow msgauth confidentiality v1" 0 source 0 kid 0 epoch, 32)
//! ```
//!
//! (`epoch` in decimal). `K` itself is only ever an HMAC key of the MAC,
//! and `EK` comes out of a PRF keyed by a value derived from `K` under a
//! label no MAC input starts with, so the MAC key and the encryption key
//! are independent; each sender epoch (each start of the sender) and each
//! key rotation has its own `EK`. Key ids, epochs and rotation work as for
//! the MAC ([`super::keys`]): the key of the tag's key id, accepted during
//! the rotation overlap. A legacy HMAC-MD5 source's key is 16 bytes, so
//! its `EK` is no stronger than 128 bits.
//!
//! # Sealing: encrypt, then MAC
//!
//! The sender numbers the message first (key id, epoch, sequence number,
//! time: the tag's fields), then encrypts the carrier's payload with `EK`,
//! a fresh random 96-bit nonce per message (at most 2³² messages per
//! sender epoch and key keep the nonce-collision chance below 2⁻³²; a
//! restart or key rotation starts a new key) and the associated data
//!
//! ```text
//! "snow-msgauth-enc/1" 0 carrier 0 source 0 kid 0 epoch 0 seq 0 ts
//! ```
//!
//! giving `nonce ‖ ciphertext ‖ 16-byte GCM tag` (the *sealed* bytes).
//! The carrier puts them in place of the payload, and the ordinary MAC
//! then covers the carrier with the sealed bytes in it. Its signed head
//! names the carrier as `CARRIER+aes256-gcm` (`stanza+aes256-gcm`, …), so
//! a confidential message cannot be taken for a clear one or the other
//! way round, even where the marker itself is outside the MAC (the HTTP
//! header). The receiver checks the MAC and the replay window first,
//! exactly as for a clear message, and only then decrypts.
//!
//! # What each carrier encrypts, and what stays visible
//!
//! | carrier | encrypted | visible (for routing) | marker |
//! |---|---|---|---|
//! | stanza | every child of the stanza but the tag, as `<content xmlns='jabber:client'>…</content>` (stream namespace as `jabber:client`) | the stanza's name and attributes: `to`, `from`, `type`, `id`, `xml:lang` | the stanza's only child besides `<auth/>` is `<encrypted xmlns='urn:snow:msgauth:1' alg='aes256-gcm'>BASE64(sealed)</encrypted>` |
//! | SHIM headers | as the stanza | as the stanza | the same `<encrypted/>` child, before `<headers/>` |
//! | XML message | the whole document, byte for byte (declaration, root attributes, content) | the root element's name (and namespace) | the root's only child (before the tags) is `<encrypted xmlns='urn:snow:msgauth:1' alg='aes256-gcm'>BASE64(sealed)</encrypted>`; the decrypted document's root must have the same name |
//! | text | the message before the trailer | the trailer | the message is `BASE64(sealed)` and the trailer's fields are `kid,epoch,seq,ts,aes256-gcm` |
//! | HTTP | the body of the request or response | method, path and query, status, every header (Content-Length is the sealed length) | header `$$Enc: aes256-gcm`; the body is the sealed bytes (binary) |
//!
//! The clear form of every carrier is unchanged, byte for byte.
//!
//! # Policy
//!
//! A [`Sender`](super::Sender) made [`confidential`](super::Sender::confidential)
//! seals everything it signs; a [`Receiver`](super::Receiver) made
//! [`confidential`](super::Receiver::confidential) refuses a clear message
//! ([`AuthError::NotEncrypted`]) and one that is not confidential refuses
//! a sealed one ([`AuthError::UnexpectedEncryption`]): both before the MAC
//! is checked, with the carrier's own error (`not-authorized`, 401, …),
//! so a half-configured link fails loudly instead of handing on ciphertext
//! or cleartext.

use std::sync::{Arc, Mutex};

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
use base64::Engine;
use zeroize::Zeroizing;

use super::{AuthError, Carrier, Key, Tag};

/// The algorithm's name on the wire.
pub const ALG: &str = "aes256-gcm";
/// The HKDF label that sets the encryption key apart from the MAC key.
pub const LABEL: &str = "snow msgauth confidentiality v1";
/// The element that carries sealed XML content (stanza, SHIM, XML message).
pub const ENCRYPTED: &str = "encrypted";
/// Bytes the sealed form adds to the plaintext: nonce and GCM tag.
pub const OVERHEAD: usize = NONCE_LEN + 16;
/// Derived keys remembered per sender or receiver (a receiver sees one
/// per source, key id and sender epoch).
const CACHED_KEYS: usize = 64;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The label the MAC's head names the carrier by when the message is
/// sealed.
pub fn sealed_carrier_label(carrier: Carrier) -> &'static str {
    match carrier {
        Carrier::Stanza => "stanza+aes256-gcm",
        Carrier::Shim => "shim+aes256-gcm",
        Carrier::Xml => "xml+aes256-gcm",
        Carrier::Text => "text+aes256-gcm",
        Carrier::Http => "http+aes256-gcm",
    }
}

/// `EK` for `key` (of `source`, id `kid`) and the sender's `epoch`.
fn derive(key: &Key, epoch: u64) -> Result<RandomizedNonceKey, AuthError> {
    let fail = || AuthError::Crypto("cannot derive the encryption key".into());
    let prk = Salt::new(HKDF_SHA256, &[]).extract(key.secret());
    let epoch = epoch.to_string();
    let info: [&[u8]; 7] =
        [LABEL.as_bytes(), b"\0", key.source.as_bytes(), b"\0", key.kid.as_bytes(), b"\0", epoch.as_bytes()];
    let okm = prk.expand(&info, HKDF_SHA256).map_err(|_| fail())?;
    let mut ek = Zeroizing::new([0u8; 32]);
    okm.fill(&mut ek[..]).map_err(|_| fail())?;
    RandomizedNonceKey::new(&AES_256_GCM, &ek[..]).map_err(|_| fail())
}

/// The associated data of a sealed message: binds the ciphertext to its
/// carrier, sender, key and place in the sequence.
fn aad(carrier: Carrier, tag: &Tag) -> Vec<u8> {
    format!(
        "snow-msgauth-enc/1\0{}\0{}\0{}\0{}\0{}\0{}",
        carrier.as_str(),
        tag.source,
        tag.kid,
        tag.epoch,
        tag.seq,
        tag.ts
    )
    .into_bytes()
}

/// Derived keys by (source, key id, epoch), newest first: deriving costs
/// an HKDF and an AES key schedule, a message should not.
#[derive(Default)]
pub(crate) struct KeyCache(Mutex<Vec<(KeyName, Arc<RandomizedNonceKey>)>>);

/// A derived key's (source, key id, epoch).
type KeyName = (String, String, u64);

impl KeyCache {
    fn get(&self, key: &Key, epoch: u64) -> Result<Arc<RandomizedNonceKey>, AuthError> {
        let hit = |e: &(KeyName, _)| e.0 .2 == epoch && e.0 .0 == key.source && e.0 .1 == key.kid;
        {
            let cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, k)) = cache.iter().find(|e| hit(e)) {
                return Ok(Arc::clone(k));
            }
        }
        let k = Arc::new(derive(key, epoch)?);
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|e| !hit(e));
        cache.insert(0, ((key.source.clone(), key.kid.clone(), epoch), Arc::clone(&k)));
        cache.truncate(CACHED_KEYS);
        Ok(k)
    }

    /// `nonce ‖ ciphertext ‖ tag` of `plaintext`, for the message `tag`
    /// (whose MAC is not made yet) under `key`.
    pub(crate) fn seal(&self, key: &Key, carrier: Carrier, tag: &Tag, plaintext: &[u8]) -> Result<Vec<u8>, AuthError> {
        let ek = self.get(key, tag.epoch)?;
        let mut buf = Vec::with_capacity(plaintext.len() + OVERHEAD);
        buf.extend_from_slice(plaintext);
        let nonce = ek
            .seal_in_place_append_tag(Aad::from(aad(carrier, tag)), &mut buf)
            .map_err(|_| AuthError::Crypto("cannot encrypt".into()))?;
        let mut out = Vec::with_capacity(buf.len() + NONCE_LEN);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// The plaintext of `sealed`, the message `tag` (already verified)
    /// under `key`.
    pub(crate) fn open(&self, key: &Key, carrier: Carrier, tag: &Tag, sealed: &[u8]) -> Result<Vec<u8>, AuthError> {
        let bad = || AuthError::Undecryptable(tag.source.clone());
        if sealed.len() < OVERHEAD {
            return Err(bad());
        }
        let ek = self.get(key, tag.epoch)?;
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut buf = rest.to_vec();
        let len = ek.open_in_place(nonce, Aad::from(aad(carrier, tag)), &mut buf).map_err(|_| bad())?.len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// Base64 of sealed bytes, as the XML and text carriers write them.
pub(crate) fn encode(sealed: &[u8]) -> String {
    b64().encode(sealed)
}

/// Sealed bytes from their Base64.
pub(crate) fn decode(text: &str) -> Result<Vec<u8>, AuthError> {
    b64().decode(text.trim()).map_err(|_| AuthError::Malformed("the encrypted content is not Base64".into()))
}

/// Checks the `alg` a sealed message names.
pub(crate) fn check_alg(alg: Option<&str>) -> Result<(), AuthError> {
    match alg {
        Some(ALG) => Ok(()),
        Some(other) => Err(AuthError::Malformed(format!("unknown encryption {other:?} (this side knows {ALG})"))),
        None => Err(AuthError::Malformed("the encrypted content names no algorithm".into())),
    }
}

/// The `<encrypted/>` element holding `sealed`.
pub(crate) fn encrypted_element(sealed: &[u8]) -> snow_xml::Element {
    snow_xml::Element::new(super::stanza::NS_MSGAUTH, ENCRYPTED).with_attr("alg", ALG).with_text(encode(sealed))
}

/// The sealed bytes of `el`'s `<encrypted/>` child, if the content is
/// sealed: `None` when no child is an `<encrypted/>`; an error when one is
/// but anything else (other than whitespace) is beside it.
pub(crate) fn sealed_child(el: &snow_xml::Element) -> Result<Option<Vec<u8>>, AuthError> {
    let is_enc = |e: &snow_xml::Element| e.is(super::stanza::NS_MSGAUTH, ENCRYPTED);
    let Some(enc) = el.children().find(|e| is_enc(e)) else { return Ok(None) };
    let alone = el.nodes().iter().all(|n| match n {
        snow_xml::Node::Element(e) => std::ptr::eq(e, enc),
        snow_xml::Node::Text(t) => t.trim().is_empty(),
    });
    if !alone {
        return Err(AuthError::Malformed("encrypted content must be the only content".into()));
    }
    check_alg(enc.attr("alg"))?;
    Ok(Some(decode(&enc.text())?))
}

/// A stanza's content (every child node), as the plaintext the stanza and
/// SHIM carriers seal: `<content xmlns='jabber:client'>…</content>`, the
/// stream namespace written as `jabber:client` (it changes from hop to
/// hop). The stanza is left with no children.
pub(crate) fn take_content(stanza: &mut snow_xml::Element) -> String {
    let mut wrap = snow_xml::Element::new(snow_xml::NS_CLIENT, "content");
    *wrap.nodes_mut() = std::mem::take(stanza.nodes_mut());
    for ns in [snow_xml::NS_COMPONENT, snow_xml::NS_SERVER] {
        wrap.rename_ns_deep(ns, snow_xml::NS_CLIENT);
    }
    wrap.to_xml("")
}

/// Puts decrypted `content` (from [`take_content`]) back as the stanza's
/// children, in the stanza's stream namespace.
pub(crate) fn restore_content(stanza: &mut snow_xml::Element, content: &[u8]) -> Result<(), AuthError> {
    let mut wrap = snow_xml::parse_document(content, snow_xml::Limits::default())
        .map_err(|e| AuthError::Malformed(format!("the decrypted content is not XML: {}", e.detail)))?;
    if !wrap.is(snow_xml::NS_CLIENT, "content") {
        return Err(AuthError::Malformed("the decrypted content is not a <content/> element".into()));
    }
    let ns = stanza.ns();
    for stream in [snow_xml::NS_COMPONENT, snow_xml::NS_SERVER] {
        if ns == stream {
            wrap.rename_ns_deep(snow_xml::NS_CLIENT, stream);
        }
    }
    *stanza.nodes_mut() = std::mem::take(wrap.nodes_mut());
    Ok(())
}
