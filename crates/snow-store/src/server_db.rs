//! The XMPP server's own database: known accounts, rosters and offline
//! messages (XEP-0160). An offline message is committed before the sender
//! is answered and deleted only after the recipient's client acknowledged
//! it (XEP-0198), or, for a client without stream management, after it was
//! written to its socket, so a crash at any point loses nothing.

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
    r#"
-- Publish-subscribe (XEP-0060) for alerts: nodes exist while they have
-- subscribers or items. Items are kept (newest MAX_ITEMS_PER_NODE) so a
-- GP who was away can list what was published.
CREATE TABLE pubsub_subscriptions (
    node       TEXT NOT NULL,
    jid        TEXT NOT NULL,                    -- bare JID
    created_at INTEGER NOT NULL,
    PRIMARY KEY (node, jid)
) WITHOUT ROWID;
CREATE INDEX pubsub_subscriptions_by_jid ON pubsub_subscriptions (jid, node);
CREATE TABLE pubsub_items (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT, -- publication order
    node       TEXT NOT NULL,
    item_id    TEXT NOT NULL,
    publisher  TEXT NOT NULL,                    -- bare JID
    payload    TEXT NOT NULL,                    -- serialized in jabber:client
    published_at INTEGER NOT NULL,
    UNIQUE (node, item_id)
);
"#,
    r#"
-- Pubsub caps per publisher: a publisher's items on a node, oldest first.
CREATE INDEX pubsub_items_by_publisher ON pubsub_items (node, publisher, seq);
"#,
    r#"
-- Offline quotas: who sent each stored message and its size, and each
-- recipient's totals, kept by triggers whichever way rows come and go, so
-- a quota check reads one row and one index range, never the stanzas.
ALTER TABLE offline ADD COLUMN sender TEXT NOT NULL DEFAULT '';  -- bare JID or domain
ALTER TABLE offline ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
UPDATE offline SET bytes = length(CAST(stanza AS BLOB));
CREATE INDEX offline_by_sender ON offline (owner, sender);
CREATE TABLE offline_usage (
    owner    TEXT PRIMARY KEY,
    messages INTEGER NOT NULL,
    bytes    INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO offline_usage (owner, messages, bytes) SELECT owner, COUNT(*), SUM(bytes) FROM offline GROUP BY owner;
CREATE TRIGGER offline_usage_add AFTER INSERT ON offline BEGIN
    INSERT OR IGNORE INTO offline_usage (owner, messages, bytes) VALUES (NEW.owner, 0, 0);
    UPDATE offline_usage SET messages = messages + 1, bytes = bytes + NEW.bytes WHERE owner = NEW.owner;
END;
CREATE TRIGGER offline_usage_remove AFTER DELETE ON offline BEGIN
    UPDATE offline_usage SET messages = messages - 1, bytes = bytes - OLD.bytes WHERE owner = OLD.owner;
    DELETE FROM offline_usage WHERE owner = OLD.owner AND messages <= 0;
END;
"#,
];

/// The quotas an offline message is kept within
/// ([`ServerDb::store_offline_within`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflineLimits {
    /// Messages kept for one recipient.
    pub max_messages: i64,
    /// Bytes kept for one recipient.
    pub max_bytes: i64,
    /// Messages one sender may have waiting for one recipient.
    pub max_per_sender: i64,
}

/// What became of an offline message ([`ServerDb::store_offline_within`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineStored {
    /// Kept, with its row id.
    Stored(i64),
    /// Nothing kept: the recipient's store is at its count or byte quota.
    RecipientFull,
    /// Nothing kept: this sender has its quota waiting for the recipient.
    SenderFull,
}

/// How many items a pubsub node keeps: at most `per_publisher` of one
/// publisher (its oldest expire first, so one publisher's flood never
/// pushes out anyone else's items) and `per_node` in all (the node's
/// oldest expire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemCaps {
    pub per_node: i64,
    pub per_publisher: i64,
}

/// What became of a publication ([`ServerDb::publish_item`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publication {
    /// A new item.
    Stored,
    /// The publisher's own item of that id, replaced.
    Replaced,
    /// Nothing: the id is another publisher's item.
    NotYours,
    /// Nothing: only a replacement was asked for and there is no such item.
    NoSuchItem,
}

/// What became of a retraction ([`ServerDb::retract_item`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retraction {
    Retracted,
    NotYours,
    NoSuchItem,
}

/// A stored pubsub item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubsubItem {
    pub node: String,
    pub id: String,
    pub publisher: String,
    pub payload: String,
    pub published_at: i64,
}

