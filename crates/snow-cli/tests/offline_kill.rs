//! `snow serve` killed with SIGKILL in the middle of delivering 5,000
//! stored messages, then restarted: nothing is lost, and under stream
//! management (XEP-0198) nothing the client had acknowledged, and the
//! server had taken the ack for, comes again. Without stream management a
//! row leaves the store once written to the socket, so what was written
//! and not yet deleted when the server died comes again (at least once).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use snow_client::{Client, ConnectOptions};
use snow_core::SiteHome;
use snow_crypto::{pkcs12, Identity};
use snow_pki::{outbox, Ca, PkiSettings};
use snow_xml::{Element, NS_CLIENT, NS_PING, NS_SM};

const N: usize = 5000;
/// Messages read before the kill.
const KILL_AFTER: usize = 2000;
/// Messages between two confirmed acks (an `<a/>` followed by a ping
/// whose answer says the server handled the ack).
const CONFIRM_EVERY: usize = 250;
const T: Duration = Duration::from_secs(20);
const DOMAIN: &str = "po.example";

/// A `snow serve` child, killed if the test ends without stopping it (a
/// failed assertion leaves no server behind).
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `snow serve` on `home`; its STARTTLS address.
fn serve(home: &Path, config: &Path) -> (Serve, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_snow"))
        .arg("serve")
        .env("SNOW_HOME", home)
        .env("SNOW_CONFIG", config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("listening"), "{first}");
    let addr = first.rsplit_once(" on ").unwrap().1.split(' ').next().unwrap().parse().unwrap();
    // Keep reading, so the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (Serve(child), addr)
}

/// A site with a CA, a server certificate and the user 2222222 (whose
/// identity comes back), and 5,000 messages stored for that user.
fn site(dir: &Path) -> (SiteHome, std::path::PathBuf, Identity, Vec<u8>) {
    let home = SiteHome::new(dir.join("home"));
    let pki = PkiSettings { ca_key_bits: 2048, ..PkiSettings::default() };
    let mut ca = Ca::init(&home, &DOMAIN.parse().unwrap(), "an admin passphrase 1", &pki).unwrap();
    ca.issue_server(&DOMAIN.parse().unwrap(), &[]).unwrap();
    let user = ca
        .add_user(&"2222222".parse().unwrap(), &"+4791234567".parse().unwrap(), &"gp@x.example".parse().unwrap())
        .unwrap();
    let password = outbox::password_of(&std::fs::read_to_string(&user.delivery.sms).unwrap()).unwrap();
    let c = pkcs12::read(&user.p12, &password, "p12").unwrap();
    let identity = Identity::new(c.key_pkcs8, c.chain).unwrap();
    let config = dir.join("snow.toml");
    std::fs::write(&config, "[server]\nc2s_bind = \"127.0.0.1:0\"\ndirect_tls_bind = \"\"\n[s2s]\nbind = \"\"\n")
        .unwrap();
    // The store as senders would have filled it while the GP was away.
    std::fs::create_dir_all(home.server_db().parent().unwrap()).unwrap();
    let db = snow_store::ServerDb::open(&home.server_db()).unwrap();
    db.add_account(&user.jid.to_string(), 0).unwrap();
    // 2 KB each: more than the socket buffers hold in all, so the kill
    // finds messages still to write.
    let pad = "x".repeat(2000);
    for i in 0..N {
        let xml = format!(
            "<message to='{}' from='1111111@{DOMAIN}/x' type='chat' id='m{i}'><body>{i} {pad}</body></message>",
            user.jid
        );
        db.store_offline(&user.jid.to_string(), &xml, 0).unwrap().unwrap();
    }
    (home, config, identity, ca.cert_der().to_vec())
}

/// One login of the GP's raw client, counting for its acks by hand: what
/// it received, and how many of those the server had confirmed taking the
/// ack for.
struct Run {
    client: Client,
    managed: bool,
    /// Stanzas handled since `<enabled/>`: our `h`.
    handled: u32,
    ids: Vec<String>,
    /// `ids[..confirmed]` were acknowledged, and the server handled the
    /// ack (a ping sent after it was answered).
    confirmed: usize,
    /// Pings out: id, and how many messages their ack covered.
    waiting: Vec<(String, usize)>,
}

impl Run {
    async fn login(addr: SocketAddr, identity: &Identity, ca_der: &[u8], managed: bool) -> Run {
        let opts = ConnectOptions {
            addr,
            domain: DOMAIN.into(),
            ca_der: ca_der.to_vec(),
            direct_tls: false,
            resource: None,
            timeout: T,
        };
        let mut client = Client::connect(&opts, identity).await.unwrap();
        if managed {
            client.send_raw(&format!("<enable xmlns='{NS_SM}' resume='true'/>")).await.unwrap();
            let el = client.next_stanza(T).await.unwrap();
            assert!(el.is(NS_SM, "enabled"), "{el:?}");
        }
        client.send_presence().await.unwrap();
        Run { client, managed, handled: 0, ids: Vec::new(), confirmed: 0, waiting: Vec::new() }
    }

