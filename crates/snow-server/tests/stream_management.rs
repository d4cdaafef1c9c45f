//! Offline delivery that scales and XEP-0198 stream management, over real
//! TLS on 127.0.0.1: a large backlog reaches the recipient in order with
//! the session alive; a connection cut in the middle of a flow is resumed
//! with each stanza exactly once, both ways; a session nobody resumes
//! leaves what its client never acknowledged in offline storage.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use snow_client::{Client, ClientError};
use snow_xml::{Element, FramedError, NS_CLIENT, NS_PING, NS_SM};
use support::{Site, DOMAIN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const T: Duration = Duration::from_secs(20);

/// A site whose users may send as fast as a test wants (the connection's
/// stanza rate is not what is tested here; each sender stays within its
/// account's burst).
fn site(users: &[&str]) -> (Site, Vec<String>) {
    let mut site = Site::new();
    let jids = users.iter().map(|u| site.add_user(u)).collect();
    site.settings.stanza_rate = 1e6;
    site.settings.stanza_burst = 1e6;
    (site, jids)
}

/// Stores `n` messages with ids `m0..` for `owner`, as senders would have
/// while it was away (before the server starts).
fn backlog(site: &Site, owner: &str, n: usize) {
    let db = snow_store::ServerDb::open(&site.paths.server_db()).unwrap();
    for i in 0..n {
        let xml =
            format!("<message to='{owner}' from='1111111@{DOMAIN}/x' type='chat' id='m{i}'><body>{i}</body></message>");
        db.store_offline(owner, &xml, 0).unwrap().unwrap();
    }
}

/// A ping round trip on a raw client: everything it sent before has been
/// handled by the server when this returns. Other stanzas read meanwhile
/// are returned.
async fn round_trip(c: &mut Client, id: &str) -> Vec<Element> {
    let ping = Element::new(NS_CLIENT, "iq")
        .with_attr("type", "get")
        .with_attr("id", id.to_owned())
        .with_child(Element::new(NS_PING, "ping"));
    c.send(&ping).await.unwrap();
    let mut other = Vec::new();
    loop {
        let el = c.next_stanza(T).await.unwrap();
        if el.name() == "iq" && el.attr("id") == Some(id) {
            return other;
        }
        other.push(el);
    }
}

/// Sends `n` chat messages with ids `{prefix}{i}` to `to`, then a round
/// trip: all are routed (or stored) when this returns.
async fn send_many(c: &mut Client, to: &str, prefix: &str, n: usize) {
    for i in 0..n {
        c.send_raw(&format!("<message to='{to}' type='chat' id='{prefix}{i}'><body>{i}</body></message>"))
            .await
            .unwrap();
    }
    round_trip(c, "sent").await;
}

/// How often each message id arrived.
#[derive(Default)]
struct Tally(BTreeMap<String, usize>);

impl Tally {
    fn add(&mut self, el: &Element) {
        if el.name() == "message" {
            *self.0.entry(el.attr("id").unwrap_or_default().to_owned()).or_default() += 1;
        }
    }
    fn distinct(&self) -> usize {
        self.0.len()
    }
    /// Ids `{prefix}0..n` missing, and ids that came more than once.
    fn check(&self, prefix: &str, n: usize) -> (Vec<String>, Vec<(String, usize)>) {
        let missing = (0..n).map(|i| format!("{prefix}{i}")).filter(|id| !self.0.contains_key(id)).collect();
        let twice = self.0.iter().filter(|(_, c)| **c > 1).map(|(id, c)| (id.clone(), *c)).collect();
        (missing, twice)
    }
}

/// 5,000 stored messages, five times the session's outbound queue
/// (1,000): at the first login they all arrive, in order, paced by the
/// client's reading, and the session stays up; each row leaves the store
/// once the client has it (acknowledged, under stream management; written
/// to the socket, without), so a second login finds nothing. Measured
/// with the snow client (stream management, acks) and with a client
/// without stream management.
#[tokio::test]
async fn five_thousand_offline_messages_arrive_in_order_with_the_session_alive() {
    const N: usize = 5000;
    let (site, jids) = site(&["2222222", "3333333"]);
    for jid in &jids {
        backlog(&site, jid, N);
    }
    let server = site.start().await;
    for (user, managed) in [("2222222", true), ("3333333", false)] {
        let started = Instant::now();
        let mut ids = Vec::with_capacity(N);
        if managed {
            let mut s = site.login(&server, user).await.unwrap().into_session();
            s.iq().send_presence().await.unwrap();
            while ids.len() < N {
                match s.next_stanza(T).await {
                    Ok(el) if el.name() == "message" => ids.push(el.attr("id").unwrap_or_default().to_owned()),
                    Ok(_) => {}
                    Err(e) => panic!("the session ended after {} of {N} messages: {e}", ids.len()),
                }
            }
            let took = started.elapsed();
            assert!(s.resumable(), "stream management with resumption was enabled");
            let ping = Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_child(Element::new(NS_PING, "ping"));
            assert_eq!(s.iq().request(ping).await.unwrap().attr("type"), Some("result"), "still connected");
            println!("{N} offline messages with stream management (acks) in {took:?}");
            s.close().await.unwrap();
        } else {
            let mut c = site.login(&server, user).await.unwrap();
            c.send_presence().await.unwrap();
            while ids.len() < N {
                match c.next_stanza(T).await {
                    Ok(el) if el.name() == "message" => ids.push(el.attr("id").unwrap_or_default().to_owned()),
                    Ok(_) => {}
                    Err(e) => panic!("the session ended after {} of {N} messages: {e}", ids.len()),
                }
            }
            let took = started.elapsed();
            round_trip(&mut c, "alive").await;
            println!("{N} offline messages without stream management in {took:?}");
            c.close().await.unwrap();
        }
        assert_eq!(ids, (0..N).map(|i| format!("m{i}")).collect::<Vec<_>>(), "in the order they were sent");

        // Every row left the store: a second login gets nothing.
        let mut again = site.login(&server, user).await.unwrap();
        again.send_presence().await.unwrap();
        let mut twice = Vec::new();
        while let Ok(el) = again.next_stanza(Duration::from_secs(1)).await {
            if el.name() == "message" {
                twice.push(el.attr("id").unwrap_or_default().to_owned());
            }
        }
        assert!(twice.is_empty(), "delivered twice ({user}): {} of them, {twice:?}", twice.len());
        again.close().await.unwrap();
    }
    server.shutdown(T).await;
}

/// A TCP relay between the client and the server whose path a test can
/// break as a failing network would: first what the server sends goes
/// nowhere (`freeze`), then both connections close (`cut`).
struct Relay {
    addr: SocketAddr,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    frozen: Arc<AtomicBool>,
    accept: JoinHandle<()>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let frozen: Arc<AtomicBool> = Arc::default();
        let (l, f) = (Arc::clone(&links), Arc::clone(&frozen));
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else { continue };
                f.store(false, Ordering::SeqCst);
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let f = Arc::clone(&f);
                let down = tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            // Lost on the way.
                            Ok(_) if f.load(Ordering::SeqCst) => {}
                            Ok(n) => {
                                if cw.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
                l.lock().unwrap().extend([up, down]);
            }
        });
        Relay { addr, links, frozen, accept }
    }

    /// What the server sends from now on is lost.
    fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// A GP's connection is cut in the middle of 1,000 messages, while it is
