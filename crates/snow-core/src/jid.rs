//! The parts of XMPP addresses (RFC 7622) Snow needs before it has an
//! XMPP stack: a site's domain, a user's bare JID, and an agent's address.

use std::fmt;
use std::str::FromStr;

use crate::{Hpnr, InputError};

/// Checks the LDH rules of a DNS host name (RFC 1123): labels of letters,
/// digits and inner hyphens, at most 63 octets each and 253 in all.
pub(crate) fn validate_dns_name(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 253 {
        return Err("it must have 1 to 253 characters");
    }
    for label in s.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated label must have 1 to 63 characters");
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err("only letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label must not start or end with '-'");
        }
    }
    Ok(())
}

/// A site's XMPP domain, such as `po.example` or `lab.example`: the domain
/// part of every user JID at the site and the dNSName of its server
/// certificate. Stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Domain {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
        validate_dns_name(&s).map_err(InputError::Domain)?;
        Ok(Domain(s))
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bare JID `local@domain`. Snow users are `hpnr@site-domain`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BareJid {
    local: String,
    domain: Domain,
}

impl BareJid {
    /// The JID a user gets at the site that issues their certificate.
    pub fn for_user(hpnr: &Hpnr, domain: &Domain) -> Self {
        BareJid { local: hpnr.as_str().to_owned(), domain: domain.clone() }
    }

    pub fn local(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &Domain {
        &self.domain
    }
}

impl FromStr for BareJid {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((local, domain)) = s.split_once('@') else {
            return Err(InputError::Jid("it needs the form local@domain"));
        };
        if local.is_empty() || local.len() > 1023 {
            return Err(InputError::Jid("the local part must have 1 to 1023 octets"));
        }
        // RFC 7622 §3.3.1: these characters are never allowed in a localpart.
        if local.chars().any(|c| c.is_control() || c.is_whitespace() || "\"&'/:<>@".contains(c)) {
            return Err(InputError::Jid("the local part has a forbidden character"));
        }
        if domain.contains('/') {
            return Err(InputError::Jid("a bare JID has no resource"));
        }
        let domain = domain.parse().map_err(|_| InputError::Jid("the domain part is not a valid domain name"))?;
        Ok(BareJid { local: local.to_owned(), domain })
    }
}

impl fmt::Display for BareJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// An agent's address: `name@domain` when it logs in to its server like a
/// user (`search@lab.example`), or a domain of its own when it runs as an
/// external component (`search.lab.example`, XEP-0114).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AgentJid {
    Client(BareJid),
    Component(Domain),
}

impl FromStr for AgentJid {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains('@') {
            s.parse().map(AgentJid::Client)
        } else {
            s.parse().map(AgentJid::Component)
        }
    }
}

impl fmt::Display for AgentJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentJid::Client(j) => j.fmt(f),
            AgentJid::Component(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!("PO.Example.".parse::<Domain>().unwrap().as_str(), "po.example");
        assert!("localhost".parse::<Domain>().is_ok());
        for bad in ["", "a..b", "-a.b", "a_b.c", "a b", &"x".repeat(64)] {
            assert!(bad.parse::<Domain>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn jids() {
        let d: Domain = "po.example".parse().unwrap();
        let h: Hpnr = "9144889".parse().unwrap();
        let j = BareJid::for_user(&h, &d);
        assert_eq!(j.to_string(), "9144889@po.example");
        assert_eq!(j.to_string().parse::<BareJid>().unwrap(), j);
        for bad in ["nodomain", "@po.example", "a b@po.example", "a@po.example/res"] {
            assert!(bad.parse::<BareJid>().is_err(), "{bad:?} accepted");
        }
    }
}
