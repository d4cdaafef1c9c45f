//! `snow bench c2s`: whole-system load on a running XMPP server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use snow_client::{Client, ConnectOptions, Login};
use snow_crypto::{CertInfo, FileKeyStore, Identity, KeyStore};
use snow_xml::{Element, NS_CLIENT};
use tokio::sync::Semaphore;

use super::Ctx;
use crate::cli::BenchC2sArgs;

/// Server process figures from /proc.
#[derive(Debug, Clone, Copy, Default)]
struct ProcStats {
    rss_kib: u64,
    peak_rss_kib: u64,
    cpu_secs: f64,
}

fn proc_stats(pid: u32) -> Option<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(ProcStats { rss_kib: field("VmRSS:")?, peak_rss_kib: field("VmHWM:")?, cpu_secs: ticks as f64 / 100.0 })
}

/// A process's resident memory now and at its peak (KiB), from /proc.
pub(super) fn server_memory(pid: u32) -> Option<(u64, u64)> {
    proc_stats(pid).map(|s| (s.rss_kib, s.peak_rss_kib))
}

enum Auth {
    External(Arc<Identity>),
    Plain { user: String, pass: String },
}

/// A server to log in to, and how.
struct Target {
    addr: std::net::SocketAddr,
    domain: String,
    ca_der: Vec<u8>,
    auth: Arc<Auth>,
}

/// Where one side of the load logs in.
struct Endpoint<'a> {
    host: &'a str,
    port: u16,
    domain: Option<&'a str>,
    keystore: Option<&'a std::path::Path>,
}

/// Builds a target from the login arguments `a` and the endpoint `e`.
async fn target(ctx: &Ctx, a: &BenchC2sArgs, e: Endpoint<'_>) -> anyhow::Result<Target> {
    let Endpoint { host, port, domain, keystore } = e;
    let (username, ca) = (a.username.as_deref(), a.ca.as_deref());
    let (auth, mut dom, mut ca_der) = match a.auth.as_str() {
        "external" => {
            let store = FileKeyStore::new(keystore.map(|k| k.to_owned()).unwrap_or_else(|| ctx.paths.keystore()));
            let identity = store.unlock(&crate::secrets::Source::personal_passphrase(&a.key).get()?)?;
            let jid = identity.info().jid().context("the certificate names no JID")?.to_owned();
            let ca = identity.chain().iter().skip(1).find(|c| CertInfo::from_der(c).is_ok_and(|i| i.is_ca)).cloned();
            let d = jid.split_once('@').map(|(_, d)| d.to_owned());
            (Auth::External(Arc::new(identity)), d, ca)
        }
        "plain" => {
            let user = username.context("--auth plain needs --username")?.to_owned();
            let pass = crate::secrets::Source::personal_passphrase(&a.key).get()?.to_string();
            (Auth::Plain { user, pass }, None, None)
        }
        other => bail!("--auth must be external or plain, not {other:?}"),
    };
    if let Some(d) = domain {
        dom = Some(d.to_owned());
    }
    if let Some(path) = ca {
        let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        ca_der = Some(snow_crypto::pem::certificates(&text, &path.display().to_string())?.remove(0));
    }
    let addr = tokio::net::lookup_host((host, port)).await?.next().context("no address")?;
    Ok(Target {
        addr,
        domain: dom.context("give --domain")?,
        ca_der: ca_der.context("give --ca with the CA certificate of the server")?,
        auth: Arc::new(auth),
    })
}

