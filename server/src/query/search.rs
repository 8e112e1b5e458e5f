//! Flower 2.1+ task search syntax (`/api/tasks?search=`): tokenizer, parser,
//! matcher.
//!
//! The grammar, limits and error messages follow Flower's
//! `flower/utils/search.py` so clients see the same 400s:
//! - terms separated by whitespace or `AND` must all match; uppercase `OR`
//!   binds looser; parentheses group, at most 5 deep;
//! - `"quoted phrases"` keep spaces and parentheses (`\"` and `\\` escape);
//! - qualifiers `name:`, `worker:`, `args:`, `kwargs:`, `result:` are
//!   case-insensitive substrings, `state:` is exact, `kwargs:key=value` an
//!   exact item of the kwargs dict; a bare term is a substring of any of
//!   uuid, name, state, worker, args, kwargs, result and, beyond Flower,
//!   exception and traceback (what a post-mortem searches for);
//! - `NOT` and a leading `-` are refused rather than silently ignored;
//! - substring terms need 3 characters, so a stray letter cannot turn a
//!   search into a full scan that matches everything.
//!
//! Positions in messages count characters of the trimmed query, as Python's
//! string indices do.

use std::fmt;

use crate::state::TaskView;

use super::text::{any_dict_item, py_str, Folded, Needle};

pub const MAX_QUERY_LENGTH: usize = 2048;
pub const MAX_QUERY_TOKENS: usize = 128;
pub const MAX_QUERY_DEPTH: usize = 5;
pub const MIN_SUBSTRING_LENGTH: usize = 3;

/// A syntax error, rendered exactly as Flower renders its `QuerySyntaxError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchError {
    pub message: String,
    /// Character index into the trimmed query, when the error has a place.
    pub position: Option<usize>,
}

impl SearchError {
    fn at(message: impl Into<String>, position: usize) -> SearchError {
        SearchError {
            message: message.into(),
            position: Some(position),
        }
    }
}

impl fmt::Display for SearchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{} at position {p}.", self.message),
            None => write!(f, "{}.", self.message),
        }
    }
}

impl std::error::Error for SearchError {}

/// A parsed search, ready to match tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    All,
    Term(Term),
    And(Vec<Node>),
    Or(Vec<Node>),
}

#[derive(Debug, Clone, PartialEq)]
enum Term {
    /// `None` field: any of the bare-term fields.
    Substring(Option<Field>, Needle),
    State(Folded),
    KwargsItem {
        key: Folded,
        value: Folded,
        /// The value without its quotes, when the user quoted a string the
        /// way the repr does (`kwargs:user='bob'`); Flower itself matches
        /// only the unquoted form.
        unquoted: Option<Folded>,
        /// Text that must occur in the repr for the item to match, checked
        /// before parsing the repr, which is much slower.
        required: Vec<Needle>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Worker,
    Args,
    Kwargs,
    Result,
}

impl Search {
    pub fn parse(raw: &str) -> Result<Search, SearchError> {
        let query = raw.trim();
        if query.chars().count() > MAX_QUERY_LENGTH {
            return Err(SearchError {
                message: format!("Query exceeds {MAX_QUERY_LENGTH} characters"),
                position: None,
            });
        }
        let tokens = tokenize(query)?;
        let root = Parser {
            tokens: &tokens,
            index: 0,
        }
        .parse()?;
        Ok(Search { root })
    }

    /// True for an empty query, which matches every task.
    pub fn is_match_all(&self) -> bool {
        self.root == Node::All
    }

    pub fn matches(&self, t: &TaskView<'_>) -> bool {
        self.root.matches(t)
    }

    /// Whether some term looks into args or kwargs (a bare term does): for
    /// a caller from whom `--hide-args` hides them, which tasks match would
    /// tell what they hold.
    pub fn reads_args(&self) -> bool {
        self.root.reads_args()
    }

    /// Text that every matching task holds somewhere (lowercased): what a
    /// substring index can narrow a search to before `matches` decides.
    /// Empty when no term is required (an `or` at the top, say). Only
    /// ASCII needles of three characters or more, which any trigram index
    /// folds the way `matches` does.
    pub fn required_substrings(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.root.required(&mut out);
        out.retain(|n| n.is_ascii() && n.len() >= MIN_SUBSTRING_LENGTH);
        out
    }
}

impl Node {
    fn reads_args(&self) -> bool {
        match self {
            Node::All | Node::Term(Term::State(_)) => false,
            Node::Term(Term::Substring(field, _)) => {
                matches!(field, None | Some(Field::Args | Field::Kwargs))
            }
            Node::Term(Term::KwargsItem { .. }) => true,
            Node::And(nodes) | Node::Or(nodes) => nodes.iter().any(Node::reads_args),
        }
    }

