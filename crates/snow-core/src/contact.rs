//! Contact details used to deliver a new user's key: the e-mail address
//! gets the PKCS#12 file, the phone gets the one-time password by SMS.

use std::fmt;
use std::str::FromStr;

use crate::InputError;

/// A mobile number in international or national form, normalised to
/// `+` (optional) and digits; spaces, dashes and dots a person may type
/// between digit groups are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Phone {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (plus, rest) = match s.strip_prefix('+') {
            Some(rest) => ("+", rest),
            None => ("", s),
        };
        let mut digits = String::with_capacity(rest.len());
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' => {}
                _ => {
                    return Err(InputError::Phone(
                        "only digits, an optional leading '+', spaces and dashes are allowed",
                    ))
                }
            }
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(InputError::Phone("it must have 8 to 15 digits"));
        }
        Ok(Phone(format!("{plus}{digits}")))
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address of the plain `local@domain.tld` form that mail
/// headers can carry without quoting or encoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Email {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() > 254 {
            return Err(InputError::Email("it is longer than 254 characters"));
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(InputError::Email("it needs the form name@domain"));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(InputError::Email("the part before '@' must have 1 to 64 characters"));
        }
        let local_ok = local.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
        if !local_ok || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(InputError::Email("the part before '@' has a character that is not allowed"));
        }
        crate::jid::validate_dns_name(domain)
            .map_err(|_| InputError::Email("the part after '@' is not a valid domain name"))?;
        if !domain.contains('.') {
            return Err(InputError::Email("the part after '@' must be a full domain such as example.org"));
        }
        Ok(Email(s.to_owned()))
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert_eq!("+47 912 34 567".parse::<Phone>().unwrap().as_str(), "+4791234567");
        assert_eq!("91234567".parse::<Phone>().unwrap().as_str(), "91234567");
        for bad in ["", "1234", "+47abc45678", "12345678901234567", "+", "9123 4567\n0"] {
            assert!(bad.parse::<Phone>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn emails() {
        assert!("gp.one@legekontor.example.no".parse::<Email>().is_ok());
        for bad in
            ["", "a", "a@b", "@x.no", "a@@x.no", "a b@x.no", "a@x..no", "a@-x.no", ".a@x.no", "a\r\nBcc: x@y.no@x.no"]
        {
            assert!(bad.parse::<Email>().is_err(), "{bad:?} accepted");
        }
    }
}
