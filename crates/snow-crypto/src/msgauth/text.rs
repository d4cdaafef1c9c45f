//! The plain-text carrier: the seed's colon trailer,
//!
//! ```text
//! MESSAGE:BASE64(source):kid,epoch,seq,ts:BASE64(mac)
//! ```
//!
//! The trailer is split off from the right, so the message itself may hold
//! colons. With HMAC-MD5 the MAC is the seed's 24 characters ending `==`.

use base64::Engine;

use super::{valid_name, AuthError, Carrier, Receiver, Sender, Tag, Verified};

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Outbound filter: `message` with its trailer.
pub fn sign(sender: &Sender, message: &str) -> Result<String, AuthError> {
    let t = sender.sign(Carrier::Text, message.as_bytes())?;
    Ok(format!("{message}:{}:{},{},{},{}:{}", b64().encode(&t.source), t.kid, t.epoch, t.seq, t.ts, t.mac_base64()))
}

/// Inbound filter: checks the trailer and returns the message without it.
pub fn verify<'a>(receiver: &Receiver, text: &'a str) -> Result<(Verified, &'a str), AuthError> {
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
    let [kid, epoch, seq, ts] = m[..] else { return Err(bad("key id, epoch, sequence and time")) };
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
    Ok((receiver.verify(Carrier::Text, &tag, message.as_bytes())?, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgauth::tests::check_carrier;

    #[test]
    fn the_text_carrier() {
        check_carrier(
            |s, i| sign(s, &format!("Influensa A: {i} positive i 5401")).unwrap(),
            |r, w| verify(r, w).map(|(v, m)| (v, m.to_owned())),
            |i| format!("Influensa A: {i} positive i 5401"),
        );
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
