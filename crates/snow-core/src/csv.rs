//! CSV cells a spreadsheet cannot run (CSV injection, OWASP's rule).
//!
//! A CSV file Snow writes may be opened in a spreadsheet by a GP or a lab
//! worker, and a spreadsheet takes a cell beginning with `=`, `+`, `-` or
//! `@` as a formula (and a leading tab or carriage return hides such a
//! start from the eye). Some cells come from outside — a period label in a
//! remote agent's answer, a series name in a file from elsewhere — so a
//! hostile site could otherwise put `=cmd|' /C calc'!A0` into the GP's
//! file. [`cell`] is the one place that turns a value into a CSV cell:
//! such a value gets a `'` in front (the spreadsheet then shows it as
//! text), and the cell is quoted as RFC 4180 requires.
//!
//! A plain number (`-1.5`, `+3`, `2.5e-4`) is left alone: it is a number,
//! not a formula, and several of Snow's CSV files are machine formats read
//! back by Snow or compared with R, where `-1.5` must stay `-1.5`.

use std::borrow::Cow;

/// The first characters a spreadsheet may take as the start of a formula,
/// or that hide one (OWASP, "CSV Injection").
const TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Whether `value`, written as it is, could be run by a spreadsheet: it
/// begins with `=`, `+`, `-`, `@`, a tab or a carriage return and is not
/// a plain number.
pub fn is_formula(value: &str) -> bool {
    value.starts_with(TRIGGERS) && !is_plain_number(value)
}

/// A decimal number and nothing else: an optional sign, digits with at
/// most one decimal point (at least one digit), an optional exponent
/// (`e`/`E`, an optional sign, digits). `-2+3`, `+1+1`, `-` and `-inf`
/// are not.
pub fn is_plain_number(value: &str) -> bool {
    let b = value.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let (mut digits, mut point) = (0, false);
    while let Some(&c) = b.get(i) {
        match c {
            b'0'..=b'9' => digits += 1,
            b'.' if !point => point = true,
            _ => break,
        }
        i += 1;
    }
    if digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

/// `value` as one CSV cell: prefixed with `'` if a spreadsheet could run
/// it ([`is_formula`]), then quoted (inner quotes doubled) if it holds a
/// comma, a quote, a line feed or a carriage return. Borrowed when
/// nothing changes, which is every well-formed number, code and date.
pub fn cell(value: &str) -> Cow<'_, str> {
    let formula = is_formula(value);
    let quote = value.contains([',', '"', '\n', '\r']);
    if !formula && !quote {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 4);
    if quote {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    if quote {
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
    Cow::Owned(out)
}

/// One CSV line of `cells`, each through [`cell`], ending in `\n`.
pub fn line<'a>(cells: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, c) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&cell(c));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_are_neutralised_and_quoted() {
        assert_eq!(cell("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(cell("+1+1"), "'+1+1");
        assert_eq!(cell("@SUM(1)"), "'@SUM(1)");
        assert_eq!(cell("-2+3"), "'-2+3");
        assert_eq!(cell("\t=1"), "'\t=1");
        assert_eq!(cell("\r=1"), "\"'\r=1\"");
        assert_eq!(cell("=HYPERLINK(\"http://x\",\"y\")"), "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
        assert_eq!(cell("-"), "'-");
        assert_eq!(cell("-inf"), "'-inf");
        assert_eq!(cell("+"), "'+");
        assert_eq!(cell("-1e"), "'-1e");
        assert_eq!(cell("--1"), "'--1");
    }

    #[test]
    fn numbers_and_ordinary_text_are_left_alone() {
        for v in ["-1.5", "+3", "-0", "2.5e-4", "1.0000000000000001e-05", "-1E+17", "12", ".5", "-.5", "5."] {
            assert!(is_plain_number(v), "{v}");
            assert!(matches!(cell(v), Cow::Borrowed(_)), "{v}");
        }
        for v in ["2026-W47", "<5", "INFA", "15-24", "80+", "", "no data", "a=b", "x@y"] {
            assert!(!is_formula(v), "{v}");
            assert_eq!(cell(v), v);
        }
        assert!(!is_plain_number("1.2.3") && !is_plain_number("") && !is_plain_number("."));
    }

    #[test]
    fn separators_are_quoted() {
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(line(["=1", "-1.5", "a,b"]), "'=1,-1.5,\"a,b\"\n");
    }
}
