//! The replay window, kept across restarts (docs/architecture.md §6).
//!
//! A [`Receiver`](super::Receiver) remembers, per source, the sender's
//! epoch and which sequence numbers it has taken. Kept in memory only,
//! that is forgotten at a restart, and a message captured before it could
//! be played again while its timestamp is inside the clock window
//! (`[msgauth] window_secs`). [`ReplayState::open`] keeps it in a small
//! owner-only file beside the key file ([`state_path`]), so a restarted
//! receiver still refuses such a message.
//!
//! # When the file is written
//!
//! A write on every message would put a file write and an fsync on the
//! hot path. Instead the file holds, per source, a *reservation*: the
//! sequence number of the current epoch up to which messages may have
//! been taken. A message beyond it, or of a new epoch, is taken only once
//! the file says so (written before the message is accepted; a failed
//! write refuses the message, [`AuthError::Unrecorded`]). The reservation
//! leaves room for as many messages as the source sent in the last two
//! seconds, so a busy source causes about one write a second, and a quiet
//! one a write per message.
//!
//! Messages below the reservation are not written one by one, so after a
//! crash the exact window between the last write and the crash is not
//! known. The file says whether its writer stopped cleanly; if not, every
//! sequence number of that epoch up to the reservation is refused for
//! `2 × window_secs` after the start (a *doubt*). That is enough: a
//! message taken before the crash had a timestamp at most `window_secs`
//! ahead of our clock when it was taken, so once `2 × window_secs` have
//! passed since the start it fails the clock check whatever the window
//! says. A clean stop (the state dropped: `snow serve` shutting down)
//! writes the exact window, so a sender that keeps running across a clean
//! restart loses nothing; across a crash it may see messages within its
//! reservation (about two seconds of its traffic) refused as replays, for
//! at most `2 × window_secs`.
//!
//! # The file
//!
//! ```text
//! snow-msgauth-replay/1 running|clean
//! SOURCE EPOCH LAST SEEN RESERVED DOUBT_UPTO DOUBT_UNTIL
//! ```
//!
//! one line per source (decimal numbers; SEEN: the 64-bit window bitmap
//! in hex; DOUBT_UPTO / DOUBT_UNTIL: the doubt's last sequence number and
//! its end in Unix seconds, `0 0` for none). At most [`MAX_SOURCES`]
//! lines and [`MAX_STATE_BYTES`]; only sources with a valid MAC are ever
//! recorded, so it is as small as the key file. Written atomically
//! (temporary file, fsync, rename; `snow_core::files::write`), readable by
//! the owner only.
//!
//! A damaged file refuses the start ([`ReplayStateError::Damaged`], naming
//! the file): starting with an empty window instead would silently re-open
//! replays of every message captured in the last `window_secs`, which is
//! what the file is there to prevent. A missing file is a first start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::{valid_name, AuthError, Tag, REPLAY_WINDOW};

/// The first line's first word.
const MAGIC: &str = "snow-msgauth-replay/1";
/// Largest state file read (a line is under 200 bytes).
pub const MAX_STATE_BYTES: u64 = 1024 * 1024;
/// Most sources in a state file.
pub const MAX_SOURCES: usize = 4096;
/// Largest room a reservation leaves beyond the message that made it.
const MAX_MARGIN: u64 = 1 << 20;

/// Where the receiving side named `receiver` (its own msgauth source: the
/// server's domain, a component's source) keeps its replay window: beside
/// the key file, `msgauth.RECEIVER.state`. One file per receiving
/// process: `snow serve` and `snow agent run` on one site share the key
/// file but never a state file.
pub fn state_path(keys_file: &Path, receiver: &str) -> PathBuf {
    keys_file.with_file_name(format!("msgauth.{receiver}.state"))
}