    fn matches(&self, t: &TaskView<'_>) -> bool {
        match self {
            Node::All => true,
            Node::Term(term) => term.matches(t),
            Node::And(children) => children.iter().all(|c| c.matches(t)),
            Node::Or(children) => children.iter().any(|c| c.matches(t)),
        }
    }

    fn required<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Node::All | Node::Or(_) => {}
            Node::Term(Term::Substring(_, needle)) => out.push(needle.as_str()),
            Node::Term(Term::KwargsItem { required, .. }) => {
                out.extend(required.iter().map(|n| n.as_str()))
            }
            Node::Term(Term::State(_)) => {}
            Node::And(children) => children.iter().for_each(|c| c.required(out)),
        }
    }

    /// Rough cost of matching, so `And` tries cheap children first (Flower
    /// orders by posting-list size; the result is the same either way).
    fn cost(&self) -> u8 {
        match self {
            Node::All => 0,
            Node::Term(Term::State(_)) => 1,
            Node::Term(Term::Substring(Some(Field::Name | Field::Worker), _)) => 2,
            Node::Term(Term::KwargsItem { .. }) => 3,
            Node::Term(Term::Substring(Some(_), _)) => 4,
            Node::Term(Term::Substring(None, _)) => 5,
            Node::And(_) | Node::Or(_) => 6,
        }
    }
}

