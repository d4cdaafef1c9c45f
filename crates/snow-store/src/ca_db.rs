//! The CA database at the PO server: every certificate the CA issued, the
//! users they belong to, and revocations (the source of the CRL).

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::{migrate, StoreError};

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE certificates (
    serial            TEXT PRIMARY KEY,          -- lower-case hex
    kind              TEXT NOT NULL CHECK (kind IN ('ca', 'server', 'user')),
    name              TEXT NOT NULL,             -- HPNR, server domain or CA domain
    jid               TEXT,                      -- xmppAddr, if any
    not_before        INTEGER NOT NULL,          -- unix seconds
    not_after         INTEGER NOT NULL,
    der               BLOB NOT NULL,
    issued_at         INTEGER NOT NULL,
    revoked_at        INTEGER,
    revocation_reason INTEGER
);
CREATE INDEX certificates_revoked ON certificates (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE TABLE users (
    hpnr        TEXT PRIMARY KEY,
    jid         TEXT NOT NULL UNIQUE,
    phone       TEXT NOT NULL,
    email       TEXT NOT NULL,
    cert_serial TEXT NOT NULL REFERENCES certificates (serial),
    created_at  INTEGER NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0
);
"#,
    r#"
-- Every change of a user's key, in order: the feed the PO pushes to the
-- key directories of federated servers (docs/architecture.md §6).
CREATE TABLE key_changes (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    jid    TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('valid', 'revoked')),
    serial TEXT NOT NULL,
    der    BLOB NOT NULL,
    at     INTEGER NOT NULL
);
INSERT INTO key_changes (jid, status, serial, der, at)
    SELECT u.jid, 'valid', c.serial, c.der, u.created_at
    FROM users u JOIN certificates c ON c.serial = u.cert_serial ORDER BY u.created_at, u.hpnr;
INSERT INTO key_changes (jid, status, serial, der, at)
    SELECT u.jid, 'revoked', c.serial, c.der, c.revoked_at
    FROM users u JOIN certificates c ON c.serial = u.cert_serial
    WHERE c.revoked_at IS NOT NULL ORDER BY c.revoked_at, u.hpnr;
"#,
    r#"
-- Agents (the lab's search agent, …) get certificates too. SQLite cannot
-- change a CHECK in place: the table is rebuilt (foreign keys are off
-- during migrations and checked before commit).
CREATE TABLE certificates_new (
    serial            TEXT PRIMARY KEY,
    kind              TEXT NOT NULL CHECK (kind IN ('ca', 'server', 'user', 'agent')),
    name              TEXT NOT NULL,             -- HPNR, server domain, CA domain or agent JID
    jid               TEXT,
    not_before        INTEGER NOT NULL,
    not_after         INTEGER NOT NULL,
    der               BLOB NOT NULL,
    issued_at         INTEGER NOT NULL,
    revoked_at        INTEGER,
    revocation_reason INTEGER
);
INSERT INTO certificates_new SELECT * FROM certificates;
DROP TABLE certificates;
ALTER TABLE certificates_new RENAME TO certificates;
CREATE INDEX certificates_revoked ON certificates (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX certificates_agents ON certificates (jid) WHERE kind = 'agent';
"#,
];

/// One change in the key feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    pub seq: i64,
    pub jid: String,
    pub status: crate::KeyStatus,
    pub serial_hex: String,
    pub der: Vec<u8>,
}

/// What kind of subject a certificate was issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertKind {
    Ca,
    Server,
    User,
    Agent,
}

impl CertKind {
    fn as_str(self) -> &'static str {
        match self {
            CertKind::Ca => "ca",
            CertKind::Server => "server",
            CertKind::User => "user",
            CertKind::Agent => "agent",
        }
    }
}

/// An issued certificate as the CA remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRecord {
    pub serial_hex: String,
    pub kind: CertKind,
    pub name: String,
    pub jid: Option<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub der: Vec<u8>,
    pub issued_at: i64,
}

/// A user as listed by `snow user list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub hpnr: String,
    pub jid: String,
    pub phone: String,
    pub email: String,
    pub cert_serial: String,
    pub created_at: i64,
    pub not_after: i64,
    /// `(revoked_at, reason code)` if revoked.
    pub revoked: Option<(i64, u8)>,
}

/// A revoked certificate, as the CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub serial_hex: String,
    pub revoked_at: i64,
    pub reason: u8,
}

