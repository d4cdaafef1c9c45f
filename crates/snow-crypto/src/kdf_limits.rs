//! Limits on the password-hashing work a file may demand.
//!
//! PKCS#8 and PKCS#12 files name their own PBKDF2 iteration counts and
//! scrypt parameters. A file made to hurt could ask for billions of
//! iterations (hours of CPU) or gigabytes of scrypt memory, and the crates
//! that decrypt would comply. Before any decryption, every parameter set in
//! the file is found by shape and checked:
//!
//! * `SEQUENCE { OCTET STRING salt, INTEGER n, … }` — PBKDF2-params,
//!   pkcs-12PbeParams and PKCS#12 MacData: `n` is an iteration count;
//! * `SEQUENCE { OCTET STRING salt, INTEGER N, INTEGER r, INTEGER p, … }` —
//!   scrypt-params: memory `128·r·N·p` is bounded.
//!
//! Encapsulated DER inside OCTET STRINGs (PKCS#12 authenticated safes) is
//! searched too, to a bounded depth.

use x509_parser::der_parser::asn1_rs::{Any, FromDer, Tag};

use crate::CryptoError;

/// Far above any real file (OpenSSL writes 2,048; OWASP asks 600,000).
pub const MAX_ITERATIONS: u64 = 10_000_000;
/// scrypt memory ceiling: 256 MiB (OpenSSL's own default is 32 MiB).
pub const MAX_SCRYPT_BYTES: u64 = 256 * 1024 * 1024;
/// How deep nested structures are followed.
const MAX_DEPTH: usize = 24;
/// How many elements are visited in all (a cap on the walk itself).
const MAX_NODES: usize = 100_000;

/// Refuses `der` if any parameter set in it asks for more than the limits.
pub fn check(der: &[u8], what: &str) -> Result<(), CryptoError> {
    let mut nodes = 0usize;
    walk(der, 0, &mut nodes).map_err(|reason| CryptoError::TooCostly { what: what.to_owned(), reason })
}

fn walk(mut bytes: &[u8], depth: usize, nodes: &mut usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("it is nested too deeply".into());
    }
    while !bytes.is_empty() {
        let Ok((rest, any)) = Any::from_der(bytes) else { return Ok(()) };
        bytes = rest;
        *nodes += 1;
        if *nodes > MAX_NODES {
            return Err("it has too many elements".into());
        }
        if any.header.is_constructed() {
            if any.tag() == Tag::Sequence {
                check_params(any.data)?;
            }
            walk(any.data, depth + 1, nodes)?;
        } else if any.tag() == Tag::OctetString
            && Any::from_der(any.data).is_ok_and(|(r, a)| r.is_empty() && a.header.is_constructed())
        {
            walk(any.data, depth + 1, nodes)?;
        }
    }
    Ok(())
}

/// Checks one SEQUENCE's content for the salt-then-integers shapes.
fn check_params(content: &[u8]) -> Result<(), String> {
    let mut items = Vec::with_capacity(4);
    let mut rest = content;
    while items.len() < 4 && !rest.is_empty() {
        let Ok((r, any)) = Any::from_der(rest) else { break };
        rest = r;
        items.push(any);
    }
    let int = |a: &Any| -> Option<u64> {
        if a.tag() != Tag::Integer || a.data.len() > 9 || a.data.first().is_some_and(|b| b & 0x80 != 0) {
            return if a.tag() == Tag::Integer { Some(u64::MAX) } else { None };
        }
        Some(a.data.iter().fold(0u64, |acc, b| acc.saturating_mul(256).saturating_add(u64::from(*b))))
    };
    let Some(salt) = items.first() else { return Ok(()) };
    if salt.tag() != Tag::OctetString {
        // MacData: SEQUENCE { DigestInfo, OCTET STRING salt, INTEGER iterations }
        if salt.tag() == Tag::Sequence && items.get(1).is_some_and(|a| a.tag() == Tag::OctetString) {
            if let Some(n) = items.get(2).and_then(int) {
                if n > MAX_ITERATIONS {
                    return Err(format!("its MAC asks for {n} iterations (at most {MAX_ITERATIONS})"));
                }
            }
        }
        return Ok(());
    }
    let Some(n) = items.get(1).and_then(int) else { return Ok(()) };
    match (items.get(2).and_then(int), items.get(3).and_then(int)) {
        (Some(r), Some(p)) => {
            let bytes = 128u64.saturating_mul(r).saturating_mul(n).saturating_mul(p.max(1));
            if bytes > MAX_SCRYPT_BYTES || n > (1 << 24) {
                return Err(format!(
                    "its scrypt parameters ask for {} MiB (at most {})",
                    bytes >> 20,
                    MAX_SCRYPT_BYTES >> 20
                ));
            }
        }
        _ if n > MAX_ITERATIONS => {
            return Err(format!("it asks for {n} key-derivation iterations (at most {MAX_ITERATIONS})"));
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(content: &[u8]) -> Vec<u8> {
        let mut v = vec![0x30, content.len() as u8];
        v.extend_from_slice(content);
        v
    }

    #[test]
    fn counts_and_memory() {
        let salt = [0x04, 0x02, 0xaa, 0xbb];
        let ok = seq(&[&salt[..], &[0x02, 0x03, 0x01, 0x00, 0x00]].concat()); // 65536
        assert!(check(&ok, "x").is_ok());
        let huge = seq(&[&salt[..], &[0x02, 0x04, 0x7f, 0xff, 0xff, 0xff]].concat());
        assert!(check(&huge, "x").is_err());
        let wrapped = seq(&[&[0x04, huge.len() as u8][..], &huge].concat());
        assert!(check(&wrapped, "x").is_err(), "hidden inside an OCTET STRING");
        // scrypt N = 2^20, r = 8, p = 1: 1 GiB.
        let scrypt = seq(&[&salt[..], &[0x02, 0x03, 0x10, 0x00, 0x00, 0x02, 0x01, 0x08, 0x02, 0x01, 0x01]].concat());
        assert!(check(&scrypt, "x").is_err());
        // scrypt N = 2^14, r = 8, p = 1: 16 MiB.
        let scrypt = seq(&[&salt[..], &[0x02, 0x02, 0x40, 0x00, 0x02, 0x01, 0x08, 0x02, 0x01, 0x01]].concat());
        assert!(check(&scrypt, "x").is_ok());
    }
}