/// Logs `n` clients in to `t`, `parallel` at a time.
async fn login_all(t: &Target, n: usize, parallel: usize, tag: &str) -> anyhow::Result<Vec<Client>> {
    let gate = Arc::new(Semaphore::new(parallel.max(1)));
    let mut logins = Vec::with_capacity(n);
    for i in 0..n {
        let (auth, gate) = (Arc::clone(&t.auth), Arc::clone(&gate));
        let opts = ConnectOptions {
            addr: t.addr,
            domain: t.domain.clone(),
            ca_der: t.ca_der.clone(),
            direct_tls: false,
            resource: Some(format!("{tag}-{i}")),
            timeout: Duration::from_secs(60),
        };
        logins.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            match &*auth {
                Auth::External(id) => Client::connect(&opts, id).await,
                Auth::Plain { user, pass } => {
                    Client::connect_with(&opts, &Login::Plain { username: user, password: pass }).await
                }
            }
        }));
    }
    let mut clients = Vec::with_capacity(n);
    for (i, l) in logins.into_iter().enumerate() {
        clients.push(l.await?.with_context(|| format!("client {i} could not log in"))?);
        if (i + 1) % 1000 == 0 {
            eprintln!("  {} clients logged in", i + 1);
        }
    }
    Ok(clients)
}

pub fn c2s(ctx: &Ctx, a: BenchC2sArgs) -> anyhow::Result<()> {
    if a.clients < 2 && !a.idle {
        bail!("--clients must be at least 2");
    }
    let rt = super::runtime()?;
    rt.block_on(async {
        let e =
            Endpoint { host: &a.host, port: a.port, domain: a.domain.as_deref(), keystore: a.key.keystore.as_deref() };
        let t = target(ctx, &a, e).await?;
        let before = a.server_pid.and_then(proc_stats);
        let started = Instant::now();
        let clients = login_all(&t, a.clients, a.parallel, "bench").await?;
        println!("{} clients logged in in {:.1} s", clients.len(), started.elapsed().as_secs_f64());
        if a.idle {
            return idle_report(&a, before).await;
        }
        // Every client sends to the next one and receives from the previous one.
        let jids: Vec<String> = clients.iter().map(|c| c.jid().to_owned()).collect();
        let mut senders = Vec::new();
        let mut readers = Vec::new();
        for (i, c) in clients.into_iter().enumerate() {
            let (rd, wr) = c.split();
            senders.push((wr, jids[(i + 1) % jids.len()].clone()));
            readers.push(rd);
        }
        let (rate, p50, p99) = exchange(senders, readers, a.messages, a.payload).await?;
        report(a.clients * a.messages, rate, p50, p99, a.server_pid, before);
        Ok(())
    })
}

/// `snow bench s2s`: senders on one server, receivers on another; every
/// message crosses the s2s link between them.
pub fn s2s(ctx: &Ctx, a: crate::cli::BenchS2sArgs) -> anyhow::Result<()> {
    let b = &a.base;
    let rt = super::runtime()?;
    rt.block_on(async {
        let e =
            Endpoint { host: &b.host, port: b.port, domain: b.domain.as_deref(), keystore: b.key.keystore.as_deref() };
        let from = target(ctx, b, e).await?;
        let e = Endpoint {
            host: &a.to_host,
            port: a.to_port,
            domain: a.to_domain.as_deref(),
            keystore: a.to_keystore.as_deref(),
        };
        let to = target(ctx, b, e).await?;
        let before = b.server_pid.and_then(proc_stats);
        let senders = login_all(&from, b.clients, b.parallel, "send").await?;
        let receivers = login_all(&to, b.clients, b.parallel, "recv").await?;
        println!(
            "{} senders at {} and {} receivers at {} logged in",
            senders.len(),
            from.domain,
            receivers.len(),
            to.domain
        );
        let mut keep = Vec::new();
        let mut writers = Vec::new();
        let mut readers = Vec::new();
        for (s, r) in senders.into_iter().zip(receivers) {
            let target_jid = r.jid().to_owned();
            let (srd, swr) = s.split();
            let (rrd, rwr) = r.split();
            keep.push((srd, rwr));
            writers.push((swr, target_jid));
            readers.push(rrd);
        }
        let (rate, p50, p99) = exchange(writers, readers, b.messages, b.payload).await?;
        drop(keep);
        report(b.clients * b.messages, rate, p50, p99, b.server_pid, before);
        Ok(())
    })
}

