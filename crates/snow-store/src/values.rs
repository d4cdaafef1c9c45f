//! Small typed values the stores keep as text columns: roster
//! subscription states, key directory statuses, and the names of
//! replication positions. Typed so that a misspelt state is a compile
//! error, not a row the CHECK constraint refuses at run time.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// A roster item's presence subscription (RFC 6121 §2.1.2.5): whether the
/// owner sees the contact's presence (`To`), the contact sees the owner's
/// (`From`), both, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Subscription {
    #[default]
    None,
    To,
    From,
    Both,
}

impl Subscription {
    pub fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Subscription::None,
            "to" => Subscription::To,
            "from" => Subscription::From,
            "both" => Subscription::Both,
            _ => return None,
        })
    }

    /// Whether the owner receives the contact's presence.
    pub fn to_contact(self) -> bool {
        matches!(self, Subscription::To | Subscription::Both)
    }

    /// Whether the contact receives the owner's presence.
    pub fn from_contact(self) -> bool {
        matches!(self, Subscription::From | Subscription::Both)
    }

    fn of(to: bool, from: bool) -> Self {
        match (to, from) {
            (false, false) => Subscription::None,
            (true, false) => Subscription::To,
            (false, true) => Subscription::From,
            (true, true) => Subscription::Both,
        }
    }

    /// With the owner now subscribed to the contact's presence.
    pub fn plus_to(self) -> Self {
        Self::of(true, self.from_contact())
    }
    /// With the contact now subscribed to the owner's presence.
    pub fn plus_from(self) -> Self {
        Self::of(self.to_contact(), true)
    }
    pub fn minus_to(self) -> Self {
        Self::of(false, self.from_contact())
    }
    pub fn minus_from(self) -> Self {
        Self::of(self.to_contact(), false)
    }
}

/// A certificate's state in the key directory and the PO's key feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Valid,
    Revoked,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Valid => "valid",
            KeyStatus::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "valid" => Some(KeyStatus::Valid),
            "revoked" => Some(KeyStatus::Revoked),
            _ => None,
        }
    }

    pub fn is_valid(self) -> bool {
        self == KeyStatus::Valid
    }
}

/// A named position in the key feed a server keeps (`replication` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicationCursor {
    /// How far this server's own directory has applied the local CA's feed
    /// (at the PO).
    AppliedLocal,
    /// How far this replica has applied the pushes of `master`.
    AppliedFrom(String),
    /// How far replica `peer` has acknowledged our pushes (at the PO).
    AckedBy(String),
}

impl ReplicationCursor {
    /// The row name (stable: it is stored).
    pub fn name(&self) -> String {
        match self {
            ReplicationCursor::AppliedLocal => "applied:local".to_owned(),
            ReplicationCursor::AppliedFrom(d) => format!("applied:{d}"),
            ReplicationCursor::AckedBy(d) => format!("acked:{d}"),
        }
    }
}

macro_rules! text_column {
    ($t:ty) => {
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
        impl FromSql for $t {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = value.as_str()?;
                <$t>::parse(s).ok_or_else(|| FromSqlError::Other(format!("unknown value {s:?}").into()))
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
text_column!(Subscription);
text_column!(KeyStatus);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_transitions() {
        use Subscription::*;
        assert_eq!(None.plus_to(), To);
        assert_eq!(From.plus_to(), Both);
        assert_eq!(To.plus_from(), Both);
        assert_eq!(Both.minus_to(), From);
        assert_eq!(Both.minus_from(), To);
        assert_eq!(To.minus_to(), None);
        for s in [None, To, From, Both] {
            assert_eq!(Subscription::parse(s.as_str()), Some(s));
        }
        assert_eq!(KeyStatus::parse("revoked"), Some(KeyStatus::Revoked));
        assert_eq!(ReplicationCursor::AckedBy("lab.example".into()).name(), "acked:lab.example");
    }
}
