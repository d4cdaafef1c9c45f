//! Norwegian national identity numbers (fødselsnummer / D-nummer): eleven
//! digits whose last two are mod-11 check digits. A pushed file that holds
//! one has not been pseudonymised and is rejected whole.

const W1: [u32; 9] = [3, 7, 6, 1, 8, 9, 4, 5, 2];
const W2: [u32; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];

fn check_digit(digits: &[u32], weights: &[u32]) -> Option<u32> {
    let sum: u32 = digits.iter().zip(weights).map(|(d, w)| d * w).sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        k => Some(k),
    }
}

/// True if `s` is exactly eleven digits with valid check digits.
pub fn is_valid(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 11 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let d: Vec<u32> = b.iter().map(|c| u32::from(c - b'0')).collect();
    check_digit(&d[..9], &W1) == Some(d[9]) && check_digit(&d[..10], &W2) == Some(d[10])
}

/// True if any run of exactly eleven digits in `field` is a valid number
/// (a number embedded in other text counts; a longer digit run does not).
pub fn contains_valid(field: &str) -> bool {
    let b = field.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == 11 && is_valid(&field[start..i]) {
                return true;
            }
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits() {
        // Synthetic numbers (valid check digits, not real people).
        for ok in ["01010710029", "15076510013", "29029910039", "31129910065"] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in ["01010710028", "15076510014", "0101071002", "010107100290", "0101071002a"] {
            assert!(!is_valid(bad), "{bad}");
        }
        assert!(contains_valid("id=01010710029;"));
        assert!(!contains_valid("0101071002912"));
        assert!(!contains_valid("ab01010710028"));
    }
}