async fn idle_report(a: &BenchC2sArgs, before: Option<ProcStats>) -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = a.server_pid.and_then(proc_stats);
    match (before, after) {
        (Some(b), Some(x)) => {
            let per = (x.rss_kib.saturating_sub(b.rss_kib)) as f64 / a.clients as f64;
            println!(
                "server RSS {:.1} MiB before, {:.1} MiB with {} idle connections: {per:.1} KiB per connection",
                b.rss_kib as f64 / 1024.0,
                x.rss_kib as f64 / 1024.0,
                a.clients
            );
            println!("RESULT idle_connections={} kib_per_connection={per:.1}", a.clients);
        }
        _ => println!("(give --server-pid to measure the server's memory)"),
    }
    Ok(())
}

/// Each writer sends `messages` chats to its target; each reader expects
/// `messages`. Returns delivered messages/s and p50/p99 latency in ns.
async fn exchange(
    writers: Vec<(snow_client::ClientWriter, String)>,
    readers: Vec<snow_client::ClientReader>,
    messages: usize,
    payload: usize,
) -> anyhow::Result<(f64, u64, u64)> {
    let epoch = Instant::now();
    let filler = "x".repeat(payload);
    let mut rtasks = Vec::with_capacity(readers.len());
    for mut rd in readers {
        rtasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(messages);
            while lat.len() < messages {
                let el =
                    rd.next_stanza(Duration::from_secs(60)).await.map_err(|e| anyhow::anyhow!("receiving: {e}"))?;
                if el.name() != "message" {
                    continue;
                }
                if el.attr("type") == Some("error") {
                    bail!("a message bounced: {}", el.to_xml(NS_CLIENT));
                }
                let Some(body) = el.child(NS_CLIENT, "body").map(|b| b.text()) else { continue };
                if let Some(ns) = body.split(' ').next().and_then(|t| t.parse::<u64>().ok()) {
                    lat.push((epoch.elapsed().as_nanos() as u64).saturating_sub(ns));
                }
            }
            Ok((lat, epoch.elapsed()))
        }));
    }
    let mut wtasks = Vec::with_capacity(writers.len());
    for (mut wr, to) in writers {
        let filler = filler.clone();
        wtasks.push(tokio::spawn(async move {
            for _ in 0..messages {
                let body = format!("{} {filler}", epoch.elapsed().as_nanos());
                let msg = Element::new(NS_CLIENT, "message")
                    .with_attr("to", to.clone())
                    .with_attr("type", "chat")
                    .with_child(Element::new(NS_CLIENT, "body").with_text(body));
                wr.send(&msg).await?;
            }
            anyhow::Ok(wr)
        }));
    }
    let mut keep = Vec::with_capacity(wtasks.len());
    for w in wtasks {
        keep.push(w.await??);
    }
    let mut all = Vec::new();
    let mut last = Duration::ZERO;
    for r in rtasks {
        let (lat, done) = r.await??;
        all.extend(lat);
        last = last.max(done);
    }
    drop(keep);
    all.sort_unstable();
    let pct =
        |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
    Ok((all.len() as f64 / last.as_secs_f64(), pct(0.5), pct(0.99)))
}

fn report(total: usize, rate: f64, p50: u64, p99: u64, pid: Option<u32>, before: Option<ProcStats>) {
    let (p50, p99) = (p50 as f64 / 1e6, p99 as f64 / 1e6);
    println!("{total} messages delivered: {rate:.0} messages/s");
    println!("latency p50 {p50:.2} ms, p99 {p99:.2} ms");
    let mut result = format!("RESULT msgs_per_sec={rate:.0} p50_ms={p50:.2} p99_ms={p99:.2}");
    if let (Some(b), Some(x)) = (before, pid.and_then(proc_stats)) {
        let cpu = x.cpu_secs - b.cpu_secs;
        println!("server peak RSS {:.1} MiB, CPU {cpu:.2} s", x.peak_rss_kib as f64 / 1024.0);
        result.push_str(&format!(" peak_rss_mib={:.1} cpu_s={cpu:.2}", x.peak_rss_kib as f64 / 1024.0));
    }
    println!("{result}");
}
