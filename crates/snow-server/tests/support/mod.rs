//! A complete test site in a temporary directory: CA, server certificate,
//! users with their identities, and a running server on 127.0.0.1.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use snow_client::{Client, ClientError, ConnectOptions};
use snow_core::SiteHome;
use snow_crypto::{pkcs12, Identity};
use snow_pki::{outbox, Ca, PkiSettings};
use snow_server::{S2sSettings, Server, ServerConfig, ServerHandle, ServerSettings};

pub const DOMAIN: &str = "po.example";
const CA_PASS: &str = "test admin passphrase";

pub struct Site {
    pub dir: tempfile::TempDir,
    pub domain: String,
    pub paths: SiteHome,
    pub ca: Ca,
    pub settings: ServerSettings,
    pub s2s: S2sSettings,
    identities: HashMap<String, (Vec<u8>, String)>,
}

impl Site {
    pub fn new() -> Site {
        Site::with_domain(DOMAIN)
    }

    /// A site with its own CA for `domain`; s2s listens on a free port and
    /// routes go nowhere but to ports set by the test.
    pub fn with_domain(domain: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let paths = SiteHome::new(dir.path().join("home"));
        let pki = PkiSettings { ca_key_bits: 2048, ..PkiSettings::default() };
        let mut ca = Ca::init(&paths, &domain.parse().unwrap(), CA_PASS, &pki).unwrap();
        ca.issue_server(&domain.parse().unwrap(), &[]).unwrap();
        let settings = ServerSettings {
            c2s_bind: "127.0.0.1:0".into(),
            direct_tls_bind: "127.0.0.1:0".into(),
            ..ServerSettings::default()
        };
        let s2s = S2sSettings {
            bind: format!("127.0.0.1:{}", free_port()),
            connect_timeout_secs: 5,
            ..S2sSettings::default()
        };
        Site { dir, domain: domain.to_owned(), paths, ca, settings, s2s, identities: HashMap::new() }
    }

    /// The s2s address this site listens on.
    pub fn s2s_addr(&self) -> String {
        self.s2s.bind.clone()
    }

    /// Makes this site and `other` trust each other's CA and CRL, know the
    /// route and list each other in `[s2s] federate_with`.
    pub fn federate_with(&mut self, other: &mut Site) {
        let cas = vec![self.paths.ca_cert(), other.paths.ca_cert()];
        self.s2s.trusted_cas = cas.clone();
        other.s2s.trusted_cas = cas;
        // And each other's CRL: a peer's revocation status is checked too.
        self.s2s.trusted_crls = vec![other.paths.crl()];
        other.s2s.trusted_crls = vec![self.paths.crl()];
        self.s2s.routes.insert(other.domain.clone(), other.s2s_addr());
        other.s2s.routes.insert(self.domain.clone(), self.s2s_addr());
        self.s2s.federate_with.push(other.domain.clone());
        other.s2s.federate_with.push(self.domain.clone());
    }

    pub fn home(&self) -> PathBuf {
        self.paths.home().to_owned()
    }

    /// Creates a user; returns the bare JID.
    pub fn add_user(&mut self, hpnr: &str) -> String {
        let issued = self
            .ca
            .add_user(&hpnr.parse().unwrap(), &"+4791234567".parse().unwrap(), &"gp@x.example".parse().unwrap())
            .unwrap();
        let sms = std::fs::read_to_string(&issued.delivery.sms).unwrap();
        let password = outbox::password_of(&sms).unwrap();
        self.identities.insert(hpnr.to_owned(), (issued.p12, password));
        issued.jid.to_string()
    }

    /// A user whose home server is another site of this CA.
    pub fn add_user_at(&mut self, hpnr: &str, domain: &str) -> String {
        let issued = self
            .ca
            .add_user_at(
                &hpnr.parse().unwrap(),
                &"+4791234567".parse().unwrap(),
                &"gp@x.example".parse().unwrap(),
                &domain.parse().unwrap(),
            )
            .unwrap();
        let sms = std::fs::read_to_string(&issued.delivery.sms).unwrap();
        let password = outbox::password_of(&sms).unwrap();
        self.identities.insert(hpnr.to_owned(), (issued.p12, password));
        issued.jid.to_string()
    }

