//! CRAM-MD5 (RFC 2195), the seed's e-mail login: the client answers the
//! server's challenge with its user name and HMAC-MD5(password,
//! challenge) in hex, so the password never crosses the wire.

use crate::msgauth::Algorithm;

/// The client's answer to `challenge` (already Base64-decoded), before
/// Base64: `user SP hex(HMAC-MD5(secret, challenge))`.
pub fn response(user: &str, secret: &[u8], challenge: &[u8]) -> String {
    let mac = Algorithm::HmacMd5.mac(secret, challenge);
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("{user} {hex}")
}

#[cfg(test)]
mod tests {
    /// RFC 2195 §2's example.
    #[test]
    fn rfc2195_example() {
        let r = super::response("tim", b"tanstaaftanstaaf", b"<1896.697170952@postoffice.reston.mci.net>");
        assert_eq!(r, "tim b913a602c7eda7a495b4e6e7334d3890");
        use base64::Engine;
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(r),
            "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"
        );
    }
}
