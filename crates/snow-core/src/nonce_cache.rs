//! Each signed message is taken once, also across a restart.
//!
//! A signed payload (issue 20) carries its signer, a timestamp and a random
//! nonce inside the signature. A receiver refuses a timestamp older than its
//! maximum age (a message kept offline may arrive days late) or ahead of its
//! clock by more than [`MAX_SKEW_SECS`], and a (signer, nonce) it has
//! already taken within that window: a captured message played again is
//! refused, before or after the receiver restarted. Outside the window the
//! timestamp alone refuses it, so only the window's nonces are kept.
//!
//! # The file
//!
//! ```text
//! snow-nonces/1
//! TS SIGNER NONCE
//! ```
//!
//! one line per nonce taken (TS in Unix seconds), appended and flushed to
//! disk before the message is accepted (a failed write refuses it: a nonce
//! not recorded could be replayed after a crash). At open the expired lines
//! are dropped and the file is rewritten atomically
//! (`crate::files::write`), as it is again whenever expired lines make up
//! most of it. Owner-only. A damaged file refuses the open, naming the file:
//! starting empty would silently accept replays of everything in the window.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::files::{self, Mode};

const HEADER: &str = "snow-nonces/1";
/// How far ahead of our clock a signer's may be.
pub const MAX_SKEW_SECS: i64 = 300;

/// Why a nonce was not taken.
#[derive(Debug, thiserror::Error)]
pub enum NonceError {
    #[error("already received (a replay)")]
    Replayed,
    #[error("its time ({ts}) is more than {max_age_secs} s before ours ({now}) or {MAX_SKEW_SECS} s after it")]
    OutsideWindow { ts: i64, now: i64, max_age_secs: i64 },
    #[error("the signer {0:?} or nonce {1:?} is malformed")]
    Malformed(String, String),
    #[error("more than {0} messages within the clock window: refused until older ones expire")]
    Full(usize),
    #[error("cannot record the message in {path}: {source}", path = .0.display(), source = .1)]
    Io(PathBuf, std::io::Error),
    #[error("{path} is damaged ({why}); remove it only after the clock window has passed, or replays in it would be taken", path = .0.display(), why = .1)]
    Damaged(PathBuf, String),
}

/// The nonces taken within the clock window, kept in a file.
pub struct NonceCache {
    path: PathBuf,
    file: std::fs::File,
    max_age_secs: i64,
    max_entries: usize,
    /// (signer, nonce) → timestamp.
    seen: HashMap<(String, String), i64>,
    /// Lines in the file, live or expired.
    lines: usize,
}