    /// The home of a replica site (a lab server) of this CA: the CA
    /// certificate, the current CRL and a server certificate for `domain`
    /// (and its `components`' domains).
    pub fn replica_home(&mut self, domain: &str, components: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let home = SiteHome::new(dir.path().join("home"));
        let components: Vec<snow_core::Domain> = components.iter().map(|c| c.parse().unwrap()).collect();
        let issued = self.ca.issue_server(&domain.parse().unwrap(), &components).unwrap();
        std::fs::create_dir_all(home.ca_dir()).unwrap();
        std::fs::create_dir_all(home.server_dir()).unwrap();
        std::fs::copy(self.paths.ca_cert(), home.ca_cert()).unwrap();
        std::fs::copy(self.paths.crl(), home.crl()).unwrap();
        std::fs::copy(&issued.cert_path, home.server_cert(domain)).unwrap();
        std::fs::copy(&issued.key_path, home.server_key(domain)).unwrap();
        (dir, home.home().to_owned())
    }

    /// A replica site (a lab server) of this CA for `domain`, wired for
    /// federation: this site routes to it and pushes keys to it; it routes
    /// back and takes key pushes from this site.
    pub fn replica(&mut self, domain: &str) -> Replica {
        self.replica_with_components(domain, &[])
    }

    /// Like [`replica`](Self::replica), for a server with external
    /// components that this site reaches over s2s.
    pub fn replica_with_components(&mut self, domain: &str, components: &[&str]) -> Replica {
        let (dir, home) = self.replica_home(domain, components);
        let bind = format!("127.0.0.1:{}", free_port());
        self.s2s.routes.insert(domain.to_owned(), bind.clone());
        for c in components {
            self.s2s.routes.insert((*c).to_owned(), bind.clone());
        }
        self.s2s.replicas.push(domain.to_owned());
        let mut s2s = S2sSettings { bind, master: Some(self.domain.clone()), ..S2sSettings::default() };
        s2s.routes.insert(self.domain.clone(), self.s2s_addr());
        Replica { _dir: dir, home, domain: domain.to_owned(), s2s }
    }

    pub async fn start_replica(&self, home: &std::path::Path, domain: &str, s2s: S2sSettings) -> ServerHandle {
        let config = ServerConfig::for_home(&SiteHome::new(home), domain.parse().unwrap(), self.settings.clone(), s2s);
        Server::start(config).await.unwrap()
    }

    /// Logs in at another site's server (same CA).
    pub async fn login_at(&self, server: &ServerHandle, domain: &str, hpnr: &str) -> Result<Client, ClientError> {
        let mut opts = self.options(server, false);
        opts.domain = domain.to_owned();
        Client::connect(&opts, &self.identity(hpnr)).await
    }

    pub fn identity(&self, hpnr: &str) -> Identity {
        let (p12, pw) = &self.identities[hpnr];
        let c = pkcs12::read(p12, pw, "p12").unwrap();
        Identity::new(c.key_pkcs8, c.chain).unwrap()
    }

    /// A new key and certificate for the user (the old one superseded).
    pub fn rekey(&mut self, hpnr: &str) {
        let issued = self.ca.rekey_user(&hpnr.parse().unwrap()).unwrap();
        let sms = std::fs::read_to_string(&issued.delivery.sms).unwrap();
        let password = outbox::password_of(&sms).unwrap();
        self.identities.insert(hpnr.to_owned(), (issued.p12, password));
    }

    pub fn revoke(&mut self, hpnr: &str) {
        self.ca.revoke_user(&hpnr.parse().unwrap(), snow_pki::RevocationReason::KeyCompromise).unwrap();
    }

    pub async fn start(&self) -> ServerHandle {
        let config =
            ServerConfig::for_home(&self.paths, self.domain.parse().unwrap(), self.settings.clone(), self.s2s.clone());
        Server::start(config).await.unwrap()
    }

