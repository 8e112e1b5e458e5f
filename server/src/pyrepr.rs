//! Task arguments rebuilt from the `args`/`kwargs` repr strings that events
//! carry, as the JSON a Celery client would have published.
//!
//! Celery writes those strings with `saferepr` (`docs/celery-protocol.md`
//! §7.3), which is not Python's `repr`: strings are always single-quoted and
//! only `'` is escaped, so a backslash, a newline or any other character is
//! itself. Reading such a string as a Python literal would turn `'C:\new'`
//! into a newline. [`Dialect::Saferepr`] reads what Celery writes;
//! [`Dialect::Python`] reads Python literals (every quote style, prefix and
//! escape) for reprs known to come from `repr()`.
//!
//! Nothing is guessed: a repr that was cut (`...`), a value JSON cannot carry
//! the way the worker would receive it (sets, bytes, datetimes, `inf`, ints
//! beyond 64 bits) or anything that is not a literal is refused, naming the
//! argument (`args[1]`, `kwargs['when']`) and quoting the offending text.
//! Pure: no I/O.

use serde_json::{Map, Number, Value};
use std::fmt;

/// How strings in the repr were written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Celery's `saferepr` (every event's `args`/`kwargs`).
    Saferepr,
    /// Python's `repr()` / source literals.
    Python,
}

/// Why a repr cannot be turned back into arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The argument the problem is in: `args`, `args[1]`, `kwargs['x'][0]`.
    pub argument: String,
    /// What is wrong, in words.
    pub reason: String,
    /// The repr text where the problem starts (at most about 40 characters).
    pub text: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} at `{}`", self.argument, self.reason, self.text)
    }
}

impl std::error::Error for Refusal {}

/// Containers deeper than this are refused rather than recursed into
/// (`saferepr` itself stops at 3 levels).
pub const MAX_DEPTH: usize = 32;

/// Positional arguments from an `args` repr: a tuple or a list.
pub fn parse_args(repr: &str, dialect: Dialect) -> Result<Vec<Value>, Refusal> {
    let mut p = Parser::new(repr, dialect, "args");
    p.skip_ws();
    let value = match p.peek() {
        Some(b'(') | Some(b'[') => p.value(0)?,
        _ => return Err(p.refuse(p.pos, "args must be a tuple or a list")),
    };
    p.end()?;
    match value {
        Value::Array(items) => Ok(items),
        _ => Err(p.refuse(0, "args must be a tuple or a list")),
    }
}

/// Keyword arguments from a `kwargs` repr: a dict with string keys.
pub fn parse_kwargs(repr: &str, dialect: Dialect) -> Result<Map<String, Value>, Refusal> {
    let mut p = Parser::new(repr, dialect, "kwargs");
    p.skip_ws();
    if p.peek() != Some(b'{') {
        return Err(p.refuse(p.pos, "kwargs must be a dict"));
    }
    p.keyword_names_only = true;
    let value = p.value(0)?;
    p.end()?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(p.refuse(0, "kwargs must be a dict")),
    }
}

/// Any one literal value.
pub fn parse_value(repr: &str, dialect: Dialect, argument: &str) -> Result<Value, Refusal> {
    let mut p = Parser::new(repr, dialect, argument);
    let value = p.value(0)?;
    p.end()?;
    Ok(value)
}

/// `args` as Celery's `saferepr` writes a tuple of them: `(1,)`, `(1, 'a')`.
pub fn render_args(args: &[Value]) -> String {
    let mut out = String::from("(");
    for (i, v) in args.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        render_into(v, &mut out);
    }
    if args.len() == 1 {
        out.push(',');
    }
    out.push(')');
    out
}

/// A JSON value as Celery's `saferepr` writes the Python value the worker
/// receives (arrays as lists), without truncation. [`Dialect::Saferepr`]
/// reads it back.
pub fn render(value: &Value) -> String {
    let mut out = String::new();
    render_into(value, &mut out);
    out
}

fn render_into(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => out.push_str(&python_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => render_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_into(v, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_str(k, out);
                out.push_str(": ");
                render_into(v, out);
            }
            out.push('}');
        }
    }
}

fn render_str(s: &str, out: &mut String) {
    out.push('\'');
    out.push_str(&s.replace('\'', "\\'"));
    out.push('\'');
}

