//! Escaping text and attribute values for output.

/// Appends `s` to `out` with `&`, `<`, `>`, `"` and `'` escaped, which is
/// safe both in text and in either kind of quoted attribute value.
pub fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
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