/// Why the replay state could not be read or written at the start.
#[derive(Debug, thiserror::Error)]
pub enum ReplayStateError {
    #[error(
        "the msgauth replay state {path} is damaged ({reason}); refusing to start, as an empty window would let \
         messages captured before the restart be played again. Move the file away to start anyway: messages of the \
         last {window_secs} s could then be replayed once"
    )]
    Damaged { path: PathBuf, reason: String, window_secs: i64 },
    #[error("cannot read or write the msgauth replay state {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// One source's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    epoch: u64,
    last: u64,
    /// Bit i set: `last - i` was seen.
    seen: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Doubt {
    /// Sequence numbers of the window's epoch up to this one are refused…
    upto: u64,
    /// …until this time (Unix seconds).
    until: i64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    win: Window,
    /// The file says messages of `win.epoch` up to this may have been taken.
    reserved: u64,
    doubt: Option<Doubt>,
    /// Messages taken in the second `second` and in the one before it.
    second: i64,
    this_second: u64,
    previous_second: u64,
}

impl Entry {
    fn new(win: Window) -> Entry {
        Entry { win, reserved: win.last, doubt: None, second: 0, this_second: 0, previous_second: 0 }
    }

    /// Counts a message taken at `now`; returns how many came in the two
    /// seconds before it (the room a new reservation leaves).
    fn count(&mut self, now: i64) -> u64 {
        if now != self.second {
            self.previous_second = if now == self.second + 1 { self.this_second } else { 0 };
            self.this_second = 0;
            self.second = now;
        }
        let recent = self.this_second + self.previous_second;
        self.this_second += 1;
        recent.min(MAX_MARGIN)
    }
}

struct Inner {
    sources: HashMap<String, Entry>,
}

/// Instances of open state files in this process, by path: a newer one
/// supersedes an older one (a server restarted in the same process), whose
/// later writes would otherwise overwrite the newer one's file.
static OWNERS: Mutex<Option<HashMap<PathBuf, u64>>> = Mutex::new(None);
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

fn owners() -> MutexGuard<'static, Option<HashMap<PathBuf, u64>>> {
    OWNERS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The sequence windows of every source a process's receivers have
/// heard, in memory ([`in_memory`](Self::in_memory)) or kept in a file
/// ([`open`](Self::open)). Receivers of one process share one (one
/// `Arc`): the server's components all use the server's.
pub struct ReplayState {
    window_secs: i64,
    file: Option<(PathBuf, u64)>,
    inner: Mutex<Inner>,
    /// Writes of the file so far (see `writes`).
    writes: AtomicU64,
}

