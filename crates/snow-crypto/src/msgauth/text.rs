//! The plain-text carrier: the seed's colon trailer,
//!
//! ```text
//! MESSAGE:BASE64(source):kid,epoch,seq,ts:BASE64(mac)
//! ```
//!
//! The trailer is split off from the right, so the message itself may hold
//! colons. With HMAC-MD5 the MAC is the seed's 24 characters ending `==`.
//!
//! A confidential sender seals the message; what travels is
//!
//! ```text
//! BASE64(nonce ‖ ciphertext ‖ tag):BASE64(source):kid,epoch,seq,ts,aes256-gcm:BASE64(mac)
//! ```
//!
//! the fifth field of the trailer's middle part marking it, the MAC
//! covering the Base64 ([`super::confidential`]).

use std::borrow::Cow;

use base64::Engine;

use super::{confidential, valid_name, AuthError, Carrier, Receiver, Sender, Tag, Verified};

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Outbound filter: `message` with its trailer.
pub fn sign(sender: &Sender, message: &str) -> Result<String, AuthError> {
    if sender.is_confidential() {
        let mut draft = sender.draft()?;
        let sealed = confidential::encode(&draft.seal(Carrier::Text, message.as_bytes())?);
        let t = draft.finish(Carrier::Text, |m| m.update(sealed.as_bytes()))?;
        return Ok(format!(
            "{sealed}:{}:{},{},{},{},{}:{}",
            b64().encode(&t.source),
            t.kid,
            t.epoch,
            t.seq,
            t.ts,
            confidential::ALG,
            t.mac_base64()
        ));
    }
    let t = sender.sign(Carrier::Text, message.as_bytes())?;
    Ok(format!("{message}:{}:{},{},{},{}:{}", b64().encode(&t.source), t.kid, t.epoch, t.seq, t.ts, t.mac_base64()))
}

/// Inbound filter: checks the trailer and returns the message without it
/// (borrowed from `text`, or decrypted).
pub fn verify<'a>(receiver: &Receiver, text: &'a str) -> Result<(Verified, Cow<'a, str>), AuthError> {
    let mut parts = text.rsplitn(4, ':');
    let (Some(mac), Some(meta), Some(source), Some(message)) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Missing);
    };
    let bad = |what: &str| AuthError::Malformed(format!("the trailer's {what} is malformed"));
    let source = b64()
        .decode(source)
        .ok()
        .and_then(|s| String::from_utf8(s).ok())
        .filter(|s| valid_name(s))
        .ok_or_else(|| bad("source"))?;
    let m: Vec<&str> = meta.split(',').collect();
    let (kid, epoch, seq, ts, sealed) = match m[..] {
        [kid, epoch, seq, ts] => (kid, epoch, seq, ts, false),
        [kid, epoch, seq, ts, alg] => {
            confidential::check_alg(Some(alg))?;
            (kid, epoch, seq, ts, true)
        }
        _ => return Err(bad("key id, epoch, sequence and time")),
    };
    if !valid_name(kid) {
        return Err(bad("key id"));
    }
    let tag = Tag {
        source,
        kid: kid.to_owned(),
        epoch: epoch.parse().map_err(|_| bad("epoch"))?,
        seq: seq.parse().map_err(|_| bad("sequence"))?,
        ts: ts.parse().map_err(|_| bad("time"))?,
        mac: Tag::decode_mac(mac)?,
    };
    if !sealed {
        return Ok((receiver.verify(Carrier::Text, &tag, message.as_bytes())?, Cow::Borrowed(message)));
    }
    let bytes = confidential::decode(message)?;
    let (v, plain) = receiver.verify_sealed(Carrier::Text, &tag, |m| m.update(message.as_bytes()), &bytes)?;
    let plain =
        String::from_utf8(plain).map_err(|_| AuthError::Malformed("the decrypted message is not UTF-8".into()))?;
    Ok((v, Cow::Owned(plain)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgauth::tests::check_carrier;
    use crate::msgauth::Algorithm;

    #[test]
    fn the_text_carrier() {
        check_carrier(
            |s, i| sign(s, &format!("Influensa A: {i} positive i 5401")).unwrap(),
            |r, w| verify(r, w).map(|(v, m)| (v, m.into_owned())),
            |i| format!("Influensa A: {i} positive i 5401"),
        );
    }

    #[test]
    fn the_confidential_text_carrier() {
        crate::msgauth::tests::check_confidential_carrier(
            |s, i| {
                let w = sign(s, &format!("Influensa A: {i} positive i 5401")).unwrap();
                let meta = w.rsplit(':').nth(1).unwrap();
                assert_eq!(meta.ends_with(",aes256-gcm") && meta.split(',').count() == 5, s.is_confidential(), "{w}");
                w.into_bytes()
            },
            |r, w| verify(r, std::str::from_utf8(w).unwrap()).map(|(v, m)| (v, m.into_owned().into_bytes())),
            |i| format!("Influensa A: {i} positive i 5401").into_bytes(),
            |w| {
                let mut w = w.to_vec();
                w[0] = if w[0] == b'A' { b'B' } else { b'A' };
                w
            },
            "Influensa",
        );
    }

    /// The clear trailer is what it always was, byte for byte: the MAC
    /// over the documented head and the message, recomputed here.
    #[test]
    fn the_clear_trailer_is_unchanged() {
        let s = crate::msgauth::tests::store();
        let tx = Sender::new(std::sync::Arc::clone(&s), "agent").unwrap();
        let w = sign(&tx, "a:b").unwrap();
        let mut parts = w.rsplitn(4, ':');
        let (_, meta) = (parts.next(), parts.next().unwrap());
        let [kid, epoch, seq, ts] = meta.split(',').collect::<Vec<_>>()[..] else { panic!("{w}") };
        let key = s.signing_key("agent", 0).unwrap();
        let mac = Algorithm::HmacSha256
            .mac(key.secret(), format!("snow-msgauth/1\0text\0agent\0{kid}\0{epoch}\0{seq}\0{ts}\0a:b").as_bytes());
        assert_eq!(w, format!("a:b:{}:{kid},{epoch},{seq},{ts}:{}", b64().encode("agent"), b64().encode(mac)));
    }

    #[test]
    fn the_legacy_trailer_ends_like_the_seeds() {
        let s = crate::msgauth::tests::store();
        let tx = Sender::new(s, "legacy").unwrap();
        let out = sign(&tx, "hello").unwrap();
        let mac = out.rsplit(':').next().unwrap();
        assert!(mac.len() == 24 && mac.ends_with("=="), "{out}");
    }
}
