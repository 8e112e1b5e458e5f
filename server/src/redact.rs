//! Secrets kept out of sight: the values of chosen keys in the Python dict
//! reprs of task arguments and results are replaced by a visible mask.
//!
//! Celery sends `args`, `kwargs` and `result` as `saferepr` text, so the
//! masking rewrites text: a string key inside `{...}` whose name matches a
//! pattern, followed by `:`, has its value (up to the next `,` or closing
//! bracket at its own depth, strings and nested brackets skipped whole)
//! replaced by `'••••'`. The scan works on ASCII delimiters only, so every
//! cut lands on a character boundary, and unbalanced or cut text (saferepr
//! truncates long values) is masked to its end rather than left open.
//! Secrets inside plain strings, exceptions and tracebacks are not found.

use std::borrow::Cow;

/// What a masked value reads as, quotes included.
pub const MASK: &str = "'••••'";

pub const DEFAULT_REDACT_KEYS: &str = "password,token,secret,authorization,api_key";

#[derive(Debug, Clone, clap::Args)]
pub struct RedactArgs {
    /// Keys whose values are masked in task args, kwargs and results, at
    /// ingest (comma list, case-insensitive, `*` wildcards; empty: none).
    #[arg(long, env = "CELERIAC_REDACT_KEYS", default_value = DEFAULT_REDACT_KEYS,
          value_name = "KEYS")]
    pub redact_keys: String,

    /// Hide task args and kwargs from viewers (operators still see them).
    #[arg(long, env = "CELERIAC_HIDE_ARGS", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          value_name = "BOOL")]
    pub hide_args: bool,
}

/// A compiled `--redact-keys` list.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Lower-cased patterns; `*` matches any run of characters.
    patterns: Vec<String>,
}

impl Redactor {
    pub fn new(keys: &str) -> Redactor {
        let patterns = keys
            .split(',')
            .map(|k| k.trim().to_ascii_lowercase())
            .filter(|k| !k.is_empty())
            .collect();
        Redactor { patterns }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether a dict key (the text between its quotes) is to be masked;
    /// case is ignored for ASCII letters.
    pub fn matches(&self, key: &str) -> bool {
        self.patterns
            .iter()
            .any(|p| glob(p.as_bytes(), key.as_bytes()))
    }

    /// `text` with the values of matching keys masked; borrowed when
    /// nothing changed.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.patterns.is_empty() || !text.contains(':') {
            return Cow::Borrowed(text);
        }
        let b = text.as_bytes();
        let mut out: Option<String> = None;
        let mut copied = 0;
        // Open brackets; only the innermost matters for "is this a dict key".
        let mut stack: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                q @ (b'\'' | b'"') => {
                    let (end, closed) = string_end(b, i, q);
                    let key_start = i + 1;
                    i = end;
                    if !closed || stack.last() != Some(&b'{') {
                        continue;
                    }
                    let key = &text[key_start..end - 1];
                    let colon = skip_ws(b, i);
                    if colon >= b.len() || b[colon] != b':' || !self.matches(key) {
                        continue;
                    }
                    let start = skip_ws(b, colon + 1);
                    let end = value_end(b, start);
                    let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
                    o.push_str(&text[copied..start]);
                    o.push_str(MASK);
                    copied = end;
                    i = end;
                }
                c @ (b'{' | b'[' | b'(') => {
                    stack.push(c);
                    i += 1;
                }
                b'}' | b']' | b')' => {
                    stack.pop();
                    i += 1;
                }
                _ => i += 1,
            }
        }
        match out {
            None => Cow::Borrowed(text),
            Some(mut o) => {
                o.push_str(&text[copied..]);
                Cow::Owned(o)
            }
        }
    }

    /// Masks in place, allocating only when something is masked.
    pub fn mask_field(&self, field: &mut Option<String>) {
        if let Some(text) = field {
            if let Cow::Owned(masked) = self.mask(text) {
                *text = masked;
            }
        }
    }
}

impl Redactor {
    /// Masks a JSON value in place: the values of matching object keys
    /// become the mask, and strings are masked as reprs.
    pub fn mask_json(&self, v: &mut serde_json::Value) {
        use serde_json::Value;
        if self.is_empty() {
            return;
        }
        match v {
            Value::String(text) => {
                if let Cow::Owned(m) = self.mask(text) {
                    *text = m;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.mask_json(i)),
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if self.matches(k) {
                        *v = Value::String(MASK.trim_matches('\'').to_string());
                    } else {
                        self.mask_json(v);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Whether a repr holds a masked value: re-running it would send the mask.
pub fn contains_mask(text: &str) -> bool {
    text.contains(MASK)
}

/// The index just past the string starting at `start` (its quote `q`) and
/// true, or the end of the text and false if it is never closed. A
/// backslash escapes the next byte, in every prefix style.
fn string_end(b: &[u8], start: usize, q: u8) -> (usize, bool) {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            c if c == q => return (i + 1, true),
            _ => i += 1,
        }
    }
    (b.len(), false)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Where the value starting at `start` ends: the `,` or closing bracket at
/// its own depth, or the end of the text.
fn value_end(b: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => i = string_end(b, i, q).0,
            b'{' | b'[' | b'(' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' | b')' => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
                i += 1;
            }
            b',' if depth == 0 => return i,
            _ => i += 1,
        }
    }
    b.len()
}

