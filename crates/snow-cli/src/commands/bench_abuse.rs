//! `snow bench abuse`: can one account's flood hurt everyone else? A
//! fresh site in a temporary directory, its `snow serve` as a child
//! process, N normal users chatting in a ring at a steady rate, then the
//! same with one more account flooding from several connections at full
//! speed. Prints, per phase, the normal users' delivered ratio and latency
//! p50/p99, what the flood got through and what came back refused, and
//! the server's memory and database size (issue 19's target: p99 within
//! 2x, nothing lost).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use snow_client::{Client, ClientError, ConnectOptions};
use snow_crypto::{pkcs12, Identity};
use snow_pki::{outbox, Ca, PkiSettings};
use snow_xml::{Element, NS_CLIENT};

use super::Ctx;
use crate::cli::BenchAbuseArgs;

const DOMAIN: &str = "bench.example";
/// The flood's bodies start with this; receivers leave them out of the
/// normal users' figures.
const FLOOD: &str = "flood ";
/// How long after a phase its messages still count as delivered.
const LATE: Duration = Duration::from_secs(3);

/// A user of the bench: bare JID and unlocked key.
type User = (String, Arc<Identity>);

/// What one phase measured.
#[derive(Default)]
struct Phase {
    sent: AtomicU64,
    received: AtomicU64,
    /// (sent at, latency), microseconds since the phase began.
    latencies_us: Mutex<Vec<(u64, u64)>>,
    flood_sent: AtomicU64,
    flood_refused: AtomicU64,
    flood_received: AtomicU64,
}

pub fn run(_ctx: &Ctx, args: BenchAbuseArgs) -> anyhow::Result<()> {
    if args.users < 2 || args.rate <= 0.0 || !args.rate.is_finite() || args.secs == 0 || args.flood_connections == 0 {
        bail!("--users must be at least 2, --rate a positive number, --secs and --flood-connections at least 1");
    }
    let dir = tempfile::Builder::new().prefix("snow-bench-abuse-").tempdir()?;
    let home = snow_core::SiteHome::new(dir.path().join("home"));
    eprintln!("setting up {DOMAIN} with {} users in {}…", args.users + 1, dir.path().display());
    let pki = PkiSettings { ca_key_bits: 2048, ..PkiSettings::default() };
    let mut ca = Ca::init(&home, &DOMAIN.parse()?, "bench admin passphrase", &pki)?;
    ca.issue_server(&DOMAIN.parse()?, &[])?;
    let setup = Instant::now();
    let mut issued_users = Vec::new();
    for i in 0..=args.users {
        let hpnr = format!("{}", 10_000_000 + i);
        let issued = ca.add_user(&hpnr.parse()?, &"+4791234567".parse()?, &"bench@x.example".parse()?)?;
        let sms = std::fs::read_to_string(&issued.delivery.sms)?;
        let password = outbox::password_of(&sms).context("no password in the SMS")?;
        issued_users.push((issued.jid.to_string(), issued.p12, password));
        if (i + 1) % 20 == 0 {
            eprintln!("  {} users issued", i + 1);
        }
    }
    // Opening a .p12 runs its key derivation: on every core at once.
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let chunk = issued_users.len().div_ceil(threads);
    let opened: Vec<anyhow::Result<Vec<User>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = issued_users
            .chunks(chunk.max(1))
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(jid, p12, password)| {
                            let c = pkcs12::read(p12, password, "p12")?;
                            Ok((jid.clone(), Arc::new(Identity::new(c.key_pkcs8, c.chain)?)))
                        })
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a thread failed")))).collect()
    });
    let mut ids = Vec::new();
    for part in opened {
        ids.extend(part?);
    }
    eprintln!("users made in {:.1} s", setup.elapsed().as_secs_f64());
    let ca_der = ca.cert_der().to_vec();
    let port = snow_core::spare_port::spare_port()?;
    std::fs::write(
        home.config_file(),
        format!(
            "[server]\nc2s_bind = \"127.0.0.1:{port}\"\ndirect_tls_bind = \"\"\ncomponent_bind = \"\"\n\
             max_connections_per_ip = 10000\n\
             max_preauth_per_ip = 10000\nlogin_attempts_per_minute = 100000\n\n[s2s]\nbind = \"\"\n"
        ),
    )?;
    let exe = std::env::current_exe()?;
    let log = std::fs::File::create(dir.path().join("serve.log"))?;
    let mut server = std::process::Command::new(exe)
        .arg("--home")
        .arg(home.home())
        .arg("serve")
        .env_remove("SNOW_CONFIG")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start snow serve")?;
    let pid = server.id();
    let rt = super::runtime()?;
    // The flood runs on a runtime of its own: on one runtime its tasks
    // would keep the normal users' readers from their threads, and the
    // bench would measure its own scheduling, not the server.
    let flood_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let result = rt.block_on(async {
        let opts = ConnectOptions {
            addr: format!("127.0.0.1:{port}").parse()?,
            domain: DOMAIN.into(),
            ca_der,
            direct_tls: false,
            resource: None,
            timeout: Duration::from_secs(30),
        };
        wait_for(&opts, &ids[0].1).await?;
        let (users, flooder) = ids.split_at(args.users);
        let quiet = phase(&opts, users, None, &args).await?;
        report("without the flood", &quiet, pid, &home.server_db());
        let loud = phase(&opts, users, Some((&flooder[0], flood_rt.handle())), &args).await?;
        report(
            &format!("with one account flooding from {} connections", args.flood_connections),
            &loud,
            pid,
            &home.server_db(),
        );
        let (p99_quiet, p99_loud) = (percentile(&quiet, 99.0), percentile(&loud, 99.0));
        println!(
            "p99 with the flood / without: {:.2}x (target ≤ 2x); normal messages lost with the flood: {}",
            p99_loud as f64 / p99_quiet.max(1) as f64,
            loud.sent.load(Ordering::Relaxed).saturating_sub(loud.received.load(Ordering::Relaxed))
        );
        anyhow::Ok(())
    });
    let _ = server.kill();
    let _ = server.wait();
    if result.is_err() {
        let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
        eprintln!(
            "the server's log:\n{}",
            log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    result
}

/// Until the server takes a login (it is starting).
async fn wait_for(opts: &ConnectOptions, id: &Identity) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        match Client::connect(opts, id).await {
            Ok(c) => return Ok(c.close().await?),
            Err(e) if start.elapsed() < Duration::from_secs(30) => {
                tracing::debug!(error = %e, "waiting for the server");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => bail!("the server did not start: {e}"),
        }
    }
}

