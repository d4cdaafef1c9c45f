//! The message-authentication key store: which keys each source signs
//! with, read from a file only its owner can read.
//!
//! One key per line, `#` starts a comment:
//!
//! ```text
//! # source   key-id   algorithm     key (Base64, ≥ 16 bytes)                      valid from
//! search     2026-11  hmac-sha256   q0X2…=                                        2026-11-01T00:00:00Z
//! search     2027-05  hmac-sha256   …                                             1777593600
//! ```
//!
//! `valid from` is RFC 3339 or Unix seconds. A sender signs with its
//! newest valid key; a receiver accepts a key from its start until the
//! next newer key of the same source has been valid for the overlap
//! (`overlap_secs`), so keys rotate without a moment where the two sides
//! disagree.

use std::path::Path;

use base64::Engine;
use zeroize::Zeroizing;

use super::valid_name;

/// Largest key file read; most keys in one file.
pub const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;
pub const MAX_KEYS: usize = 10_000;
/// A key that becomes valid this much in the future is already accepted
/// (clocks differ).
const CLOCK_SKEW_SECS: i64 = 60;

/// The MAC algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha256,
    /// The seed's legacy format: a 16-byte MAC, 24 characters of Base64.
    HmacMd5,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacMd5 => "hmac-md5",
        }
    }

    pub fn from_name(s: &str) -> Option<Algorithm> {
        match s {
            "hmac-sha256" => Some(Algorithm::HmacSha256),
            "hmac-md5" => Some(Algorithm::HmacMd5),
            _ => None,
        }
    }

    pub fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Algorithm::HmacSha256 => {
                aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key), data)
                    .as_ref()
                    .to_vec()
            }
            Algorithm::HmacMd5 => {
                use hmac::{KeyInit, Mac};
                // Any key length is valid for HMAC.
                let Ok(mut m) = hmac::Hmac::<md5::Md5>::new_from_slice(key) else { return Vec::new() };
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    /// Constant-time check of `tag`.
    pub fn verify(self, key: &[u8], data: &[u8], tag: &[u8]) -> bool {
        let want = self.mac(key, data);
        !want.is_empty() && aws_lc_rs::constant_time::verify_slices_are_equal(&want, tag).is_ok()
    }
}

/// A MAC being computed: fed in pieces (a canonical stanza goes straight
/// in, with no string built for it), then finished.
pub struct Mac(MacState);

// Not boxed: an allocation per MAC costs more than moving a kilobyte.
#[allow(clippy::large_enum_variant)]
enum MacState {
    Sha256(aws_lc_rs::hmac::Context),
    Md5(Box<hmac::Hmac<md5::Md5>>),
}

impl Mac {
    pub fn update(&mut self, b: &[u8]) {
        match &mut self.0 {
            MacState::Sha256(c) => c.update(b),
            MacState::Md5(m) => hmac::Mac::update(m.as_mut(), b),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        match self.0 {
            MacState::Sha256(c) => c.sign().as_ref().to_vec(),
            MacState::Md5(m) => hmac::Mac::finalize(*m).into_bytes().to_vec(),
        }
    }
}

impl snow_xml::c14n::Sink for Mac {
    fn put(&mut self, s: &str) {
        self.update(s.as_bytes());
    }
}

impl Key {
    /// A MAC under this key, ready to be fed (the HMAC-SHA256 key schedule
    /// was computed once, at load).
    pub fn start(&self) -> Option<Mac> {
        match (&self.prepared, self.algorithm) {
            (Some(k), _) => Some(Mac(MacState::Sha256(aws_lc_rs::hmac::Context::with_key(k)))),
            (None, Algorithm::HmacMd5) => {
                use hmac::KeyInit;
                hmac::Hmac::<md5::Md5>::new_from_slice(&self.secret).ok().map(|m| Mac(MacState::Md5(Box::new(m))))
            }
            (None, Algorithm::HmacSha256) => None,
        }
    }
}

/// One key. Its secret never appears in `Debug` output or logs.
pub struct Key {
    pub source: String,
    pub kid: String,
    pub algorithm: Algorithm,
    pub valid_from: i64,
    secret: Zeroizing<Vec<u8>>,
    /// The HMAC-SHA256 key schedule, computed once.
    prepared: Option<aws_lc_rs::hmac::Key>,
}

impl Key {
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({} {} {} from {}, secret hidden)", self.source, self.kid, self.algorithm.name(), self.valid_from)
    }
}