impl NonceCache {
    /// Opens (or creates) the cache at `path`: timestamps more than
    /// `max_age_secs` before `now` (or [`MAX_SKEW_SECS`] after) are
    /// refused, at most `max_entries` nonces are held at once.
    pub fn open(path: &Path, max_age_secs: i64, max_entries: usize, now: i64) -> Result<NonceCache, NonceError> {
        let io = |e| NonceError::Io(path.to_owned(), e);
        let max_bytes = (max_entries as u64 + 1) * 400;
        let mut seen = HashMap::new();
        match files::read_limited(path, max_bytes) {
            Ok(bytes) => {
                let damaged = |why: String| NonceError::Damaged(path.to_owned(), why);
                let text = String::from_utf8(bytes).map_err(|_| damaged("not UTF-8".into()))?;
                let mut lines = text.lines();
                if lines.next() != Some(HEADER) {
                    return Err(damaged(format!("its first line is not {HEADER}")));
                }
                for (n, line) in lines.enumerate() {
                    let mut parts = line.split(' ');
                    let (Some(ts), Some(signer), Some(nonce), None) =
                        (parts.next(), parts.next(), parts.next(), parts.next())
                    else {
                        return Err(damaged(format!("line {} is not TS SIGNER NONCE", n + 2)));
                    };
                    let ts: i64 = ts.parse().map_err(|_| damaged(format!("line {}: bad time", n + 2)))?;
                    check_names(signer, nonce).map_err(|_| damaged(format!("line {}: bad signer or nonce", n + 2)))?;
                    if in_window(ts, now, max_age_secs) {
                        seen.insert((signer.to_owned(), nonce.to_owned()), ts);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        rewrite(path, &seen).map_err(io)?;
        let file = std::fs::OpenOptions::new().append(true).open(path).map_err(io)?;
        let lines = seen.len();
        Ok(NonceCache { path: path.to_owned(), file, max_age_secs, max_entries, seen, lines })
    }

    /// Takes `nonce` of `signer` stamped `ts`, once: refused if `ts` is
    /// outside the window around `now`, if it was taken before, or if it
    /// cannot be recorded.
    pub fn take(&mut self, signer: &str, nonce: &str, ts: i64, now: i64) -> Result<(), NonceError> {
        check_names(signer, nonce)?;
        if !in_window(ts, now, self.max_age_secs) {
            return Err(NonceError::OutsideWindow { ts, now, max_age_secs: self.max_age_secs });
        }
        let key = (signer.to_owned(), nonce.to_owned());
        if self.seen.contains_key(&key) {
            return Err(NonceError::Replayed);
        }
        let max_age = self.max_age_secs;
        self.seen.retain(|_, t| in_window(*t, now, max_age));
        if self.seen.len() >= self.max_entries {
            return Err(NonceError::Full(self.max_entries));
        }
        if self.lines > 2 * self.seen.len() + 1000 {
            let io = |e| NonceError::Io(self.path.clone(), e);
            rewrite(&self.path, &self.seen).map_err(io)?;
            self.file = std::fs::OpenOptions::new().append(true).open(&self.path).map_err(io)?;
            self.lines = self.seen.len();
        }
        let line = format!("{ts} {signer} {nonce}\n");
        let written = self.file.write_all(line.as_bytes()).and_then(|()| self.file.sync_data());
        written.map_err(|e| NonceError::Io(self.path.clone(), e))?;
        self.lines += 1;
        self.seen.insert(key, ts);
        Ok(())
    }

    /// Nonces held now (for tests and the administrator).
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

fn in_window(ts: i64, now: i64, max_age_secs: i64) -> bool {
    ts >= now.saturating_sub(max_age_secs) && ts <= now.saturating_add(MAX_SKEW_SECS)
}

/// A signer is a JID-like name without spaces or controls; a nonce 16 to
/// 64 hex digits.
fn check_names(signer: &str, nonce: &str) -> Result<(), NonceError> {
    let signer_ok =
        !signer.is_empty() && signer.len() <= 1024 && signer.chars().all(|c| !c.is_whitespace() && !c.is_control());
    let nonce_ok = (16..=64).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_hexdigit());
    if signer_ok && nonce_ok {
        Ok(())
    } else {
        Err(NonceError::Malformed(signer.chars().take(64).collect(), nonce.chars().take(80).collect()))
    }
}

fn rewrite(path: &Path, seen: &HashMap<(String, String), i64>) -> std::io::Result<()> {
    let mut text = format!("{HEADER}\n");
    for ((signer, nonce), ts) in seen {
        text.push_str(&format!("{ts} {signer} {nonce}\n"));
    }
    files::write(path, text.as_bytes(), Mode::Private)
}

#[cfg(test)]
mod tests {
    use super::*;

    const N1: &str = "0123456789abcdef0123456789abcdef";
    const N2: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn a_nonce_is_taken_once_also_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nonces");
        let mut c = NonceCache::open(&p, 300, 10, 1000).unwrap();
        c.take("gp@po.example", N1, 1000, 1000).unwrap();
        assert!(matches!(c.take("gp@po.example", N1, 1000, 1001), Err(NonceError::Replayed)));
        // Another signer may use the same nonce.
        c.take("lab@lab.example", N1, 1000, 1001).unwrap();
        drop(c);
        let mut c = NonceCache::open(&p, 300, 10, 1100).unwrap();
        assert!(matches!(c.take("gp@po.example", N1, 1000, 1100), Err(NonceError::Replayed)));
        c.take("gp@po.example", N2, 1100, 1100).unwrap();
        // Outside the window: refused by time; expired nonces are dropped.
        assert!(matches!(c.take("gp@po.example", N1, 1000, 1400), Err(NonceError::OutsideWindow { .. })));
        // From the future: only within the skew.
        c.take("gp@po.example", "aaaaaaaaaaaaaaaa", 1100 + MAX_SKEW_SECS, 1100).unwrap();
        let ahead = c.take("gp@po.example", "bbbbbbbbbbbbbbbb", 1101 + MAX_SKEW_SECS, 1100);
        assert!(matches!(ahead, Err(NonceError::OutsideWindow { .. })));
        drop(c);
        let c = NonceCache::open(&p, 300, 10, 1500 + 2 * MAX_SKEW_SECS).unwrap();
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn full_malformed_and_damaged_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nonces");
        let mut c = NonceCache::open(&p, 300, 2, 0).unwrap();
        c.take("a@x", N1, 0, 0).unwrap();
        c.take("a@x", N2, 0, 0).unwrap();
        assert!(matches!(c.take("b@x", N1, 0, 0), Err(NonceError::Full(2))));
        assert!(matches!(c.take("a b@x", N1, 0, 0), Err(NonceError::Malformed(..))));
        assert!(matches!(c.take("a@x", "short", 0, 0), Err(NonceError::Malformed(..))));
        assert!(matches!(c.take("a@x", "zz23456789abcdef", 0, 0), Err(NonceError::Malformed(..))));
        drop(c);
        std::fs::write(&p, "snow-nonces/1\n12 a@x\n").unwrap();
        assert!(matches!(NonceCache::open(&p, 300, 2, 0), Err(NonceError::Damaged(..))));
        std::fs::write(&p, "garbage\n").unwrap();
        assert!(matches!(NonceCache::open(&p, 300, 2, 0), Err(NonceError::Damaged(..))));
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nonces");
        NonceCache::open(&p, 300, 2, 0).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
