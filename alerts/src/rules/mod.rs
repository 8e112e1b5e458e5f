//! The rule file: `notifiers:` and `rules:` in YAML, read into a checked
//! [`RuleSet`]. Every error names the file, the line and the problem.

mod locate;
mod values;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

pub use values::{allows, parse_duration, Pattern, Secs, Threshold};

use crate::notify::{NotifierConfig, RawNotifier};
use crate::template::Template;

/// What a rule watches. The names are the `kind:` values of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Messages ready in a queue, per queue.
    QueueLength,
    /// p95 of sent → started over `window`, per queue (seconds).
    QueueWaitP95,
    /// failed / (succeeded + failed) over `window`, per task name.
    TaskFailureRate,
    /// p95 runtime of successful tasks over `window`, per task name (seconds).
    TaskRuntimeP95,
    /// Tasks in STARTED for longer than `older_than`, per task name.
    TaskStuckStarted,
    /// Seconds a known worker has been offline (0 while online), per worker.
    WorkerOffline,
    /// Messages ready in a queue that has no consumer, per queue.
    QueueUnconsumed,
    /// Workers online (matching `worker`), one instance.
    #[serde(alias = "workers_online_below")]
    WorkersOnline,
    /// Seconds since the last event was received, one instance.
    NoEvents,
    /// Malformed messages / all messages over `window`, one instance.
    MalformedRate,
    /// Events the broker dropped (TTL or length limit) over `window`.
    EventsLost,
    /// Tasks declared LOST over `window` (RECEIVED or STARTED on a worker
    /// whose heartbeats expired), per task name.
    TaskLost,
    /// Failures of a group first seen (or reopened) within `window`, per
    /// group: a bug not seen before.
    NewFailureGroup,
    /// Seconds the oldest task sent to a queue and not yet received by a
    /// worker has waited, per queue (from `task-sent` events).
    QueueLatency,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::QueueLength => "queue_length",
            Kind::QueueWaitP95 => "queue_wait_p95",
            Kind::TaskFailureRate => "task_failure_rate",
            Kind::TaskRuntimeP95 => "task_runtime_p95",
            Kind::TaskStuckStarted => "task_stuck_started",
            Kind::WorkerOffline => "worker_offline",
            Kind::QueueUnconsumed => "queue_unconsumed",
            Kind::WorkersOnline => "workers_online",
            Kind::NoEvents => "no_events",
            Kind::MalformedRate => "malformed_rate",
            Kind::EventsLost => "events_lost",
            Kind::TaskLost => "task_lost",
            Kind::NewFailureGroup => "new_failure_group",
            Kind::QueueLatency => "queue_latency",
        }
    }

    /// The label naming an instance of this kind, for kinds with one
    /// instance per queue, task name or worker.
    pub fn instance_label(self) -> Option<&'static str> {
        match self {
            Kind::QueueLength | Kind::QueueUnconsumed | Kind::QueueWaitP95 | Kind::QueueLatency => {
                Some("queue")
            }
            Kind::TaskFailureRate
            | Kind::TaskRuntimeP95
            | Kind::TaskStuckStarted
            | Kind::TaskLost => Some("task"),
            Kind::WorkerOffline => Some("worker"),
            Kind::NewFailureGroup => Some("fingerprint"),
            Kind::WorkersOnline | Kind::NoEvents | Kind::MalformedRate | Kind::EventsLost => None,
        }
    }

    /// Which matchers make sense: (queue, task, worker).
    fn matchers(self) -> (bool, bool, bool) {
        match self {
            Kind::QueueLength | Kind::QueueUnconsumed | Kind::QueueLatency => (true, false, false),
            Kind::QueueWaitP95 | Kind::TaskFailureRate | Kind::TaskRuntimeP95 | Kind::TaskLost => {
                (true, true, false)
            }
            Kind::TaskStuckStarted => (false, true, true),
            Kind::NewFailureGroup => (false, true, false),
            Kind::WorkerOffline | Kind::WorkersOnline => (false, false, true),
            Kind::NoEvents | Kind::MalformedRate | Kind::EventsLost => (false, false, false),
        }
    }

    fn windowed(self) -> bool {
        matches!(
            self,
            Kind::QueueWaitP95
                | Kind::TaskFailureRate
                | Kind::TaskRuntimeP95
                | Kind::MalformedRate
                | Kind::EventsLost
                | Kind::TaskLost
                | Kind::NewFailureGroup
        )
    }

    /// The threshold when none is written: "any at all" for kinds where that
    /// is the natural question.
    fn default_above(self) -> Option<f64> {
        match self {
            Kind::TaskStuckStarted | Kind::WorkerOffline | Kind::QueueUnconsumed => Some(0.0),
            Kind::EventsLost | Kind::TaskLost | Kind::NewFailureGroup => Some(0.0),
            _ => None,
        }
    }
}