/// Why a key file was refused: the line and what was wrong (never the key).
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} may be readable by others (mode {mode:o}): it must be readable by its owner only (chmod 600)")]
    Permissions { path: String, mode: u32 },
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("the key file holds more than {MAX_KEYS} keys")]
    TooMany,
}

/// Every key, by source.
#[derive(Debug)]
pub struct KeyStore {
    keys: Vec<Key>,
    overlap_secs: i64,
}

impl KeyStore {
    /// Reads `path`, which must be readable by its owner only.
    pub fn load(path: &Path, overlap_secs: i64) -> Result<KeyStore, KeyFileError> {
        let p = path.display().to_string();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path).map_err(|source| KeyFileError::Read { path: p.clone(), source })?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::Permissions { path: p, mode });
            }
        }
        let bytes = snow_core::files::read_limited(path, MAX_KEY_FILE_BYTES)
            .map_err(|source| KeyFileError::Read { path: p.clone(), source })?;
        let text = String::from_utf8(bytes).map_err(|_| KeyFileError::Line { line: 0, reason: "not UTF-8".into() })?;
        KeyStore::parse(&text, overlap_secs)
    }

    pub fn parse(text: &str, overlap_secs: i64) -> Result<KeyStore, KeyFileError> {
        let mut keys: Vec<Key> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |reason: &str| KeyFileError::Line { line: i + 1, reason: reason.to_owned() };
            let f: Vec<&str> = line.split_whitespace().collect();
            let [source, kid, alg, key, from] = f[..] else {
                return Err(bad("expected: source key-id algorithm base64-key valid-from"));
            };
            if !valid_name(source) || !valid_name(kid) {
                return Err(bad("source and key id are 1 to 64 of A-Z a-z 0-9 . _ @ -"));
            }
            let algorithm = Algorithm::from_name(alg).ok_or_else(|| bad("algorithm is hmac-sha256 or hmac-md5"))?;
            let secret = Zeroizing::new(
                base64::engine::general_purpose::STANDARD.decode(key).map_err(|_| bad("the key is not Base64"))?,
            );
            if secret.len() < 16 {
                return Err(bad("the key is shorter than 16 bytes"));
            }
            let valid_from = parse_time(from).ok_or_else(|| bad("valid-from is RFC 3339 or Unix seconds"))?;
            if keys.iter().any(|k| k.source == source && k.kid == kid) {
                return Err(bad("this source already has a key with this id"));
            }
            if keys.len() == MAX_KEYS {
                return Err(KeyFileError::TooMany);
            }
            let prepared = (algorithm == Algorithm::HmacSha256)
                .then(|| aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret));
            keys.push(Key { source: source.into(), kid: kid.into(), algorithm, valid_from, secret, prepared });
        }
        keys.sort_by(|a, b| (&a.source, a.valid_from).cmp(&(&b.source, b.valid_from)));
        Ok(KeyStore { keys, overlap_secs })
    }

    pub fn knows(&self, source: &str) -> bool {
        self.keys.iter().any(|k| k.source == source)
    }

    /// Sources with keys, each once.
    pub fn sources(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.keys.iter().map(|k| k.source.as_str()).collect();
        v.dedup();
        v
    }

    /// The newest key of `source` valid at `now`.
    pub fn signing_key(&self, source: &str, now: i64) -> Option<&Key> {
        self.keys.iter().rev().find(|k| k.source == source && k.valid_from <= now)
    }

    /// The key `kid` of `source`, if a receiver accepts it at `now`: it is
    /// valid, and no newer key has been valid for longer than the overlap.
    pub fn accepting_key(&self, source: &str, kid: &str, now: i64) -> Option<&Key> {
        // Keys are sorted by source, then validity.
        let mut mine = self.keys.iter().filter(|k| k.source == source);
        let k = mine.by_ref().find(|k| k.kid == kid)?;
        if k.valid_from > now + CLOCK_SKEW_SECS {
            return None;
        }
        let retired = mine
            .find(|n| n.valid_from > k.valid_from)
            .is_some_and(|n| now >= n.valid_from.saturating_add(self.overlap_secs));
        (!retired).then_some(k)
    }
}

fn parse_time(s: &str) -> Option<i64> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok().map(|t| t.unix_timestamp())
}

