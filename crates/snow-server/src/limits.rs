//! What keeps one peer from taking the server from everyone else
//! (docs/architecture.md §3): connection counting (in all, per IP address,
//! and not yet authenticated per IP address), token buckets (the
//! per-connection pace, and keyed rate limits per account, source address,
//! s2s peer, component and publisher), the free space of the database's
//! file system, and the counters of everything refused ([`LimitStats`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a connection was not given a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `[server] max_connections`.
    Total,
    /// `[server] max_connections_per_ip`.
    PerIp,
    /// `[server] max_preauth_per_ip`: too many connections of this address
    /// have not authenticated yet.
    PreAuth,
}

#[derive(Default)]
struct Open {
    total: usize,
    /// Every connection of an address, and those not authenticated yet.
    per_ip: HashMap<IpAddr, (usize, usize)>,
}

/// Counts open connections in all, per IP address, and those of an
/// address that have not authenticated yet: a peer that opens connections
/// and never finishes negotiating holds at most `max_preauth_per_ip`
/// places, each for at most the pre-authentication deadline.
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    max_preauth_per_ip: usize,
    open: Mutex<Open>,
}

/// Holds one connection's place; dropping it frees the place. It starts
/// as not authenticated ([`ConnectionSlot::authenticated`] moves it on).
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
    preauth: bool,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: usize, max_preauth_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits { max_total, max_per_ip, max_preauth_per_ip, open: Mutex::default() })
    }

    /// A slot for a new connection from `ip`, or which limit is reached.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Full> {
        let mut g = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let Open { total, per_ip } = &mut *g;
        let (n, pre) = per_ip.get(&ip).copied().unwrap_or((0, 0));
        let full = if *total >= self.max_total {
            Some(Full::Total)
        } else if n >= self.max_per_ip {
            Some(Full::PerIp)
        } else if pre >= self.max_preauth_per_ip {
            Some(Full::PreAuth)
        } else {
            None
        };
        if let Some(full) = full {
            return Err(full);
        }
        per_ip.insert(ip, (n + 1, pre + 1));
        *total += 1;
        Ok(ConnectionSlot { limits: Arc::clone(self), ip, preauth: true })
    }

    pub fn open_connections(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl ConnectionSlot {
    /// The connection has authenticated: it no longer counts against
    /// `max_preauth_per_ip`.
    pub fn authenticated(&mut self) {
        if std::mem::take(&mut self.preauth) {
            let mut g = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, pre)) = g.per_ip.get_mut(&self.ip) {
                *pre = pre.saturating_sub(1);
            }
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut g = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        let Open { total, per_ip } = &mut *g;
        *total = total.saturating_sub(1);
        if let Some((n, pre)) = per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if self.preauth {
                *pre = pre.saturating_sub(1);
            }
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
/// The one bucket of the server, taken two ways: [`take`](Self::take)
/// paces (the caller waits, as a connection's reader does: it stops
/// reading), [`try_take`](Self::try_take) refuses (a [`RateLimiter`]).
/// The rate and burst are positive and finite (checked at startup,
/// `ServerConfig::validate`).
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64) -> Self {
        TokenBucket { rate, burst, tokens: burst, last: Instant::now() }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// How long to wait before one more stanza may be handled (and takes it).
    pub fn take(&mut self) -> Duration {
        self.refill(Instant::now());
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            // Finite and positive: rate > 0 and the deficit is at most a few tokens.
            Duration::try_from_secs_f64(-self.tokens / self.rate).unwrap_or(Duration::from_secs(1))
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self) -> bool {
        self.refill(Instant::now());
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Full again: as good as no bucket (it can be forgotten).
    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }
}

/// What a [`RateLimiter`] says about one more stanza (or attempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Over the rate: refuse this one (`policy-violation`).
    Refuse,
    /// Over the rate persistently (more refused within a minute than the
    /// burst): end the stream with `policy-violation`.
    Disconnect,
}

/// Which rate a [`RateLimiter`] keeps, for its counters and log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// `[server] account_stanza_rate`: an account, across its sessions.
    Account,
    /// `[server] login_attempts_per_minute`: connections to the client
    /// ports from one address.
    Logins,
    /// `[s2s] stanza_rate`: an incoming link's peer domain.
    S2sPeer,
    /// `[server] component_stanza_rate`: one external component.
    Component,
    /// `[pubsub] publish_burst` / `publish_per_hour` (and the signal
    /// publishers'): one publisher.
    Publisher,
}

impl Limited {
    fn what(self) -> &'static str {
        match self {
            Limited::Account => "account",
            Limited::Logins => "login attempts from",
            Limited::S2sPeer => "s2s peer",
            Limited::Component => "component",
            Limited::Publisher => "pubsub publisher",
        }
    }
}

/// Entities a limiter remembers; past it, those whose bucket is full again
/// are forgotten first (a full bucket is the same as none).
const MAX_TRACKED: usize = 10_000;
/// The window of "persistent" excess and of the log lines.
const MINUTE: Duration = Duration::from_secs(60);

