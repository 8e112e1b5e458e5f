//! A failure's fingerprint: which bug it is, from its traceback. Pure.
//!
//! The fingerprint is the exception type plus the frames that locate the
//! bug, each reduced to its file, function and source line:
//!
//! - the innermost frame, where the exception was raised;
//! - the innermost frame of the application (not in `site-packages`,
//!   `dist-packages` or the standard library), when that is another frame:
//!   when a library raises (`int("x")`, `json.loads`), the bug is at the
//!   application line that called it.
//!
//! Outer frames are left out on purpose: they are the call sites, and one
//! bug reached from two call sites (`bill` calling `_parse_amount` directly
//! and through `_line_total`) is one group. Line numbers are left out too,
//! so that an edit above the bug does not split its group; what tells two
//! bugs in one function apart (`raise ValueError(...)` at two places) is
//! the source line Python prints under each frame. That line is source, not
//! data, so it is kept as written (whitespace collapsed); what varies per
//! call (memory addresses, ids, numbers, hex and quoted values) is stripped
//! from file and function names. The message is not part of it: it holds
//! the data (`invalid literal for int() with base 10: 'abc'`).
//!
//! Without a traceback (or one that does not parse) the fingerprint is the
//! exception type and the task name.

use std::fmt::Write as _;

use crate::state::exception_class;

/// One frame as it counts: normalised file, function and source line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub file: String,
    pub function: String,
    /// The source line Python printed, whitespace collapsed; `None` when
    /// the worker had no source to show.
    pub code: Option<String>,
}

impl Frame {
    /// `tasks.py in _parse_amount: return int(value)`.
    pub fn label(&self) -> String {
        let mut s = format!("{} in {}", self.file, self.function);
        if let Some(code) = &self.code {
            s.push_str(": ");
            s.push_str(code);
        }
        s
    }
}

/// Which bug a failure is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// 16 hex digits, stable across processes and versions (FNV-1a).
    pub id: String,
    /// The exception type: qualified as the traceback's last line names it
    /// (`billiard.exceptions.WorkerLostError`), else the class from the
    /// `exception` repr.
    pub exception: String,
    /// The frames that counted, outermost first.
    pub frames: Vec<Frame>,
}

/// The fingerprint of a failure of task `name` with these `exception` and
/// `traceback` fields of its `task-failed`.
pub fn fingerprint(name: &str, exception: Option<&str>, traceback: Option<&str>) -> Fingerprint {
    let parsed = traceback.map(parse).unwrap_or_default();
    let exception = parsed
        .exception
        .clone()
        .unwrap_or_else(|| exception_class(exception.unwrap_or("")).to_owned());
    let frames = locating_frames(&parsed.frames);
    let mut key = String::new();
    key.push_str(&exception);
    key.push('\n');
    if frames.is_empty() {
        key.push_str("task\t");
        key.push_str(name);
        key.push('\n');
    }
    for f in &frames {
        let _ = writeln!(
            key,
            "{}\t{}\t{}",
            f.file,
            f.function,
            f.code.as_deref().unwrap_or("")
        );
    }
    Fingerprint {
        id: format!("{:016x}", fnv1a(key.as_bytes())),
        exception,
        frames,
    }
}

fn locating_frames(frames: &[Frame]) -> Vec<Frame> {
    let Some(innermost) = frames.last() else {
        return Vec::new();
    };
    let app = frames.iter().rev().find(|f| !is_library(&f.file));
    match app {
        Some(a) if a != innermost => vec![a.clone(), innermost.clone()],
        _ => vec![innermost.clone()],
    }
}

/// A traceback as Python prints it: the frames of its last block (the
/// exception that was raised last, after any "During handling of the above
/// exception" chain) and the type from its final line.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Parsed {
    pub frames: Vec<Frame>,
    pub exception: Option<String>,
}

