//! The XMPP server's own database: known accounts, rosters and offline
//! messages (XEP-0160). An offline message is committed before the sender
//! is answered and deleted only after it was written to the recipient's
//! socket, so a crash at any point loses nothing.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::{migrate, StoreError};

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE accounts (
    jid        TEXT PRIMARY KEY,                 -- bare JID
    created_at INTEGER NOT NULL
);
CREATE TABLE offline (
    id        INTEGER PRIMARY KEY AUTOINCREMENT, -- delivery order
    owner     TEXT NOT NULL,                     -- recipient bare JID
    stanza    TEXT NOT NULL,                     -- serialized in jabber:client
    stored_at INTEGER NOT NULL
);
CREATE INDEX offline_owner ON offline (owner, id);
CREATE TABLE roster (
    owner        TEXT NOT NULL,
    contact      TEXT NOT NULL,
    name         TEXT,
    subscription TEXT NOT NULL DEFAULT 'none' CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask          INTEGER NOT NULL DEFAULT 0,     -- 1 = subscription request pending out
    groups       TEXT NOT NULL DEFAULT '',       -- newline-separated
    PRIMARY KEY (owner, contact)
);
"#,
    r#"
-- The key directory: users' certificates as the PO published them.
CREATE TABLE directory (
    jid    TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('valid', 'revoked')),
    serial TEXT NOT NULL,
    der    BLOB NOT NULL,
    seq    INTEGER NOT NULL
);
-- Replication positions: 'applied:<master>' on a replica, 'acked:<peer>' on the master.
CREATE TABLE replication (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
);
"#,
];

/// A key directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub jid: String,
    pub status: String,
    pub serial_hex: String,
    pub der: Vec<u8>,
}

/// A roster entry (RFC 6121 §2.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterItem {
    pub contact: String,
    pub name: Option<String>,
    pub subscription: String,
    pub ask: bool,
    pub groups: Vec<String>,
}

/// Handle on the server database. Not `Sync`: the server keeps one behind a
/// mutex and calls it from blocking tasks.
pub struct ServerDb {
    conn: Connection,
}

/// Most offline messages kept per account; past it the sender gets an error.
pub const MAX_OFFLINE_PER_ACCOUNT: i64 = 10_000;