/// Python's `repr(float)`: the shortest digits that read back the same,
/// positional from 1e-4 up to 1e16, else `d.ddde+XX`.
pub fn python_float(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "nan".into()
        } else if f > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    // `{:e}` gives the shortest round-trip digits: `-1.2345e17`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if point >= n {
            format!("{digits}{}.0", "0".repeat((point - n) as usize))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{body}")
    } else {
        let frac = &digits[1..];
        let mantissa = if frac.is_empty() {
            digits[..1].to_string()
        } else {
            format!("{}.{frac}", &digits[..1])
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{esign}{:02}", exp.abs())
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    dialect: Dialect,
    /// The argument being read, as path segments after the root name.
    path: Vec<String>,
    root: &'a str,
    /// The top-level dict is a kwargs dict: its keys must be strings.
    keyword_names_only: bool,
}

enum Key {
    Text(String),
    /// A non-string key as `json.dumps` writes it.
    Other(String),
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, dialect: Dialect, root: &'a str) -> Self {
        Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            dialect,
            path: Vec::new(),
            root,
            keyword_names_only: false,
        }
    }

    fn argument(&self) -> String {
        let mut s = self.root.to_string();
        for seg in &self.path {
            s.push_str(seg);
        }
        s
    }

    fn refuse(&self, at: usize, reason: impl Into<String>) -> Refusal {
        let at = floor_boundary(self.text, at.min(self.text.len()));
        let mut end = floor_boundary(self.text, (at + 40).min(self.text.len()));
        if end <= at && at < self.text.len() {
            end = self.text.len();
        }
        let text = if at >= self.text.len() {
            "(end of text)".to_string()
        } else {
            self.text[at..end].to_string()
        };
        Refusal {
            argument: self.argument(),
            reason: reason.into(),
            text,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn end(&mut self) -> Result<(), Refusal> {
        self.skip_ws();
        if self.pos < self.bytes.len() {
            return Err(self.unexpected("text after the end of the value"));
        }
        Ok(())
    }

    /// A refusal for what starts at the current position, recognising the
    /// shapes Celery writes for things it cut or could not write as literals.
    fn unexpected(&self, otherwise: &str) -> Refusal {
        let rest = self.rest();
        let reason = if rest.starts_with("...") {
            "the repr was cut (`...`): Celery truncates reprs longer than argsrepr_maxsize \
             and containers nested past 3 levels"
                .to_string()
        } else if rest.starts_with('<') {
            "not a literal: an object's repr".to_string()
        } else if rest.is_empty() {
            "the repr ends early".to_string()
        } else {
            otherwise.to_string()
        };
        self.refuse(self.pos, reason)
    }

    fn value(&mut self, depth: usize) -> Result<Value, Refusal> {
        if depth > MAX_DEPTH {
            return Err(self.refuse(self.pos, "nested too deep"));
        }
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                self.sequence(b')', depth, true)
            }
            Some(b'[') => {
                self.pos += 1;
                self.sequence(b']', depth, false)
            }
            Some(b'{') => {
                self.pos += 1;
                self.dict(depth)
            }
            Some(b'\'' | b'"') => self.string(start).map(Value::String),
            Some(b'-' | b'+' | b'.' | b'0'..=b'9') => self.number(),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => self.word(),
            _ => Err(self.unexpected("not a literal")),
        }
    }

    /// A tuple or list body after its opening bracket. A 1-tuple needs its
    /// comma: `(x)` is just `x` in parentheses.
    fn sequence(&mut self, close: u8, depth: usize, tuple: bool) -> Result<Value, Refusal> {
        let mut items = Vec::new();
        let mut trailing_comma = false;
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                break;
            }
            // `[...]` stands for a whole container Celery did not show.
            let elided =
                items.is_empty() && self.bytes[self.pos..].starts_with(&[b'.', b'.', b'.', close]);
            if !elided {
                self.path.push(format!("[{}]", items.len()));
            }
            if self.rest().starts_with("...") {
                return Err(self.unexpected(""));
            }
            let item = self.value(depth + 1)?;
            self.path.pop();
            items.push(item);
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    trailing_comma = true;
                }
                Some(c) if c == close => {
                    self.pos += 1;
                    trailing_comma = false;
                    break;
                }
                _ => {
                    return Err(self.unexpected(&format!(
                        "expected `,` or `{}` in the {} opened here",
                        close as char,
                        if tuple { "tuple" } else { "list" }
                    )))
                }
            }
        }
        if tuple && items.len() == 1 && !trailing_comma {
            // A parenthesised value, not a tuple.
            return Ok(items.pop().unwrap_or(Value::Null));
        }
        Ok(Value::Array(items))
    }

    fn dict(&mut self, depth: usize) -> Result<Value, Refusal> {
        let kwargs = std::mem::take(&mut self.keyword_names_only);
        let mut map = Map::new();
        let mut first = true;
        loop {
            self.skip_ws();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                break;
            }
            if self.rest().starts_with("...") {
                return Err(self.unexpected(""));
            }
            let key_at = self.pos;
            let key = self.key(depth)?;
            let key = match key {
                Key::Text(k) => k,
                Key::Other(k) if !kwargs => k,
                Key::Other(_) => {
                    return Err(self.refuse(key_at, "keyword argument names must be strings"))
                }
            };
            self.skip_ws();
            if self.peek() != Some(b':') {
                // `{1, 2}`: a set.
                if first && matches!(self.peek(), Some(b',' | b'}')) {
                    return Err(self.refuse(key_at, "a set: JSON cannot carry sets"));
                }
                return Err(self.unexpected("expected `:` after a dict key"));
            }
            self.pos += 1;
            self.path.push(format!("[{}]", py_quote(&key)));
            let value = self.value(depth + 1)?;
            self.path.pop();
            map.insert(key, value);
            first = false;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.unexpected("expected `,` or `}` in a dict")),
            }
        }
        Ok(Value::Object(map))
    }

    /// A dict key, written as `json.dumps` writes it: non-string scalars
    /// become their JSON text (`1` → "1", `None` → "null").
    fn key(&mut self, depth: usize) -> Result<Key, Refusal> {
        let at = self.pos;
        let value = self.value(depth + 1)?;
        match value {
            Value::String(s) => Ok(Key::Text(s)),
            Value::Null => Ok(Key::Other("null".into())),
            Value::Bool(b) => Ok(Key::Other(b.to_string())),
            Value::Number(n) => Ok(Key::Other(n.to_string())),
            Value::Array(_) | Value::Object(_) => {
                Err(self.refuse(at, "a container as a dict key: JSON keys must be strings"))
            }
        }
    }

    fn word(&mut self) -> Result<Value, Refusal> {
        let start = self.pos;
        // String prefixes: r, b, u, f and their pairs, directly before a quote.
        let prefix_len = self.bytes[start..]
            .iter()
            .take_while(|c| c.is_ascii_alphabetic())
            .count();
        if prefix_len <= 2 && matches!(self.bytes.get(start + prefix_len), Some(b'\'' | b'"')) {
            return self.prefixed_string(start, prefix_len);
        }
        let len = self.bytes[start..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'.')
            .count();
        let word = &self.text[start..start + len];
        self.pos += len;
        match word {
            "None" => Ok(Value::Null),
            "True" => Ok(Value::Bool(true)),
            "False" => Ok(Value::Bool(false)),
            "inf" | "nan" => Err(self.refuse(
                start,
                "infinity and NaN have no JSON form the worker would read back",
            )),
            "set" | "frozenset" => Err(self.refuse(start, "a set: JSON cannot carry sets")),
            _ if word.ends_with("...") || self.rest().starts_with("...") => {
                Err(self.refuse(start, "the repr was cut (`...`)"))
            }
            _ if self.peek() == Some(b'(') => Err(self.refuse(
                start,
                format!("not a literal: `{word}(…)` (datetimes, Decimals, UUIDs and other objects are not rebuilt)"),
            )),
            _ => Err(self.refuse(start, format!("not a literal: `{word}`"))),
        }
    }

    fn prefixed_string(&mut self, start: usize, len: usize) -> Result<Value, Refusal> {
        let prefix = self.text[start..start + len].to_ascii_lowercase();
        let (mut raw, mut bytes) = (false, false);
        for c in prefix.chars() {
            match c {
                'r' => raw = true,
                'b' => bytes = true,
                'u' if len == 1 => {}
                'f' => {
                    return Err(self.refuse(start, "not a literal: an f-string"));
                }
                _ => return Err(self.refuse(start, "not a literal")),
            }
        }
        if bytes {
            return Err(self.refuse(
                start,
                "bytes: Celery shows them as text or hex, so the original cannot be known",
            ));
        }
        if raw && self.dialect == Dialect::Saferepr {
            return Err(self.refuse(start, "not a saferepr string (raw prefix)"));
        }
        self.pos = start + len;
        let s = if raw {
            self.python_string(start, true)?
        } else {
            self.string(start)?
        };
        Ok(Value::String(s))
    }

    fn string(&mut self, start: usize) -> Result<String, Refusal> {
        match self.dialect {
            Dialect::Saferepr => self.saferepr_string(start),
            Dialect::Python => self.python_string(start, false),
        }
    }

    /// `'…'` with only `\'` escaped. `\'` right before a separator or the
    /// end is ambiguous: `'ends\'` is also how a string ending in a
    /// backslash is written.
    fn saferepr_string(&mut self, start: usize) -> Result<String, Refusal> {
        if self.peek() != Some(b'\'') {
            return Err(self.refuse(
                start,
                "not a saferepr string: Celery always writes strings in single quotes",
            ));
        }
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = self.rest();
            let Some(at) = rest.find(['\\', '\'']) else {
                return Err(self.refuse(start, "a string without its closing quote"));
            };
            out.push_str(&rest[..at]);
            self.pos += at;
            if self.peek() == Some(b'\'') {
                self.pos += 1;
                break;
            }
            // A backslash.
            if self.bytes.get(self.pos + 1) == Some(&b'\'') {
                let after = self.bytes.get(self.pos + 2).copied();
                if matches!(after, None | Some(b',' | b':' | b')' | b']' | b'}')) {
                    return Err(self.refuse(
                        start,
                        "ambiguous: `\\'` here may be an escaped quote or a string ending in a backslash",
                    ));
                }
                out.push('\'');
                self.pos += 2;
            } else {
                out.push('\\');
                self.pos += 1;
            }
        }
        if out.ends_with("...") {
            return Err(self.refuse(
                start,
                "the string ends in `...`, the mark Celery leaves where it cut a long value",
            ));
        }
        Ok(out)
    }

    /// A Python string literal: `'…'`, `"…"`, `'''…'''`, `"""…"""`, with
    /// Python's escapes unless `raw`.
    fn python_string(&mut self, start: usize, raw: bool) -> Result<String, Refusal> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(self.refuse(start, "expected a string")),
        };
        let triple = self.bytes[self.pos..].starts_with(&[quote; 3]);
        self.pos += if triple { 3 } else { 1 };
        let mut out = String::new();
        loop {
            let Some(c) = self.rest().chars().next() else {
                return Err(self.refuse(start, "a string without its closing quote"));
            };
            if c as u32 == quote as u32 {
                if !triple {
                    self.pos += 1;
                    break;
                }
                if self.bytes[self.pos..].starts_with(&[quote; 3]) {
                    self.pos += 3;
                    break;
                }
            }
            if c == '\n' && !triple {
                return Err(self.refuse(start, "a newline inside a one-line string"));
            }
            if c != '\\' {
                out.push(c);
                self.pos += c.len_utf8();
                continue;
            }
            let esc_at = self.pos;
            self.pos += 1;
            let Some(e) = self.rest().chars().next() else {
                return Err(self.refuse(start, "a string without its closing quote"));
            };
            self.pos += e.len_utf8();
            if raw {
                // A raw string keeps the backslash; it still cannot end one.
                out.push('\\');
                out.push(e);
                continue;
            }
            match e {
                '\n' => {}
                '\\' => out.push('\\'),
                '\'' => out.push('\''),
                '"' => out.push('"'),
                'a' => out.push('\x07'),
                'b' => out.push('\x08'),
                'f' => out.push('\x0c'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'v' => out.push('\x0b'),
                '0'..='7' => {
                    let mut n = e.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match self.peek() {
                            Some(d @ b'0'..=b'7') => {
                                n = n * 8 + u32::from(d - b'0');
                                self.pos += 1;
                            }
                            _ => break,
                        }
                    }
                    out.push(self.code_point(esc_at, n)?);
                }
                'x' => out.push(self.hex_escape(esc_at, 2)?),
                'u' => out.push(self.hex_escape(esc_at, 4)?),
                'U' => out.push(self.hex_escape(esc_at, 8)?),
                'N' => {
                    return Err(self.refuse(
                        esc_at,
                        "a named escape (`\\N{…}`): Python's repr never writes one",
                    ))
                }
                other => {
                    // Python keeps unknown escapes as written.
                    out.push('\\');
                    out.push(other);
                }
            }
        }
        Ok(out)
    }

    fn hex_escape(&mut self, at: usize, digits: usize) -> Result<char, Refusal> {
        let hex = self
            .bytes
            .get(self.pos..self.pos + digits)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .ok_or_else(|| self.refuse(at, "a truncated \\x, \\u or \\U escape"))?;
        let n = u32::from_str_radix(std::str::from_utf8(hex).unwrap_or("0"), 16)
            .map_err(|_| self.refuse(at, "a bad hex escape"))?;
        self.pos += digits;
        self.code_point(at, n)
    }

    fn code_point(&self, at: usize, n: u32) -> Result<char, Refusal> {
        char::from_u32(n).ok_or_else(|| {
            self.refuse(
                at,
                "an escape for a lone surrogate or beyond Unicode: not valid text",
            )
        })
    }

    fn number(&mut self) -> Result<Value, Refusal> {
        let start = self.pos;
        let mut negative = false;
        match self.peek() {
            Some(b'-') => {
                negative = true;
                self.pos += 1;
            }
            Some(b'+') if self.dialect == Dialect::Python => self.pos += 1,
            Some(b'+') => return Err(self.unexpected("not a literal")),
            _ => {}
        }
        let body_at = self.pos;
        let len = self.bytes[body_at..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_'))
            .count();
        // An exponent's sign: `1e+100`, `1.5e-300`.
        let mut end = body_at + len;
        while end > body_at
            && matches!(self.bytes.get(end), Some(b'+' | b'-'))
            && matches!(self.bytes.get(end - 1), Some(b'e' | b'E'))
            && !self.text[body_at..end].starts_with("0x")
        {
            let more = self.bytes[end + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            end += 1 + more;
        }
        let body = &self.text[body_at..end];
        self.pos = end;
        if self.rest().starts_with("...") || body.ends_with("...") || body.contains("..") {
            return Err(self.refuse(start, "the repr was cut (`...`)"));
        }
        if body.is_empty() {
            return Err(self.unexpected("not a literal"));
        }
        if body == "inf" || body == "nan" {
            return Err(self.refuse(
                start,
                "infinity and NaN have no JSON form the worker would read back",
            ));
        }
        if body.ends_with(['j', 'J']) {
            return Err(self.refuse(start, "a complex number: JSON cannot carry it"));
        }
        let cleaned;
        let body = if body.contains('_') {
            if self.dialect == Dialect::Saferepr {
                return Err(self.refuse(start, "not a number as Celery writes one"));
            }
            cleaned = body.replace('_', "");
            cleaned.as_str()
        } else {
            body
        };
        let bad = || self.refuse(start, "not a number");
        let radix = match body.get(..2).map(str::to_ascii_lowercase).as_deref() {
            Some("0x") => Some(16),
            Some("0o") => Some(8),
            Some("0b") => Some(2),
            _ => None,
        };
        if let Some(radix) = radix {
            if self.dialect == Dialect::Saferepr {
                return Err(self.refuse(start, "not a number as Celery writes one"));
            }
            let digits = &body[2..];
            let n = u128::from_str_radix(digits, radix).map_err(|_| bad())?;
            return self.integer(start, negative, n);
        }
        if body.bytes().all(|c| c.is_ascii_digit()) {
            if body.len() > 1 && body.starts_with('0') && body.bytes().any(|c| c != b'0') {
                return Err(bad());
            }
            return match body.parse::<u128>() {
                Ok(n) => self.integer(start, negative, n),
                Err(_) => Err(self.too_big(start)),
            };
        }
        // A float: digits, optional fraction, optional exponent.
        let valid = {
            let (mantissa, exponent) = match body.find(['e', 'E']) {
                Some(i) => (&body[..i], Some(&body[i + 1..])),
                None => (body, None),
            };
            let mut parts = mantissa.splitn(2, '.');
            let int = parts.next().unwrap_or("");
            let frac = parts.next();
            let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
            let mantissa_ok = digits(int)
                && frac.is_none_or(digits)
                && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()))
                && (frac.is_some() || exponent.is_some());
            let exponent_ok = exponent.is_none_or(|e| {
                let e = e.strip_prefix(['+', '-']).unwrap_or(e);
                !e.is_empty() && digits(e)
            });
            mantissa_ok && exponent_ok
        };
        if !valid {
            return Err(bad());
        }
        let f: f64 = body.parse().map_err(|_| bad())?;
        if !f.is_finite() {
            return Err(self.refuse(
                start,
                "a float beyond the range JSON numbers are read back in",
            ));
        }
        let f = if negative { -f } else { f };
        Number::from_f64(f).map(Value::Number).ok_or_else(bad)
    }

    fn integer(&self, start: usize, negative: bool, n: u128) -> Result<Value, Refusal> {
        let number = if negative {
            if n <= i64::MAX as u128 + 1 {
                // -(2^63) is the one value whose magnitude is not an i64.
                Number::from((-(n as i128)) as i64)
            } else {
                return Err(self.too_big(start));
            }
        } else if let Ok(u) = u64::try_from(n) {
            Number::from(u)
        } else {
            return Err(self.too_big(start));
        };
        Ok(Value::Number(number))
    }

    fn too_big(&self, start: usize) -> Refusal {
        self.refuse(
            start,
            "an integer beyond 64 bits: celeriac would not publish it exactly",
        )
    }
}

/// How Python would write `s` as a dict key in a path: `['x']`.
fn py_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn floor_boundary(s: &str, mut at: usize) -> usize {
    while at > 0 && !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests;