/// also sending 100 of its own: the snow client resumes (XEP-0198) and
/// has each of the 1,000 exactly once, in order, and its correspondent
/// has each of the 100 exactly once.
#[tokio::test]
async fn a_connection_cut_mid_flow_resumes_with_each_message_exactly_once() {
    const N: usize = 1000;
    const BACK: usize = 100;
    let (site, jids) = site(&["1111111", "2222222", "3333333", "4444444", "5555555", "6666666", "7777777"]);
    let server = site.start().await;
    let relay = Relay::start(server.c2s_addr).await;
    let mut opts = site.options(&server, false);
    opts.addr = relay.addr;
    let identity = site.identity("2222222");
    let mut gp = Client::connect(&opts, &identity).await.unwrap().into_session();
    gp.iq().send_presence().await.unwrap();
    // The presence round trip: the server has enabled stream management.
    let ping = || Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_child(Element::new(NS_PING, "ping"));
    gp.iq().request(ping()).await.unwrap();
    assert!(gp.resumable());

    let mut peer = site.login(&server, "1111111").await.unwrap();
    peer.send_presence().await.unwrap();
    // Five senders, each within its account's burst, one after the other
    // while the GP reads: the cut comes in the middle of the flow.
    let mut senders = Vec::new();
    for sender in ["3333333", "4444444", "5555555", "6666666", "7777777"] {
        senders.push(site.login(&server, sender).await.unwrap());
    }
    let to = jids[1].clone();
    let pad = "x".repeat(500);
    let flow = tokio::spawn(async move {
        for (k, mut c) in senders.into_iter().enumerate() {
            for i in k * N / 5..(k + 1) * N / 5 {
                let xml = format!("<message to='{to}' type='chat' id='m{i}'><body>{i} {pad}</body></message>");
                c.send_raw(&xml).await.unwrap();
            }
            round_trip(&mut c, "sent").await;
            c.close().await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let mut got = Tally::default();
    let mut order = Vec::new();
    let mut cut_at = None;
    let mut resumed = 0;
    while got.distinct() < N {
        match gp.next_stanza(T).await {
            Ok(el) => {
                if el.name() == "message" {
                    order.push(el.attr("id").unwrap_or_default().to_owned());
                }
                got.add(&el);
                if got.distinct() == N / 3 && cut_at.is_none() {
                    // The network fails: what the server writes is lost
                    // (its acks for the GP's replies too), then the
                    // connection is gone.
                    relay.freeze();
                    // Half the replies go before the cut, half after it
                    // (queued while the connection is gone).
                    for i in 0..BACK / 2 {
                        gp.iq().send(support_chat(&jids[0], &format!("r{i}"))).await.unwrap();
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    relay.cut();
                    cut_at = Some(got.distinct());
                    for i in BACK / 2..BACK {
                        gp.iq().send(support_chat(&jids[0], &format!("r{i}"))).await.unwrap();
                    }
                }
            }
            Err(ClientError::Framed(FramedError::Timeout(_))) => panic!("stalled at {} of {N}", got.distinct()),
            Err(e) => {
                assert!(cut_at.is_some(), "the connection ended before the cut: {e}");
                resumed += 1;
                assert!(resumed < 5, "resumed {resumed} times");
                gp.resume(&opts, &identity).await.unwrap();
            }
        }
    }
    flow.await.unwrap();
    assert_eq!(resumed, 1, "the cut was seen and the session resumed once");
    let (missing, twice) = got.check("m", N);
    assert!(missing.is_empty() && twice.is_empty(), "missing {missing:?}, twice {twice:?}");
    assert_eq!(order, (0..N).map(|i| format!("m{i}")).collect::<Vec<_>>(), "in order");
    println!("cut after {} of {N}; resumed", cut_at.unwrap_or_default());

    // The other way: each of the GP's replies reached the peer once.
    let mut back = Tally::default();
    while back.distinct() < BACK {
        match peer.next_stanza(T).await {
            Ok(el) => back.add(&el),
            Err(e) => panic!("{} of {BACK} replies: {e}", back.distinct()),
        }
    }
    for el in round_trip(&mut peer, "after").await {
        back.add(&el);
    }
    let (missing, twice) = back.check("r", BACK);
    assert!(missing.is_empty() && twice.is_empty(), "replies missing {missing:?}, twice {twice:?}");
    assert_eq!(gp.iq().request(ping()).await.unwrap().attr("type"), Some("result"), "the resumed session works");
    gp.close().await.unwrap();
    peer.close().await.unwrap();
    server.shutdown(T).await;
}

fn support_chat(to: &str, id: &str) -> Element {
    snow_client::chat_message(to, id).with_attr("id", id.to_owned())
}

/// Stream management enabled by hand on a raw client, so the test knows
/// exactly what it acknowledged: returns the resumption id.
async fn enable(c: &mut Client) -> String {
    c.send_raw(&format!("<enable xmlns='{NS_SM}' resume='true'/>")).await.unwrap();
    let el = c.next_stanza(T).await.unwrap();
    assert!(el.is(NS_SM, "enabled") && el.attr("resume") == Some("true"), "{el:?}");
    el.attr("id").unwrap().to_owned()
}

/// A session whose client is gone and does not come back within
/// `sm_resume_secs`: what the server sent it and it never acknowledged,
/// and what was still queued for it, goes to offline storage when the
/// window closes; the next login gets exactly that, each once, and
/// nothing the client had acknowledged. Resuming after the window is
/// refused (`item-not-found`), and the client may bind instead.
#[tokio::test]
async fn an_expired_session_leaves_what_was_not_acknowledged_in_offline_storage() {
    const N: usize = 300;
    const ACKED: usize = 120;
    let (mut site, jids) = site(&["1111111", "2222222"]);
    site.settings.sm_resume_secs = 1;
    let server = site.start().await;

    let mut gp = site.login(&server, "2222222").await.unwrap();
    let id = enable(&mut gp).await;
    gp.send_presence().await.unwrap();
    let mut peer = site.login(&server, "1111111").await.unwrap();
    send_many(&mut peer, &jids[1], "m", N).await;

    // The GP reads some, acknowledges exactly ACKED of them (each stanza
    // counts: presence included), and its connection is gone.
    let mut handled = 0u32;
    let mut first = Tally::default();
    while first.distinct() < ACKED {
        let el = gp.next_stanza(T).await.unwrap();
        if el.ns() == NS_SM {
            continue;
        }
        handled += 1;
        first.add(&el);
    }
    gp.send_raw(&format!("<a xmlns='{NS_SM}' h='{handled}'/>")).await.unwrap();
    for el in round_trip(&mut gp, "acked").await {
        // Arrived meanwhile, never acknowledged: as if never read.
        assert!(el.ns() == NS_SM || el.name() == "message", "{el:?}");
    }
    drop(gp);

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut late = site.login(&server, "2222222").await.unwrap();
    late.send_presence().await.unwrap();
    let mut second = Tally::default();
    while let Ok(el) = late.next_stanza(Duration::from_secs(2)).await {
        second.add(&el);
    }
    let mut all = Tally::default();
    for (id, n) in first.0.iter().chain(second.0.iter()) {
        *all.0.entry(id.clone()).or_default() += n;
    }
    let (missing, twice) = all.check("m", N);
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert!(twice.is_empty(), "delivered again though acknowledged: {twice:?}");
    assert_eq!(second.distinct(), N - ACKED);
    late.close().await.unwrap();
    peer.close().await.unwrap();

    // The snow client, cut off for longer than the window: resuming is
    // refused (the session and its id are gone), and it says so.
    let relay = Relay::start(server.c2s_addr).await;
    let mut opts = site.options(&server, false);
    opts.addr = relay.addr;
    let identity = site.identity("2222222");
    let mut s = Client::connect(&opts, &identity).await.unwrap().into_session();
    let ping = Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_child(Element::new(NS_PING, "ping"));
    s.iq().request(ping).await.unwrap();
    assert!(s.resumable());
    relay.cut();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    match s.resume(&opts, &identity).await {
        Err(ClientError::NotResumed(why)) => assert_eq!(why, "item-not-found"),
        other => panic!("{other:?}"),
    }
    let _ = id;
    server.shutdown(T).await;
}

/// A stream-managed session that is resumed while the server still holds
/// its old connection open (the client saw the break first) takes over
/// at once; an ack for more than was sent ends the stream with
/// `undefined-condition`.
#[tokio::test]
async fn resumption_takes_over_a_live_connection_and_bad_acks_end_the_stream() {
    let (site, _) = site(&["2222222"]);
    let server = site.start().await;
    let mut old = site.login(&server, "2222222").await.unwrap();
    let id = enable(&mut old).await;
    let mut new = site.login(&server, "2222222").await.unwrap();
    // `login` bound a resource and announced caps: that stream is not
    // the one to resume from, but its login is the same account's.
    new.send_raw(&format!("<resume xmlns='{NS_SM}' previd='{id}' h='0'/>")).await.unwrap();
    let answer = new.next_stanza(T).await.unwrap();
    assert!(answer.is(NS_SM, "failed"), "resume after bind is refused: {answer:?}");
    drop(new);

    // A fresh login that resumes instead of binding.
    let opts = site.options(&server, false);
    let identity = site.identity("2222222");
    let mut s = Client::connect(&opts, &identity).await.unwrap().into_session();
    s.iq().send_presence().await.unwrap();
    let ping = || Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_child(Element::new(NS_PING, "ping"));
    s.iq().request(ping()).await.unwrap();
    // While the server still has it open.
    s.resume(&opts, &identity).await.unwrap();
    assert_eq!(s.iq().request(ping()).await.unwrap().attr("type"), Some("result"));
    s.close().await.unwrap();

    old.send_raw(&format!("<a xmlns='{NS_SM}' h='7'/>")).await.unwrap();
    let end = loop {
        match old.next_stanza(T).await {
            Ok(el) if el.ns() == NS_SM => continue,
            other => break other,
        }
    };
    match end {
        Err(ClientError::StreamError { condition, .. }) => assert_eq!(condition, "undefined-condition"),
        other => panic!("{other:?}"),
    }
    server.shutdown(T).await;
}

/// A stream-managed client that is slow to acknowledge while its backlog
/// is delivered: the session stops writing at `sm_max_unacked`, the
/// backlog fills only half the outbound queue, so an answer routed to the
/// session meanwhile finds room instead of ending it as a slow reader
/// (found by the kill test: a ping's answer during delivery ended the
/// session). Once the client acknowledges, the rest comes, and the answer.
#[tokio::test]
async fn a_client_slow_to_acknowledge_keeps_its_session_during_delivery() {
    const N: usize = 3000;
    let (site, jids) = site(&["2222222"]);
    backlog(&site, &jids[0], N);
    let server = site.start().await;
    let mut c = site.login(&server, "2222222").await.unwrap();
    enable(&mut c).await;
    c.send_presence().await.unwrap();
    // Everything up to sm_max_unacked, not acknowledged.
    let max = site.settings.sm_max_unacked;
    let mut handled = 0u32;
    let mut got = Tally::default();
    while got.distinct() < max {
        let el = c.next_stanza(T).await.unwrap();
        if el.ns() != NS_SM {
            handled += 1;
            got.add(&el);
        }
    }
    // The backlog waits in the session's queue meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ping = Element::new(NS_CLIENT, "iq")
        .with_attr("type", "get")
        .with_attr("id", "during")
        .with_child(Element::new(NS_PING, "ping"));
    c.send(&ping).await.unwrap();
    // Its answer is routed to the session, behind the backlog.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut answered = false;
    while got.distinct() < N || !answered {
        c.send_raw(&format!("<a xmlns='{NS_SM}' h='{handled}'/>")).await.unwrap();
        let el = match c.next_stanza(T).await {
            Ok(el) => el,
            Err(e) => panic!("the session ended after {} of {N}: {e}", got.distinct()),
        };
        if el.ns() == NS_SM {
            continue;
        }
        handled += 1;
        answered |= el.name() == "iq" && el.attr("id") == Some("during");
        got.add(&el);
    }
    let (missing, twice) = got.check("m", N);
    assert!(missing.is_empty() && twice.is_empty(), "missing {missing:?}, twice {twice:?}");
    c.close().await.unwrap();
    server.shutdown(T).await;
}