pub fn parse(traceback: &str) -> Parsed {
    let block = traceback
        .rfind("Traceback (most recent call last):")
        .map_or(traceback, |i| &traceback[i..]);
    let mut out = Parsed::default();
    let mut lines = block.lines().skip(1).peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("File \"") {
            let Some((file, rest)) = rest.split_once('"') else {
                continue;
            };
            let function = rest
                .rsplit_once(", in ")
                .map_or("?", |(_, f)| f.trim())
                .to_owned();
            // The source line, if any, is indented below the frame; the
            // caret lines of Python 3.11+ (`^^^^`, `~~~^^`) are not source.
            let mut code = None;
            while let Some(next) = lines.peek() {
                let t = next.trim();
                let indented = next.starts_with(' ') && !t.starts_with("File \"");
                if !indented || t.is_empty() {
                    break;
                }
                if code.is_none() && !t.chars().all(|c| matches!(c, '^' | '~' | ' ')) {
                    code = Some(collapse(t));
                }
                lines.next();
            }
            out.frames.push(Frame {
                file: normalise_file(file),
                function: normalise(&function),
                code,
            });
        } else if !line.starts_with(' ') && !trimmed.is_empty() && out.exception.is_none() {
            let head = line.split_once(':').map_or(line, |(t, _)| t).trim();
            if is_type_name(head) && !out.frames.is_empty() {
                out.exception = Some(head.to_owned());
            }
        }
    }
    out
}

fn is_type_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
                && chars.all(|c| c.is_alphanumeric() || c == '_')
        })
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Where third-party and standard-library code lives.
fn is_library(file: &str) -> bool {
    file.starts_with("site-packages/")
        || file.starts_with("dist-packages/")
        || file.starts_with("stdlib/")
        || file.starts_with("<frozen")
}

/// A file as it counts: the part after `site-packages/` (or
/// `dist-packages/`, or `stdlib/` for `lib/pythonX.Y/`), so that two hosts
/// with the venv in different places agree; else the last two path
/// components (the deploy root differs between hosts, the module path
/// does not).
fn normalise_file(path: &str) -> String {
    for marker in ["site-packages/", "dist-packages/"] {
        if let Some(i) = path.rfind(marker) {
            return format!("{marker}{}", normalise(&path[i + marker.len()..]));
        }
    }
    if let Some(i) = path.find("/lib/python") {
        let rest = &path[i + "/lib/python".len()..];
        if let Some((_, after)) = rest.split_once('/') {
            return format!("stdlib/{}", normalise(after));
        }
    }
    let parts: Vec<&str> = path.rsplitn(3, '/').collect();
    let tail = match parts.as_slice() {
        [file, dir, _] => format!("{dir}/{file}"),
        _ => path.to_owned(),
    };
    normalise(&tail)
}

/// Strips what varies per call from a name: quoted values become `'?'`,
/// hex (`0x7f3a`) and digit runs become `N` (memory addresses, ids,
/// `<ipython-input-12>`, temporary directories).
pub fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
                out.push_str("'?'");
            }
            '0' if chars.peek().is_some_and(|&x| x == 'x' || x == 'X') => {
                chars.next();
                while chars.peek().is_some_and(|x| x.is_ascii_hexdigit()) {
                    chars.next();
                }
                out.push('N');
            }
            c if c.is_ascii_digit() => {
                while chars.peek().is_some_and(|x| x.is_ascii_hexdigit()) {
                    chars.next();
                }
                out.push('N');
            }
            c => out.push(c),
        }
    }
    out
}