/// How the value is compared with the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Above,
    Below,
}

/// The fraction of the threshold a value must move back past before a
/// pending or firing alert clears, when no `clear_below`/`clear_above` is
/// given: a value hovering around the threshold then does not flap.
pub const DEFAULT_HYSTERESIS: f64 = 0.05;
/// Window of the windowed kinds when none is given.
pub const DEFAULT_WINDOW_SECS: f64 = 300.0;
/// Tasks a failure rate needs in its window before it means anything.
pub const DEFAULT_MIN_TASKS: u64 = 10;
/// Messages a malformed rate needs in its window.
pub const DEFAULT_MIN_EVENTS: u64 = 100;

/// One checked rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub name: String,
    pub kind: Kind,
    pub queue: Option<Pattern>,
    pub task: Option<Pattern>,
    pub worker: Option<Pattern>,
    pub cmp: Cmp,
    pub threshold: f64,
    /// The value at which an active alert clears (hysteresis).
    pub clear: f64,
    pub for_secs: f64,
    pub repeat_secs: Option<f64>,
    pub window_secs: f64,
    pub min_count: u64,
    pub older_than_secs: f64,
    pub severity: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, Template>,
    /// Notifier names; every notifier of the file when the rule names none.
    pub notify: Vec<String>,
    /// 1-based line of the rule in its file.
    pub line: usize,
}

impl Rule {
    /// Whether `value` meets the condition (starts an alert).
    pub fn triggers(&self, value: f64) -> bool {
        match self.cmp {
            Cmp::Above => value > self.threshold,
            Cmp::Below => value < self.threshold,
        }
    }

    /// Whether `value` is far enough back to clear an active alert.
    pub fn clears(&self, value: f64) -> bool {
        match self.cmp {
            Cmp::Above => value <= self.clear,
            Cmp::Below => value >= self.clear,
        }
    }

    /// `queue_length{queue="default*"} > 1000 for 5m`.
    pub fn condition(&self) -> String {
        let mut sel = Vec::new();
        for (k, p) in [
            ("queue", &self.queue),
            ("task", &self.task),
            ("worker", &self.worker),
        ] {
            if let Some(p) = p {
                sel.push(format!("{k}=\"{}\"", p.text));
            }
        }
        let mut s = self.kind.as_str().to_owned();
        if !sel.is_empty() {
            s.push_str(&format!("{{{}}}", sel.join(",")));
        }
        if self.kind.windowed() {
            s.push_str(&format!("[{}]", human_secs(self.window_secs)));
        }
        if self.kind == Kind::TaskStuckStarted {
            s.push_str(&format!(" older than {}", human_secs(self.older_than_secs)));
        }
        let op = match self.cmp {
            Cmp::Above => ">",
            Cmp::Below => "<",
        };
        s.push_str(&format!(
            " {op} {}",
            crate::template::format_value(self.threshold)
        ));
        if self.for_secs > 0.0 {
            s.push_str(&format!(" for {}", human_secs(self.for_secs)));
        }
        s
    }
}

fn human_secs(s: f64) -> String {
    if s >= 1.0 && s.fract() == 0.0 {
        humantime::format_duration(std::time::Duration::from_secs(s as u64)).to_string()
    } else {
        format!("{s}s")
    }
}

/// A whole checked file.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    pub notifiers: Vec<NotifierConfig>,
    pub rules: Vec<Rule>,
}

/// Why a rule file was refused: `FILE:LINE: problem`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct LoadError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    notifiers: Vec<RawNotifier>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    kind: Kind,
    queue: Option<Pattern>,
    task: Option<Pattern>,
    worker: Option<Pattern>,
    above: Option<Threshold>,
    below: Option<Threshold>,
    clear_below: Option<Threshold>,
    clear_above: Option<Threshold>,
    #[serde(rename = "for")]
    for_: Option<Secs>,
    repeat: Option<Secs>,
    window: Option<Secs>,
    min_tasks: Option<u64>,
    min_events: Option<u64>,
    older_than: Option<Secs>,
    severity: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    notify: Option<Vec<String>>,
}

