//! The XEP-0114 component handshake: hex SHA-1 of the stream id followed
//! by the shared secret. Shared by the server (which checks it) and the
//! agents (which send it).

/// The value a component sends in `<handshake/>`.
pub fn digest(stream_id: &str, secret: &str) -> String {
    crate::cert::hex(&legacy_sha1(format!("{stream_id}{secret}").as_bytes()))
}

/// SHA-1, where an XMPP protocol fixes it (this handshake, XEP-0115's
/// `hash='sha-1'` caps): never for anything that must resist collisions.
pub fn legacy_sha1(data: &[u8]) -> [u8; 20] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
    let mut out = [0u8; 20];
    out.copy_from_slice(d.as_ref());
    out
}

/// Constant-time check of a received handshake value (case-insensitive hex).
pub fn verify(stream_id: &str, secret: &str, received: &str) -> bool {
    let want = digest(stream_id, secret);
    aws_lc_rs::constant_time::verify_slices_are_equal(received.trim().to_ascii_lowercase().as_bytes(), want.as_bytes())
        .is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn xep0114_example() {
        // Stream id and secret as in XEP-0114's example; the value from
        // Python's hashlib.sha1(b"3BF96D32secret").
        assert_eq!(super::digest("3BF96D32", "secret"), "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136");
        assert!(super::verify("3BF96D32", "secret", &super::digest("3BF96D32", "secret").to_uppercase()));
        assert!(!super::verify("3BF96D32", "secreT", &super::digest("3BF96D32", "secret")));
    }
}