impl std::fmt::Debug for ReplayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayState").field("window_secs", &self.window_secs).field("file", &self.file).finish()
    }
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl ReplayState {
    /// A window kept in memory only: forgotten at a restart.
    /// `window_secs`: how far a sender's clock may be from ours.
    pub fn in_memory(window_secs: i64) -> ReplayState {
        ReplayState {
            window_secs,
            file: None,
            inner: Mutex::new(Inner { sources: HashMap::new() }),
            writes: AtomicU64::new(0),
        }
    }

    /// The window kept in `path` (see [`state_path`]): read if it exists,
    /// with a doubt over what a crash may have left unwritten, and at once
    /// written back as running (so a crash from now on is known as one).
    pub fn open(path: &Path, window_secs: i64) -> Result<ReplayState, ReplayStateError> {
        Self::open_at(path, window_secs, now_secs())
    }

    pub(crate) fn open_at(path: &Path, window_secs: i64, now: i64) -> Result<ReplayState, ReplayStateError> {
        let damaged = |reason: String| ReplayStateError::Damaged {
            path: path.to_owned(),
            reason,
            window_secs: window_secs.max(0),
        };
        let sources = match snow_core::files::read_limited(path, MAX_STATE_BYTES) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| damaged("not UTF-8 text".into()))?;
                parse(&text, now, window_secs).map_err(damaged)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(damaged(format!("larger than {MAX_STATE_BYTES} bytes")))
            }
            Err(source) => return Err(ReplayStateError::Io { path: path.to_owned(), source }),
        };
        let id = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        owners().get_or_insert_with(HashMap::new).insert(path.to_owned(), id);
        let state = ReplayState {
            window_secs,
            file: Some((path.to_owned(), id)),
            inner: Mutex::new(Inner { sources }),
            writes: AtomicU64::new(0),
        };
        let inner = state.lock();
        state.write(&inner, false).map_err(|source| ReplayStateError::Io { path: path.to_owned(), source })?;
        drop(inner);
        Ok(state)
    }

    /// How far a sender's clock may be from ours, in seconds.
    pub fn window_secs(&self) -> i64 {
        self.window_secs
    }

    /// How many times the file has been written since it was opened (the
    /// start's write included): about once a second for a busy source.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// The file, if the window is kept in one.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|(p, _)| p.as_path())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the whole state: `clean` (the exact windows, nothing taken
    /// beyond them) only when stopping. Nothing if a newer instance in this
    /// process has the file now.
    fn write(&self, inner: &Inner, clean: bool) -> std::io::Result<()> {
        let Some((path, id)) = &self.file else { return Ok(()) };
        if owners().as_ref().and_then(|o| o.get(path)) != Some(id) {
            return Err(std::io::Error::other("another instance in this process has the file now"));
        }
        let mut names: Vec<&String> = inner.sources.keys().collect();
        names.sort();
        let mut text = format!("{MAGIC} {}\n", if clean { "clean" } else { "running" });
        for name in names {
            let e = &inner.sources[name];
            let reserved = if clean { e.win.last } else { e.reserved.max(e.win.last) };
            let (upto, until) = e.doubt.map_or((0, 0), |d| (d.upto, d.until));
            text.push_str(&format!(
                "{name} {} {} {:016x} {reserved} {upto} {until}\n",
                e.win.epoch, e.win.last, e.win.seen
            ));
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        snow_core::files::write(path, text.as_bytes(), snow_core::files::Mode::Private)
    }

    /// Takes `tag` (its MAC and clock already checked) into its source's
    /// window: `Ok((lost, restarted))`, or a replay. In a file, a message
    /// beyond the reservation is taken only once the file says so.
    pub(crate) fn admit(&self, tag: &Tag, now: i64) -> Result<(Option<(u64, u64)>, bool), AuthError> {
        let replay = || AuthError::Replay { sender: tag.source.clone(), seq: tag.seq };
        let fresh = Window { epoch: tag.epoch, last: tag.seq, seen: 1 };
        let mut inner = self.lock();
        // One hash lookup on the common path (a source already seen).
        let Some(entry) = inner.sources.get_mut(&tag.source) else {
            // The first message we see from this source: nothing to compare.
            let mut e = Entry::new(fresh);
            e.count(now);
            if self.file.is_some() {
                if inner.sources.len() >= MAX_SOURCES {
                    return Err(self.unrecorded(format!("more than {MAX_SOURCES} sources")));
                }
                inner.sources.insert(tag.source.clone(), e);
                if let Err(err) = self.write(&inner, false) {
                    inner.sources.remove(&tag.source);
                    return Err(self.unrecorded(err.to_string()));
                }
            } else {
                inner.sources.insert(tag.source.clone(), e);
            }
            return Ok((None, false));
        };
        if let Some(d) = entry.doubt {
            if now > d.until {
                entry.doubt = None;
            } else if tag.epoch == entry.win.epoch && tag.seq <= d.upto {
                return Err(replay());
            }
        }
        let s = entry.win;
        let (next, lost, restarted) = if tag.epoch < s.epoch {
            return Err(replay());
        } else if tag.epoch > s.epoch {
            (fresh, (tag.seq > 1).then(|| (1, tag.seq - 1)), true)
        } else if tag.seq > s.last {
            let shift = tag.seq - s.last;
            let seen = if shift >= 64 { 1 } else { (s.seen << shift) | 1 };
            let lost = (tag.seq > s.last + 1).then(|| (s.last + 1, tag.seq - 1));
            (Window { epoch: s.epoch, last: tag.seq, seen }, lost, false)
        } else {
            let back = s.last - tag.seq;
            if back >= REPLAY_WINDOW || s.seen & (1 << back) != 0 {
                return Err(replay());
            }
            // A late message inside the window, seen once.
            (Window { seen: s.seen | (1 << back), ..s }, None, false)
        };
        if self.file.is_none() {
            entry.win = next;
            return Ok((lost, restarted));
        }
        let before = *entry;
        let room = entry.count(now);
        entry.win = next;
        if !restarted && next.last <= entry.reserved {
            return Ok((lost, restarted));
        }
        // Beyond the reservation, or a new epoch: the file first.
        entry.reserved = next.last.saturating_add(room);
        if restarted {
            // The doubt was about the old epoch, which is refused whole now.
            entry.doubt = None;
        }
        if let Err(err) = self.write(&inner, false) {
            inner.sources.insert(tag.source.clone(), before);
            return Err(self.unrecorded(err.to_string()));
        }
        Ok((lost, restarted))
    }

    /// The refusal of a message the file could not record (the caller
    /// logs it; it names the file).
    fn unrecorded(&self, why: String) -> AuthError {
        let path = self.path().map(|p| p.display().to_string()).unwrap_or_default();
        AuthError::Unrecorded { path, why }
    }
}