/// Handle on the CA database.
pub struct CaDb {
    conn: Connection,
}

impl CaDb {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(CaDb { conn: migrate::open(path, MIGRATIONS, 10)? })
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Returns the next CRL number and remembers it (CRL numbers must
    /// increase monotonically, RFC 5280 §5.2.3).
    pub fn next_crl_number(&mut self) -> Result<u64, StoreError> {
        let tx = self.conn.transaction()?;
        let cur: Option<String> =
            tx.query_row("SELECT value FROM meta WHERE key = 'crl_number'", [], |r| r.get(0)).optional()?;
        let next = cur.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0) + 1;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('crl_number', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [next.to_string()],
        )?;
        tx.commit()?;
        Ok(next)
    }

    pub fn insert_certificate(&self, c: &CertRecord) -> Result<(), StoreError> {
        insert_cert(&self.conn, c)
    }

    pub fn user_exists(&self, hpnr: &str) -> Result<bool, StoreError> {
        Ok(self.conn.query_row("SELECT 1 FROM users WHERE hpnr = ?1", [hpnr], |_| Ok(())).optional()?.is_some())
    }

    /// Records a new user and their certificate in one transaction.
    pub fn add_user(&mut self, hpnr: &str, phone: &str, email: &str, cert: &CertRecord) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let exists = tx.query_row("SELECT 1 FROM users WHERE hpnr = ?1", [hpnr], |_| Ok(())).optional()?.is_some();
        if exists {
            return Err(StoreError::DuplicateUser(hpnr.to_owned()));
        }
        insert_cert(&tx, cert)?;
        let jid = cert.jid.as_deref().unwrap_or_default();
        tx.execute(
            "INSERT INTO users (hpnr, jid, phone, email, cert_serial, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![hpnr, jid, phone, email, cert.serial_hex, cert.issued_at],
        )?;
        tx.execute(
            "INSERT INTO key_changes (jid, status, serial, der, at) VALUES (?1, 'valid', ?2, ?3, ?4)",
            params![jid, cert.serial_hex, cert.der, cert.issued_at],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.query_users("", [])
    }

