//! Parsing the `to` of a stanza into its JID parts (RFC 7622), enough for
//! routing. Stringprep/PRECIS folding is limited to lower-casing the domain.

/// A JID split into parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub local: Option<String>,
    pub domain: String,
    pub resource: Option<String>,
}

impl Addr {
    pub fn parse(s: &str) -> Option<Addr> {
        if s.is_empty() || s.len() > 3071 {
            return None;
        }
        let (rest, resource) = match s.split_once('/') {
            Some((r, res)) if !res.is_empty() && res.len() <= 1023 => (r, Some(res.to_owned())),
            Some(_) => return None,
            None => (s, None),
        };
        let (local, domain) = match rest.split_once('@') {
            Some((l, d)) if !l.is_empty() && l.len() <= 1023 => (Some(l.to_owned()), d),
            Some(_) => return None,
            None => (None, rest),
        };
        let domain: snow_core::Domain = domain.parse().ok()?;
        if local
            .as_deref()
            .is_some_and(|l| l.chars().any(|c| c.is_control() || c.is_whitespace() || "\"&'/:<>@".contains(c)))
        {
            return None;
        }
        if resource.as_deref().is_some_and(|r| r.chars().any(char::is_control)) {
            return None;
        }
        Some(Addr { local, domain: domain.to_string(), resource })
    }

    /// `local@domain` or `domain`.
    pub fn bare(&self) -> String {
        match &self.local {
            Some(l) => format!("{l}@{}", self.domain),
            None => self.domain.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts() {
        let a = Addr::parse("9144889@PO.example/laptop").unwrap();
        assert_eq!(a.local.as_deref(), Some("9144889"));
        assert_eq!(a.domain, "po.example");
        assert_eq!(a.resource.as_deref(), Some("laptop"));
        assert_eq!(a.bare(), "9144889@po.example");
        assert_eq!(Addr::parse("po.example").unwrap().bare(), "po.example");
        for bad in ["", "@x", "a@", "a@x/", "a b@x", "a@x y"] {
            assert!(Addr::parse(bad).is_none(), "{bad:?}");
        }
    }
}