struct Tracked {
    bucket: TokenBucket,
    /// Start of the current minute, and what was refused in it.
    window: Instant,
    refused_in_window: u64,
    /// When the last log line about this entity was written, and what was
    /// refused since.
    logged: Option<Instant>,
    refused_since_log: u64,
}

/// Token buckets by entity (an account, an address, a domain): `rate` per
/// second, `burst` at once. Excess is refused and counted; more refused
/// within a minute than the burst asks for a disconnect; one log line per
/// limited entity per minute at most.
pub struct RateLimiter {
    kind: Limited,
    rate: f64,
    burst: f64,
    counters: Arc<LimitCounters>,
    tracked: Mutex<HashMap<String, Tracked>>,
}

impl RateLimiter {
    pub fn new(kind: Limited, rate: f64, burst: f64, counters: Arc<LimitCounters>) -> Self {
        RateLimiter { kind, rate, burst, counters, tracked: Mutex::default() }
    }

    /// One more stanza (or attempt) of `who`.
    pub fn check(&self, who: &str) -> Verdict {
        let now = Instant::now();
        let mut tracked = self.tracked.lock().unwrap_or_else(|p| p.into_inner());
        if tracked.len() >= MAX_TRACKED && !tracked.contains_key(who) {
            tracked.retain(|_, t| !t.bucket.is_full(now));
            if tracked.len() >= MAX_TRACKED {
                // Still full (a flood of distinct entities): forget one, so
                // memory stays bounded; the others keep their limits.
                if let Some(k) = tracked.keys().next().cloned() {
                    tracked.remove(&k);
                }
            }
        }
        let t = tracked.entry(who.to_owned()).or_insert_with(|| Tracked {
            bucket: TokenBucket::new(self.rate, self.burst),
            window: now,
            refused_in_window: 0,
            logged: None,
            refused_since_log: 0,
        });
        if t.bucket.try_take() {
            return Verdict::Pass;
        }
        if now.saturating_duration_since(t.window) >= MINUTE {
            t.window = now;
            t.refused_in_window = 0;
        }
        t.refused_in_window += 1;
        t.refused_since_log += 1;
        let disconnect = t.refused_in_window > self.burst as u64;
        self.counters.add(self.kind.refused());
        if disconnect {
            if let Some(c) = self.kind.disconnected() {
                self.counters.add(c);
            }
            t.refused_in_window = 0;
        }
        if t.logged.is_none_or(|at| now.saturating_duration_since(at) >= MINUTE) {
            tracing::warn!(
                limited = who,
                rate = self.rate,
                burst = self.burst,
                refused = t.refused_since_log,
                disconnect,
                "rate limit: {} {who} is over its rate; refusing (one line per minute)",
                self.kind.what(),
            );
            t.logged = Some(now);
            t.refused_since_log = 0;
        }
        if disconnect {
            Verdict::Disconnect
        } else {
            Verdict::Refuse
        }
    }
}

/// Counters since start, for the administrator and the tests
/// (`ServerHandle::limit_stats`): what the rate limits, quotas and
/// pre-authentication limits refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitStats {
    /// Stanzas refused by an account's rate (across its sessions).
    pub account_refused: u64,
    /// Sessions ended for persistent excess over the account's rate.
    pub account_disconnected: u64,
    /// Client connections refused by the login attempts per address.
    pub logins_refused: u64,
    /// Stanzas refused by an s2s peer's rate, and links ended for it.
    pub s2s_refused: u64,
    pub s2s_disconnected: u64,
    /// Stanzas refused by a component's rate, and links ended for it.
    pub component_refused: u64,
    pub component_disconnected: u64,
    /// Publications refused by a publisher's rate.
    pub publications_refused: u64,
    /// Connections refused by `max_connections` or `max_connections_per_ip`.
    pub connections_refused: u64,
    /// Connections refused by `max_preauth_per_ip`.
    pub preauth_refused: u64,
    /// Connections closed because TLS was not done by its deadline.
    pub tls_deadline_closed: u64,
    /// Connections closed because authentication was not done by its deadline.
    pub auth_deadline_closed: u64,
    /// Offline messages refused by the recipient's quota (count or bytes).
    pub offline_recipient_full: u64,
    /// Offline messages refused by the quota of one sender to one recipient.
    pub offline_sender_full: u64,
    /// Offline messages refused because the database's disk is short of space.
    pub offline_disk_low: u64,
    /// Roster additions refused by the roster size.
    pub roster_full: u64,
    /// Pubsub items refused by the item size.
    pub item_too_big: u64,
}

/// One counter of [`LimitStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    AccountRefused,
    AccountDisconnected,
    LoginsRefused,
    S2sRefused,
    S2sDisconnected,
    ComponentRefused,
    ComponentDisconnected,
    PublicationsRefused,
    ConnectionsRefused,
    PreauthRefused,
    TlsDeadline,
    AuthDeadline,
    OfflineRecipientFull,
    OfflineSenderFull,
    OfflineDiskLow,
    RosterFull,
    ItemTooBig,
}