impl ServerDb {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(ServerDb { conn: migrate::open(path, MIGRATIONS, 10)? })
    }

    pub fn add_account(&self, jid: &str, now: i64) -> Result<(), StoreError> {
        self.conn.execute("INSERT OR IGNORE INTO accounts (jid, created_at) VALUES (?1, ?2)", params![jid, now])?;
        Ok(())
    }

    pub fn account_exists(&self, jid: &str) -> Result<bool, StoreError> {
        Ok(self.conn.query_row("SELECT 1 FROM accounts WHERE jid = ?1", [jid], |_| Ok(())).optional()?.is_some())
    }

    /// Stores a message for `owner`; returns its id. Refuses past
    /// [`MAX_OFFLINE_PER_ACCOUNT`] so one sender cannot fill the disk.
    pub fn store_offline(&self, owner: &str, stanza: &str, now: i64) -> Result<Option<i64>, StoreError> {
        let n: i64 = self.conn.query_row("SELECT COUNT(*) FROM offline WHERE owner = ?1", [owner], |r| r.get(0))?;
        if n >= MAX_OFFLINE_PER_ACCOUNT {
            return Ok(None);
        }
        self.conn.execute(
            "INSERT INTO offline (owner, stanza, stored_at) VALUES (?1, ?2, ?3)",
            params![owner, stanza, now],
        )?;
        Ok(Some(self.conn.last_insert_rowid()))
    }

    /// Every stored message for `owner`, oldest first, with its id.
    pub fn offline_for(&self, owner: &str) -> Result<Vec<(i64, String)>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT id, stanza FROM offline WHERE owner = ?1 ORDER BY id")?;
        let rows = stmt.query_map([owner], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn delete_offline(&self, id: i64) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM offline WHERE id = ?1", [id])?;
        Ok(())
    }

    pub fn replication_seq(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT seq FROM replication WHERE name = ?1", [name], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    pub fn set_replication_seq(&self, name: &str, seq: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO replication (name, seq) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
            params![name, seq],
        )?;
        Ok(())
    }

    /// Applies key changes in order, skipping those at or below the
    /// position `name`, and advances it; all in one transaction. Returns
    /// the new position. A gap (a change missing) stops the batch there.
    pub fn apply_key_changes(&mut self, name: &str, changes: &[crate::KeyChange]) -> Result<i64, StoreError> {
        let tx = self.conn.transaction()?;
        let mut pos: i64 =
            tx.query_row("SELECT seq FROM replication WHERE name = ?1", [name], |r| r.get(0)).optional()?.unwrap_or(0);
        for c in changes {
            if c.seq <= pos {
                continue;
            }
            tx.execute(
                "INSERT INTO directory (jid, status, serial, der, seq) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (jid) DO UPDATE SET status = excluded.status, serial = excluded.serial,
                     der = excluded.der, seq = excluded.seq",
                params![c.jid, c.status, c.serial_hex, c.der, c.seq],
            )?;
            pos = c.seq;
        }
        tx.execute(
            "INSERT INTO replication (name, seq) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
            params![name, pos],
        )?;
        tx.commit()?;
        Ok(pos)
    }

    pub fn directory_entry(&self, jid: &str) -> Result<Option<DirectoryEntry>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT jid, status, serial, der FROM directory WHERE jid = ?1", [jid], |r| {
                Ok(DirectoryEntry { jid: r.get(0)?, status: r.get(1)?, serial_hex: r.get(2)?, der: r.get(3)? })
            })
            .optional()?)
    }

    pub fn roster(&self, owner: &str) -> Result<Vec<RosterItem>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT contact, name, subscription, ask, groups FROM roster WHERE owner = ?1 ORDER BY contact")?;
        let rows = stmt.query_map([owner], |r| {
            let groups: String = r.get(4)?;
            Ok(RosterItem {
                contact: r.get(0)?,
                name: r.get(1)?,
                subscription: r.get(2)?,
                ask: r.get::<_, i64>(3)? != 0,
                groups: groups.split('\n').filter(|g| !g.is_empty()).map(str::to_owned).collect(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn roster_item(&self, owner: &str, contact: &str) -> Result<Option<RosterItem>, StoreError> {
        Ok(self.roster(owner)?.into_iter().find(|i| i.contact == contact))
    }

    /// Creates or replaces an item (name, groups, subscription, ask).
    pub fn put_roster_item(&self, owner: &str, item: &RosterItem) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO roster (owner, contact, name, subscription, ask, groups) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (owner, contact) DO UPDATE SET name = excluded.name, subscription = excluded.subscription,
                 ask = excluded.ask, groups = excluded.groups",
            params![owner, item.contact, item.name, item.subscription, item.ask as i64, item.groups.join("\n")],
        )?;
        Ok(())
    }

    pub fn remove_roster_item(&self, owner: &str, contact: &str) -> Result<bool, StoreError> {
        Ok(self.conn.execute("DELETE FROM roster WHERE owner = ?1 AND contact = ?2", [owner, contact])? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_order_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data/server.db");
        let db = ServerDb::open(&p).unwrap();
        db.add_account("a@x", 1).unwrap();
        assert!(db.account_exists("a@x").unwrap());
        assert!(!db.account_exists("b@x").unwrap());
        let id1 = db.store_offline("a@x", "<message>1</message>", 1).unwrap().unwrap();
        let id2 = db.store_offline("a@x", "<message>2</message>", 2).unwrap().unwrap();
        drop(db);
        let db = ServerDb::open(&p).unwrap();
        let msgs = db.offline_for("a@x").unwrap();
        assert_eq!(msgs, vec![(id1, "<message>1</message>".into()), (id2, "<message>2</message>".into())]);
        db.delete_offline(id1).unwrap();
        assert_eq!(db.offline_for("a@x").unwrap().len(), 1);
    }

    #[test]
    fn roster_items() {
        let dir = tempfile::tempdir().unwrap();
        let db = ServerDb::open(&dir.path().join("s.db")).unwrap();
        let item = RosterItem {
            contact: "b@x".into(),
            name: Some("Dr B".into()),
            subscription: "none".into(),
            ask: false,
            groups: vec!["GPs".into()],
        };
        db.put_roster_item("a@x", &item).unwrap();
        assert_eq!(db.roster("a@x").unwrap(), vec![item]);
        assert!(db.remove_roster_item("a@x", "b@x").unwrap());
        assert!(db.roster("a@x").unwrap().is_empty());
    }
}