/// `*` matches any run of bytes; everything else matches itself, ASCII
/// letters in either case (`p` is lower case).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si].to_ascii_lowercase() {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> Redactor {
        Redactor::new(DEFAULT_REDACT_KEYS)
    }

    #[test]
    fn matching_keys_are_masked_others_kept() {
        let r = default();
        assert_eq!(
            r.mask("{'password': 'hunter2', 'user': 'x'}"),
            "{'password': '••••', 'user': 'x'}"
        );
        assert_eq!(
            r.mask("({'Token': 12345, 'n': [1, 2]}, 'password')"),
            "({'Token': '••••', 'n': [1, 2]}, 'password')"
        );
        // Nested dicts, both quote styles, quotes and brackets in strings.
        assert_eq!(
            r.mask(r#"{'db': {"secret": "it's, }{ here", 'host': 'h'}, 'x': 'a\', b'}"#),
            r#"{'db': {"secret": '••••', 'host': 'h'}, 'x': 'a\', b'}"#
        );
        // A whole nested value goes, keys inside it with it.
        assert_eq!(
            r.mask("{'authorization': {'user': 'u', 'pw': ('a', 'b')}, 'k': 1}"),
            "{'authorization': '••••', 'k': 1}"
        );
        // Lists and tuples have no keys; strings that look like keys stay.
        let untouched = "['password', 'x'] ('token: 1',) 'password: 3'";
        assert!(matches!(r.mask(untouched), Cow::Borrowed(_)));
        // Idempotent.
        let once = r.mask("{'password': 'x'}").into_owned();
        assert_eq!(r.mask(&once), once);
        // A cut repr is masked to its end.
        assert_eq!(r.mask("{'password': 'hunter2hunt"), "{'password': '••••'");
        assert_eq!(r.mask("{'secret': [1, 2, 3, ..."), "{'secret': '••••'");
        // Multi-byte text around the cut points.
        assert_eq!(
            r.mask("{'clé': 'é', 'api_key': 'ключ', 'ü': 1}"),
            "{'clé': 'é', 'api_key': '••••', 'ü': 1}"
        );
    }

    #[test]
    fn patterns_are_case_insensitive_globs() {
        let r = Redactor::new(" *_KEY , pass*word,x*y*z ");
        assert!(r.matches("aws_key") && r.matches("AWS_Key") && r.matches("_key"));
        assert!(r.matches("password") && r.matches("passWORD") && r.matches("pass_word"));
        assert!(r.matches("xyz") && r.matches("x--y--z"));
        assert!(!r.matches("key") && !r.matches("keys") && !r.matches("xz"));
        assert!(Redactor::new("").is_empty() && Redactor::new(" , ").is_empty());
        assert_eq!(Redactor::new("").mask("{'password': 1}"), "{'password': 1}");
        assert!(Redactor::new("*").matches("anything"));
    }

    #[test]
    fn json_values_are_masked_by_key_and_as_reprs() {
        let mut v = serde_json::json!({
            "kwargs": {"password": "p1", "user": "u", "nested": [{"API_KEY": {"a": 1}}]},
            "kwargsrepr": "{'token': 'p2'}",
            "n": 1,
        });
        default().mask_json(&mut v);
        let text = v.to_string();
        assert!(
            !text.contains("p1") && !text.contains("p2") && !text.contains("\"a\""),
            "{text}"
        );
        assert_eq!(v["kwargs"]["password"], "••••");
        assert_eq!(
            (v["kwargs"]["user"].as_str(), v["n"].as_i64()),
            (Some("u"), Some(1))
        );
    }

    #[test]
    fn the_mask_is_recognised() {
        assert!(contains_mask(&default().mask("{'token': 'abc'}")));
        assert!(!contains_mask("{'token': 'abc'}"));
    }

    #[test]
    fn random_text_never_panics_and_keeps_what_is_not_masked() {
        let r = Redactor::new("password,*key,k");
        let alphabet: Vec<char> = "{}[](),:'\"\\ kpasswordé•0*".chars().collect();
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..50_000 {
            let len = rng.usize(0..40);
            let text: String = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            let masked = r.mask(&text);
            // Masking twice changes nothing more.
            assert_eq!(r.mask(&masked), masked, "{text}");
            if !masked.contains('•') {
                assert_eq!(masked, text);
            }
        }
    }

    /// A rough cost figure: `cargo nextest run -p celeriac --lib
    /// redact::tests::cost --run-ignored only --release` (debug builds are
    /// several times slower).
    #[test]
    #[ignore]
    fn cost() {
        let r = default();
        let kwargs = "{'user': 'someone@example.com', 'password': 'hunter2', \
                      'items': [1, 2, 3, 4, 5], 'options': {'retries': 3, 'token': 'abc'}}";
        let plain = "(42, 'some-object-id', [1, 2, 3])";
        let n = 200_000;
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(r.mask(std::hint::black_box(kwargs)));
            std::hint::black_box(r.mask(std::hint::black_box(plain)));
        }
        let per = t.elapsed().as_nanos() as f64 / n as f64;
        eprintln!("masking a kwargs and an args repr: {per:.0} ns per event");
    }
}