/// One phase: every user sends to the next at `rate` for `secs`, and
/// reads; with a flooder, it sends to everyone as fast as it can.
async fn phase(
    opts: &ConnectOptions,
    users: &[User],
    flooder: Option<(&User, &tokio::runtime::Handle)>,
    args: &BenchAbuseArgs,
) -> anyhow::Result<Arc<Phase>> {
    let stats = Arc::new(Phase::default());
    let t0 = Instant::now();
    let run_for = Duration::from_secs(args.secs);
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for (i, (_, id)) in users.iter().enumerate() {
        let mut client = Client::connect(opts, id).await?;
        // Online: messages come straight to this session, not to storage.
        client.send_presence().await?;
        let (mut rd, mut wr) = client.split();
        let to = users[(i + 1) % users.len()].0.clone();
        let s = Arc::clone(&stats);
        // Read until a few seconds after the phase (late messages count,
        // the flood only within the phase: what its connections' socket
        // buffers still hold trickles in at their paced rate for minutes).
        readers.push(tokio::spawn(async move {
            while let Some(left) = (run_for + LATE).checked_sub(t0.elapsed()) {
                match rd.next_stanza(left).await {
                    Ok(el) if el.name() == "message" => {
                        let body = el.child(NS_CLIENT, "body").map(|b| b.text()).unwrap_or_default();
                        if body.starts_with(FLOOD) {
                            if t0.elapsed() <= run_for {
                                s.flood_received.fetch_add(1, Ordering::Relaxed);
                            }
                        } else if let Some(sent) = body.strip_prefix("t=").and_then(|t| t.parse::<u64>().ok()) {
                            let now = t0.elapsed().as_micros() as u64;
                            s.received.fetch_add(1, Ordering::Relaxed);
                            s.latencies_us
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push((sent, now.saturating_sub(sent)));
                        }
                    }
                    Ok(_) => {}
                    Err(ClientError::Framed(snow_xml::FramedError::Timeout(_))) => {}
                    Err(_) => break,
                }
            }
        }));
        let s = Arc::clone(&stats);
        let period = Duration::from_secs_f64(1.0 / args.rate);
        senders.push(tokio::spawn(async move {
            // Spread the users' sends over the period.
            tokio::time::sleep(period.mul_f64(i as f64 / 100.0 % 1.0)).await;
            let mut tick = tokio::time::interval(period);
            while t0.elapsed() < run_for {
                tick.tick().await;
                let body = format!("t={}", t0.elapsed().as_micros());
                if wr.send(&snow_client::chat_message(&to, &body)).await.is_err() {
                    break;
                }
                s.sent.fetch_add(1, Ordering::Relaxed);
            }
            wr
        }));
    }
    let mut flood = Vec::new();
    if let Some(((_, id), flood_rt)) = flooder {
        for c in 0..args.flood_connections {
            let (opts, id) = (opts.clone(), Arc::clone(id));
            let client = flood_rt.spawn(async move { Client::connect(&opts, &id).await }).await??;
            let (mut rd, mut wr) = client.split();
            let targets: Vec<String> = users.iter().map(|(j, _)| j.clone()).collect();
            let s = Arc::clone(&stats);
            // What comes back: refusals (errors) are counted.
            let s2 = Arc::clone(&stats);
            flood.push(flood_rt.spawn(async move {
                while let Some(left) = run_for.checked_sub(t0.elapsed()) {
                    match rd.next_stanza(left).await {
                        Ok(el) if el.attr("type") == Some("error") => {
                            s2.flood_refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(ClientError::Framed(snow_xml::FramedError::Timeout(_))) => {}
                        Err(_) => break,
                    }
                }
            }));
            // Writes as fast as the server reads, until the phase ends: a
            // write still waiting then (the server paces this connection,
            // so the socket's buffers are full) is abandoned with the
            // connection, so the phase ends on time and what the flood got
            // through is counted within it.
            flood.push(flood_rt.spawn(async move {
                let mut n = c;
                while let Some(left) = run_for.checked_sub(t0.elapsed()) {
                    let to = &targets[n % targets.len()];
                    n += 1;
                    let body = Element::new(NS_CLIENT, "body").with_text(format!("{FLOOD}{n}"));
                    let msg = Element::new(NS_CLIENT, "message")
                        .with_attr("to", to.as_str())
                        .with_attr("type", "chat")
                        .with_child(body);
                    match tokio::time::timeout(left, wr.send(&msg)).await {
                        Ok(Ok(())) => s.flood_sent.fetch_add(1, Ordering::Relaxed),
                        Ok(Err(_)) | Err(_) => break,
                    };
                }
            }));
        }
    }
    let mut writers = Vec::new();
    for s in senders {
        writers.push(s.await?);
    }
    for r in readers {
        let _ = r.await;
    }
    for f in flood {
        let _ = f.await;
    }
    drop(writers);
    Ok(stats)
}

fn percentile(p: &Phase, q: f64) -> u64 {
    percentile_after(p, q, 0)
}

/// The `q` percentile of the latencies of messages sent `after_us` or
/// later into the phase.
fn percentile_after(p: &Phase, q: f64, after_us: u64) -> u64 {
    let mut v: Vec<u64> = p
        .latencies_us
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(sent, _)| *sent >= after_us)
        .map(|(_, l)| *l)
        .collect();
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let i = ((q / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

fn report(what: &str, p: &Phase, pid: u32, db_path: &Path) {
    let sent = p.sent.load(Ordering::Relaxed);
    let got = p.received.load(Ordering::Relaxed);
    let mem =
        super::bench::server_memory(pid).map(|(rss, peak)| format!("{} MiB now, {} MiB peak", rss / 1024, peak / 1024));
    let wal = db_path.with_extension("db-wal");
    let db: u64 = [db_path, wal.as_path()].iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    println!("{what}:");
    println!(
        "  normal users: {got} of {sent} delivered ({:.2}%), latency p50 {:.1} ms, p99 {:.1} ms",
        if sent == 0 { 0.0 } else { got as f64 * 100.0 / sent as f64 },
        percentile(p, 50.0) as f64 / 1000.0,
        percentile(p, 99.0) as f64 / 1000.0
    );
    // Each second's p99: where in the phase the slow messages were.
    let secs = p.latencies_us.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(s, _)| s / 1_000_000).max();
    let per_second: Vec<String> = (0..=secs.unwrap_or(0))
        .map(|sec| {
            let mut v: Vec<u64> = p
                .latencies_us
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|(s, _)| s / 1_000_000 == sec)
                .map(|(_, l)| *l)
                .collect();
            v.sort_unstable();
            let i = ((0.99 * v.len().saturating_sub(1) as f64).round() as usize).min(v.len().saturating_sub(1));
            v.get(i).map_or("-".into(), |l| format!("{:.1}", *l as f64 / 1000.0))
        })
        .collect();
    println!("  p99 of each second (ms): {}", per_second.join(" "));
    let fs = p.flood_sent.load(Ordering::Relaxed);
    if fs > 0 {
        println!(
            "  the flood: {fs} sent, {} delivered, {} refused back",
            p.flood_received.load(Ordering::Relaxed),
            p.flood_refused.load(Ordering::Relaxed)
        );
    }
    println!("  server: {}, database {:.1} MiB", mem.unwrap_or_else(|| "memory unknown".into()), db as f64 / 1048576.0);
}