/// Reads and checks a rule file.
pub fn load_file(path: &Path) -> Result<RuleSet, LoadError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| LoadError {
        file: file.clone(),
        line: None,
        message: format!("cannot read the rule file: {e}"),
    })?;
    parse(&file, &text)
}

/// Checks rule-file `text`; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<RuleSet, LoadError> {
    let err = |line: Option<usize>, message: String| LoadError {
        file: file.to_owned(),
        line,
        message,
    };
    // An empty file is a valid, empty rule set (serde would say "EOF").
    let raw: RawFile = if text.trim().is_empty() {
        RawFile {
            notifiers: Vec::new(),
            rules: Vec::new(),
        }
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line());
            let mut message = e.to_string();
            if let Some(l) = e.location() {
                let suffix = format!(" at line {} column {}", l.line(), l.column());
                if let Some(stripped) = message.strip_suffix(&suffix) {
                    message = stripped.to_owned();
                }
            }
            if message.contains(".kind: unknown variant") {
                message = message.replacen("unknown variant", "unknown kind", 1);
            }
            err(line, message)
        })?
    };
    let lines = locate::Locator::new(text);

    // Checked one by one here rather than by serde, which would report a
    // bad entry at the `notifiers:` line.
    let mut notifiers = Vec::with_capacity(raw.notifiers.len());
    for (i, n) in raw.notifiers.into_iter().enumerate() {
        let line = n
            .kind_key()
            .and_then(|key| lines.field("notifiers", i, key))
            .or_else(|| lines.item("notifiers", i));
        let n =
            NotifierConfig::try_from(n).map_err(|e| err(line, format!("notifiers[{i}]: {e}")))?;
        notifiers.push(n);
    }
    let mut notifier_names = HashSet::new();
    for (i, n) in notifiers.iter().enumerate() {
        if !notifier_names.insert(n.name.as_str()) {
            return Err(err(
                lines.item("notifiers", i),
                format!("notifier `{}` is defined twice", n.name),
            ));
        }
    }

    let mut rules = Vec::with_capacity(raw.rules.len());
    let mut rule_names = HashSet::new();
    for (i, r) in raw.rules.into_iter().enumerate() {
        let line = lines.item("rules", i).unwrap_or(1);
        let at = |field: &str| Some(lines.field("rules", i, field).unwrap_or(line));
        let name = r.name.clone();
        let fail = |field: &str, msg: String| err(at(field), format!("rule `{name}`: {msg}"));
        if name.trim().is_empty() {
            return Err(err(Some(line), "a rule's `name` must not be empty".into()));
        }
        if !rule_names.insert(name.clone()) {
            return Err(fail("name", "another rule has this name".into()));
        }
        let kind = r.kind;
        let (q, t, w) = kind.matchers();
        for (field, given, allowed) in [
            ("queue", r.queue.is_some(), q),
            ("task", r.task.is_some(), t),
            ("worker", r.worker.is_some(), w),
        ] {
            if given && !allowed {
                return Err(fail(
                    field,
                    format!("`{field}` does not apply to kind `{}`", kind.as_str()),
                ));
            }
        }
        let (cmp, threshold) = match (r.above, r.below, kind.default_above()) {
            (Some(_), Some(_), _) => {
                return Err(fail("below", "give `above` or `below`, not both".into()))
            }
            (Some(a), None, _) => (Cmp::Above, a.0),
            (None, Some(b), _) => (Cmp::Below, b.0),
            (None, None, Some(d)) => (Cmp::Above, d),
            (None, None, None) => {
                return Err(fail(
                    "kind",
                    format!(
                        "missing threshold: kind `{}` needs `above: N` or `below: N`",
                        kind.as_str()
                    ),
                ))
            }
        };
        let band = threshold.abs() * DEFAULT_HYSTERESIS;
        let clear = match (cmp, r.clear_below, r.clear_above) {
            (_, Some(_), Some(_)) => {
                return Err(fail(
                    "clear_above",
                    "give `clear_below` or `clear_above`, not both".into(),
                ))
            }
            (Cmp::Above, Some(c), None) if c.0 > threshold => {
                return Err(fail(
                    "clear_below",
                    format!(
                        "`clear_below` ({}) must not be above `above` ({threshold})",
                        c.0
                    ),
                ))
            }
            (Cmp::Above, Some(c), None) => c.0,
            (Cmp::Below, None, Some(c)) if c.0 < threshold => {
                return Err(fail(
                    "clear_above",
                    format!(
                        "`clear_above` ({}) must not be below `below` ({threshold})",
                        c.0
                    ),
                ))
            }
            (Cmp::Below, None, Some(c)) => c.0,
            (Cmp::Above, None, Some(_)) => {
                return Err(fail(
                    "clear_above",
                    "`clear_above` goes with `below`; use `clear_below`".into(),
                ))
            }
            (Cmp::Below, Some(_), None) => {
                return Err(fail(
                    "clear_below",
                    "`clear_below` goes with `above`; use `clear_above`".into(),
                ))
            }
            (Cmp::Above, None, None) => threshold - band,
            (Cmp::Below, None, None) => threshold + band,
        };
        if r.window.is_some() && !kind.windowed() {
            return Err(fail(
                "window",
                format!("`window` does not apply to kind `{}`", kind.as_str()),
            ));
        }
        let window_secs = r.window.map_or(DEFAULT_WINDOW_SECS, |w| w.0);
        if window_secs <= 0.0 {
            return Err(fail("window", "`window` must be above zero".into()));
        }
        if r.min_tasks.is_some() && kind != Kind::TaskFailureRate {
            return Err(fail(
                "min_tasks",
                "`min_tasks` applies to `task_failure_rate` only".into(),
            ));
        }
        if r.min_events.is_some() && kind != Kind::MalformedRate {
            return Err(fail(
                "min_events",
                "`min_events` applies to `malformed_rate` only".into(),
            ));
        }
        let min_count = match kind {
            Kind::TaskFailureRate => r.min_tasks.unwrap_or(DEFAULT_MIN_TASKS),
            Kind::MalformedRate => r.min_events.unwrap_or(DEFAULT_MIN_EVENTS),
            _ => 0,
        };
        let older_than_secs = match (kind, r.older_than) {
            (Kind::TaskStuckStarted, Some(d)) if d.0 > 0.0 => d.0,
            (Kind::TaskStuckStarted, _) => {
                return Err(fail(
                    "older_than",
                    "kind `task_stuck_started` needs `older_than: DURATION` above zero".into(),
                ))
            }
            (_, Some(_)) => {
                return Err(fail(
                    "older_than",
                    "`older_than` applies to `task_stuck_started` only".into(),
                ))
            }
            (_, None) => 0.0,
        };
        if let Some(rep) = r.repeat {
            if rep.0 <= 0.0 {
                return Err(fail(
                    "repeat",
                    "`repeat` must be above zero (leave it out to never repeat)".into(),
                ));
            }
        }
        let notify = match r.notify {
            Some(list) => {
                for n in &list {
                    if !notifier_names.contains(n.as_str()) {
                        let known: Vec<&str> = notifiers.iter().map(|n| n.name.as_str()).collect();
                        return Err(fail(
                            "notify",
                            format!(
                                "unknown notifier `{n}` (defined: {})",
                                if known.is_empty() {
                                    "none".to_string()
                                } else {
                                    known.join(", ")
                                }
                            ),
                        ));
                    }
                }
                list
            }
            None => notifiers.iter().map(|n| n.name.clone()).collect(),
        };
        let mut annotations = BTreeMap::new();
        for (k, v) in r.annotations {
            let t = Template::parse(&v)
                .map_err(|e| fail("annotations", format!("annotation `{k}`: {e}")))?;
            annotations.insert(k, t);
        }
        rules.push(Rule {
            name,
            kind,
            queue: r.queue,
            task: r.task,
            worker: r.worker,
            cmp,
            threshold,
            clear,
            for_secs: r.for_.map_or(0.0, |d| d.0),
            repeat_secs: r.repeat.map(|d| d.0),
            window_secs,
            min_count,
            older_than_secs,
            severity: r.severity,
            labels: r.labels,
            annotations,
            notify,
            line,
        });
    }
    Ok(RuleSet { notifiers, rules })
}

#[cfg(test)]
mod tests;