impl Term {
    fn matches(&self, t: &TaskView<'_>) -> bool {
        match self {
            Term::State(s) => s.eq(t.state.as_str()),
            Term::Substring(Some(field), needle) => {
                let hay = match field {
                    Field::Name => t.name,
                    Field::Worker => t.worker,
                    Field::Args => t.args,
                    Field::Kwargs => t.kwargs,
                    Field::Result => t.result,
                };
                hay.is_some_and(|h| needle.is_in(h))
            }
            Term::Substring(None, needle) => {
                needle.is_in(t.uuid)
                    || [t.name, t.worker]
                        .into_iter()
                        .flatten()
                        .any(|h| needle.is_in(h))
                    || needle.is_in(t.state.as_str())
                    || [t.args, t.kwargs, t.result, t.exception, t.traceback]
                        .into_iter()
                        .flatten()
                        .any(|h| needle.is_in(h))
            }
            Term::KwargsItem {
                key,
                value,
                unquoted,
                required,
            } => t.kwargs.is_some_and(|kwargs| {
                required.iter().all(|n| n.is_in(kwargs))
                    && any_dict_item(kwargs, |k, v| {
                        let key_ok = match py_str(k) {
                            Some(k) => key.eq(&k),
                            None => key.eq(k),
                        };
                        // Flower compares `str(value)`: a string without its
                        // quotes, anything else as its repr.
                        key_ok
                            && match py_str(v) {
                                Some(s) => {
                                    value.eq(&s) || unquoted.as_ref().is_some_and(|u| u.eq(&s))
                                }
                                None => value.eq(v),
                            }
                    })
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Term,
    And,
    Or,
    LParen,
    RParen,
    Eof,
}

#[derive(Debug)]
struct Token {
    kind: Kind,
    value: String,
    position: usize,
}

fn push_token(tokens: &mut Vec<Token>, token: Token) -> Result<(), SearchError> {
    tokens.push(token);
    if tokens.len() > MAX_QUERY_TOKENS {
        return Err(SearchError {
            message: format!("Query exceeds {MAX_QUERY_TOKENS} tokens"),
            position: None,
        });
    }
    Ok(())
}

fn tokenize(query: &str) -> Result<Vec<Token>, SearchError> {
    let chars: Vec<char> = query.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let position = i;
        if c == '(' || c == ')' {
            let kind = if c == '(' { Kind::LParen } else { Kind::RParen };
            push_token(
                &mut tokens,
                Token {
                    kind,
                    value: c.to_string(),
                    position,
                },
            )?;
            i += 1;
            continue;
        }

        let mut value = String::new();
        let mut quoted = false;
        let mut in_quote = false;
        while i < chars.len() {
            let c = chars[i];
            if c == '\\' && matches!(chars.get(i + 1), Some('"' | '\\')) {
                value.push(chars[i + 1]);
                i += 2;
                continue;
            }
            if c == '"' {
                quoted = true;
                in_quote = !in_quote;
                i += 1;
                continue;
            }
            if !in_quote && (c.is_whitespace() || c == '(' || c == ')') {
                break;
            }
            value.push(c);
            i += 1;
        }
        if in_quote {
            return Err(SearchError::at("Unterminated quoted phrase", position));
        }
        if value.is_empty() {
            return Err(SearchError::at("Empty search term", position));
        }
        // Quoting makes an operator word a plain term: `"OR"` searches for "or".
        let kind = match value.as_str() {
            "AND" if !quoted => Kind::And,
            "OR" if !quoted => Kind::Or,
            "NOT" if !quoted => return Err(SearchError::at("NOT is not supported", position)),
            _ => Kind::Term,
        };
        push_token(
            &mut tokens,
            Token {
                kind,
                value,
                position,
            },
        )?;
    }
    tokens.push(Token {
        kind: Kind::Eof,
        value: String::new(),
        position: chars.len(),
    });
    Ok(tokens)
}

struct Parser<'t> {
    tokens: &'t [Token],
    index: usize,
}

impl<'t> Parser<'t> {
    fn current(&self) -> &'t Token {
        // The tokenizer always ends with Eof and the parser never moves past it.
        &self.tokens[self.index.min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> &'t Token {
        let token = self.current();
        self.index += 1;
        token
    }

    fn parse(mut self) -> Result<Node, SearchError> {
        if self.current().kind == Kind::Eof {
            return Ok(Node::All);
        }
        let node = self.parse_or(0)?;
        let token = self.current();
        if token.kind != Kind::Eof {
            return Err(SearchError::at(
                format!("Unexpected {}", py_repr(&token.value)),
                token.position,
            ));
        }
        Ok(node)
    }

    fn parse_or(&mut self, depth: usize) -> Result<Node, SearchError> {
        let mut children = vec![self.parse_and(depth)?];
        while self.current().kind == Kind::Or {
            let operator = self.advance();
            if matches!(
                self.current().kind,
                Kind::Eof | Kind::RParen | Kind::And | Kind::Or
            ) {
                return Err(SearchError::at(
                    "OR must be followed by a search term",
                    operator.position,
                ));
            }
            children.push(self.parse_and(depth)?);
        }
        Ok(combine(children, false))
    }

    fn parse_and(&mut self, depth: usize) -> Result<Node, SearchError> {
        let mut children = vec![self.parse_primary(depth)?];
        while !matches!(self.current().kind, Kind::Eof | Kind::RParen | Kind::Or) {
            if self.current().kind == Kind::And {
                let operator = self.advance();
                if matches!(
                    self.current().kind,
                    Kind::Eof | Kind::RParen | Kind::And | Kind::Or
                ) {
                    return Err(SearchError::at(
                        "AND must be followed by a search term",
                        operator.position,
                    ));
                }
            }
            children.push(self.parse_primary(depth)?);
        }
        Ok(combine(children, true))
    }

    fn parse_primary(&mut self, depth: usize) -> Result<Node, SearchError> {
        let token = self.current();
        match token.kind {
            Kind::LParen => {
                if depth >= MAX_QUERY_DEPTH {
                    return Err(SearchError::at(
                        format!("Query nesting exceeds {MAX_QUERY_DEPTH} levels"),
                        token.position,
                    ));
                }
                self.advance();
                if self.current().kind == Kind::RParen {
                    return Err(SearchError::at("Empty group", token.position));
                }
                let node = self.parse_or(depth + 1)?;
                if self.current().kind != Kind::RParen {
                    return Err(SearchError::at(
                        "Missing closing parenthesis",
                        token.position,
                    ));
                }
                self.advance();
                Ok(node)
            }
            Kind::Term => {
                self.advance();
                parse_term(token).map(Node::Term)
            }
            _ => Err(SearchError::at("Expected a search term", token.position)),
        }
    }
}

/// Flattens nested groups of the same operator, so `a (b c)` is one `And`.
fn combine(children: Vec<Node>, and: bool) -> Node {
    let mut flat = Vec::with_capacity(children.len());
    for child in children {
        match child {
            Node::And(inner) if and => flat.extend(inner),
            Node::Or(inner) if !and => flat.extend(inner),
            other => flat.push(other),
        }
    }
    if flat.len() == 1 {
        if let Some(only) = flat.pop() {
            return only;
        }
    }
    if and {
        flat.sort_by_key(Node::cost);
        Node::And(flat)
    } else {
        Node::Or(flat)
    }
}

fn parse_term(token: &Token) -> Result<Term, SearchError> {
    let mut field = None;
    let mut is_state = false;
    let mut value = token.value.as_str();
    if let Some((qualifier, rest)) = value.split_once(':') {
        let known = match qualifier.to_lowercase().as_str() {
            "name" => Some(Some(Field::Name)),
            "worker" => Some(Some(Field::Worker)),
            "args" => Some(Some(Field::Args)),
            "kwargs" => Some(Some(Field::Kwargs)),
            "result" => Some(Some(Field::Result)),
            "state" => Some(None),
            _ => None,
        };
        if let Some(known) = known {
            field = known;
            is_state = known.is_none();
            value = rest;
        }
    }
    let qualified = field.is_some() || is_state;
    if !qualified && value.starts_with('-') {
        return Err(SearchError::at(
            "Negation with '-' is not supported",
            token.position,
        ));
    }
    if value.is_empty() {
        return Err(SearchError::at(
            "Search qualifier requires a value",
            token.position,
        ));
    }
    if is_state {
        return Ok(Term::State(Folded::new(value)));
    }
    if field == Some(Field::Kwargs) {
        if let Some((key, item)) = value.split_once('=') {
            let (key, item) = (key.trim(), item.trim());
            let unquoted = py_str(item);
            // A matching item shows the key, and the value (unquoted if the
            // user quoted it), verbatim in the repr unless repr escaped them.
            let verbatim = |s: &str| {
                s.bytes()
                    .all(|b| b == b' ' || (b.is_ascii_graphic() && !b"'\"\\".contains(&b)))
            };
            let required = [key, unquoted.as_deref().unwrap_or(item)]
                .into_iter()
                .filter(|s| !s.is_empty() && verbatim(s))
                .map(Needle::new)
                .collect();
            return Ok(Term::KwargsItem {
                key: Folded::new(key),
                value: Folded::new(item),
                unquoted: unquoted.map(|s| Folded::new(&s)),
                required,
            });
        }
    }
    if value.trim().chars().count() < MIN_SUBSTRING_LENGTH {
        return Err(SearchError::at(
            format!(
                "Substring search terms must contain at least {MIN_SUBSTRING_LENGTH} characters"
            ),
            token.position,
        ));
    }
    Ok(Term::Substring(field, Needle::new(value)))
}

/// Python's `repr()` of a string, for messages that quote a token.
fn py_repr(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_that_look_into_arguments_are_known() {
        let reads = |q: &str| Search::parse(q).unwrap().reads_args();
        for q in [
            "secret",
            "args:secret",
            "kwargs:token",
            "kwargs:user=bob",
            "name:xyz OR secret",
        ] {
            assert!(reads(q), "{q}");
        }
        for q in [
            "name:tasks.add",
            "state:FAILURE",
            "result:4242",
            "name:abc AND state:SUCCESS",
        ] {
            assert!(!reads(q), "{q}");
        }
    }

    /// Parses `query` and renders the tree, or the error message.
    fn check(query: &str, expect: &str) {
        let got = match Search::parse(query) {
            Ok(s) => render(&s.root),
            Err(e) => e.to_string(),
        };
        assert_eq!(got, expect, "query {query:?}");
    }

    fn render(node: &Node) -> String {
        let list = |op: &str, children: &[Node]| {
            let inner: Vec<String> = children.iter().map(render).collect();
            format!("({op} {})", inner.join(" "))
        };
        match node {
            Node::All => "*".into(),
            Node::And(c) => list("and", c),
            Node::Or(c) => list("or", c),
            Node::Term(Term::State(s)) => format!("state={}", s_of(s)),
            Node::Term(Term::KwargsItem { key, value, .. }) => {
                format!("kwargs[{}]={}", s_of(key), s_of(value))
            }
            Node::Term(Term::Substring(field, n)) => {
                let f = match field {
                    None => "any",
                    Some(Field::Name) => "name",
                    Some(Field::Worker) => "worker",
                    Some(Field::Args) => "args",
                    Some(Field::Kwargs) => "kwargs",
                    Some(Field::Result) => "result",
                };
                format!("{f}~{:?}", needle_of(n))
            }
        }
    }

    fn s_of(f: &Folded) -> &str {
        f.as_str()
    }

    fn needle_of(n: &Needle) -> &str {
        n.as_str()
    }

    #[test]
    fn grammar() {
        check("", "*");
        check("   ", "*");
        check("boom", r#"any~"boom""#);
        check("Boom", r#"any~"boom""#);
        check("foo bar", r#"(and any~"foo" any~"bar")"#);
        check("foo AND bar", r#"(and any~"foo" any~"bar")"#);
        check("foo and bar", r#"(and any~"foo" any~"and" any~"bar")"#);
        check(
            "foo bar OR baz",
            r#"(or (and any~"foo" any~"bar") any~"baz")"#,
        );
        check(
            "foo (bar OR baz)",
            r#"(and any~"foo" (or any~"bar" any~"baz"))"#,
        );
        check("(foo bar) (qux)", r#"(and any~"foo" any~"bar" any~"qux")"#);
        check("\"hello world\"", r#"any~"hello world""#);
        check("\"OR\"x", r#"any~"orx""#);
        check("\"a (b)\"", r#"any~"a (b)""#);
        check(r#"say\"hi\""#, r#"any~"say\"hi\"""#);
        check("name:\"my task\"", r#"name~"my task""#);
        check("\"name:my task\"", r#"name~"my task""#);
        check("NAME:tasks.add", r#"name~"tasks.add""#);
        check("uuid:abc", r#"any~"uuid:abc""#);
        check("result:100", r#"result~"100""#);
        check("worker:w1@ args:boom", r#"(and worker~"w1@" args~"boom")"#);
        check("kwargs:'x'", r#"kwargs~"'x'""#);
        check("kwargs:y=99", "kwargs[y]=99");
        check("\"kwargs:Y = 99\"", "kwargs[y]=99");
        check(
            "kwargs:Y = 99",
            "Substring search terms must contain at least 3 characters at position 0.",
        );
        check("kwargs:a=", "kwargs[a]=");
        check("state:failure", "state=failure");
        check("state:X", "state=x");
        // Exact terms are cheaper, so they are tried first.
        check("boom state:FAILURE", r#"(and state=failure any~"boom")"#);
        check(
            "state:FAILURE OR state:STARTED",
            "(or state=failure state=started)",
        );
        check("name:-x-", r#"name~"-x-""#);
        check("((((( abc )))))", r#"any~"abc""#);
    }

    #[test]
    fn errors() {
        check(
            "ab",
            "Substring search terms must contain at least 3 characters at position 0.",
        );
        check(
            "boom x",
            "Substring search terms must contain at least 3 characters at position 5.",
        );
        check(
            "  boom   \" ab \"",
            "Substring search terms must contain at least 3 characters at position 7.",
        );
        check(
            "name:ab",
            "Substring search terms must contain at least 3 characters at position 0.",
        );
        check(
            "état xé",
            "Substring search terms must contain at least 3 characters at position 5.",
        );
        check("NOT boom", "NOT is not supported at position 0.");
        check("-boom", "Negation with '-' is not supported at position 0.");
        check(
            "\"-boom\"",
            "Negation with '-' is not supported at position 0.",
        );
        check("name:", "Search qualifier requires a value at position 0.");
        check("state:", "Search qualifier requires a value at position 0.");
        check("\"\"", "Empty search term at position 0.");
        check("abc \"def", "Unterminated quoted phrase at position 4.");
        check(
            "abc OR",
            "OR must be followed by a search term at position 4.",
        );
        check(
            "abc OR OR def",
            "OR must be followed by a search term at position 4.",
        );
        check(
            "abc AND",
            "AND must be followed by a search term at position 4.",
        );
        check(
            "abc AND )",
            "AND must be followed by a search term at position 4.",
        );
        check("OR abc", "Expected a search term at position 0.");
        check("abc )", "Unexpected ')' at position 4.");
        check("()", "Empty group at position 0.");
        check("(abc", "Missing closing parenthesis at position 0.");
        check("(", "Expected a search term at position 1.");
        check(
            "((((((abc))))))",
            "Query nesting exceeds 5 levels at position 5.",
        );
        check(&"a".repeat(2049), "Query exceeds 2048 characters.");
        // Limits count characters, not bytes, and allow exactly the maximum.
        assert!(Search::parse(&"é".repeat(2048)).is_ok());
        assert!(Search::parse(&"abc ".repeat(128)).is_ok());
        check(&"abc ".repeat(129), "Query exceeds 128 tokens.");
    }
}
