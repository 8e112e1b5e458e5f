//! Case-insensitive text helpers and a reader for Python dict reprs.
//!
//! Flower compares `casefold()`ed strings. Per-task matching must not
//! allocate, so needles are folded once and haystacks are folded byte by byte
//! with ASCII rules; only a non-ASCII needle or value falls back to Unicode
//! lowercasing (which allocates, and only then).

use std::borrow::Cow;
use std::cmp::Ordering;

/// A needle for case-insensitive substring search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needle {
    folded: String,
    ascii: bool,
}

impl Needle {
    pub fn new(raw: &str) -> Needle {
        let folded = raw.to_lowercase();
        let ascii = folded.is_ascii();
        Needle { folded, ascii }
    }

    /// The lowercased needle.
    pub fn as_str(&self) -> &str {
        &self.folded
    }

    pub fn is_in(&self, haystack: &str) -> bool {
        if self.ascii {
            contains_ascii_ci(haystack.as_bytes(), self.folded.as_bytes())
        } else if haystack.is_ascii() {
            // A non-ASCII needle cannot occur in pure ASCII text.
            false
        } else {
            haystack.to_lowercase().contains(&self.folded)
        }
    }
}

/// A value for case-insensitive equality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    folded: String,
    ascii: bool,
}

impl Folded {
    pub fn new(raw: &str) -> Folded {
        let folded = raw.to_lowercase();
        let ascii = folded.is_ascii();
        Folded { folded, ascii }
    }

    /// The lowercased value.
    #[cfg(test)]
    pub fn as_str(&self) -> &str {
        &self.folded
    }

    pub fn eq(&self, other: &str) -> bool {
        if self.ascii {
            // Non-ASCII bytes in `other` compare unequal, which is right: they
            // cannot fold to ASCII (bar exotica such as the Kelvin sign).
            other.eq_ignore_ascii_case(&self.folded)
        } else {
            !other.is_ascii() && other.to_lowercase() == self.folded
        }
    }
}

/// Case-insensitive equality of two raw strings.
pub fn eq_folded(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
        || (!(a.is_ascii() && b.is_ascii()) && a.to_lowercase() == b.to_lowercase())
}

/// `needle` must be lowercase ASCII.
fn contains_ascii_ci(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    if haystack.len() < needle.len() {
        return false;
    }
    // Setting bit 0x20 maps exactly the two cases of a letter onto its
    // lowercase form; any other byte must match as is.
    let fold = if first.is_ascii_lowercase() { 0x20 } else { 0 };
    let hit = |i: usize, b: u8| {
        b | fold == first && haystack[i + 1..i + needle.len()].eq_ignore_ascii_case(rest)
    };
    let starts = &haystack[..=haystack.len() - needle.len()];
    // A branch-free test per block of bytes lets the compiler vectorise the
    // common case, a block where the first byte does not occur at all.
    const BLOCK: usize = 16;
    let mut blocks = starts.chunks_exact(BLOCK);
    let mut base = 0;
    for block in &mut blocks {
        if block
            .iter()
            .fold(false, |any, &b| any | (b | fold == first))
            && block.iter().enumerate().any(|(j, &b)| hit(base + j, b))
        {
            return true;
        }
        base += BLOCK;
    }
    blocks
        .remainder()
        .iter()
        .enumerate()
        .any(|(j, &b)| hit(base + j, b))
}

