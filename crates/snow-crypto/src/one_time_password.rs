//! The one-time password that protects a new user's PKCS#12 file on its way
//! by e-mail; it travels separately, by SMS, and is typed in once.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::CryptoError;

/// Letters and digits that cannot be mistaken for each other when read off
/// a phone screen: no 0/O/o, 1/l/I, 5/S, 2/Z, 8/B, u/v.
pub const ALPHABET: &[u8] = b"34679ACDEFGHJKLMNPQRTUVWXYabcdefghijkmnpqrstwxyz";

/// Shortest password `generate` will make (about 89 bits with the alphabet).
pub const MIN_LENGTH: usize = 16;

/// A random password of `len` characters from [`ALPHABET`], drawn by
/// rejection sampling so every character is equally likely.
pub fn generate(len: usize) -> Result<String, CryptoError> {
    let len = len.max(MIN_LENGTH);
    let rng = SystemRandom::new();
    let n = ALPHABET.len();
    let limit = 256 - (256 % n);
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        rng.fill(&mut buf).map_err(CryptoError::internal)?;
        for &b in &buf {
            if (b as usize) < limit && out.len() < len {
                out.push(ALPHABET[b as usize % n] as char);
            }
        }
    }
    Ok(out)
}

/// A random lower-case hex string of `bytes` random bytes, for stream ids,
/// resource names and other identifiers that must not be guessable.
pub fn random_hex(bytes: usize) -> Result<String, CryptoError> {
    let mut b = vec![0u8; bytes];
    SystemRandom::new().fill(&mut b).map_err(CryptoError::internal)?;
    Ok(crate::cert::hex(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_alphabet_and_randomness() {
        let a = generate(20).unwrap();
        let b = generate(20).unwrap();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
        assert_eq!(generate(4).unwrap().len(), MIN_LENGTH);
    }
}
