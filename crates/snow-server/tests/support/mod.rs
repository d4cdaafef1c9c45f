//! A complete test site in a temporary directory: CA, server certificate,
//! users with their identities, and a running server on 127.0.0.1.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use snow_client::{Client, ClientError, ConnectOptions};
use snow_crypto::{pkcs12, Identity};
use snow_pki::{outbox, Ca, PkiSettings, SitePaths};
use snow_server::{Server, ServerConfig, ServerHandle, ServerSettings};

pub const DOMAIN: &str = "po.example";
const CA_PASS: &str = "test admin passphrase";

pub struct Site {
    pub dir: tempfile::TempDir,
    pub paths: SitePaths,
    pub ca: Ca,
    pub settings: ServerSettings,
    identities: HashMap<String, (Vec<u8>, String)>,
}

impl Site {
    pub fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let paths = SitePaths::new(dir.path().join("home"));
        let pki = PkiSettings { ca_key_bits: 2048, ..PkiSettings::default() };
        let mut ca = Ca::init(&paths, &DOMAIN.parse().unwrap(), CA_PASS, &pki).unwrap();
        ca.issue_server(&DOMAIN.parse().unwrap()).unwrap();
        let settings = ServerSettings {
            c2s_bind: "127.0.0.1:0".into(),
            direct_tls_bind: "127.0.0.1:0".into(),
            ..ServerSettings::default()
        };
        Site { dir, paths, ca, settings, identities: HashMap::new() }
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

    pub fn identity(&self, hpnr: &str) -> Identity {
        let (p12, pw) = &self.identities[hpnr];
        let c = pkcs12::read(p12, pw, "p12").unwrap();
        Identity::new(c.key_pkcs8, c.chain).unwrap()
    }

    pub fn revoke(&mut self, hpnr: &str) {
        self.ca.revoke_user(&hpnr.parse().unwrap(), snow_pki::RevocationReason::KeyCompromise).unwrap();
    }

    pub async fn start(&self) -> ServerHandle {
        let config = ServerConfig::for_home(&self.home(), DOMAIN.parse().unwrap(), self.settings.clone());
        Server::start(config).await.unwrap()
    }

    pub fn options(&self, server: &ServerHandle, direct_tls: bool) -> ConnectOptions {
        ConnectOptions {
            addr: if direct_tls { server.direct_tls_addr.unwrap() } else { server.c2s_addr },
            domain: DOMAIN.into(),
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

/// The body text of a message stanza.
pub fn body(el: &snow_xml::Element) -> Option<String> {
    el.child(snow_xml::NS_CLIENT, "body").map(|b| b.text())
}