impl Drop for ReplayState {
    /// A clean stop: the exact windows, so a sender that keeps running
    /// across the restart loses nothing.
    fn drop(&mut self) {
        let Some((path, id)) = &self.file else { return };
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if owners().as_ref().and_then(|o| o.get(path)) != Some(id) {
            return;
        }
        // A failure leaves the running file: the next start doubts, safely.
        let _ = self.write(&inner, true);
        if let Some(o) = owners().as_mut() {
            o.remove(path);
        }
    }
}

/// The sources of a state file read at `now`; an unclean stop adds a
/// doubt over each source's reservation for `2 × window_secs`.
fn parse(text: &str, now: i64, window_secs: i64) -> Result<HashMap<String, Entry>, String> {
    let mut lines = text.lines().enumerate();
    let clean = match lines.next().map(|(_, l)| l.split_ascii_whitespace().collect::<Vec<_>>()).as_deref() {
        Some([MAGIC, "clean"]) => true,
        Some([MAGIC, "running"]) => false,
        _ => return Err(format!("line 1: not \"{MAGIC} running|clean\"")),
    };
    let doubt_until = now.saturating_add(window_secs.max(0).saturating_mul(2));
    let mut sources = HashMap::new();
    for (i, line) in lines {
        let at = |why: &str| format!("line {}: {why}", i + 1);
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        let [name, epoch, last, seen, reserved, upto, until] = f[..] else {
            return Err(at("expected 7 fields"));
        };
        if !valid_name(name) {
            return Err(at("not a source name"));
        }
        let num = |s: &str, what: &str| s.parse::<u64>().map_err(|_| at(&format!("{what} is not a number")));
        let (epoch, last, reserved, upto) =
            (num(epoch, "epoch")?, num(last, "last")?, num(reserved, "reserved")?, num(upto, "doubt")?);
        let until = until.parse::<i64>().map_err(|_| at("the doubt's end is not a number"))?;
        let seen = u64::from_str_radix(seen, 16).map_err(|_| at("seen is not hex"))?;
        if epoch == 0 || last == 0 || seen & 1 == 0 || reserved < last {
            return Err(at("not a window (epoch and last from 1, last seen, reserved ≥ last)"));
        }
        let mut e = Entry::new(Window { epoch, last, seen });
        e.doubt = (upto > 0 && until >= now).then_some(Doubt { upto, until });
        if !clean {
            // What a crash may have left unwritten: up to the reservation.
            let d = e.doubt.unwrap_or(Doubt { upto: 0, until: 0 });
            e.doubt = Some(Doubt { upto: d.upto.max(reserved), until: d.until.max(doubt_until) });
        }
        if sources.len() >= MAX_SOURCES {
            return Err(format!("more than {MAX_SOURCES} sources"));
        }
        if sources.insert(name.to_owned(), e).is_some() {
            return Err(at("a source listed twice"));
        }
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{feed_head, Carrier, KeyStore, Receiver, Sender, Verified};
    use super::*;

    fn store() -> Arc<KeyStore> {
        Arc::new(
            KeyStore::parse("agent k1 hmac-sha256 c2VjcmV0IGtleSBvZiB0aGUgYWdlbnQsIDMyIGJ5dGVzIQ== 0\n", 3600).unwrap(),
        )
    }

    /// A tag as a sender with `epoch` would sign message `seq` at `ts`.
    fn tag(store: &KeyStore, epoch: u64, seq: u64, ts: i64) -> Tag {
        let key = store.signing_key("agent", 0).unwrap();
        let mut t = Tag { source: "agent".into(), kid: key.kid.clone(), epoch, seq, ts, mac: Vec::new() };
        let mut m = key.start().unwrap();
        feed_head(&mut m, Carrier::Text, &t);
        m.update(b"m");
        t.mac = m.finish();
        t
    }

    fn receiver(path: &Path, now: i64) -> Receiver {
        Receiver::with_state(store(), Arc::new(ReplayState::open_at(path, 300, now).unwrap()))
    }

    fn verify(rx: &Receiver, t: &Tag, now: i64) -> Result<Verified, AuthError> {
        rx.verify_at(Carrier::Text, t, |m| m.update(b"m"), now)
    }

    /// A clean stop keeps the exact window: replays are refused after the
    /// restart, and a sender that kept running loses nothing (a late
    /// message never taken is still taken once).
    #[test]
    fn a_clean_restart_refuses_replays_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(&dir.path().join("msgauth.keys"), "po.example");
        assert_eq!(path, dir.path().join("msgauth.po.example.state"));
        let s = store();
        let now = 1_800_000_000;
        let t: Vec<Tag> = (1..=6).map(|i| tag(&s, 7, i, now)).collect();
        let rx = receiver(&path, now);
        for i in [0, 1, 2, 4, 5] {
            verify(&rx, &t[i], now).unwrap();
        }
        drop(rx);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("snow-msgauth-replay/1 clean\nagent 7 6 "), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let rx = receiver(&path, now + 1);
        for i in [0, 1, 2, 4, 5] {
            assert!(matches!(verify(&rx, &t[i], now + 1), Err(AuthError::Replay { .. })), "message {}", i + 1);
        }
        verify(&rx, &t[3], now + 1).expect("a late message never taken");
        assert!(matches!(verify(&rx, &t[3], now + 1), Err(AuthError::Replay { .. })));
        verify(&rx, &tag(&s, 7, 7, now + 1), now + 1).expect("the sender goes on");
        // An older epoch is a replay, a newer one a restart.
        assert!(matches!(verify(&rx, &tag(&s, 6, 100, now), now + 1), Err(AuthError::Replay { .. })));
        assert!(verify(&rx, &tag(&s, 8, 1, now + 1), now + 1).unwrap().restarted);
    }

    /// After a crash (the state never dropped) the messages taken since the
    /// last write are not in the file, but under its reservation: refused
    /// for 2 × window_secs, after which the clock check refuses them.
    #[test]
    fn after_a_crash_what_was_taken_but_not_written_is_still_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("msgauth.po.example.state");
        let s = store();
        let now = 1_800_000_000;
        let t: Vec<Tag> = (1..=40).map(|i| tag(&s, 7, i, now)).collect();
        let rx = receiver(&path, now);
        for (i, m) in t.iter().enumerate() {
            if i != 19 {
                verify(&rx, m, now).unwrap();
            }
        }
        // Message 20 arrives late, after the last write.
        verify(&rx, &t[19], now).unwrap();
        let writes = rx.state().writes();
        assert!(writes < 10, "{writes} writes for 40 messages");
        // The crash: nothing more is written.
        std::mem::forget(rx);
        let text = std::fs::read_to_string(&path).unwrap();
        let f: Vec<&str> = text.lines().nth(1).unwrap().split(' ').collect();
        let (last, reserved): (u64, u64) = (f[2].parse().unwrap(), f[4].parse().unwrap());
        assert!(text.starts_with("snow-msgauth-replay/1 running\n"), "{text}");
        assert!(last < 40 && reserved >= 40, "taken but not written: {text}");

        let later = now + 5;
        let rx = receiver(&path, later);
        for i in [39, 19, 0] {
            assert!(matches!(verify(&rx, &t[i], later), Err(AuthError::Replay { .. })), "message {}", i + 1);
        }
        // The cost: the same sender's next messages inside the reservation
        // wait for the doubt to end; one beyond it, or a restarted sender,
        // is taken.
        assert!(matches!(verify(&rx, &tag(&s, 7, 41, later), later), Err(AuthError::Replay { .. })));
        verify(&rx, &tag(&s, 7, reserved + 1, later), later).unwrap();
        // After 2 × window_secs the captured messages are stale anyway.
        let after = later + 601;
        assert!(matches!(verify(&rx, &t[39], after), Err(AuthError::Stale { .. })));
        verify(&rx, &tag(&s, 7, 41, after), after).expect("the doubt is over");
        assert!(verify(&rx, &tag(&s, 9, 1, after), after).unwrap().restarted);
    }

    /// A crash during the doubt keeps it, and a restart of the sender ends
    /// it for the old epoch.
    #[test]
    fn the_doubt_survives_another_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let s = store();
        let now = 1_800_000_000;
        let rx = receiver(&path, now);
        for i in 1..=10 {
            verify(&rx, &tag(&s, 7, i, now), now).unwrap();
        }
        std::mem::forget(rx);
        let rx = receiver(&path, now + 1);
        std::mem::forget(rx);
        let rx = receiver(&path, now + 2);
        assert!(matches!(verify(&rx, &tag(&s, 7, 10, now + 2), now + 2), Err(AuthError::Replay { .. })));
        drop(rx);
        let rx = receiver(&path, now + 3);
        assert!(matches!(verify(&rx, &tag(&s, 7, 10, now + 3), now + 3), Err(AuthError::Replay { .. })));
    }

    /// A damaged file refuses the start, naming the file; a missing one is
    /// a first start.
    #[test]
    fn a_damaged_file_refuses_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("msgauth.po.example.state");
        assert!(ReplayState::open(&path, 300).is_ok(), "missing: a first start");
        for bad in [
            "",
            "garbage\n",
            "snow-msgauth-replay/1 clean\nagent 7 6\n",
            "snow-msgauth-replay/1 clean\nagent 7 6 zz 6 0 0\n",
            "snow-msgauth-replay/1 clean\nagent 7 6 1 5 0 0\n",
            "snow-msgauth-replay/1 clean\nagent 7 6 1 6 0 0\nagent 7 6 1 6 0 0\n",
            "snow-msgauth-replay/1 clean\nbad/name 7 6 1 6 0 0\n",
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = ReplayState::open(&path, 300).unwrap_err();
            assert!(matches!(e, ReplayStateError::Damaged { .. }), "{bad:?}: {e}");
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        }
        std::fs::write(&path, vec![b'x'; MAX_STATE_BYTES as usize + 1]).unwrap();
        assert!(matches!(ReplayState::open(&path, 300), Err(ReplayStateError::Damaged { .. })));
    }

    /// A message the file cannot record is refused, not taken.
    #[test]
    fn a_message_that_cannot_be_recorded_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let s = store();
        let now = 1_800_000_000;
        let rx = receiver(&path, now);
        verify(&rx, &tag(&s, 7, 1, now), now).unwrap();
        // Another instance takes the file over: this one may not write.
        let newer = ReplayState::open_at(&path, 300, now).unwrap();
        let e = verify(&rx, &tag(&s, 7, 2, now), now).unwrap_err();
        assert!(matches!(e, AuthError::Unrecorded { .. }), "{e}");
        drop(rx);
        drop(newer);
        // The refused message was not taken: the file never recorded it.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("agent 7 1 "), "{text}");
    }

    /// A busy source causes a few writes a second, not one a message.
    #[test]
    fn a_busy_source_causes_few_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let s = store();
        let tx = Sender::new(Arc::clone(&s), "agent").unwrap();
        let rx = Receiver::with_state(Arc::clone(&s), Arc::new(ReplayState::open(&path, 300).unwrap()));
        let start = std::time::Instant::now();
        for _ in 0..20_000 {
            let t = tx.sign(Carrier::Text, b"m").unwrap();
            rx.verify(Carrier::Text, &t, b"m").unwrap();
        }
        let secs = start.elapsed().as_secs() + 1;
        let writes = rx.state().writes();
        assert!(writes <= 20 + 3 * secs, "{writes} writes in about {secs} s");
    }
}
