//! Each signed message is taken once, also across a restart and across
//! processes.
//!
//! A signed payload (issue 20) carries its signer, a timestamp and a random
//! nonce inside the signature. A receiver refuses a timestamp older than its
//! maximum age (a message kept offline may arrive days late) or ahead of its
//! clock by more than [`MAX_SKEW_SECS`], and a (signer, nonce) it has
//! already taken within that window: a captured message played again is
//! refused, before or after the receiver restarted. Outside the window the
//! timestamp alone refuses it, so only the window's nonces are kept.
//!
//! # Holders: a stored message read again
//!
//! A chat arrives once; an alert stays on its pubsub node and is read again
//! at every listing. So a nonce may be taken *for a holder*
//! ([`NonceCache::take_for`]): the place the message is kept (for an alert,
//! a digest of its node and item id). The same (signer, nonce) taken again
//! for the same holder is a re-read and accepted; for another holder, or
//! with none, it is a replay (the same signed alert copied under another
//! item). The holder is a token the caller makes (1 to
//! [`MAX_HOLDER_LEN`] of `A-Z a-z 0-9 . _ / @ : -`): this crate has no hash
//! function, so a caller whose place names are arbitrary passes a digest of
//! them, which also keeps the line's length fixed.
//!
//! # The file
//!
//! ```text
//! snow-nonces/1
//! TS SIGNER NONCE [HOLDER]
//! ```
//!
//! one line per nonce taken (TS in Unix seconds; lines without a holder, as
//! older versions wrote them, still load), appended and flushed to disk
//! before the message is accepted (a failed write refuses it: a nonce not
//! recorded could be replayed after a crash; a last line without its
//! newline is such a failed write, never accepted, and is ignored). At open
//! the expired lines are dropped and the file is rewritten atomically
//! (`crate::files::write`), as it is again whenever expired lines make up
//! most of it. Owner-only. A damaged file refuses the open, naming the file:
//! starting empty would silently accept replays of everything in the window.
//!
//! # Several processes, one file
//!
//! Two processes may use one file (two `snow chat listen`, the app and the
//! command line): neither may lose the other's nonces, nor take a nonce the
//! other took. So every open and every take runs under an exclusive lock
//! (`File::lock`, an advisory `flock` on Unix) on a sibling file,
//! `<path>.lock`, which is never replaced (the data file is, by each
//! rewrite, so it cannot carry the lock). Under the lock the cache first
//! catches up with the file: if it was replaced (another process rewrote
//! it: another inode) or shrank, it is read again whole; else the lines
//! appended since our last read are read. Then the nonce is checked,
//! appended and flushed, and any rewrite happens, all before the lock is
//! let go. The lock is held for one read of what is new and one flushed
//! append, so a waiting process waits about as long as one disk flush.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::files::{self, Mode};

const HEADER: &str = "snow-nonces/1";
/// How far ahead of our clock a signer's may be.
pub const MAX_SKEW_SECS: i64 = 300;
/// The longest holder token ([`NonceCache::take_for`]).
pub const MAX_HOLDER_LEN: usize = 128;
/// Bytes of file allowed per nonce held: a line is at most about 1.2 KB
/// (a signer of 1024 bytes), usually about 150 (a JID, 32 hex digits and a
/// 64-hex holder).
const BYTES_PER_ENTRY: u64 = 600;

/// Why a nonce was not taken.
#[derive(Debug, thiserror::Error)]
pub enum NonceError {
    #[error("already received (a replay)")]
    Replayed,
    #[error("its time ({ts}) is more than {max_age_secs} s before ours ({now}) or {MAX_SKEW_SECS} s after it")]
    OutsideWindow { ts: i64, now: i64, max_age_secs: i64 },
    #[error("the signer {0:?} or nonce {1:?} is malformed")]
    Malformed(String, String),
    #[error("the holder {0:?} is malformed (1 to {MAX_HOLDER_LEN} of A-Z a-z 0-9 . _ / @ : -)")]
    MalformedHolder(String),
    #[error("more than {0} messages within the clock window: refused until older ones expire")]
    Full(usize),
    #[error("cannot record the message in {path}: {source}", path = .0.display(), source = .1)]
    Io(PathBuf, std::io::Error),
    #[error("{path} is damaged ({why}); remove it only after the clock window has passed, or replays in it would be taken", path = .0.display(), why = .1)]
    Damaged(PathBuf, String),
}