/// FNV-1a, 64 bits: a fingerprint must not change between runs or Rust
/// versions (it names groups in URLs and metric labels), which std's
/// hashers do not promise.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `task-failed` fields captured from a real Celery 5.7.0 worker
    /// (fixtures/README.md).
    fn captured(case: &str) -> (String, String) {
        let all: serde_json::Value =
            serde_json::from_str(include_str!("../../../fixtures/tracebacks/celery-5.7.json"))
                .expect("the fixture is JSON");
        let e = all
            .as_array()
            .and_then(|a| a.iter().find(|e| e["case"] == case))
            .unwrap_or_else(|| panic!("no case {case}"));
        (
            e["exception"].as_str().unwrap().to_owned(),
            e["traceback"].as_str().unwrap().to_owned(),
        )
    }

    fn of(name: &str, case: &str) -> Fingerprint {
        let (exc, tb) = captured(case);
        fingerprint(name, Some(&exc), Some(&tb))
    }

    #[test]
    fn one_bug_reached_from_two_call_sites_is_one_group() {
        let direct = of("tasks.bill", "bill_direct");
        let via = of("tasks.bill", "bill_via_line_total");
        assert_eq!(direct.id, via.id);
        assert_eq!(direct.exception, "ValueError");
        let labels: Vec<String> = direct.frames.iter().map(Frame::label).collect();
        assert_eq!(
            labels,
            ["celery_app/tasks.py in _parse_amount: return int(value)"]
        );
    }

    #[test]
    fn two_bugs_in_one_function_are_two_groups() {
        let empty = of("tasks.validate", "validate_empty");
        let negative = of("tasks.validate", "validate_negative");
        assert_ne!(empty.id, negative.id);
        assert_eq!(empty.exception, negative.exception);
        assert_eq!(empty.frames[0].function, negative.frames[0].function);
    }

    #[test]
    fn the_message_and_the_install_path_do_not_count() {
        let (exc, tb) = captured("fail");
        let a = fingerprint("tasks.fail", Some(&exc), Some(&tb));
        // Another message (different hex, id), another host's paths and
        // line numbers: the same bug.
        let tb2 = tb
            .replace("boom 0x7f12 id=42", "boom 0xdead id=7")
            .replace("/root/.cache/celeriac/venv", "/srv/app/venv")
            .replace("/work/wt-insight/server/tests", "/opt/deploy")
            .replace("line 36", "line 40");
        let b = fingerprint(
            "tasks.fail",
            Some("ValueError('boom 0xdead id=7')"),
            Some(&tb2),
        );
        assert_eq!(a.id, b.id);
        // Flower's captured failure (another deploy, another tasks.py).
        let info: serde_json::Value = serde_json::from_str(include_str!(
            "../../../fixtures/flower-api/info_failure.json"
        ))
        .unwrap();
        let c = fingerprint(
            "tasks.fail",
            info["exception"].as_str(),
            info["traceback"].as_str(),
        );
        assert_eq!(c.exception, "ValueError");
        assert_eq!(c.frames.len(), 1);
        assert_eq!(
            c.frames[0].label(),
            "app/tasks.py in fail: raise ValueError(msg)"
        );
    }

    #[test]
    fn a_library_raise_counts_the_application_line_that_called_it() {
        let tb = r#"Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/celery/app/trace.py", line 453, in trace_task
    R = retval = fun(*args, **kwargs)
  File "/srv/app/proj/tasks.py", line 12, in load
    return json.loads(payload)
           ^^^^^^^^^^^^^^^^^^^
  File "/usr/lib/python3.11/json/__init__.py", line 346, in loads
    return _default_decoder.decode(s)
  File "/usr/lib/python3.11/json/decoder.py", line 355, in raw_decode
    raise JSONDecodeError("Expecting value", s, err.value) from None
json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)
"#;
        let f = fingerprint("proj.load", None, Some(tb));
        assert_eq!(f.exception, "json.decoder.JSONDecodeError");
        let labels: Vec<String> = f.frames.iter().map(Frame::label).collect();
        assert_eq!(
            labels,
            [
                "proj/tasks.py in load: return json.loads(payload)",
                "stdlib/json/decoder.py in raw_decode: raise JSONDecodeError(\"Expecting value\", s, err.value) from None",
            ]
        );
    }

    #[test]
    fn a_chain_counts_its_last_exception() {
        let tb = r#"Traceback (most recent call last):
  File "/srv/app/proj/tasks.py", line 5, in fetch
    return d["key"]
KeyError: 'key'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/srv/app/proj/tasks.py", line 7, in fetch
    raise LookupFailed(0x7f00aa)
proj.errors.LookupFailed: 0x7f00aa
"#;
        let f = fingerprint("proj.fetch", Some("LookupFailed(1)"), Some(tb));
        assert_eq!(f.exception, "proj.errors.LookupFailed");
        assert_eq!(f.frames.len(), 1);
        assert_eq!(
            f.frames[0].code.as_deref(),
            Some("raise LookupFailed(0x7f00aa)")
        );
    }

    #[test]
    fn without_a_traceback_the_type_and_task_name_count() {
        let a = fingerprint("t.a", Some("WorkerLostError('Worker exited')"), None);
        let b = fingerprint("t.a", Some("WorkerLostError('other')"), Some("garbage"));
        let c = fingerprint("t.b", Some("WorkerLostError('Worker exited')"), None);
        assert_eq!(a.exception, "WorkerLostError");
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert_eq!(a.id.len(), 16);
    }

    #[test]
    fn normalise_strips_what_varies_per_call() {
        assert_eq!(
            normalise("<ipython-input-12-ab3f>"),
            "<ipython-input-N-abN>"
        );
        assert_eq!(normalise("obj at 0x7f3a2b1c"), "obj at N");
        assert_eq!(normalise("get('user-1')"), "get('?')");
        assert_eq!(normalise("tmp9x2/run.py"), "tmpNxN/run.py");
    }
}