impl Limited {
    fn refused(self) -> Count {
        match self {
            Limited::Account => Count::AccountRefused,
            Limited::Logins => Count::LoginsRefused,
            Limited::S2sPeer => Count::S2sRefused,
            Limited::Component => Count::ComponentRefused,
            Limited::Publisher => Count::PublicationsRefused,
        }
    }

    fn disconnected(self) -> Option<Count> {
        match self {
            Limited::Account => Some(Count::AccountDisconnected),
            Limited::S2sPeer => Some(Count::S2sDisconnected),
            Limited::Component => Some(Count::ComponentDisconnected),
            // No stream to end: the attempt or publication is refused.
            Limited::Logins | Limited::Publisher => None,
        }
    }
}

/// The counters behind [`LimitStats`], shared by everything that refuses.
#[derive(Default)]
pub struct LimitCounters([AtomicU64; 17]);

impl LimitCounters {
    /// Adds one; returns the new count (for the log line).
    pub fn add(&self, which: Count) -> u64 {
        self.0[which as usize].fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn stats(&self) -> LimitStats {
        let get = |c: Count| self.0[c as usize].load(Ordering::Relaxed);
        LimitStats {
            account_refused: get(Count::AccountRefused),
            account_disconnected: get(Count::AccountDisconnected),
            logins_refused: get(Count::LoginsRefused),
            s2s_refused: get(Count::S2sRefused),
            s2s_disconnected: get(Count::S2sDisconnected),
            component_refused: get(Count::ComponentRefused),
            component_disconnected: get(Count::ComponentDisconnected),
            publications_refused: get(Count::PublicationsRefused),
            connections_refused: get(Count::ConnectionsRefused),
            preauth_refused: get(Count::PreauthRefused),
            tls_deadline_closed: get(Count::TlsDeadline),
            auth_deadline_closed: get(Count::AuthDeadline),
            offline_recipient_full: get(Count::OfflineRecipientFull),
            offline_sender_full: get(Count::OfflineSenderFull),
            offline_disk_low: get(Count::OfflineDiskLow),
            roster_full: get(Count::RosterFull),
            item_too_big: get(Count::ItemTooBig),
        }
    }
}

/// The space free for unprivileged writers on the file system holding
/// `path` (statvfs: available blocks × fragment size), or `None` where it
/// cannot be read (then the disk watermark is not applied, and the log
/// says so once).
pub fn free_bytes(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        match rustix::fs::statvfs(path) {
            Ok(s) => Some(s.f_bavail.saturating_mul(s.f_frsize)),
            Err(e) => {
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read the free disk space: the offline disk watermark is not applied")
                });
                None
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_freed() {
        let l = ConnectionLimits::new(3, 2, 10);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = l.acquire(a).unwrap();
        let _s2 = l.acquire(a).unwrap();
        assert_eq!(l.acquire(a).err(), Some(Full::PerIp));
        let _s3 = l.acquire(b).unwrap();
        assert_eq!(l.acquire(b).err(), Some(Full::Total));
        drop(s1);
        assert!(l.acquire(b).is_ok());
    }

    #[test]
    fn preauth_places_are_freed_by_authentication() {
        let l = ConnectionLimits::new(100, 100, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let mut s1 = l.acquire(a).unwrap();
        let s2 = l.acquire(a).unwrap();
        assert_eq!(l.acquire(a).err(), Some(Full::PreAuth));
        s1.authenticated();
        s1.authenticated();
        let s3 = l.acquire(a).unwrap();
        assert_eq!(l.acquire(a).err(), Some(Full::PreAuth));
        drop(s2);
        drop(s3);
        let _s4 = l.acquire(a).unwrap();
        let _s5 = l.acquire(a).unwrap();
        assert_eq!(l.open_connections(), 3, "the authenticated one still holds its place");
        drop(s1);
        assert_eq!(l.open_connections(), 2);
    }

    #[test]
    fn bucket_allows_burst_then_paces() {
        let mut t = TokenBucket::new(10.0, 3.0);
        for _ in 0..3 {
            assert_eq!(t.take(), Duration::ZERO);
        }
        let wait = t.take();
        assert!(wait > Duration::from_millis(50) && wait <= Duration::from_millis(100), "{wait:?}");
    }

    #[test]
    fn a_limiter_refuses_past_the_burst_then_asks_for_a_disconnect() {
        let counters = Arc::new(LimitCounters::default());
        let l = RateLimiter::new(Limited::Account, 0.001, 3.0, Arc::clone(&counters));
        let verdicts: Vec<Verdict> = (0..8).map(|_| l.check("a@x")).collect();
        use Verdict::*;
        assert_eq!(verdicts, [Pass, Pass, Pass, Refuse, Refuse, Refuse, Disconnect, Refuse]);
        assert_eq!(l.check("b@x"), Pass, "another entity has its own bucket");
        let s = counters.stats();
        assert_eq!((s.account_refused, s.account_disconnected), (5, 1));
    }
}
