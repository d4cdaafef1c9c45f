//! Escaping text and attribute values for output.

/// Appends `s` to `out` with `&`, `<`, `>`, `"` and `'` escaped, which is
/// safe both in text and in either kind of quoted attribute value, and a
/// carriage return as `&#13;` (a parser would turn a literal one into a
/// line feed).
pub fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
}

/// Like [`push_escaped`], for attribute values: tabs and line feeds too,
/// which a parser would otherwise normalize to spaces.
pub fn push_escaped_attr(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            _ => push_escaped(out, c.encode_utf8(&mut [0; 4])),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_all_five() {
        let mut s = String::new();
        super::push_escaped(&mut s, "a&b<c>d\"e'f");
        assert_eq!(s, "a&amp;b&lt;c&gt;d&quot;e&apos;f");
    }
}