/// One nonce taken: when it was signed, and for which holder.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    ts: i64,
    holder: Option<String>,
}

type Seen = HashMap<(String, String), Entry>;
/// A file's device and inode (`None` where the platform does not say).
type FileId = Option<(u64, u64)>;

/// The nonces taken within the clock window, kept in a file shared with
/// other processes (module doc).
pub struct NonceCache {
    /// `<path>.lock`, locked during [`NonceCache::open`] and each take.
    lock: File,
    inner: Inner,
}

/// Everything but the lock, so the lock's guard and the changes can be
/// borrowed at once.
struct Inner {
    path: PathBuf,
    /// Appends go here: the data file as it was when we last read it.
    file: File,
    max_age_secs: i64,
    max_entries: usize,
    /// (signer, nonce) → entry.
    seen: Seen,
    /// Lines in the file, live or expired.
    lines: usize,
    /// The file we read (`None`: the platform does not say, and then it is
    /// read again whole every time).
    file_id: FileId,
    /// How far we read it (everything before is in `seen`).
    offset: u64,
}

/// The lock on `<path>.lock`, let go when dropped.
struct Held<'a>(&'a File);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl NonceCache {
    /// Opens (or creates) the cache at `path`: timestamps more than
    /// `max_age_secs` before `now` (or [`MAX_SKEW_SECS`] after) are
    /// refused, at most `max_entries` nonces are held at once.
    pub fn open(path: &Path, max_age_secs: i64, max_entries: usize, now: i64) -> Result<NonceCache, NonceError> {
        let io = |e| NonceError::Io(path.to_owned(), e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let lock = open_lock(&lock_path(path)).map_err(io)?;
        let inner = {
            let _held = hold(&lock, path)?;
            let mut seen = Seen::new();
            match files::read_limited(path, max_file_bytes(max_entries)) {
                Ok(bytes) => {
                    parse(path, &bytes, true, now, max_age_secs, &mut seen)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
            let (file, file_id, offset) = rewrite(path, &seen).map_err(io)?;
            let lines = seen.len();
            Inner { path: path.to_owned(), file, max_age_secs, max_entries, seen, lines, file_id, offset }
        };
        Ok(NonceCache { lock, inner })
    }

    /// Takes `nonce` of `signer` stamped `ts`, once: refused if `ts` is
    /// outside the window around `now`, if it was taken before (here or
    /// by another process using the file), or if it cannot be recorded.
    pub fn take(&mut self, signer: &str, nonce: &str, ts: i64, now: i64) -> Result<(), NonceError> {
        self.take_for(signer, nonce, ts, now, None)
    }

    /// [`take`](Self::take) for a message kept at `holder` and read there
    /// again (module doc): taken again for the same `Some(holder)` it is
    /// accepted (a re-read, nothing written); for another holder or none
    /// it is [`NonceError::Replayed`].
    pub fn take_for(
        &mut self,
        signer: &str,
        nonce: &str,
        ts: i64,
        now: i64,
        holder: Option<&str>,
    ) -> Result<(), NonceError> {
        check_names(signer, nonce)?;
        if let Some(h) = holder {
            check_holder(h)?;
        }
        if !in_window(ts, now, self.inner.max_age_secs) {
            return Err(NonceError::OutsideWindow { ts, now, max_age_secs: self.inner.max_age_secs });
        }
        let _held = hold(&self.lock, &self.inner.path)?;
        self.inner.catch_up(now)?;
        self.inner.take(signer, nonce, ts, now, holder)
    }

    /// Nonces held now (for tests and the administrator), as of this
    /// cache's last open or take.
    pub fn len(&self) -> usize {
        self.inner.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.seen.is_empty()
    }
}

impl Inner {
    fn io(&self, e: std::io::Error) -> NonceError {
        NonceError::Io(self.path.clone(), e)
    }

    /// Under the lock: reads what other processes wrote since we last
    /// looked (module doc).
    fn catch_up(&mut self, now: i64) -> Result<(), NonceError> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => Some(m),
            // Removed by hand: what we hold is written again below.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(self.io(e)),
        };
        let max_bytes = max_file_bytes(self.max_entries);
        let (len, id) = match &meta {
            Some(m) => (m.len(), file_id(m)),
            None => (0, None),
        };
        if len > max_bytes {
            let why = format!("larger than {max_bytes} bytes");
            return Err(NonceError::Damaged(self.path.clone(), why));
        }
        let replaced = meta.is_none() || id.is_none() || id != self.file_id || len < self.offset;
        if replaced {
            // Another process rewrote it: having read everything before
            // (under this lock), it holds all of ours that are live. What
            // we hold is kept too; expired entries go at the next take.
            let partial = match &meta {
                Some(_) => {
                    let bytes = match files::read_limited(&self.path, max_bytes) {
                        Ok(b) => b,
                        Err(e) => return Err(self.io(e)),
                    };
                    let (lines, partial) = parse(&self.path, &bytes, true, now, self.max_age_secs, &mut self.seen)?;
                    self.lines = lines;
                    partial
                }
                None => true,
            };
            if partial {
                self.rewrite()?;
            } else {
                self.file = std::fs::OpenOptions::new().append(true).open(&self.path).map_err(|e| self.io(e))?;
                self.file_id = id;
                self.offset = len;
            }
            return Ok(());
        }
        if len == self.offset {
            return Ok(());
        }
        let mut f = File::open(&self.path).map_err(|e| self.io(e))?;
        f.seek(SeekFrom::Start(self.offset)).map_err(|e| self.io(e))?;
        let mut bytes = Vec::new();
        f.take(len - self.offset).read_to_end(&mut bytes).map_err(|e| self.io(e))?;
        let (lines, partial) = parse(&self.path, &bytes, false, now, self.max_age_secs, &mut self.seen)?;
        self.lines += lines;
        self.offset += bytes.len() as u64;
        if partial {
            // Another process failed in the middle of an append: an
            // append after it would join its line, so rewrite.
            self.rewrite()?;
        }
        Ok(())
    }

    /// Under the lock, caught up: checks and records the nonce.
    fn take(&mut self, signer: &str, nonce: &str, ts: i64, now: i64, holder: Option<&str>) -> Result<(), NonceError> {
        let key = (signer.to_owned(), nonce.to_owned());
        if let Some(e) = self.seen.get(&key) {
            return match (holder, e.holder.as_deref()) {
                (Some(h), Some(taken)) if h == taken => Ok(()),
                _ => Err(NonceError::Replayed),
            };
        }
        let max_age = self.max_age_secs;
        self.seen.retain(|_, e| in_window(e.ts, now, max_age));
        if self.seen.len() >= self.max_entries {
            return Err(NonceError::Full(self.max_entries));
        }
        if self.lines > 2 * self.seen.len() + 1000 {
            self.rewrite()?;
        }
        let line = line(signer, nonce, ts, holder);
        let written = self.file.write_all(line.as_bytes()).and_then(|()| self.file.sync_data());
        written.map_err(|e| self.io(e))?;
        self.lines += 1;
        self.offset += line.len() as u64;
        self.seen.insert(key, Entry { ts, holder: holder.map(str::to_owned) });
        Ok(())
    }

    /// Under the lock: replaces the file with what we hold.
    fn rewrite(&mut self) -> Result<(), NonceError> {
        let (file, id, offset) = rewrite(&self.path, &self.seen).map_err(|e| self.io(e))?;
        self.file = file;
        self.file_id = id;
        self.offset = offset;
        self.lines = self.seen.len();
        Ok(())
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn open_lock(path: &Path) -> std::io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

fn hold<'a>(lock: &'a File, path: &Path) -> Result<Held<'a>, NonceError> {
    lock.lock().map_err(|e| NonceError::Io(lock_path(path), e))?;
    Ok(Held(lock))
}

fn max_file_bytes(max_entries: usize) -> u64 {
    (max_entries as u64).saturating_add(1).saturating_mul(BYTES_PER_ENTRY)
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> FileId {
    None
}

/// Reads lines of the file into `seen` (the whole file, from its header,
/// when `whole`; else lines appended after what was read): those in the
/// window, a (signer, nonce) already held keeping its first holder. The
/// number of complete lines read, and whether an unterminated last line
/// (a failed append) was left out.
fn parse(
    path: &Path,
    bytes: &[u8],
    whole: bool,
    now: i64,
    max_age_secs: i64,
    seen: &mut Seen,
) -> Result<(usize, bool), NonceError> {
    let damaged = |why: String| NonceError::Damaged(path.to_owned(), why);
    let text = std::str::from_utf8(bytes).map_err(|_| damaged("not UTF-8".into()))?;
    let (complete, partial) = match text.rfind('\n') {
        Some(i) => (&text[..=i], i + 1 < text.len()),
        None => ("", !text.is_empty()),
    };
    let mut lines = complete.lines();
    let mut first = 1;
    if whole {
        if lines.next() != Some(HEADER) {
            return Err(damaged(format!("its first line is not {HEADER}")));
        }
        first = 2;
    }
    let mut count = 0;
    for (n, line) in lines.enumerate() {
        let n = n + first;
        let mut parts = line.split(' ');
        let (Some(ts), Some(signer), Some(nonce), holder, None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(damaged(format!("line {n} is not TS SIGNER NONCE [HOLDER]")));
        };
        let ts: i64 = ts.parse().map_err(|_| damaged(format!("line {n}: bad time")))?;
        check_names(signer, nonce).map_err(|_| damaged(format!("line {n}: bad signer or nonce")))?;
        if let Some(h) = holder {
            check_holder(h).map_err(|_| damaged(format!("line {n}: bad holder")))?;
        }
        if in_window(ts, now, max_age_secs) {
            seen.entry((signer.to_owned(), nonce.to_owned()))
                .or_insert_with(|| Entry { ts, holder: holder.map(str::to_owned) });
        }
        count += 1;
    }
    Ok((count, partial))
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

/// A holder is a token of the caller's (module doc): no spaces, one field
/// of the line.
fn check_holder(holder: &str) -> Result<(), NonceError> {
    let ok = (1..=MAX_HOLDER_LEN).contains(&holder.len())
        && holder.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/@:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(NonceError::MalformedHolder(holder.chars().take(MAX_HOLDER_LEN + 8).collect()))
    }
}

fn line(signer: &str, nonce: &str, ts: i64, holder: Option<&str>) -> String {
    match holder {
        Some(h) => format!("{ts} {signer} {nonce} {h}\n"),
        None => format!("{ts} {signer} {nonce}\n"),
    }
}

/// Replaces the file with `seen` (atomically); the new file opened for
/// appends, its identity and length.
fn rewrite(path: &Path, seen: &Seen) -> std::io::Result<(File, FileId, u64)> {
    let mut text = format!("{HEADER}\n");
    for ((signer, nonce), e) in seen {
        text.push_str(&line(signer, nonce, e.ts, e.holder.as_deref()));
    }
    files::write(path, text.as_bytes(), Mode::Private)?;
    let file = std::fs::OpenOptions::new().append(true).open(path)?;
    let meta = file.metadata()?;
    Ok((file, file_id(&meta), meta.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const N1: &str = "0123456789abcdef0123456789abcdef";
    const N2: &str = "fedcba9876543210fedcba9876543210";
    const N3: &str = "00112233445566778899aabbccddeeff";

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
        for bad in ["", "a b", "a\nb", "ä", &"h".repeat(MAX_HOLDER_LEN + 1)] {
            let r = c.take_for("a@x", N3, 0, 0, Some(bad));
            assert!(matches!(r, Err(NonceError::MalformedHolder(..))), "{bad:?}: {r:?}");
        }
        drop(c);
        for damaged in [
            "snow-nonces/1\n12 a@x\n",
            "garbage\n",
            "snow-nonces/1\n12 a@x 0123456789abcdef h1 extra\n",
            "snow-nonces/1\n12 a@x 0123456789abcdef h\u{e4}\n",
            "snow-nonces/1",
        ] {
            std::fs::write(&p, damaged).unwrap();
            assert!(matches!(NonceCache::open(&p, 300, 2, 0), Err(NonceError::Damaged(..))), "{damaged:?}");
        }
    }

    #[test]
    fn a_holder_may_read_its_message_again_and_no_one_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nonces");
        let mut c = NonceCache::open(&p, 300, 10, 1000).unwrap();
        let node_a = "alerts/INFA/5401:INFA-5401-2026W47";
        c.take_for("agent@lab", N1, 1000, 1000, Some(node_a)).unwrap();
        // Listed again: the same item.
        c.take_for("agent@lab", N1, 1000, 1010, Some(node_a)).unwrap();
        // The same signed message under another item, or where nothing
        // holds it (a chat): a replay.
        assert!(matches!(c.take_for("agent@lab", N1, 1000, 1010, Some("other")), Err(NonceError::Replayed)));
        assert!(matches!(c.take("agent@lab", N1, 1000, 1010), Err(NonceError::Replayed)));
        // A nonce taken without a holder is taken for good.
        c.take("agent@lab", N2, 1000, 1000).unwrap();
        assert!(matches!(c.take_for("agent@lab", N2, 1000, 1010, Some(node_a)), Err(NonceError::Replayed)));
        // A re-read writes nothing.
        let before = std::fs::read_to_string(&p).unwrap();
        c.take_for("agent@lab", N1, 1000, 1020, Some(node_a)).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), before);
        // Also after a restart; the window still applies.
        drop(c);
        let mut c = NonceCache::open(&p, 300, 10, 1100).unwrap();
        c.take_for("agent@lab", N1, 1000, 1100, Some(node_a)).unwrap();
        assert!(matches!(c.take_for("agent@lab", N1, 1000, 1100, Some("other")), Err(NonceError::Replayed)));
        let late = c.take_for("agent@lab", N1, 1000, 1400, Some(node_a));
        assert!(matches!(late, Err(NonceError::OutsideWindow { .. })));
    }