/// A key directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub jid: String,
    pub status: crate::KeyStatus,
    pub serial_hex: String,
    pub der: Vec<u8>,
}

/// A roster entry (RFC 6121 §2.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterItem {
    pub contact: String,
    pub name: Option<String>,
    pub subscription: crate::Subscription,
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
        if self.offline_usage(owner)?.0 >= MAX_OFFLINE_PER_ACCOUNT {
            return Ok(None);
        }
        Ok(Some(self.insert_offline(owner, "", stanza, now)?))
    }

    /// Stores a message from `sender` (a bare JID or a domain) for `owner`
    /// within `limits`; nothing is stored past a quota, and the outcome
    /// says which. One call on the one connection, so the check and the
    /// insert cannot be split by another store.
    pub fn store_offline_within(
        &self,
        owner: &str,
        sender: &str,
        stanza: &str,
        now: i64,
        limits: OfflineLimits,
    ) -> Result<OfflineStored, StoreError> {
        let (messages, bytes) = self.offline_usage(owner)?;
        let size = i64::try_from(stanza.len()).unwrap_or(i64::MAX);
        if messages >= limits.max_messages || bytes.saturating_add(size) > limits.max_bytes {
            return Ok(OfflineStored::RecipientFull);
        }
        if self.offline_from(owner, sender)? >= limits.max_per_sender {
            return Ok(OfflineStored::SenderFull);
        }
        Ok(OfflineStored::Stored(self.insert_offline(owner, sender, stanza, now)?))
    }

    fn insert_offline(&self, owner: &str, sender: &str, stanza: &str, now: i64) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO offline (owner, sender, stanza, bytes, stored_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![owner, sender, stanza, stanza.len() as i64, now],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The messages and bytes stored for `owner`.
    pub fn offline_usage(&self, owner: &str) -> Result<(i64, i64), StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT messages, bytes FROM offline_usage WHERE owner = ?1")?
            .query_row([owner], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, 0)))
    }

    /// The messages from `sender` stored for `owner`.
    pub fn offline_from(&self, owner: &str, sender: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM offline WHERE owner = ?1 AND sender = ?2")?
            .query_row([owner, sender], |r| r.get(0))?)
    }

    /// The contacts in `owner`'s roster (the roster quota).
    pub fn roster_len(&self, owner: &str) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM roster WHERE owner = ?1")?
            .query_row([owner], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// The next `limit` stored messages for `owner` after the row `after`
    /// (0 for the oldest), oldest first, with their ids: delivery reads a
    /// page at a time, so a full store never sits in memory at once.
    pub fn offline_page(&self, owner: &str, after: i64, limit: usize) -> Result<Vec<(i64, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, stanza FROM offline WHERE owner = ?1 AND id > ?2 ORDER BY id LIMIT ?3")?;
        let rows = stmt.query_map(params![owner, after, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn delete_offline(&self, id: i64) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM offline WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Deletes the stored messages `ids` (delivered, or acknowledged by
    /// the client) in one transaction: one commit, so one sync of the
    /// disk, per batch rather than per message. Returns how many were
    /// still there (a row already gone is no error: two sessions of one
    /// account may both have been handed it).
    pub fn delete_offline_many(&mut self, ids: &[i64]) -> Result<usize, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let tx = self.conn.transaction()?;
        let mut deleted = 0;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM offline WHERE id = ?1")?;
            for id in ids {
                deleted += stmt.execute([id])?;
            }
        }
        tx.commit()?;
        Ok(deleted)
    }

    pub fn replication_seq(&self, cursor: &crate::ReplicationCursor) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT seq FROM replication WHERE name = ?1", [cursor.name()], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    pub fn set_replication_seq(&self, cursor: &crate::ReplicationCursor, seq: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO replication (name, seq) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
            params![cursor.name(), seq],
        )?;
        Ok(())
    }

    /// Applies key changes in order, skipping those at or below the
    /// position `name`, and advances it; all in one transaction. Returns
    /// the new position. A gap (a change missing) stops the batch there.
    pub fn apply_key_changes(
        &mut self,
        cursor: &crate::ReplicationCursor,
        changes: &[crate::KeyChange],
    ) -> Result<i64, StoreError> {
        let name = cursor.name();
        let tx = self.conn.transaction()?;
        let mut pos: i64 =
            tx.query_row("SELECT seq FROM replication WHERE name = ?1", [&name], |r| r.get(0)).optional()?.unwrap_or(0);
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

    /// Subscribes `jid` to `node`; false if it already was.
    pub fn subscribe(&self, node: &str, jid: &str, now: i64) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "INSERT OR IGNORE INTO pubsub_subscriptions (node, jid, created_at) VALUES (?1, ?2, ?3)",
            params![node, jid, now],
        )? == 1)
    }

    pub fn unsubscribe(&self, node: &str, jid: &str) -> Result<bool, StoreError> {
        Ok(self.conn.execute("DELETE FROM pubsub_subscriptions WHERE node = ?1 AND jid = ?2", [node, jid])? > 0)
    }

    /// The subscribers of `node`, in JID order.
    pub fn subscribers(&self, node: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT jid FROM pubsub_subscriptions WHERE node = ?1 ORDER BY jid")?;
        let rows = stmt.query_map([node], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The nodes `jid` subscribes to, in node order.
    pub fn subscriptions_of(&self, jid: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT node FROM pubsub_subscriptions WHERE jid = ?1 ORDER BY node")?;
        let rows = stmt.query_map([jid], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores an item, in one transaction: an item of the same id is
    /// replaced (XEP-0060 §7.1.2) only if the same publisher published it;
    /// with `replace_only`, only an existing item is (the publisher may not
    /// choose a new id). Then the publisher's oldest items on the node
    /// beyond `caps.per_publisher` expire, then the node's oldest beyond
    /// `caps.per_node`.
    pub fn publish_item(
        &mut self,
        item: &PubsubItem,
        replace_only: bool,
        caps: ItemCaps,
    ) -> Result<Publication, StoreError> {
        let tx = self.conn.transaction()?;
        let owner: Option<String> = tx
            .query_row(
                "SELECT publisher FROM pubsub_items WHERE node = ?1 AND item_id = ?2",
                [&item.node, &item.id],
                |r| r.get(0),
            )
            .optional()?;
        let outcome = match owner {
            Some(p) if p != item.publisher => return Ok(Publication::NotYours),
            Some(_) => Publication::Replaced,
            None if replace_only => return Ok(Publication::NoSuchItem),
            None => Publication::Stored,
        };
        tx.execute("DELETE FROM pubsub_items WHERE node = ?1 AND item_id = ?2", [&item.node, &item.id])?;
        tx.execute(
            "INSERT INTO pubsub_items (node, item_id, publisher, payload, published_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![item.node, item.id, item.publisher, item.payload, item.published_at],
        )?;
        tx.execute(
            "DELETE FROM pubsub_items WHERE node = ?1 AND publisher = ?2 AND seq NOT IN
               (SELECT seq FROM pubsub_items WHERE node = ?1 AND publisher = ?2 ORDER BY seq DESC LIMIT ?3)",
            params![item.node, item.publisher, caps.per_publisher.max(1)],
        )?;
        tx.execute(
            "DELETE FROM pubsub_items WHERE node = ?1 AND seq NOT IN
               (SELECT seq FROM pubsub_items WHERE node = ?1 ORDER BY seq DESC LIMIT ?2)",
            params![item.node, caps.per_node.max(1)],
        )?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Deletes item `id` of `node` if `publisher` published it.
    pub fn retract_item(&mut self, node: &str, id: &str, publisher: &str) -> Result<Retraction, StoreError> {
        let tx = self.conn.transaction()?;
        let owner: Option<String> = tx
            .query_row("SELECT publisher FROM pubsub_items WHERE node = ?1 AND item_id = ?2", [node, id], |r| r.get(0))
            .optional()?;
        let outcome = match owner {
            None => Retraction::NoSuchItem,
            Some(p) if p != publisher => Retraction::NotYours,
            Some(_) => {
                tx.execute("DELETE FROM pubsub_items WHERE node = ?1 AND item_id = ?2", [node, id])?;
                Retraction::Retracted
            }
        };
        tx.commit()?;
        Ok(outcome)
    }

    /// Item `id` of `node`, if there is one.
    pub fn item(&self, node: &str, id: &str) -> Result<Option<PubsubItem>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT node, item_id, publisher, payload, published_at FROM pubsub_items
                 WHERE node = ?1 AND item_id = ?2",
                [node, id],
                pubsub_item,
            )
            .optional()?)
    }

    /// The newest `max` items of `node`, newest first.
    pub fn items(&self, node: &str, max: i64) -> Result<Vec<PubsubItem>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT node, item_id, publisher, payload, published_at FROM pubsub_items
             WHERE node = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![node, max], pubsub_item)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A row of `SELECT node, item_id, publisher, payload, published_at FROM
/// pubsub_items`.
fn pubsub_item(r: &rusqlite::Row<'_>) -> rusqlite::Result<PubsubItem> {
    Ok(PubsubItem { node: r.get(0)?, id: r.get(1)?, publisher: r.get(2)?, payload: r.get(3)?, published_at: r.get(4)? })
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
        let msgs = db.offline_page("a@x", 0, 10).unwrap();
        assert_eq!(msgs, vec![(id1, "<message>1</message>".into()), (id2, "<message>2</message>".into())]);
        assert_eq!(db.offline_page("a@x", id1, 10).unwrap(), vec![(id2, "<message>2</message>".into())]);
        assert_eq!(db.offline_page("a@x", 0, 1).unwrap().len(), 1);
        db.delete_offline(id1).unwrap();
        assert_eq!(db.offline_page("a@x", 0, 10).unwrap().len(), 1);
    }

    #[test]
    fn offline_rows_leave_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = ServerDb::open(&dir.path().join("server.db")).unwrap();
        let ids: Vec<i64> =
            (0..5).map(|i| db.store_offline("a@x", &format!("<message>{i}</message>"), i).unwrap().unwrap()).collect();
        assert_eq!(db.delete_offline_many(&[]).unwrap(), 0);
        // A row already gone (another session of the account had it) counts
        // for nothing and stops nothing.
        db.delete_offline(ids[1]).unwrap();
        assert_eq!(db.delete_offline_many(&ids[..3]).unwrap(), 2);
        assert_eq!(db.offline_page("a@x", 0, 10).unwrap().iter().map(|r| r.0).collect::<Vec<_>>(), ids[3..]);
    }

    #[test]
    fn pubsub_subscriptions_and_items() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = ServerDb::open(&dir.path().join("s.db")).unwrap();
        assert!(db.subscribe("alerts/INFA/5401", "b@x", 1).unwrap());
        assert!(!db.subscribe("alerts/INFA/5401", "b@x", 2).unwrap());
        db.subscribe("alerts/INFA/5401", "a@x", 1).unwrap();
        assert_eq!(db.subscribers("alerts/INFA/5401").unwrap(), ["a@x", "b@x"]);
        assert_eq!(db.subscriptions_of("a@x").unwrap(), ["alerts/INFA/5401"]);
        let item = |id: &str, t: i64| PubsubItem {
            node: "alerts/INFA/5401".into(),
            id: id.into(),
            publisher: "agent@lab".into(),
            payload: format!("<alert>{id}</alert>"),
            published_at: t,
        };
        let caps = ItemCaps { per_node: 1000, per_publisher: 100 };
        assert_eq!(db.publish_item(&item("one", 1), false, caps).unwrap(), Publication::Stored);
        db.publish_item(&item("two", 2), false, caps).unwrap();
        // The same id again replaces it, and it becomes the newest.
        assert_eq!(db.publish_item(&item("one", 3), true, caps).unwrap(), Publication::Replaced);
        let got: Vec<_> =
            db.items("alerts/INFA/5401", 10).unwrap().into_iter().map(|i| (i.id, i.published_at)).collect();
        assert_eq!(got, [("one".to_owned(), 3), ("two".to_owned(), 2)]);
        // Another publisher's id is not replaced; a new id is not taken when
        // only a replacement is allowed.
        let theirs = PubsubItem { publisher: "gp@x".into(), payload: "<alert>x</alert>".into(), ..item("one", 4) };
        assert_eq!(db.publish_item(&theirs, false, caps).unwrap(), Publication::NotYours);
        let new = PubsubItem { id: "three".into(), ..theirs };
        assert_eq!(db.publish_item(&new, true, caps).unwrap(), Publication::NoSuchItem);
        assert_eq!(db.item("alerts/INFA/5401", "one").unwrap().unwrap(), item("one", 3));
        assert_eq!(db.item("alerts/INFA/5401", "three").unwrap(), None);
        // Only the publisher retracts.
        assert_eq!(db.retract_item("alerts/INFA/5401", "one", "gp@x").unwrap(), Retraction::NotYours);
        assert_eq!(db.retract_item("alerts/INFA/5401", "one", "agent@lab").unwrap(), Retraction::Retracted);
        assert_eq!(db.retract_item("alerts/INFA/5401", "one", "agent@lab").unwrap(), Retraction::NoSuchItem);
        assert!(db.unsubscribe("alerts/INFA/5401", "a@x").unwrap());
    }

    #[test]
    fn one_publishers_flood_expires_only_its_own_items() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = ServerDb::open(&dir.path().join("s.db")).unwrap();
        let caps = ItemCaps { per_node: 10, per_publisher: 3 };
        let item = |publisher: &str, id: String, t: i64| PubsubItem {
            node: "alerts/INFA/54".into(),
            id,
            publisher: publisher.into(),
            payload: "<alert/>".into(),
            published_at: t,
        };
        for i in 0..2 {
            db.publish_item(&item("a@x", format!("a{i}"), i), false, caps).unwrap();
        }
        for i in 0..50 {
            db.publish_item(&item("flood@x", format!("f{i}"), 10 + i), false, caps).unwrap();
        }
        let ids: Vec<String> = db.items("alerts/INFA/54", 100).unwrap().into_iter().map(|i| i.id).collect();
        assert_eq!(ids, ["f49", "f48", "f47", "a1", "a0"]);
        // Many publishers: the node's oldest expire.
        for p in 0..5 {
            for i in 0..2 {
                db.publish_item(&item(&format!("p{p}@x"), format!("p{p}-{i}"), 100 + p * 2 + i), false, caps).unwrap();
            }
        }
        let ids: Vec<String> = db.items("alerts/INFA/54", 100).unwrap().into_iter().map(|i| i.id).collect();
        assert_eq!(ids.len(), 10);
        assert!(!ids.contains(&"a0".to_owned()) && ids.contains(&"p4-1".to_owned()), "{ids:?}");
    }

    #[test]
    fn offline_quotas_count_messages_bytes_and_senders() {
        let dir = tempfile::tempdir().unwrap();
        let db = ServerDb::open(&dir.path().join("server.db")).unwrap();
        let limits = OfflineLimits { max_messages: 4, max_bytes: 100, max_per_sender: 2 };
        let msg = "<message>0123456789</message>"; // 29 bytes
        let store = |db: &ServerDb, sender: &str| db.store_offline_within("b@x", sender, msg, 1, limits).unwrap();
        assert!(matches!(store(&db, "a@x"), OfflineStored::Stored(_)));
        let OfflineStored::Stored(second) = store(&db, "a@x") else { panic!("not stored") };
        assert_eq!(store(&db, "a@x"), OfflineStored::SenderFull, "a's quota for b");
        assert!(matches!(store(&db, "c@x"), OfflineStored::Stored(_)));
        assert_eq!(db.offline_usage("b@x").unwrap(), (3, 87));
        assert_eq!(store(&db, "d@x"), OfflineStored::RecipientFull, "87 + 29 bytes > 100");
        assert_eq!(db.offline_usage("b@x").unwrap(), (3, 87), "nothing kept");
        // A delivered row frees its place, whichever way it is deleted.
        db.delete_offline(second).unwrap();
        assert_eq!(db.offline_usage("b@x").unwrap(), (2, 58));
        assert!(matches!(store(&db, "a@x"), OfflineStored::Stored(_)));
        let tight = OfflineLimits { max_messages: 3, ..limits };
        assert_eq!(db.store_offline_within("b@x", "e@x", msg, 1, tight).unwrap(), OfflineStored::RecipientFull);
        // The unchecked path counts too; another recipient has its own store.
        db.store_offline("b@x", msg, 1).unwrap().unwrap();
        assert_eq!(db.offline_usage("b@x").unwrap(), (4, 116));
        assert!(matches!(db.store_offline_within("z@x", "a@x", msg, 1, limits).unwrap(), OfflineStored::Stored(_)));
        let ids: Vec<i64> = db.offline_page("b@x", 0, 10).unwrap().into_iter().map(|(id, _)| id).collect();
        for id in ids {
            db.delete_offline(id).unwrap();
        }
        assert_eq!(db.offline_usage("b@x").unwrap(), (0, 0));
    }

    #[test]
    fn roster_items() {
        let dir = tempfile::tempdir().unwrap();
        let db = ServerDb::open(&dir.path().join("s.db")).unwrap();
        let item = RosterItem {
            contact: "b@x".into(),
            name: Some("Dr B".into()),
            subscription: crate::Subscription::None,
            ask: false,
            groups: vec!["GPs".into()],
        };
        db.put_roster_item("a@x", &item).unwrap();
        assert_eq!(db.roster("a@x").unwrap(), vec![item]);
        assert!(db.remove_roster_item("a@x", "b@x").unwrap());
        assert!(db.roster("a@x").unwrap().is_empty());
    }
}