/// Orders strings as Flower's sort does after `casefold()` (ASCII folding
/// only, so it never allocates).
pub fn cmp_folded(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// Calls `f(key, value)` with the source text of each top-level item of a
/// Python dict repr such as `{'x': 1, 'y': 'abc'}`, until `f` returns true.
///
/// Celery truncates long reprs, so this is lenient where Flower's
/// `ast.literal_eval` gives up on the whole dict: items complete before the
/// point where the text breaks off still count, and values that are not
/// literals (`datetime.datetime(...)`, `<Foo object at 0x...>`) are offered
/// as their text.
pub fn any_dict_item(repr: &str, mut f: impl FnMut(&str, &str) -> bool) -> bool {
    let s = repr.trim();
    let b = s.as_bytes();
    if b.first() != Some(&b'{') {
        return false;
    }
    let mut i = 1;
    loop {
        let key_end = scan(b, i, b":}");
        if key_end >= b.len() || b[key_end] == b'}' {
            return false;
        }
        let value_start = key_end + 1;
        let value_end = scan(b, value_start, b",}");
        if value_end >= b.len() {
            return false;
        }
        if f(s[i..key_end].trim(), s[value_start..value_end].trim()) {
            return true;
        }
        if b[value_end] == b'}' {
            return false;
        }
        i = value_end + 1;
    }
}

/// Index of the first byte in `stops` at nesting depth 0 from `start`,
/// skipping string literals and bracketed parts; `b.len()` if none.
/// Every byte looked at is ASCII, so the index is a char boundary.
fn scan(b: &[u8], start: usize, stops: &[u8]) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < b.len() {
        let c = b[i];
        if depth == 0 && stops.contains(&c) {
            return i;
        }
        match c {
            b'\'' | b'"' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' | b'[' | b'{' | b'<' => depth += 1,
            b')' | b']' | b'}' | b'>' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// The value of a Python `str` literal as `repr` writes it (`'a'`, `"it's"`,
/// `'a\nb'`), i.e. what `str(value)` gives; `None` if `lit` is not one.
pub fn py_str(lit: &str) -> Option<Cow<'_, str>> {
    let quote = *lit.as_bytes().first()?;
    if lit.len() < 2 || !(quote == b'\'' || quote == b'"') || lit.as_bytes()[lit.len() - 1] != quote
    {
        return None;
    }
    let inner = &lit[1..lit.len() - 1];
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    Some(Cow::Owned(unescape(inner)))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            out.push('\\');
            break;
        };
        let hex_len = match e {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            _ => 0,
        };
        if hex_len > 0 {
            let rest = chars.as_str();
            let code = rest
                .get(..hex_len)
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32);
            if let Some(decoded) = code {
                out.push(decoded);
                chars = rest[hex_len..].chars();
                continue;
            }
        }
        match e {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            '\\' | '\'' | '"' => out.push(e),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substring_is_ascii_case_insensitive() {
        let cases = [
            ("boom", "('BOOM',)", true),
            ("boom", "('bo om',)", false),
            ("abc", "ab", false),
            ("w1@", "W1@VM", true),
            ("aab", "aaab", true),
            ("élan", "ÉLAN vital", true),
            ("élan", "plain ascii", false),
            ("@vm", "w1`VM w1@vm", true),
            ("@vm", "w1`VM w1`vm", false),
            ("99}", "{'x': 1, 'y': 99}", true),
            (
                "needle",
                "a long haystack that crosses several sixteen byte blocks: NEEDLE",
                true,
            ),
            (
                "needle",
                "a long haystack that crosses several sixteen byte blocks: NEEDL",
                false,
            ),
            (
                "needle",
                "NEEDLE in the first block, then more text to scan",
                true,
            ),
        ];
        for (needle, hay, expect) in cases {
            assert_eq!(
                Needle::new(needle).is_in(hay),
                expect,
                "{needle:?} in {hay:?}"
            );
        }
    }

    #[test]
    fn folded_equality() {
        assert!(Folded::new("SUCCESS").eq("success"));
        assert!(!Folded::new("SUCCESS").eq("SUCCES"));
        assert!(Folded::new("Élan").eq("éLAN"));
        assert!(!Folded::new("Élan").eq("elan"));
    }

    #[test]
    fn dict_items() {
        fn items(repr: &str) -> Vec<String> {
            let mut out = Vec::new();
            any_dict_item(repr, |k, v| {
                out.push(format!("{k}={v}"));
                false
            });
            out
        }
        let cases: &[(&str, &[&str])] = &[
            ("{}", &[]),
            ("", &[]),
            ("(1, 2)", &[]),
            ("{'x': 1, 'y': 99}", &["'x'=1", "'y'=99"]),
            (
                "{'a': [1, 2], 'b': {'c': 'd, e'}, 'f': 'g}h'}",
                &["'a'=[1, 2]", "'b'={'c': 'd, e'}", "'f'='g}h'"],
            ),
            (
                r#"{'s': "it's", 't': 'a\'b, c', 'u': None}"#,
                &[r#"'s'="it's""#, r"'t'='a\'b, c'", "'u'=None"],
            ),
            (
                "{'d': datetime.datetime(2024, 1, 1, 0, 0), 'o': <Foo: a, b>}",
                &["'d'=datetime.datetime(2024, 1, 1, 0, 0)", "'o'=<Foo: a, b>"],
            ),
            // Truncated by Celery: complete items still count.
            ("{'x': 1, 'y': 'aaaa", &["'x'=1"]),
        ];
        for (repr, expect) in cases {
            assert_eq!(items(repr), *expect, "{repr:?}");
        }
    }

    #[test]
    fn python_str_literals() {
        let cases = [
            ("'abc'", Some("abc")),
            ("\"it's\"", Some("it's")),
            (r"'a\'b\\c\n\x41\u00e9'", Some("a'b\\c\nAé")),
            ("b'abc'", None),
            ("1", None),
            ("'", None),
            ("'abc\"", None),
        ];
        for (lit, expect) in cases {
            assert_eq!(py_str(lit).as_deref(), expect, "{lit:?}");
        }
    }
}