    #[test]
    fn files_of_three_fields_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nonces");
        std::fs::write(&p, format!("snow-nonces/1\n1000 gp@po.example {N1}\n990 gp@po.example {N2} h-1\n")).unwrap();
        let mut c = NonceCache::open(&p, 300, 10, 1000).unwrap();
        assert_eq!(c.len(), 2);
        assert!(matches!(c.take("gp@po.example", N1, 1000, 1000), Err(NonceError::Replayed)));
        // Taken with no holder: no holder may read it as its own.
        assert!(matches!(c.take_for("gp@po.example", N1, 1000, 1000, Some("h-1")), Err(NonceError::Replayed)));
        c.take_for("gp@po.example", N2, 990, 1000, Some("h-1")).unwrap();
    }

    #[test]
    fn an_unfinished_last_line_was_never_taken_and_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nonces");
        // A crash in the middle of an append (the message was refused).
        std::fs::write(&p, format!("snow-nonces/1\n1000 gp@po.example {N1}\n1000 gp@po.exa")).unwrap();
        let mut c = NonceCache::open(&p, 300, 10, 1000).unwrap();
        assert_eq!(c.len(), 1);
        assert!(std::fs::read_to_string(&p).unwrap().ends_with('\n'));
        // The same in another process's append, found while catching up.
        let mut other = NonceCache::open(&p, 300, 10, 1000).unwrap();
        c.take("gp@po.example", N3, 1000, 1000).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(format!("1000 gp@po.example {N2}\n1000 gp@").as_bytes()).unwrap();
        drop(f);
        // Other reads C's line and the hand-made ones since its last read,
        // and rewrites the file without the unfinished one.
        assert!(matches!(other.take("gp@po.example", N3, 1000, 1000), Err(NonceError::Replayed)));
        assert!(matches!(other.take("gp@po.example", N2, 1000, 1000), Err(NonceError::Replayed)));
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.lines().all(|l| l == HEADER || l.split(' ').count() == 3), "{text}");
        assert!(matches!(c.take("gp@po.example", N2, 1000, 1000), Err(NonceError::Replayed)));
        assert_eq!(NonceCache::open(&p, 300, 10, 1000).unwrap().len(), 3);
    }

    /// Two caches on one path stand for two processes (each has its own
    /// lock file handle, and `flock` locks of two handles exclude each
    /// other also within one process).
    #[test]
    fn two_processes_see_each_others_nonces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nonces");
        let mut a = NonceCache::open(&p, 300, 100, 1000).unwrap();
        let mut b = NonceCache::open(&p, 300, 100, 1000).unwrap();
        a.take("gp@po.example", N1, 1000, 1000).unwrap();
        assert!(matches!(b.take("gp@po.example", N1, 1000, 1001), Err(NonceError::Replayed)));
        b.take_for("agent@lab", N2, 1000, 1001, Some("item-1")).unwrap();
        assert!(matches!(a.take_for("agent@lab", N2, 1000, 1002, Some("item-2")), Err(NonceError::Replayed)));
        a.take_for("agent@lab", N2, 1000, 1002, Some("item-1")).unwrap();
        // A third opens (and so rewrites) the file: the others read it again.
        let mut c = NonceCache::open(&p, 300, 100, 1003).unwrap();
        assert_eq!(c.len(), 2);
        c.take("gp@po.example", N3, 1000, 1003).unwrap();
        assert!(matches!(a.take("gp@po.example", N3, 1000, 1004), Err(NonceError::Replayed)));
        assert!(matches!(b.take("gp@po.example", N3, 1000, 1004), Err(NonceError::Replayed)));
        assert!(matches!(b.take("gp@po.example", N1, 1000, 1004), Err(NonceError::Replayed)));
    }

    #[test]
    fn a_rewrite_by_one_process_keeps_the_others_nonces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nonces");
        let mut a = NonceCache::open(&p, 300, 100, 1000).unwrap();
        let mut b = NonceCache::open(&p, 300, 100, 1000).unwrap();
        b.take("gp@po.example", N1, 1000, 1000).unwrap();
        // Many expired lines, as a long-running process leaves them.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        for i in 0..1100u32 {
            f.write_all(format!("10 old@po.example {i:016x}\n").as_bytes()).unwrap();
        }
        drop(f);
        let before = std::fs::metadata(&p).unwrap().len();
        // A's take finds mostly expired lines and rewrites the file, with B's nonce.
        a.take("gp@po.example", N2, 1000, 1000).unwrap();
        let after = std::fs::metadata(&p).unwrap().len();
        assert!(after < before / 10, "not rewritten: {before} → {after}");
        // B appends to the new file, not to the one A replaced.
        b.take("gp@po.example", N3, 1000, 1001).unwrap();
        assert!(matches!(a.take("gp@po.example", N1, 1000, 1002), Err(NonceError::Replayed)));
        assert!(matches!(a.take("gp@po.example", N3, 1000, 1002), Err(NonceError::Replayed)));
        assert!(matches!(b.take("gp@po.example", N2, 1000, 1002), Err(NonceError::Replayed)));
        let again = NonceCache::open(&p, 300, 100, 1002).unwrap();
        assert_eq!(again.len(), 3);
    }

    #[test]
    fn racing_processes_take_each_nonce_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nonces");
        NonceCache::open(&p, 300, 1000, 1000).unwrap();
        let nonces: Vec<String> = (0..40u32).map(|i| format!("{i:032x}")).collect();
        let taken: usize = std::thread::scope(|s| {
            let runs: Vec<_> = (0..3)
                .map(|_| {
                    let (p, nonces) = (&p, &nonces);
                    s.spawn(move || {
                        let mut c = NonceCache::open(p, 300, 1000, 1000).unwrap();
                        nonces.iter().filter(|n| c.take("gp@po.example", n, 1000, 1000).is_ok()).count()
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).sum()
        });
        assert_eq!(taken, nonces.len());
        assert_eq!(NonceCache::open(&p, 300, 1000, 1000).unwrap().len(), nonces.len());
    }

    #[cfg(unix)]
    #[test]
    fn the_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nonces");
        NonceCache::open(&p, 300, 2, 0).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let lock = dir.path().join("nonces.lock");
        assert_eq!(std::fs::metadata(&lock).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