/// A new key line for `source`, valid from `valid_from` (Unix seconds).
pub fn generate_line(
    source: &str,
    kid: &str,
    algorithm: Algorithm,
    valid_from: i64,
) -> Result<String, crate::CryptoError> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut key = Zeroizing::new([0u8; 32]);
    SystemRandom::new().fill(&mut key[..]).map_err(|_| crate::CryptoError::Internal("no randomness".into()))?;
    let len = if algorithm == Algorithm::HmacMd5 { 16 } else { 32 };
    let b64 = base64::engine::general_purpose::STANDARD.encode(&key[..len]);
    let from = time::OffsetDateTime::from_unix_timestamp(valid_from)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| valid_from.to_string());
    Ok(format!("{source} {kid} {} {b64} {from}\n", algorithm.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn to_hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// RFC 2202 §2 (HMAC-MD5), test cases 1, 2, 3, 6.
    #[test]
    fn rfc2202_hmac_md5() {
        let cases: [(&[u8], &[u8], &str); 4] = [
            (&[0x0b; 16], b"Hi There", "9294727a3638bb1c13f48ef8158bfc9d"),
            (b"Jefe", b"what do ya want for nothing?", "750c783e6ab0b503eaa86e310a5db738"),
            (&[0xaa; 16], &[0xdd; 50], "56be34521d144c88dbb8c733f0e8b3f6"),
            (
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd",
            ),
        ];
        for (key, data, want) in cases {
            let mac = Algorithm::HmacMd5.mac(key, data);
            assert_eq!(to_hex(&mac), want);
            assert!(Algorithm::HmacMd5.verify(key, data, &mac));
            assert!(!Algorithm::HmacMd5.verify(key, data, &mac[..15]));
        }
    }

    /// RFC 4231 §4 (HMAC-SHA-256), test cases 1, 2, 4, 6.
    #[test]
    fn rfc4231_hmac_sha256() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 4] = [
            (vec![0x0b; 20], b"Hi There".to_vec(), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                hex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, data, want) in cases {
            let mac = Algorithm::HmacSha256.mac(&key, &data);
            assert_eq!(to_hex(&mac), want);
            assert!(Algorithm::HmacSha256.verify(&key, &data, &mac));
        }
    }

    #[test]
    fn rotation_overlap() {
        let store = KeyStore::parse(
            &format!(
                "{}{}",
                generate_line("a", "old", Algorithm::HmacSha256, 1000).unwrap(),
                generate_line("a", "new", Algorithm::HmacSha256, 5000).unwrap()
            ),
            600,
        )
        .unwrap();
        assert_eq!(store.signing_key("a", 4999).unwrap().kid, "old");
        assert_eq!(store.signing_key("a", 5000).unwrap().kid, "new");
        assert!(store.accepting_key("a", "old", 5599).is_some(), "old is still accepted during the overlap");
        assert!(store.accepting_key("a", "old", 5600).is_none(), "and retired after it");
        assert!(store.accepting_key("a", "new", 4950).is_some(), "a little clock skew is fine");
        assert!(store.accepting_key("a", "new", 4000).is_none());
        assert!(store.signing_key("a", 999).is_none());
    }

    #[test]
    fn bad_files_say_which_line() {
        for (text, want) in [
            ("a k1 hmac-sha256 c2hvcnQ= 0", "line 1: the key is shorter"),
            ("\n\na k1 hmac-sha1 c2VjcmV0IGtleSBvZiB0aGUgYWdlbnQ= 0", "line 3: algorithm"),
            ("a k1 hmac-sha256 c2VjcmV0IGtleSBvZiB0aGUgYWdlbnQ=", "line 1: expected"),
            ("a b/c hmac-sha256 c2VjcmV0IGtleSBvZiB0aGUgYWdlbnQ= 0", "line 1: source and key id"),
            ("a k hmac-sha256 c2VjcmV0IGtleSBvZiB0aGUgYWdlbnQ= yesterday", "line 1: valid-from"),
        ] {
            let e = KeyStore::parse(text, 0).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}");
            assert!(!e.contains("c2Vj"), "the key leaks into the error: {e}");
        }
        let store = KeyStore::parse("a k hmac-sha256 c2VjcmV0IGtleSBvZiB0aGUgYWdlbnQ= 0", 0).unwrap();
        assert!(!format!("{store:?}").contains("c2Vj"));
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys");
        std::fs::write(&p, generate_line("a", "k", Algorithm::HmacSha256, 0).unwrap()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(KeyStore::load(&p, 0), Err(KeyFileError::Permissions { .. })));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(KeyStore::load(&p, 0).unwrap().knows("a"));
    }
}
