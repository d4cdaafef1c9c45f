//! Where a site keeps its files under `SNOW_HOME`.

use std::path::{Path, PathBuf};

/// The file layout of one site's `SNOW_HOME`:
///
/// ```text
/// ca/ca.pem            CA certificate (public)
/// ca/ca-key.pem        CA key, encrypted PKCS#8 under the admin passphrase
/// ca/ca.db             CA database: certificates, users, revocations
/// ca/crl.pem           the latest signed CRL
/// server/D.pem         server certificate for domain D, then the CA
/// server/D.key.pem     its key (unencrypted, mode 0600: servers start unattended)
/// agents/J.pem         certificate of the agent with JID J, then the CA
/// agents/J.key.pem     its key (unencrypted, mode 0600, like a server's)
/// outbox/email/*.eml   key deliveries waiting to be mailed
/// outbox/sms/*.txt     one-time passwords waiting to be texted
/// keystore/            the local user's key store (unless --keystore)
/// ```
#[derive(Debug, Clone)]
pub struct SitePaths {
    home: PathBuf,
}

impl SitePaths {
    pub fn new(home: impl Into<PathBuf>) -> Self {
        SitePaths { home: home.into() }
    }

    pub fn home(&self) -> &Path {
        &self.home
    }
    pub fn ca_dir(&self) -> PathBuf {
        self.home.join("ca")
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.ca_dir().join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.ca_dir().join("ca-key.pem")
    }
    pub fn ca_db(&self) -> PathBuf {
        self.ca_dir().join("ca.db")
    }
    pub fn crl(&self) -> PathBuf {
        self.ca_dir().join("crl.pem")
    }
    pub fn server_cert(&self, domain: &str) -> PathBuf {
        self.home.join("server").join(format!("{domain}.pem"))
    }
    pub fn server_key(&self, domain: &str) -> PathBuf {
        self.home.join("server").join(format!("{domain}.key.pem"))
    }
    pub fn agent_cert(&self, jid: &str) -> PathBuf {
        self.home.join("agents").join(format!("{jid}.pem"))
    }
    pub fn agent_key(&self, jid: &str) -> PathBuf {
        self.home.join("agents").join(format!("{jid}.key.pem"))
    }
    pub fn email_outbox(&self) -> PathBuf {
        self.home.join("outbox").join("email")
    }
    pub fn sms_outbox(&self) -> PathBuf {
        self.home.join("outbox").join("sms")
    }
    pub fn keystore(&self) -> PathBuf {
        self.home.join("keystore")
    }
}