    /// Reads until `until` messages came, or the connection ended.
    async fn read(&mut self, until: usize, wait: Duration) -> Result<(), String> {
        while self.ids.len() < until {
            let el = self.client.next_stanza(wait).await.map_err(|e| e.to_string())?;
            if el.ns() == NS_SM {
                if el.name() == "r" {
                    self.ack().await?;
                }
                continue;
            }
            self.handled = self.handled.wrapping_add(1);
            match el.name() {
                "message" => {
                    self.ids.push(el.attr("id").unwrap_or_default().to_owned());
                    if self.managed && self.ids.len().is_multiple_of(CONFIRM_EVERY) {
                        self.ack().await?;
                        let id = format!("confirm-{}", self.ids.len());
                        let ping = Element::new(NS_CLIENT, "iq")
                            .with_attr("type", "get")
                            .with_attr("id", id.clone())
                            .with_child(Element::new(NS_PING, "ping"));
                        self.client.send(&ping).await.map_err(|e| e.to_string())?;
                        self.waiting.push((id, self.ids.len()));
                    }
                }
                "iq" => {
                    if let Some(pos) = self.waiting.iter().position(|(id, _)| Some(id.as_str()) == el.attr("id")) {
                        self.confirmed = self.confirmed.max(self.waiting.remove(pos).1);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn ack(&mut self) -> Result<(), String> {
        let a = format!("<a xmlns='{NS_SM}' h='{}'/>", self.handled);
        self.client.send_raw(&a).await.map_err(|e| e.to_string())
    }
}

/// Kills the server mid-delivery, restarts it and reads everything again.
async fn kill_and_restart(managed: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (home, config, identity, ca_der) = site(dir.path());
    let (mut server, addr) = serve(home.home(), &config);

    let mut first = Run::login(addr, &identity, &ca_der, managed).await;
    first.read(KILL_AFTER, T).await.unwrap();
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    // What was already on its way still arrives; then the connection ends.
    let end = first.read(N, T).await;
    assert!(end.is_err(), "all {N} arrived before the kill: kill sooner");

    let (mut server, addr) = serve(home.home(), &config);
    let mut second = Run::login(addr, &identity, &ca_der, managed).await;
    // Until nothing more comes.
    let quiet = second.read(2 * N, Duration::from_secs(3)).await;
    assert!(quiet.as_ref().is_err_and(|e| e.contains("no data")), "{quiet:?}");
    // Everything acknowledged (a final ack) and closed, then stopped.
    if managed {
        second.ack().await.unwrap();
    }
    second.client.close().await.unwrap();
    assert!(Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().unwrap().success());
    assert!(server.0.wait().unwrap().success());

    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for id in first.ids.iter().chain(&second.ids) {
        *count.entry(id).or_default() += 1;
    }
    let missing: Vec<String> = (0..N).map(|i| format!("m{i}")).filter(|id| !count.contains_key(id.as_str())).collect();
    let twice: Vec<&str> = count.iter().filter(|(_, n)| **n > 1).map(|(id, _)| *id).collect();
    let again_confirmed: Vec<&String> =
        first.ids[..first.confirmed].iter().filter(|id| second.ids.contains(id)).collect();
    println!(
        "{}: {} received before the kill ({} acknowledged and confirmed), {} after the restart; \
         {} delivered twice ({:?}…), {} missing",
        if managed { "with stream management" } else { "without stream management" },
        first.ids.len(),
        first.confirmed,
        second.ids.len(),
        twice.len(),
        twice.iter().take(3).collect::<Vec<_>>(),
        missing.len(),
    );
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert!(again_confirmed.is_empty(), "acknowledged and delivered again: {again_confirmed:?}");
    // The second run left nothing behind.
    let db = snow_store::ServerDb::open(&home.server_db()).unwrap();
    assert_eq!(db.offline_page("2222222@po.example", 0, 10).unwrap().len(), 0, "rows left in the store");
    if managed {
        // Only what came after the last confirmed ack can come twice.
        assert!(twice.len() <= first.ids.len() - first.confirmed, "{} twice", twice.len());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_mid_delivery_loses_nothing_and_repeats_nothing_acknowledged() {
    kill_and_restart(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_stream_management_a_kill_mid_delivery_loses_nothing() {
    kill_and_restart(false).await;
}
