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

enum Auth {
    External(Arc<Identity>),
    Plain { user: String, pass: String },
}

pub fn c2s(ctx: &Ctx, a: BenchC2sArgs) -> anyhow::Result<()> {
    if a.clients < 2 && !a.idle {
        bail!("--clients must be at least 2");
    }
    let (auth, mut domain, mut ca_der) = match a.auth.as_str() {
        "external" => {
            let store = FileKeyStore::new(a.keystore.clone().unwrap_or_else(|| ctx.paths.keystore()));
            let identity = store.unlock(&ctx.personal_passphrase().get()?)?;
            let jid = identity.info().jid().context("the certificate names no JID")?.to_owned();
            let ca = identity.chain().iter().skip(1).find(|c| CertInfo::from_der(c).is_ok_and(|i| i.is_ca)).cloned();
            let domain = jid.split_once('@').map(|(_, d)| d.to_owned());
            (Auth::External(Arc::new(identity)), domain, ca)
        }
        "plain" => {
            let user = a.username.clone().context("--auth plain needs --username")?;
            let pass = ctx.personal_passphrase().get()?.to_string();
            (Auth::Plain { user, pass }, None, None)
        }
        other => bail!("--auth must be external or plain, not {other:?}"),
    };
    if let Some(d) = &a.domain {
        domain = Some(d.clone());
    }
    let domain = domain.context("give --domain")?;
    if let Some(path) = &a.ca {
        let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        ca_der = Some(snow_crypto::pem::certificates(&text, &path.display().to_string())?.remove(0));
    }
    let ca_der = ca_der.context("give --ca with the CA certificate of the server")?;
    let rt = super::runtime()?;
    rt.block_on(run(a, auth, domain, ca_der))
}

async fn run(a: BenchC2sArgs, auth: Auth, domain: String, ca_der: Vec<u8>) -> anyhow::Result<()> {
    let addr = tokio::net::lookup_host((a.host.as_str(), a.port)).await?.next().context("no address")?;
    let before = a.server_pid.and_then(proc_stats);
    let auth = Arc::new(auth);
    let gate = Arc::new(Semaphore::new(a.parallel.max(1)));
    let started = Instant::now();
    let mut logins = Vec::with_capacity(a.clients);
    for i in 0..a.clients {
        let (auth, gate, domain, ca_der) = (Arc::clone(&auth), Arc::clone(&gate), domain.clone(), ca_der.clone());
        logins.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            let opts = ConnectOptions {
                addr,
                domain,
                ca_der,
                direct_tls: false,
                resource: Some(format!("bench-{i}")),
                timeout: Duration::from_secs(60),
            };
            match &*auth {
                Auth::External(id) => Client::connect(&opts, id).await,
                Auth::Plain { user, pass } => {
                    Client::connect_with(&opts, &Login::Plain { username: user, password: pass }).await
                }
            }
        }));
    }
    let mut clients = Vec::with_capacity(a.clients);
    for (i, l) in logins.into_iter().enumerate() {
        clients.push(l.await?.with_context(|| format!("client {i} could not log in"))?);
        if (i + 1) % 1000 == 0 {
            eprintln!("  {} clients logged in", i + 1);
        }
    }
    let login_secs = started.elapsed().as_secs_f64();
    println!("{} clients logged in in {login_secs:.1} s", clients.len());

    if a.idle {
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
        return Ok(());
    }

    let jids: Vec<String> = clients.iter().map(|c| c.jid().to_owned()).collect();
    let total = a.clients * a.messages;
    let epoch = Instant::now();
    let filler = "x".repeat(a.payload);
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let (mut rd, mut wr) = c.split();
        let expect = a.messages;
        readers.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(expect);
            while lat.len() < expect {
                let el = match rd.next_stanza(Duration::from_secs(60)).await {
                    Ok(el) => el,
                    Err(e) => return Err(anyhow::anyhow!("receiving: {e}")),
                };
                if el.name() != "message" {
                    continue;
                }
                let Some(body) = el.child(NS_CLIENT, "body").map(|b| b.text()) else { continue };
                if let Some(ns) = body.split(' ').next().and_then(|t| t.parse::<u64>().ok()) {
                    let now = epoch.elapsed().as_nanos() as u64;
                    lat.push(now.saturating_sub(ns));
                }
            }
            Ok((lat, epoch.elapsed()))
        }));
        let to = jids[(i + 1) % jids.len()].clone();
        let filler = filler.clone();
        let n = a.messages;
        writers.push(tokio::spawn(async move {
            for _ in 0..n {
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
    let mut keep = Vec::with_capacity(a.clients);
    for w in writers {
        keep.push(w.await??);
    }
    let mut all = Vec::with_capacity(total);
    let mut last = Duration::ZERO;
    for r in readers {
        let (lat, done) = r.await??;
        all.extend(lat);
        last = last.max(done);
    }
    drop(keep);
    let secs = last.as_secs_f64();
    all.sort_unstable();
    let pct =
        |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
    let rate = all.len() as f64 / secs;
    println!("{} of {total} messages delivered in {secs:.2} s: {rate:.0} messages/s", all.len());
    println!("latency p50 {:.2} ms, p99 {:.2} ms", pct(0.50) as f64 / 1e6, pct(0.99) as f64 / 1e6);
    let after = a.server_pid.and_then(proc_stats);
    let mut result = format!(
        "RESULT msgs_per_sec={rate:.0} p50_ms={:.2} p99_ms={:.2}",
        pct(0.5) as f64 / 1e6,
        pct(0.99) as f64 / 1e6
    );
    if let (Some(b), Some(x)) = (before, after) {
        println!("server peak RSS {:.1} MiB, CPU {:.2} s", x.peak_rss_kib as f64 / 1024.0, x.cpu_secs - b.cpu_secs);
        result.push_str(&format!(
            " peak_rss_mib={:.1} cpu_s={:.2}",
            x.peak_rss_kib as f64 / 1024.0,
            x.cpu_secs - b.cpu_secs
        ));
    }
    println!("{result}");
    Ok(())
}
