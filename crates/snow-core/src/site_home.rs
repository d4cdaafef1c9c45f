//! Where a site keeps its files under `SNOW_HOME`.
//!
//! Every crate that touches a site's files (the CA, the server, the lab
//! importer, the agents, the CLI) asks [`SiteHome`] for the path, so the
//! layout is written down once and cannot drift between them.

use std::path::{Path, PathBuf};

/// The drop directory's parts under a data directory: named once, here,
/// for `snow_lab::import::DropDir`, which also serves data directories
/// outside a site home.
pub const INCOMING_DIR: &str = "in";
/// See [`INCOMING_DIR`].
pub const DONE_DIR: &str = "done";
/// See [`INCOMING_DIR`].
pub const REJECTED_DIR: &str = "rejected";

/// The file layout of one site's `SNOW_HOME`, the one place its paths are
/// computed:
///
/// ```text
/// SNOW_HOME/
/// ├── snow.toml              configuration (snow.example.toml lists every key)
/// ├── msgauth.keys           [msgauth] key file by default (owner-only)
/// ├── msgauth.D.state        replay window of msgauth receiver D (owner-only)
/// ├── ca/
/// │   ├── ca.pem             CA certificate (public; copied to every site)
/// │   ├── ca-key.pem         CA key, encrypted PKCS#8 under the admin passphrase (PO only)
/// │   ├── ca.db              CA database: certificates, users, revocations (PO only)
/// │   └── crl.pem            the latest signed CRL (copied to every site)
/// ├── server/
/// │   ├── D.pem              server certificate for domain D, then the CA
/// │   └── D.key.pem          its key (unencrypted, mode 0600: servers start unattended)
/// ├── agents/
/// │   ├── J.pem              certificate of the agent with JID J, then the CA
/// │   └── J.key.pem          its key (unencrypted, mode 0600, like a server's)
/// ├── outbox/
/// │   ├── email/*.eml        key deliveries waiting to be mailed
/// │   ├── email/sent/*.eml   the ones `snow outbox send` delivered
/// │   └── sms/*.txt          one-time passwords waiting to be texted
/// ├── keystore/              the local user's key store (unless --keystore)
/// └── data/
///     ├── server.db          the server's accounts, rosters, offline messages
///     ├── lab.db             a lab server's weekly aggregates and import log
///     ├── in/                lab files pushed here (uploaded as *.part, renamed)
///     ├── done/              files imported
///     └── rejected/          files refused, each with a NAME.error
/// ```
///
/// Paths in the configuration (`[msgauth] keys`, `[[components]]
/// secret_file`, …) are relative to SNOW_HOME unless absolute: see
/// [`resolve`](Self::resolve).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteHome {
    home: PathBuf,
}

impl SiteHome {
    /// The site whose SNOW_HOME is `home` (nothing is created or checked:
    /// commands that need a file say which one is missing).
    pub fn new(home: impl Into<PathBuf>) -> Self {
        SiteHome { home: home.into() }
    }

    /// SNOW_HOME itself.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `p` under SNOW_HOME unless absolute: how every path written in
    /// `snow.toml` is read, so a site can be moved as one directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.home.join(p)
        }
    }

    /// The configuration read when no `--config` is given.
    pub fn config_file(&self) -> PathBuf {
        self.home.join("snow.toml")
    }
    /// The default `[msgauth]` key file.
    pub fn msgauth_keys(&self) -> PathBuf {
        self.home.join("msgauth.keys")
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

    pub fn server_dir(&self) -> PathBuf {
        self.home.join("server")
    }
    pub fn server_cert(&self, domain: &str) -> PathBuf {
        self.server_dir().join(format!("{domain}.pem"))
    }
    pub fn server_key(&self, domain: &str) -> PathBuf {
        self.server_dir().join(format!("{domain}.key.pem"))
    }

    pub fn agents_dir(&self) -> PathBuf {
        self.home.join("agents")
    }
    pub fn agent_cert(&self, jid: &str) -> PathBuf {
        self.agents_dir().join(format!("{jid}.pem"))
    }
    pub fn agent_key(&self, jid: &str) -> PathBuf {
        self.agents_dir().join(format!("{jid}.key.pem"))
    }

    pub fn email_outbox(&self) -> PathBuf {
        self.home.join("outbox").join("email")
    }
    /// Where `snow outbox send` moves a mailed delivery (kept, not
    /// deleted: the operator may need to show what was sent).
    pub fn email_sent(&self) -> PathBuf {
        self.email_outbox().join("sent")
    }
    pub fn sms_outbox(&self) -> PathBuf {
        self.home.join("outbox").join("sms")
    }

    pub fn keystore(&self) -> PathBuf {
        self.home.join("keystore")
    }

    /// The server's and the lab's data: databases and the drop directory.
    pub fn data_dir(&self) -> PathBuf {
        self.home.join("data")
    }
    pub fn server_db(&self) -> PathBuf {
        self.data_dir().join("server.db")
    }
    pub fn lab_db(&self) -> PathBuf {
        self.data_dir().join("lab.db")
    }
    /// The record of every search the lab's agent was asked.
    pub fn search_audit(&self) -> PathBuf {
        self.data_dir().join("audit.db")
    }
    /// The signed searches a search agent took (its replay cache).
    pub fn agent_nonces(&self, jid: &str) -> PathBuf {
        self.data_dir().join(format!("{jid}.search-nonces"))
    }
    /// Where the lab pushes its files.
    pub fn incoming(&self) -> PathBuf {
        self.data_dir().join(INCOMING_DIR)
    }
    /// Where imported files are moved.
    pub fn done(&self) -> PathBuf {
        self.data_dir().join(DONE_DIR)
    }
    /// Where refused files are moved, each with a `.error` file.
    pub fn rejected(&self) -> PathBuf {
        self.data_dir().join(REJECTED_DIR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_the_documented_one() {
        let h = SiteHome::new("/srv/snow");
        assert_eq!(h.config_file(), Path::new("/srv/snow/snow.toml"));
        assert_eq!(h.ca_key(), Path::new("/srv/snow/ca/ca-key.pem"));
        assert_eq!(h.server_key("lab.example"), Path::new("/srv/snow/server/lab.example.key.pem"));
        assert_eq!(h.agent_cert("search@lab.example"), Path::new("/srv/snow/agents/search@lab.example.pem"));
        assert_eq!(h.sms_outbox(), Path::new("/srv/snow/outbox/sms"));
        assert_eq!(h.lab_db(), Path::new("/srv/snow/data/lab.db"));
        assert_eq!(h.server_db(), Path::new("/srv/snow/data/server.db"));
        assert_eq!(h.incoming(), Path::new("/srv/snow/data/in"));
        assert_eq!(h.rejected(), Path::new("/srv/snow/data/rejected"));
        assert_eq!(h.resolve(Path::new("msgauth.keys")), h.msgauth_keys());
        assert_eq!(h.resolve(Path::new("/etc/k")), Path::new("/etc/k"));
    }
}