    pub fn user(&self, hpnr: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.query_users("WHERE u.hpnr = ?1", [hpnr])?.into_iter().next())
    }

    fn query_users<P: rusqlite::Params>(&self, filter: &str, p: P) -> Result<Vec<UserRecord>, StoreError> {
        let sql = format!(
            "SELECT u.hpnr, u.jid, u.phone, u.email, u.cert_serial, u.created_at, c.not_after,
                    c.revoked_at, c.revocation_reason
             FROM users u JOIN certificates c ON c.serial = u.cert_serial {filter} ORDER BY u.hpnr"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(p, |r| {
            let revoked_at: Option<i64> = r.get(7)?;
            let reason: Option<u8> = r.get(8)?;
            Ok(UserRecord {
                hpnr: r.get(0)?,
                jid: r.get(1)?,
                phone: r.get(2)?,
                email: r.get(3)?,
                cert_serial: r.get(4)?,
                created_at: r.get(5)?,
                not_after: r.get(6)?,
                revoked: revoked_at.map(|t| (t, reason.unwrap_or(0))),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks the user's certificate revoked at `at` with RFC 5280 `reason`.
    pub fn revoke_user(&mut self, hpnr: &str, reason: u8, at: i64) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let row: Option<(String, Option<i64>)> = tx
            .query_row(
                "SELECT u.cert_serial, c.revoked_at FROM users u JOIN certificates c ON c.serial = u.cert_serial
                 WHERE u.hpnr = ?1",
                [hpnr],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((serial, revoked_at)) = row else {
            return Err(StoreError::UnknownUser(hpnr.to_owned()));
        };
        if revoked_at.is_some() {
            return Err(StoreError::AlreadyRevoked(hpnr.to_owned()));
        }
        tx.execute(
            "UPDATE certificates SET revoked_at = ?1, revocation_reason = ?2 WHERE serial = ?3",
            params![at, reason, serial],
        )?;
        tx.execute("UPDATE users SET revoked = 1 WHERE hpnr = ?1", [hpnr])?;
        tx.execute(
            "INSERT INTO key_changes (jid, status, serial, der, at)
             SELECT u.jid, 'revoked', c.serial, c.der, ?2 FROM users u JOIN certificates c ON c.serial = u.cert_serial
             WHERE u.hpnr = ?1",
            params![hpnr, at],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Changes after `seq`, oldest first, at most `limit`.
    pub fn key_changes_since(&self, seq: i64, limit: usize) -> Result<Vec<KeyChange>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, jid, status, serial, der FROM key_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = stmt.query_map(params![seq, limit as i64], |r| {
            Ok(KeyChange { seq: r.get(0)?, jid: r.get(1)?, status: r.get(2)?, serial_hex: r.get(3)?, der: r.get(4)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest change's sequence number (0 if none).
    pub fn last_key_change(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM key_changes", [], |r| r.get(0))?)
    }

    /// Gives a user a new certificate: the old one is revoked with
    /// `reason` (unless it already is), the new one becomes the user's, and
    /// both changes enter the key feed, in one transaction.
    pub fn rekey_user(&mut self, hpnr: &str, new_cert: &CertRecord, reason: u8, at: i64) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let row: Option<(String, String, Option<i64>)> = tx
            .query_row(
                "SELECT u.jid, u.cert_serial, c.revoked_at FROM users u JOIN certificates c ON c.serial = u.cert_serial
                 WHERE u.hpnr = ?1",
                [hpnr],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((jid, old_serial, revoked_at)) = row else {
            return Err(StoreError::UnknownUser(hpnr.to_owned()));
        };
        if revoked_at.is_none() {
            tx.execute(
                "UPDATE certificates SET revoked_at = ?1, revocation_reason = ?2 WHERE serial = ?3",
                params![at, reason, old_serial],
            )?;
            tx.execute(
                "INSERT INTO key_changes (jid, status, serial, der, at)
                 SELECT ?1, 'revoked', serial, der, ?2 FROM certificates WHERE serial = ?3",
                params![jid, at, old_serial],
            )?;
        }
        insert_cert(&tx, new_cert)?;
        tx.execute(
            "UPDATE users SET cert_serial = ?1, revoked = 0 WHERE hpnr = ?2",
            params![new_cert.serial_hex, hpnr],
        )?;
        tx.execute(
            "INSERT INTO key_changes (jid, status, serial, der, at) VALUES (?1, 'valid', ?2, ?3, ?4)",
            params![jid, new_cert.serial_hex, new_cert.der, at],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records an agent's new certificate and puts it in the key feed. An
    /// agent has one valid certificate at a time: an earlier one that is
    /// not revoked is revoked with `reason` (superseded), in the same
    /// transaction.
    /// Returns the serials it revoked.
    pub fn add_agent_certificate(&mut self, cert: &CertRecord, reason: u8) -> Result<Vec<String>, StoreError> {
        let jid = cert.jid.as_deref().ok_or_else(|| StoreError::Invalid("an agent certificate needs a JID".into()))?;
        let tx = self.conn.transaction()?;
        let is_user = tx.query_row("SELECT 1 FROM users WHERE jid = ?1", [jid], |_| Ok(())).optional()?.is_some();
        if is_user {
            return Err(StoreError::Invalid(format!("{jid} is a user, not an agent")));
        }
        let old: Vec<String> = tx
            .prepare("SELECT serial FROM certificates WHERE kind = 'agent' AND jid = ?1 AND revoked_at IS NULL")?
            .query_map([jid], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for serial in &old {
            tx.execute(
                "UPDATE certificates SET revoked_at = ?1, revocation_reason = ?2 WHERE serial = ?3",
                params![cert.issued_at, reason, serial],
            )?;
            tx.execute(
                "INSERT INTO key_changes (jid, status, serial, der, at)
                 SELECT ?1, 'revoked', serial, der, ?2 FROM certificates WHERE serial = ?3",
                params![jid, cert.issued_at, serial],
            )?;
        }
        insert_cert(&tx, cert)?;
        tx.execute(
            "INSERT INTO key_changes (jid, status, serial, der, at) VALUES (?1, 'valid', ?2, ?3, ?4)",
            params![jid, cert.serial_hex, cert.der, cert.issued_at],
        )?;
        tx.commit()?;
        Ok(old)
    }

    /// Records a server's new certificate. A server has one valid
    /// certificate at a time: earlier ones for the same domain that are
    /// not revoked are revoked with `reason` (superseded), in the same
    /// transaction. Returns their serials.
    pub fn add_server_certificate(&mut self, cert: &CertRecord, reason: u8) -> Result<Vec<String>, StoreError> {
        let tx = self.conn.transaction()?;
        let old = revoke_valid(&tx, "server", "name", &cert.name, reason, cert.issued_at, false)?;
        insert_cert(&tx, cert)?;
        tx.commit()?;
        Ok(old)
    }

    /// Revokes every certificate of the server `domain` that is not revoked
    /// yet, with `reason`, at `at`; returns their serials (none: nothing
    /// to revoke).
    pub fn revoke_server(&mut self, domain: &str, reason: u8, at: i64) -> Result<Vec<String>, StoreError> {
        let tx = self.conn.transaction()?;
        let revoked = revoke_valid(&tx, "server", "name", domain, reason, at, false)?;
        tx.commit()?;
        Ok(revoked)
    }

    /// Revokes every certificate of the agent `jid` that is not revoked yet,
    /// with `reason`, at `at`, and puts the revocations in the key feed;
    /// returns their serials (none: nothing to revoke).
    pub fn revoke_agent(&mut self, jid: &str, reason: u8, at: i64) -> Result<Vec<String>, StoreError> {
        let tx = self.conn.transaction()?;
        let revoked = revoke_valid(&tx, "agent", "jid", jid, reason, at, true)?;
        tx.commit()?;
        Ok(revoked)
    }

    /// Every revoked certificate, oldest revocation first.
    pub fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT serial, revoked_at, revocation_reason FROM certificates
             WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Revocation {
                serial_hex: r.get(0)?,
                revoked_at: r.get(1)?,
                reason: r.get::<_, Option<u8>>(2)?.unwrap_or(0),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Revokes the certificates of `kind` whose `column` (name or jid) is
/// `key` and that are not revoked yet; with `feed`, each revocation enters
/// the key feed under the certificate's JID. Returns their serials.
fn revoke_valid(
    tx: &rusqlite::Transaction<'_>,
    kind: &str,
    column: &str,
    key: &str,
    reason: u8,
    at: i64,
    feed: bool,
) -> Result<Vec<String>, StoreError> {
    let column = if column == "jid" { "jid" } else { "name" };
    let serials: Vec<String> = tx
        .prepare(&format!(
            "SELECT serial FROM certificates WHERE kind = ?1 AND {column} = ?2 AND revoked_at IS NULL ORDER BY serial"
        ))?
        .query_map(params![kind, key], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for serial in &serials {
        tx.execute(
            "UPDATE certificates SET revoked_at = ?1, revocation_reason = ?2 WHERE serial = ?3",
            params![at, reason, serial],
        )?;
        if feed {
            tx.execute(
                "INSERT INTO key_changes (jid, status, serial, der, at)
                 SELECT jid, 'revoked', serial, der, ?2 FROM certificates WHERE serial = ?1 AND jid IS NOT NULL",
                params![serial, at],
            )?;
        }
    }
    Ok(serials)
}

fn insert_cert(conn: &Connection, c: &CertRecord) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO certificates (serial, kind, name, jid, not_before, not_after, der, issued_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![c.serial_hex, c.kind.as_str(), c.name, c.jid, c.not_before, c.not_after, c.der, c.issued_at],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(serial: &str, kind: CertKind, name: &str) -> CertRecord {
        CertRecord {
            serial_hex: serial.into(),
            kind,
            name: name.into(),
            jid: Some(format!("{name}@po.example")),
            not_before: 0,
            not_after: 100,
            der: vec![1, 2, 3],
            issued_at: 1,
        }
    }

    #[test]
    fn agent_migration_keeps_existing_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.db");
        let conn = migrate::open(&path, &MIGRATIONS[..2], 10).unwrap();
        let mut old = CaDb { conn };
        old.add_user("1234567", "+4791234567", "gp@x.example", &cert("0a", CertKind::User, "1234567")).unwrap();
        drop(old);
        let db = CaDb::open(&path).unwrap();
        assert_eq!(db.user("1234567").unwrap().unwrap().cert_serial, "0a");
        let fk: i64 = db.conn.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).unwrap();
        assert_eq!(fk, 0);
    }

    #[test]
    fn users_revocations_and_crl_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.db");
        let mut db = CaDb::open(&path).unwrap();
        db.add_user("1234567", "+4791234567", "gp@x.example", &cert("0a", CertKind::User, "1234567")).unwrap();
        assert!(matches!(
            db.add_user("1234567", "+4791234567", "gp@x.example", &cert("0b", CertKind::User, "1234567")),
            Err(StoreError::DuplicateUser(_))
        ));
        assert_eq!(db.users().unwrap().len(), 1);
        assert!(db.revocations().unwrap().is_empty());
        db.revoke_user("1234567", 1, 50).unwrap();
        assert!(matches!(db.revoke_user("1234567", 1, 51), Err(StoreError::AlreadyRevoked(_))));
        assert!(matches!(db.revoke_user("7654321", 1, 51), Err(StoreError::UnknownUser(_))));
        assert_eq!(db.revocations().unwrap(), vec![Revocation { serial_hex: "0a".into(), revoked_at: 50, reason: 1 }]);
        assert_eq!(db.user("1234567").unwrap().unwrap().revoked, Some((50, 1)));
        assert_eq!(db.next_crl_number().unwrap(), 1);
        drop(db);
        // Reopening keeps everything and does not re-run migrations.
        let mut db = CaDb::open(&path).unwrap();
        assert_eq!(db.next_crl_number().unwrap(), 2);
        assert_eq!(db.users().unwrap().len(), 1);
        let changes = db.key_changes_since(0, 10).unwrap();
        assert_eq!(changes.iter().map(|c| c.status.as_str()).collect::<Vec<_>>(), ["valid", "revoked"]);
        assert_eq!(db.last_key_change().unwrap(), changes[1].seq);
        assert!(db.key_changes_since(changes[1].seq, 10).unwrap().is_empty());

        // Agents: a second certificate supersedes the first; a user's JID
        // cannot be taken.
        let mut agent = cert("0c", CertKind::Agent, "search");
        db.add_agent_certificate(&agent, 4).unwrap();
        agent.serial_hex = "0d".into();
        db.add_agent_certificate(&agent, 4).unwrap();
        let feed = db.key_changes_since(changes[1].seq, 10).unwrap();
        let got: Vec<_> = feed.iter().map(|c| (c.serial_hex.as_str(), c.status.as_str())).collect();
        assert_eq!(got, [("0c", "valid"), ("0c", "revoked"), ("0d", "valid")]);
        assert!(db.add_agent_certificate(&cert("0e", CertKind::Agent, "1234567"), 4).is_err());
        assert_eq!(db.users().unwrap().len(), 1, "the rebuilt certificates table still joins users");
    }

    #[test]
    fn servers_are_superseded_and_servers_and_agents_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = CaDb::open(&dir.path().join("ca.db")).unwrap();
        let server = |serial: &str, domain: &str| CertRecord {
            jid: Some(domain.into()),
            ..cert(serial, CertKind::Server, domain)
        };
        assert!(db.add_server_certificate(&server("01", "lab.example"), 4).unwrap().is_empty());
        assert!(db.add_server_certificate(&server("02", "other.example"), 4).unwrap().is_empty());
        // A new certificate for lab.example supersedes the first only.
        assert_eq!(db.add_server_certificate(&server("03", "lab.example"), 4).unwrap(), ["01"]);
        let revoked =
            |db: &CaDb| db.revocations().unwrap().into_iter().map(|r| (r.serial_hex, r.reason)).collect::<Vec<_>>();
        assert_eq!(revoked(&db), [("01".to_owned(), 4)]);
        assert_eq!(db.revoke_server("lab.example", 1, 60).unwrap(), ["03"]);
        assert!(db.revoke_server("lab.example", 1, 61).unwrap().is_empty(), "nothing left to revoke");
        assert!(db.revoke_server("nowhere.example", 1, 61).unwrap().is_empty());
        // Servers are not in the key feed; agents are.
        assert_eq!(db.last_key_change().unwrap(), 0);
        db.add_agent_certificate(&cert("04", CertKind::Agent, "search"), 4).unwrap();
        assert_eq!(db.revoke_agent("search@po.example", 9, 70).unwrap(), ["04"]);
        assert!(db.revoke_agent("search@po.example", 9, 71).unwrap().is_empty());
        let feed: Vec<_> =
            db.key_changes_since(0, 10).unwrap().into_iter().map(|c| (c.serial_hex, c.status.as_str())).collect();
        assert_eq!(feed, [("04".to_owned(), "valid"), ("04".to_owned(), "revoked")]);
        assert_eq!(revoked(&db).len(), 3);
    }
}
