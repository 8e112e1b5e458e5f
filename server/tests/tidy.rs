//! Layering rules of the server crate, checked on its source text.
//!
//! The model (`state/`, `query/`, `events.rs`) is pure: it does no I/O, reads
//! no clock and reaches into none of the layers that run it (config,
//! transport, HTTP). That is what lets it be tested with
//! plain values and benchmarked without a broker, so a slip should fail the
//! build instead of waiting for review.
//!
//! Comments, string contents and `#[cfg(test)]` code (inline test modules,
//! test-only files) are not checked: tests may read fixtures from disk.

use std::collections::BTreeSet;
use std::path::Path;

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// The pure core: directories and files under `src/`.
const CORE: &[&str] = &["state/", "query/", "events.rs", "pyrepr.rs"];

/// Names that mean I/O or a clock read.
const IMPURE: &[&str] = &[
    "tokio",
    "lapin",
    "axum",
    "reqwest",
    "std::net",
    "std::fs",
    "SystemTime",
    "Instant::now",
    "Utc::now",
];

/// Modules that run the core; the core must not import them.
const OUTER: &[&str] = &["crate::config", "crate::transport", "crate::http"];

#[test]
fn core_does_no_io_and_reads_no_clock() {
    let mut found = Vec::new();
    for file in sources().iter().filter(|f| f.in_core()) {
        for name in IMPURE {
            if mentions(&file.code, name) {
                found.push(format!("{} mentions `{name}`", file.rel));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the model (state/, query/, events.rs) must stay free of I/O and clock \
         reads; take time and data as arguments instead:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn core_imports_no_outer_module() {
    let mut found = Vec::new();
    for file in sources().iter().filter(|f| f.in_core()) {
        for path in file.paths() {
            if !OUTER.iter().any(|outer| is_within(&path, outer)) {
                continue;
            }
            found.push(format!("{} uses `{path}`", file.rel));
        }
    }
    assert!(
        found.is_empty(),
        "the model must not depend on the layers that run it ({}); pass what \
         it needs in from there:\n  {}",
        OUTER.join(", "),
        found.join("\n  ")
    );
}

#[test]
fn only_the_top_level_composes_config() {
    let composers =
        |rel: &str| matches!(rel, "lib.rs" | "main.rs" | "config.rs") || rel.starts_with("config/");
    let mut found = Vec::new();
    for file in sources().iter().filter(|f| !composers(&f.rel)) {
        let by_path = file.paths().iter().any(|p| p == "crate::config::Config");
        if by_path || mentions(&file.code, "config::Config") {
            found.push(file.rel.clone());
        }
    }
    assert!(
        found.is_empty(),
        "only lib.rs and main.rs see the whole `Config`; give each module its \
         own settings type instead. Using it:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn only_transport_speaks_amqp() {
    let found: Vec<_> = sources()
        .into_iter()
        .filter(|f| !f.rel.starts_with("transport/") && mentions(&f.code, "lapin"))
        .map(|f| f.rel)
        .collect();
    assert!(
        found.is_empty(),
        "only src/transport/ may use lapin; these files do:\n  {}",
        found.join("\n  ")
    );
}

/// The server's top-level modules by layer, lowest first. A module may
/// import only modules of lower layers, so imports point one way and no
/// cycle can form; a new module must be placed here. `lib.rs` and
/// `main.rs` compose everything and are not listed.
const LAYERS: &[&[&str]] = &[
    // Secrets masked in text, used by the audit log below.
    &["redact"],
    // Values and small utilities every layer may use.
    &[
        "events", "clock", "mask", "shutdown", "mailbox", "audit", "auth", "pyrepr",
    ],
    // Test-only helpers.
    &["test_args"],
    // The model.
    &["state"],
    &["query", "feed", "broker", "submit"],
    // What the model implies (failure groups, queue latency).
    &["insight"],
    // Self metrics and internal events.
    &["metrics"],
    &["telemetry"],
    &["ingest"],
    // Brokers, remote control, the state owner and the state's consumers.
    &[
        "transport",
        "control",
        "owner",
        "ws",
        "alerting",
        "history",
        "results",
        "oidc",
        "series",
    ],
    // Composition: what HTTP handlers read, HTTP, the command line.
    &["app"],
    &["http"],
    &["config"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

#[test]
fn modules_import_each_other_in_one_direction() {
    let all = sources();
    // Paths into `lib.rs` items or misread inline modules are not modules.
    let modules: BTreeSet<String> = all
        .iter()
        .filter_map(|f| f.module().first().map(|m| m.to_string()))
        .collect();
    let mut found = Vec::new();
    for file in all {
        let Some(from) = file.module().first().map(|m| m.to_string()) else {
            continue;
        };
        if matches!(from.as_str(), "lib" | "main") || file.module().is_empty() {
            continue;
        }
        let Some(from_layer) = layer_of(&from) else {
            found.push(format!(
                "{}: module `{from}` is in no layer of LAYERS",
                file.rel
            ));
            continue;
        };
        let mut imported = BTreeSet::new();
        for path in file.paths() {
            if let Some(target) = path
                .strip_prefix("crate::")
                .and_then(|p| p.split("::").next())
            {
                if target != from && modules.contains(target) {
                    imported.insert(target.to_string());
                }
            }
        }
        for target in imported {
            match layer_of(&target) {
                Some(l) if l < from_layer => {}
                _ => found.push(format!("{} ({from}) imports `crate::{target}`", file.rel)),
            }
        }
    }
    assert!(
        found.is_empty(),
        "a module may import only modules of lower layers (LAYERS in tests/tidy.rs):\n  {}",
        found.join("\n  ")
    );
}

/// The checks above pass trivially if the walk finds nothing or the helpers
/// see nothing, so check the checker.
#[test]
fn the_checker_sees_code() {
    let all = sources();
    let state = all.iter().filter(|f| f.rel.starts_with("state/")).count();
    assert!(
        state >= 5,
        "found only {state} checked files under src/state/"
    );
    assert!(all.iter().any(|f| f.rel == "events.rs"));
    assert!(
        all.iter().all(|f| !f.rel.ends_with("/tests.rs")),
        "test-only files are skipped"
    );

    let file = Source::new(
        "state/merge.rs",
        r#"
        use tokio::sync::mpsc; // and a comment naming reqwest
        use crate::{config::{Config, Limits as L}, state};
        use super::super::shared;
        const NOTE: &str = "axum in a string";
        fn f() -> f64 { crate::http::thing(); self::g() }
        #[cfg(test)]
        mod tests { use std::fs; }
        "#,
    );
    assert!(mentions(&file.code, "tokio"));
    assert!(!mentions(&file.code, "reqwest"), "comments are not code");
    assert!(!mentions(&file.code, "axum"), "strings are not code");
    assert!(
        !mentions(&file.code, "std::fs"),
        "test modules are not checked"
    );
    assert!(!mentions("tokio_util::x", "tokio"), "whole names only");
    let paths = file.paths();
    for expected in [
        "tokio::sync::mpsc",
        "crate::config::Config",
        "crate::config::Limits",
        "crate::state",
        "crate::http::thing",
        "crate::state::merge::g",
    ] {
        assert!(
            paths.contains(&expected.to_string()),
            "{expected} in {paths:?}"
        );
    }
    assert!(is_within("crate::config::X", "crate::config"));
    assert!(!is_within("crate::configuration", "crate::config"));
}

// ---------------------------------------------------------------------------
// Reading the sources

/// One source file: its path under `src/` and its code with comments, literal
/// contents and `#[cfg(test)]` items blanked out.
struct Source {
    rel: String,
    code: String,
}

impl Source {
    fn new(rel: &str, text: &str) -> Source {
        let code = without_test_items(&blank_comments_and_literals(text));
        Source {
            rel: rel.to_string(),
            code,
        }
    }

    fn in_core(&self) -> bool {
        CORE.iter().any(|c| self.rel.starts_with(c))
    }

    /// The module this file is: `state/merge.rs` is `["state", "merge"]`.
    fn module(&self) -> Vec<&str> {
        let stem = self.rel.trim_end_matches(".rs");
        let mut parts: Vec<&str> = stem.split('/').collect();
        if matches!(parts.last(), Some(&("mod" | "lib" | "main"))) {
            parts.pop();
        }
        parts
    }

    /// Every path the code names through `use` or in place, made absolute
    /// where it starts at `crate`, `self` or `super`.
    fn paths(&self) -> Vec<String> {
        let module = self.module();
        let mut out = Vec::new();
        for tree in use_trees(&self.code) {
            out.extend(expand(&tree).iter().map(|p| resolve(&module, p)));
        }
        for start in ["crate::", "self::", "super::"] {
            for (at, _) in self.code.match_indices(start) {
                if word_starts_at(&self.code, at) {
                    let path: String = self.code[at..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    out.push(resolve(&module, path.trim_end_matches(':')));
                }
            }
        }
        out
    }
}

/// Every checked `.rs` file under `src/`, test-only files left out.
fn sources() -> Vec<Source> {
    let mut files = Vec::new();
    walk(Path::new(SRC), &mut files);
    let all: Vec<Source> = files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let rel = path.strip_prefix(SRC).expect("under src/");
            Source::new(&rel.to_string_lossy().replace('\\', "/"), &text)
        })
        .collect();
    let test_only = test_only_files(&all);
    all.into_iter()
        .filter(|f| !test_only.contains(&f.rel))
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
}

/// Files declared as `#[cfg(test)] mod name;`. Their declarations are
/// blanked with the other test items, so look for them in the raw text.
fn test_only_files(all: &[Source]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in all {
        let text = std::fs::read_to_string(Path::new(SRC).join(&file.rel)).unwrap_or_default();
        let flat = blank_comments_and_literals(&text)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let dir = child_dir(&file.rel);
        for (at, _) in flat.match_indices("#[cfg(test)] mod ") {
            let rest = &flat[at + "#[cfg(test)] mod ".len()..];
            if let Some(name) = rest.split(';').next().filter(|n| !n.contains('{')) {
                out.insert(format!("{dir}{}.rs", name.trim()));
                out.insert(format!("{dir}{}/mod.rs", name.trim()));
            }
        }
    }
    out
}

/// Where a file's `mod name;` children live: beside `mod.rs`, `lib.rs` and
/// `main.rs`; in `events/` for `events.rs`.
fn child_dir(rel: &str) -> String {
    let (dir, file) = rel.rsplit_once('/').unwrap_or(("", rel));
    match (dir, file) {
        ("", "lib.rs" | "main.rs") => String::new(),
        (dir, "mod.rs") => format!("{dir}/"),
        _ => format!("{}/", rel.trim_end_matches(".rs")),
    }
}

// ---------------------------------------------------------------------------
// Scanning code

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn word_starts_at(code: &str, at: usize) -> bool {
    !code[..at].chars().next_back().is_some_and(is_ident)
}

/// Whether `code` names `name` as a whole word (`tokio` but not `tokio_util`).
fn mentions(code: &str, name: &str) -> bool {
    code.match_indices(name).any(|(at, _)| {
        let after = code[at + name.len()..].chars().next();
        word_starts_at(code, at) && !after.is_some_and(is_ident)
    })
}

/// Whether `path` is `module` or something inside it.
fn is_within(path: &str, module: &str) -> bool {
    path == module || path.starts_with(&format!("{module}::"))
}

/// Comments and the contents of string and char literals become spaces
/// (newlines kept), so neither can trip a rule or unbalance braces.
fn blank_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let len = literal_or_comment_len(&chars[i..], i > 0 && is_ident(chars[i - 1]));
        if len == 0 {
            out.push(chars[i]);
            i += 1;
        } else {
            out.extend(
                chars[i..i + len]
                    .iter()
                    .map(|&c| if c == '\n' { '\n' } else { ' ' }),
            );
            i += len;
        }
    }
    out
}

/// Length of the comment or literal starting `rest`, or 0 if none does.
fn literal_or_comment_len(rest: &[char], after_ident: bool) -> usize {
    let at = |n: usize| rest.get(n).copied();
    match (at(0), at(1)) {
        (Some('/'), Some('/')) => rest.iter().position(|&c| c == '\n').unwrap_or(rest.len()),
        (Some('/'), Some('*')) => {
            let mut depth = 0;
            let mut i = 0;
            while i + 1 < rest.len() {
                match (rest[i], rest[i + 1]) {
                    ('/', '*') => (depth, i) = (depth + 1, i + 2),
                    ('*', '/') if depth == 1 => return i + 2,
                    ('*', '/') => (depth, i) = (depth - 1, i + 2),
                    _ => i += 1,
                }
            }
            rest.len()
        }
        (Some('"'), _) if !after_ident => quoted_len(rest, '"'),
        (Some('b'), Some('"')) if !after_ident => 1 + quoted_len(&rest[1..], '"'),
        (Some('r' | 'b'), Some('#' | '"' | 'r')) if !after_ident => raw_string_len(rest),
        // 'x' or '\n' is a char literal; 'a alone is a lifetime.
        (Some('\''), Some('\\')) => quoted_len(rest, '\''),
        (Some('\''), Some(_)) if at(2) == Some('\'') => 3,
        _ => 0,
    }
}

/// Length of a literal opened by `quote` at `rest[0]`, with `\` escapes.
fn quoted_len(rest: &[char], quote: char) -> usize {
    let mut i = 1;
    while i < rest.len() {
        match rest[i] {
            '\\' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    rest.len()
}

/// Length of `r"…"`, `r#"…"#`, `br"…"` and the like, or 0 if `rest` is not one.
fn raw_string_len(rest: &[char]) -> usize {
    let mut i = if rest[0] == 'b' { 1 } else { 0 };
    if rest.get(i) != Some(&'r') {
        return 0;
    }
    i += 1;
    let hashes = rest[i..].iter().take_while(|&&c| c == '#').count();
    i += hashes;
    if rest.get(i) != Some(&'"') {
        return 0;
    }
    let closing: Vec<char> = std::iter::once('"')
        .chain(std::iter::repeat_n('#', hashes))
        .collect();
    (i + 1..rest.len())
        .find(|&j| rest[j..].starts_with(&closing))
        .map_or(rest.len(), |j| j + closing.len())
}

/// `code` with every item marked `#[cfg(test)]` blanked: up to its `;`, or
/// through its matching `}`.
fn without_test_items(code: &str) -> String {
    let mut out = code.to_string();
    let marker = "#[cfg(test)]";
    while let Some(start) = out.find(marker) {
        let body = start + marker.len();
        let end = match out[body..].find(['{', ';']).map(|i| body + i) {
            Some(i) if out.as_bytes()[i] == b';' => i + 1,
            Some(open) => matching_brace(&out, open),
            None => out.len(),
        };
        let blank: String = out[start..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(start..end, &blank);
    }
    out
}

/// Index just past the `}` that closes the `{` at `open`.
fn matching_brace(code: &str, open: usize) -> usize {
    let mut depth = 0;
    for (i, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 1 => return open + i + 1,
            '}' => depth -= 1,
            _ => {}
        }
    }
    code.len()
}

// ---------------------------------------------------------------------------
// Paths

/// The trees of the `use` declarations in `code`: `crate::{a, b::c}`.
fn use_trees(code: &str) -> Vec<String> {
    code.match_indices("use ")
        .filter(|(at, _)| word_starts_at(code, *at))
        .filter_map(|(at, _)| {
            let tree = &code[at + "use ".len()..];
            let tree = &tree[..tree.find(';')?];
            Some(tree.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .collect()
}

/// The paths one use tree imports: `a::{b, c::{d as e}}` gives `a::b`, `a::c::d`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim().trim_start_matches("::");
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree);
        return vec![path.replace(' ', "")];
    };
    let prefix = tree[..open].replace(' ', "");
    let close = tree.rfind('}').unwrap_or(tree.len());
    split_top_level(&tree[open + 1..close])
        .into_iter()
        .filter(|part| !part.trim().is_empty())
        .flat_map(expand)
        .map(|inner| match inner.as_str() {
            "self" => prefix.trim_end_matches("::").to_string(),
            _ => format!("{prefix}{inner}"),
        })
        .collect()
}

/// `a, b::{c, d}` split at the commas outside braces.
fn split_top_level(list: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut from) = (Vec::new(), 0, 0);
    for (i, c) in list.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&list[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[from..]);
    parts
}

/// `path` as seen from `module`, made absolute (`crate::…`) when it starts
/// at `crate`, `self` or `super`; other paths (crates) are left as they are.
fn resolve(module: &[&str], path: &str) -> String {
    let mut segments = path.split("::").peekable();
    let mut base: Vec<&str> = match segments.peek() {
        Some(&"crate") => {
            segments.next();
            Vec::new()
        }
        Some(&("self" | "super")) => module.to_vec(),
        _ => return path.to_string(),
    };
    while let Some(&first) = segments.peek() {
        match first {
            "self" => {}
            "super" => {
                base.pop();
            }
            _ => break,
        }
        segments.next();
    }
    base.extend(segments);
    std::iter::once("crate")
        .chain(base)
        .collect::<Vec<_>>()
        .join("::")
}
