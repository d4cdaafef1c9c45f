//! The Health Personnel Number (HPNR, Norwegian "HPR-nummer").

use std::fmt;
use std::str::FromStr;

use crate::InputError;

/// A health-personnel number: the identity of a GP or lab user.
///
/// It is the local part of the user's JID and the subject of their
/// certificate, so it must be plain digits that survive every format it
/// passes through (X.509 names, JIDs, file names). Issued numbers have
/// 4 to 9 digits and no leading zero.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hpnr(String);

impl Hpnr {
    pub const MIN_DIGITS: usize = 4;
    pub const MAX_DIGITS: usize = 9;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Hpnr {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(InputError::Hpnr("it is empty"));
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InputError::Hpnr("it must contain digits only"));
        }
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&s.len()) {
            return Err(InputError::Hpnr("it must have 4 to 9 digits"));
        }
        if s.starts_with('0') {
            return Err(InputError::Hpnr("it must not start with 0"));
        }
        Ok(Hpnr(s.to_owned()))
    }
}

impl fmt::Display for Hpnr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_issued_numbers() {
        assert_eq!("9144889".parse::<Hpnr>().unwrap().as_str(), "9144889");
        assert_eq!(" 1234 ".parse::<Hpnr>().unwrap().as_str(), "1234");
        assert!("123456789".parse::<Hpnr>().is_ok());
    }

    #[test]
    fn refuses_malformed_numbers() {
        for bad in ["", "123", "1234567890", "0123456", "12a4567", "12 34567", "١٢٣٤٥"] {
            assert!(bad.parse::<Hpnr>().is_err(), "{bad:?} accepted");
        }
    }
}