    pub fn options(&self, server: &ServerHandle, direct_tls: bool) -> ConnectOptions {
        ConnectOptions {
            addr: if direct_tls { server.direct_tls_addr.unwrap() } else { server.c2s_addr },
            domain: self.domain.clone(),
            ca_der: self.ca.cert_der().to_vec(),
            direct_tls,
            resource: None,
            timeout: Duration::from_secs(10),
        }
    }

    pub async fn login(&self, server: &ServerHandle, hpnr: &str) -> Result<Client, ClientError> {
        Client::connect(&self.options(server, false), &self.identity(hpnr)).await
    }
}

/// A `[[components]]` entry for `domain` whose secret (a file, owner
/// only, in `home`) is `secret`.
pub fn component(home: &std::path::Path, domain: &str, secret: &str) -> snow_server::ComponentSettings {
    let path = home.join(format!("{domain}.secret"));
    std::fs::create_dir_all(home).unwrap();
    std::fs::write(&path, secret).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    snow_server::ComponentSettings {
        domain: domain.to_owned(),
        secret_file: path,
        hmac: false,
        source: None,
        confidential: false,
    }
}

/// The body text of a message stanza.
pub fn body(el: &snow_xml::Element) -> Option<String> {
    el.child(snow_xml::NS_CLIENT, "body").map(|b| b.text())
}

/// A port that was free a moment ago (for configs that must name ports
/// before the servers start), outside the range outgoing connections use.
pub fn free_port() -> u16 {
    snow_core::spare_port::spare_port().unwrap()
}

/// The stanza error condition of an error reply.
pub fn error_condition(el: &snow_xml::Element) -> Option<String> {
    el.child(snow_xml::NS_CLIENT, "error")?
        .children()
        .find(|c| c.ns() == snow_xml::NS_STANZAS && c.name() != "text")
        .map(|c| c.name().to_owned())
}

/// The next message stanza (skipping presence and IQs) within 20 s.
pub async fn next_message(c: &mut Client) -> snow_xml::Element {
    loop {
        let el = c.next_stanza(Duration::from_secs(20)).await.unwrap();
        if el.name() == "message" {
            return el;
        }
    }
}

/// A replica site's home and settings (see [`Site::replica`]).
pub struct Replica {
    _dir: tempfile::TempDir,
    pub home: PathBuf,
    pub domain: String,
    pub s2s: S2sSettings,
}

/// Plays a forger of IQ answers: `attacker` sends the result `payload()`
/// for request `id` to `to` twice — once as itself, once claiming to be
/// `claimed` (the server stamps its real address) — then makes a round
/// trip, so both forgeries have been routed when this returns.
pub async fn forge_results(
    attacker: &snow_client::Session,
    id: &str,
    to: &str,
    claimed: &str,
    payload: impl Fn() -> snow_xml::Element,
) {
    use snow_xml::{Element, NS_CLIENT, NS_PING};
    for claim in [None, Some(claimed)] {
        let mut forged = Element::new(NS_CLIENT, "iq")
            .with_attr("type", "result")
            .with_attr("id", id.to_owned())
            .with_attr("to", to.to_owned())
            .with_child(payload());
        if let Some(c) = claim {
            forged.set_attr("from", c);
        }
        attacker.iq().send(forged).await.unwrap();
    }
    let ping = Element::new(NS_CLIENT, "iq").with_attr("type", "get").with_child(Element::new(NS_PING, "ping"));
    attacker.iq().request(ping).await.unwrap();
}

/// Sends a ping to the server and returns everything that arrived up to
/// its answer (or its refusal), that included: the stanzas sent before it
/// have been handled by then.
pub async fn until_pong(c: &mut Client) -> Vec<snow_xml::Element> {
    use snow_xml::{Element, NS_CLIENT, NS_PING};
    let ping = Element::new(NS_CLIENT, "iq")
        .with_attr("type", "get")
        .with_attr("id", "pong")
        .with_attr("to", DOMAIN)
        .with_child(Element::new(NS_PING, "ping"));
    c.send(&ping).await.unwrap();
    let mut got = Vec::new();
    loop {
        let el = c.next_stanza(Duration::from_secs(10)).await.unwrap();
        let pong = el.name() == "iq" && el.attr("id") == Some("pong");
        got.push(el);
        if pong {
            return got;
        }
    }
}
