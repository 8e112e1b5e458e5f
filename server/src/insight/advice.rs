//! Capacity and routing advice: per queue, the load over a window against
//! the processes that serve it, read through the M/M/c model
//! (`queueing`), and what to change. Pure: the window's figures, the
//! workers and the target come in as arguments.
//!
//! The findings, and the rules that raise them:
//! - `no_workers`: tasks arrived in a queue that no live worker consumes
//!   (judged only when every live worker's queues are known).
//! - `under_capacity`: fewer processes consume the queue than keep
//!   `P(wait > target)` at or under [`WAIT_PROBABILITY`]; critical when
//!   the offered load reaches the processes (the backlog grows without
//!   bound).
//! - `near_time_limit`: a task type's runtime p95 within 10 % of the time
//!   limit its workers set (the soft one when set: it fires first).
//! - `route_slow_tasks`: a few slow types delay many fast ones. The slow
//!   ones are those whose runtime p95 is [`SLOW_FACTOR`] times the queue's
//!   median runtime or more; the rest must make most of the arrivals.
//!   Routing the slow ones away means a fast task never waits for every
//!   process to be held by a slow one (and, with prefetch, behind one in
//!   the same process).
//! - `route_fast_tasks`: the converse, a fast type (p95 at most a tenth of
//!   the queue's median runtime) in a queue of mostly slow tasks: promoted
//!   to a queue of its own it stops waiting behind them.
//!
//! The median runtime is the queue's, over every completed task, so it is
//! a runtime of the types that make most of the work's count; judging each
//! type against it, rather than against other types one by one, keeps a
//! queue of two similar types from being split.

use std::collections::{BTreeMap, BTreeSet};

use api::insight::{AdviceResponse, Finding, FindingKind, QueueCapacity, QueueTaskType, Severity};
use sketches_ddsketch::DDSketch;

use super::load::PairLoad;
use super::queueing;
use super::stats::{self, Window, SLOT_SECS};

/// `--advice-wait-target` by default, seconds.
pub const DEFAULT_WAIT_TARGET_SECS: f64 = 10.0;
/// The share of tasks allowed to wait longer than the target: the target
/// is a p95.
pub const WAIT_PROBABILITY: f64 = 0.05;
/// Completed tasks a queue needs in the window before its mean runtime
/// (and so anything the model says) is trusted.
pub const MIN_QUEUE_COMPLETED: u64 = 10;
/// Completed tasks a type needs before its p95 is judged.
pub const MIN_TYPE_COMPLETED: u64 = 5;
/// How much slower than the queue's median a type must be to be "slow"
/// (and a fast one how much faster).
pub const SLOW_FACTOR: f64 = 10.0;
/// "Within 10 % of its time limit".
pub const NEAR_LIMIT: f64 = 0.9;
/// Runtimes below this are compared as this: the ratio of two sub-
/// millisecond runtimes says nothing about routing.
const RUNTIME_FLOOR: f64 = 0.001;

/// A worker: what inspect says it consumes and how it is limited, and what
/// its heartbeats say of it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerCapacity {
    pub hostname: String,
    /// `None` until `inspect active_queues` answered.
    pub queues: Option<Vec<String>>,
    /// Pool processes; 0 when `inspect stats` has not said.
    pub processes: u64,
    pub soft_time_limit: Option<f64>,
    pub time_limit: Option<f64>,
    pub alive: bool,
    /// Tasks running at its last heartbeat.
    pub active: Option<u64>,
}

/// Everything the advice is computed from.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub window: Window,
    /// Seconds the window covers.
    pub covered: f64,
    pub pairs: &'a [PairLoad],
    pub workers: &'a [WorkerCapacity],
    /// The observed sent → started p95 per queue.
    pub observed_wait_p95: &'a BTreeMap<String, f64>,
    /// The p95 wait to stay under, seconds.
    pub wait_target: f64,
}

/// One queue while it is being judged.
struct Queue<'a> {
    cap: QueueCapacity,
    types: Vec<&'a PairLoad>,
    consumers: Vec<&'a WorkerCapacity>,
}

pub fn advise(i: &Inputs<'_>) -> AdviceResponse {
    let rate_secs = i.covered.max(SLOT_SECS);
    let live: Vec<&WorkerCapacity> = i.workers.iter().filter(|w| w.alive).collect();
    // "No worker consumes it" is only said when every live worker has told
    // what it consumes.
    let consumers_known = live.iter().all(|w| w.queues.is_some());

    let mut names: BTreeSet<&str> = i.pairs.iter().map(|p| p.queue.as_str()).collect();
    for w in &live {
        for q in w.queues.iter().flatten() {
            if !crate::broker::is_internal(q) {
                names.insert(q);
            }
        }
    }
    let queues: Vec<Queue<'_>> = names
        .into_iter()
        .map(|name| queue(i, name, &live, rate_secs))
        .collect();

    let mut findings = Vec::new();
    for q in &queues {
        findings.extend(no_workers(i, q, consumers_known));
        findings.extend(under_capacity(i, q));
        findings.extend(
            q.cap
                .task_types
                .iter()
                .filter_map(|t| near_time_limit(q, t)),
        );
        findings.extend(route_slow(i, q));
        findings.extend(route_fast(i, q));
    }
    findings.sort_by(|a, b| {
        (a.severity, a.kind, &a.queue, &a.tasks).cmp(&(b.severity, b.kind, &b.queue, &b.tasks))
    });
    AdviceResponse {
        window: i.window.as_str().to_owned(),
        window_seconds: i.covered,
        wait_target: i.wait_target,
        wait_probability: WAIT_PROBABILITY,
        min_completed: MIN_QUEUE_COMPLETED,
        findings,
        queues: queues.into_iter().map(|q| q.cap).collect(),
    }
}

fn quantile(s: &DDSketch, q: f64) -> Option<f64> {
    s.quantile(q).ok().flatten()
}

fn mean(s: &DDSketch) -> Option<f64> {
    let n = s.count();
    s.sum().filter(|_| n > 0).map(|sum| sum / n as f64)
}

fn min_limit(ws: &[&WorkerCapacity], pick: fn(&WorkerCapacity) -> Option<f64>) -> Option<f64> {
    ws.iter().filter_map(|w| pick(w)).reduce(f64::min)
}

fn queue<'a>(i: &Inputs<'a>, name: &str, live: &[&'a WorkerCapacity], rate_secs: f64) -> Queue<'a> {
    let types: Vec<&PairLoad> = i.pairs.iter().filter(|p| p.queue == name).collect();
    let consumers: Vec<&WorkerCapacity> = live
        .iter()
        .copied()
        .filter(|w| w.queues.iter().flatten().any(|q| q == name))
        .collect();
    let mut all = stats::sketch();
    for t in &types {
        // Same configuration on both sides: cannot fail.
        let _ = all.merge(&t.runtime);
    }
    let arrived: u64 = types.iter().map(|t| t.arrived).sum();
    let completed: u64 = types.iter().map(|t| t.completed).sum();
    let arrival_rate = arrived as f64 / rate_secs;
    let runtime_mean = mean(&all);
    // The model needs a mean it can trust.
    let mean_service =
        runtime_mean.filter(|m| *m > 0.0 && all.count() as u64 >= MIN_QUEUE_COMPLETED);
    let processes: u64 = consumers.iter().map(|w| w.processes).sum();
    let processes = (processes > 0).then_some(processes);
    let busy = consumers
        .iter()
        .filter_map(|w| w.active)
        .reduce(|a, b| a + b);
    let offered_load = mean_service.map(|m| arrival_rate * m);
    let total_runtime = all.sum().unwrap_or(0.0);
    let soft = min_limit(&consumers, |w| w.soft_time_limit);
    let hard = min_limit(&consumers, |w| w.time_limit);
    let task_types = types
        .iter()
        .map(|t| QueueTaskType {
            name: t.name.clone(),
            arrived: t.arrived,
            arrival_rate: t.arrived as f64 / rate_secs,
            completed: t.completed,
            runtime_mean: mean(&t.runtime),
            runtime_p50: quantile(&t.runtime, 0.5),
            runtime_p95: quantile(&t.runtime, 0.95),
            work_share: (total_runtime > 0.0)
                .then(|| t.runtime.sum().unwrap_or(0.0) / total_runtime),
            soft_time_limit: soft,
            time_limit: hard,
        })
        .collect();
    let cap = QueueCapacity {
        name: name.to_owned(),
        arrived,
        arrival_rate,
        completed,
        completion_rate: completed as f64 / rate_secs,
        runtime_mean,
        runtime_p50: quantile(&all, 0.5),
        runtime_p95: quantile(&all, 0.95),
        service_rate: runtime_mean.filter(|m| *m > 0.0).map(|m| 1.0 / m),
        offered_load,
        workers: consumers.iter().map(|w| w.hostname.clone()).collect(),
        processes,
        busy,
        utilisation: offered_load.zip(processes).map(|(a, c)| a / c as f64),
        processes_needed: mean_service.and_then(|m| {
            queueing::processes_needed(arrival_rate, m, i.wait_target, WAIT_PROBABILITY)
        }),
        wait_over_target: mean_service
            .zip(processes)
            .map(|(m, c)| queueing::wait_exceeds(c, arrival_rate, m, i.wait_target)),
        observed_wait_p95: i.observed_wait_p95.get(name).copied(),
        task_types,
    };
    Queue {
        cap,
        types,
        consumers,
    }
}

fn no_workers(i: &Inputs<'_>, q: &Queue<'_>, consumers_known: bool) -> Option<Finding> {
    let c = &q.cap;
    if !consumers_known || !q.consumers.is_empty() || c.arrived == 0 {
        return None;
    }
    let n = c.processes_needed.filter(|n| *n > 1);
    let mut start = format!("celery -A <app> worker -Q {}", c.name);
    if let Some(n) = n {
        start.push_str(&format!(" -c {n}"));
    }
    Some(Finding {
        kind: FindingKind::NoWorkers,
        severity: Severity::Critical,
        queue: c.name.clone(),
        tasks: Vec::new(),
        summary: format!(
            "{} tasks arrived in `{}` over {} ({}) and no live worker consumes it: they wait in the broker until one does.",
            c.arrived,
            c.name,
            span(i),
            rate(c.arrival_rate),
        ),
        action: "Start a worker on the queue, or make running workers consume it too.".into(),
        snippets: vec![start, format!("celery -A <app> control add_consumer {}", c.name)],
    })
}

fn under_capacity(i: &Inputs<'_>, q: &Queue<'_>) -> Option<Finding> {
    let c = &q.cap;
    let have = c.processes?;
    let (mean, a, u) = (c.runtime_mean?, c.offered_load?, c.utilisation?);
    let need = c.processes_needed;
    if need.is_some_and(|n| n <= have) || c.arrived == 0 {
        return None;
    }
    let severity = if u >= 1.0 {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let target = secs(i.wait_target);
    let mut summary = format!(
        "Tasks arrive in `{}` at {} with a mean runtime of {} (p95 {}): {:.1} processes' worth of work for {have} processes (utilisation {}).",
        c.name,
        rate(c.arrival_rate),
        secs(mean),
        c.runtime_p95.map_or("–".into(), secs),
        a,
        pct(u),
    );
    if u >= 1.0 {
        summary.push_str(
            " Tasks arrive faster than they complete, so the backlog grows without bound.",
        );
    } else if let Some(p) = c.wait_over_target {
        summary.push_str(&format!(
            " By M/M/c, {} of tasks wait longer than {target};",
            pct(p)
        ));
    }
    match need {
        Some(n) => summary.push_str(&format!(" {n} processes keep the p95 wait under {target}.")),
        None => summary.push_str(&format!(
            " Even {} processes would not keep the p95 wait under {target}.",
            queueing::MAX_PROCESSES
        )),
    }
    if let Some(w) = c.observed_wait_p95 {
        summary.push_str(&format!(" Observed p95 wait: {}.", secs(w)));
    }
    let (action, snippets) = match need {
        Some(n) => {
            let more = n - have;
            let mut snippets = vec![format!("celery -A <app> worker -Q {} -c {more}", c.name)];
            let action = match q.consumers.as_slice() {
                [only] => {
                    snippets.push(format!(
                        "celery -A <app> worker -Q {} --autoscale={n},{have}",
                        c.name
                    ));
                    format!(
                        "Run {n} processes on `{}`: start another worker with {more} (first line), or restart {} to grow from {have} to {n} under load (second line).",
                        c.name, only.hostname
                    )
                }
                _ => format!(
                    "Run {n} processes on `{}`: start another worker with {more}.",
                    c.name
                ),
            };
            (action, snippets)
        }
        None => (
            format!(
                "Make the tasks of `{}` cheaper or split the queue: no number of processes meets the target.",
                c.name
            ),
            Vec::new(),
        ),
    };
    Some(Finding {
        kind: FindingKind::UnderCapacity,
        severity,
        queue: c.name.clone(),
        tasks: Vec::new(),
        summary,
        action,
        snippets,
    })
}

fn near_time_limit(q: &Queue<'_>, t: &QueueTaskType) -> Option<Finding> {
    if t.completed < MIN_TYPE_COMPLETED {
        return None;
    }
    let p95 = t.runtime_p95?;
    // The soft limit fires first (SoftTimeLimitExceeded in the task); a
    // soft limit above the hard one never fires.
    let (limit, setting) = match (t.soft_time_limit, t.time_limit) {
        (Some(s), Some(h)) if s < h => (s, "task_soft_time_limit"),
        (_, Some(h)) => (h, "task_time_limit"),
        (Some(s), None) => (s, "task_soft_time_limit"),
        (None, None) => return None,
    };
    let ratio = p95 / limit;
    if ratio < NEAR_LIMIT {
        return None;
    }
    let severity = if ratio >= 1.0 {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let soft = ceil_secs(2.0 * p95);
    let limits = match (t.soft_time_limit, t.time_limit) {
        (Some(s), Some(h)) if s < h => {
            let hard = ceil_secs(soft * h / s).max(soft + 1.0);
            format!("'soft_time_limit': {soft}, 'time_limit': {hard}")
        }
        (_, Some(_)) => format!("'time_limit': {soft}"),
        _ => format!("'soft_time_limit': {soft}"),
    };
    let workers = q
        .consumers
        .iter()
        .map(|w| w.hostname.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Some(Finding {
        kind: FindingKind::NearTimeLimit,
        severity,
        queue: q.cap.name.clone(),
        tasks: vec![t.name.clone()],
        summary: format!(
            "`{}` in `{}` has a runtime p95 of {}, {} of the {} {} of its workers ({workers}): {}",
            t.name,
            q.cap.name,
            secs(p95),
            pct(ratio),
            secs(limit),
            setting,
            if ratio >= 1.0 {
                "more than one run in twenty reaches the limit."
            } else {
                "one run in twenty comes within 10 % of the limit."
            },
        ),
        action: format!(
            "Give `{}` a limit of its own about twice its p95 (or make it faster, or split it); a per-task limit leaves the worker's for the others.",
            t.name
        ),
        snippets: vec![format!(
            "app.conf.task_annotations = {{{}: {{{limits}}}}}",
            py_str(&t.name)
        )],
    })
}

/// The types of `q` with enough completions to be judged, and the queue's
/// median runtime (floored), when the queue has enough of them.
fn judged<'a>(q: &'a Queue<'_>) -> Option<(Vec<&'a QueueTaskType>, f64)> {
    let c = &q.cap;
    if c.completed < MIN_QUEUE_COMPLETED || q.types.len() < 2 {
        return None;
    }
    let p50 = c.runtime_p50?.max(RUNTIME_FLOOR);
    let types = c
        .task_types
        .iter()
        .filter(|t| t.completed >= MIN_TYPE_COMPLETED && t.runtime_p95.is_some())
        .collect();
    Some((types, p50))
}

/// Arrivals, or completions when no arrival was seen (the window began
/// after they arrived).
fn volume(t: &QueueTaskType) -> u64 {
    if t.arrived > 0 {
        t.arrived
    } else {
        t.completed
    }
}

/// Warning when the queue misses the target (by the model or as observed),
/// or when the types concerned take half of its processing time.
fn routing_severity(i: &Inputs<'_>, c: &QueueCapacity, work: f64) -> Severity {
    let missed = c.wait_over_target.is_some_and(|p| p > WAIT_PROBABILITY)
        || c.observed_wait_p95.is_some_and(|w| w > i.wait_target);
    if missed || work >= 0.5 {
        Severity::Warning
    } else {
        Severity::Info
    }
}

/// The lines that move `types` to `target` and serve it with enough
/// processes for their load.
fn route(i: &Inputs<'_>, types: &[&QueueTaskType], target: &str) -> Vec<String> {
    let routes = types
        .iter()
        .map(|t| format!("{}: {{'queue': {}}}", py_str(&t.name), py_str(target)))
        .collect::<Vec<_>>()
        .join(", ");
    let lambda: f64 = types.iter().map(|t| t.arrival_rate).sum();
    let work: f64 = types
        .iter()
        .map(|t| t.arrival_rate * t.runtime_mean.unwrap_or(0.0))
        .sum();
    let mut worker = format!("celery -A <app> worker -Q {target}");
    if lambda > 0.0 && work > 0.0 {
        let n = queueing::processes_needed(lambda, work / lambda, i.wait_target, WAIT_PROBABILITY);
        if let Some(n) = n {
            worker.push_str(&format!(" -c {n}"));
        }
    }
    vec![format!("app.conf.task_routes = {{{routes}}}"), worker]
}

fn route_slow(i: &Inputs<'_>, q: &Queue<'_>) -> Option<Finding> {
    let (types, p50) = judged(q)?;
    let slow: Vec<&QueueTaskType> = types
        .iter()
        .copied()
        .filter(|t| t.runtime_p95.is_some_and(|p| p >= SLOW_FACTOR * p50))
        .collect();
    let c = &q.cap;
    let total: u64 = c.task_types.iter().map(volume).sum();
    let slow_volume: u64 = slow.iter().map(|t| volume(t)).sum();
    // A few slow types among many fast tasks: the others must be most of
    // the arrivals, and there must be others.
    if slow.is_empty() || slow.len() == c.task_types.len() || 2 * slow_volume >= total {
        return None;
    }
    let work: f64 = slow.iter().filter_map(|t| t.work_share).sum();
    let target = format!("{}.slow", c.name);
    let described = slow
        .iter()
        .map(|t| format!("`{}` (p95 {})", t.name, secs(t.runtime_p95.unwrap_or(0.0))))
        .collect::<Vec<_>>()
        .join(", ");
    let slow_share = slow_volume as f64 / total as f64;
    let one = slow.len() == 1;
    let median = c.runtime_p50.unwrap_or(0.0);
    let held = c
        .processes
        .map_or(String::new(), |p| format!(" ({p} here)"));
    Some(Finding {
        kind: FindingKind::RouteSlowTasks,
        severity: routing_severity(i, c, work),
        queue: c.name.clone(),
        tasks: slow.iter().map(|t| t.name.clone()).collect(),
        summary: format!(
            "In `{}`, {described} {} {} the queue's median runtime ({}) and {} {} of its processing time while making {} of its arrivals; the other {} of arrivals wait behind {} whenever {} every process{held}.",
            c.name,
            if one { "runs" } else { "run" },
            times(slow.iter().filter_map(|t| t.runtime_p95).fold(f64::INFINITY, f64::min), median),
            secs(median),
            if one { "takes" } else { "take" },
            pct(work),
            pct(slow_share),
            pct(1.0 - slow_share),
            if one { "it" } else { "them" },
            if one { "its runs hold" } else { "they hold" },
        ),
        action: format!(
            "Route the slow {} to a queue of {} own, `{target}`, served by workers of its own, so fast tasks never wait for {}.",
            if one { "type" } else { "types" },
            if one { "its" } else { "their" },
            if one { "it" } else { "them" },
        ),
        snippets: route(i, &slow, &target),
    })
}

fn route_fast(i: &Inputs<'_>, q: &Queue<'_>) -> Option<Finding> {
    let (types, p50) = judged(q)?;
    let fast: Vec<&QueueTaskType> = types
        .iter()
        .copied()
        .filter(|t| {
            t.runtime_p95
                .is_some_and(|p| p.max(RUNTIME_FLOOR) * SLOW_FACTOR <= p50)
        })
        .collect();
    if fast.is_empty() {
        return None;
    }
    let c = &q.cap;
    let total: u64 = c.task_types.iter().map(volume).sum();
    let fast_volume: u64 = fast.iter().map(|t| volume(t)).sum();
    let work: f64 = 1.0 - fast.iter().filter_map(|t| t.work_share).sum::<f64>();
    let target = format!("{}.fast", c.name);
    let described = fast
        .iter()
        .map(|t| format!("`{}` (p95 {})", t.name, secs(t.runtime_p95.unwrap_or(0.0))))
        .collect::<Vec<_>>()
        .join(", ");
    Some(Finding {
        kind: FindingKind::RouteFastTasks,
        severity: routing_severity(i, c, work),
        queue: c.name.clone(),
        tasks: fast.iter().map(|t| t.name.clone()).collect(),
        summary: format!(
            "{described} {} in `{}`, a queue of slow tasks (median runtime {}, {} longer); {} {} of its arrivals and {} behind them whenever they hold every process.",
            if fast.len() == 1 { "sits" } else { "sit" },
            c.name,
            secs(p50),
            times(p50, fast.iter().filter_map(|t| t.runtime_p95).fold(0.0, f64::max)),
            if fast.len() == 1 { "it makes" } else { "they make" },
            pct(fast_volume as f64 / total.max(1) as f64),
            if fast.len() == 1 { "waits" } else { "wait" },
        ),
        action: format!(
            "Promote the fast {} to a queue of {} own, `{target}`, with a worker of its own: proven-fast tasks then start at once.",
            if fast.len() == 1 { "type" } else { "types" },
            if fast.len() == 1 { "its" } else { "their" },
        ),
        snippets: route(i, &fast, &target),
    })
}

/// The window as a phrase: its length, or the time since start when that
/// is shorter.
fn span(i: &Inputs<'_>) -> String {
    let full = i.window.minutes().unwrap_or(60) as f64 * SLOT_SECS;
    if i.covered + 1.0 >= full {
        match i.window {
            Window::FiveMinutes => "the last 5 minutes".into(),
            _ => "the last hour".into(),
        }
    } else {
        format!("the {} since celeriac started", secs(i.covered))
    }
}

/// Seconds for humans: "68 µs", "850 ms", "2.50 s", "45 s", "4.2 min", "1.5 h".
pub fn secs(s: f64) -> String {
    if s < 0.001 {
        format!("{:.0} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 10.0 {
        format!("{s:.2} s")
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

fn pct(x: f64) -> String {
    let p = x * 100.0;
    // Never "0 %" or "100 %" for what is not.
    if (p > 0.0 && p < 1.0) || (p > 99.0 && p < 100.0) {
        format!("{p:.1} %")
    } else {
        format!("{p:.0} %")
    }
}

fn rate(per_s: f64) -> String {
    if per_s >= 10.0 {
        format!("{per_s:.0}/s")
    } else if per_s >= 1.0 {
        format!("{per_s:.1}/s")
    } else {
        format!("{per_s:.2}/s")
    }
}

/// How many times `slow` is `fast`, as a phrase: "180×", "over 1000×".
fn times(slow: f64, fast: f64) -> String {
    let r = slow / fast;
    if !r.is_finite() || r >= 1000.0 {
        "over 1000×".into()
    } else {
        format!("{r:.0}×")
    }
}

/// Whole seconds, rounded up, at least 1.
fn ceil_secs(s: f64) -> f64 {
    s.ceil().max(1.0)
}

/// A Python string literal.
fn py_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: f64 = 10.0;

    /// A pair with `arrived` arrivals and one completion per runtime.
    fn pair(queue: &str, name: &str, arrived: u64, runtimes: &[f64]) -> PairLoad {
        let mut runtime = stats::sketch();
        for r in runtimes {
            runtime.add(*r);
        }
        PairLoad {
            queue: queue.into(),
            name: name.into(),
            arrived,
            completed: runtimes.len() as u64,
            runtime,
        }
    }

    fn worker(hostname: &str, queues: &[&str], processes: u64) -> WorkerCapacity {
        WorkerCapacity {
            hostname: hostname.into(),
            queues: Some(queues.iter().map(|q| q.to_string()).collect()),
            processes,
            soft_time_limit: None,
            time_limit: None,
            alive: true,
            active: Some(0),
        }
    }

    fn advise_over(pairs: &[PairLoad], workers: &[WorkerCapacity]) -> AdviceResponse {
        advise(&Inputs {
            window: Window::FiveMinutes,
            covered: 300.0,
            pairs,
            workers,
            observed_wait_p95: &BTreeMap::new(),
            wait_target: TARGET,
        })
    }

    fn kinds(a: &AdviceResponse) -> Vec<(FindingKind, &str, Vec<&str>)> {
        a.findings
            .iter()
            .map(|f| {
                (
                    f.kind,
                    f.queue.as_str(),
                    f.tasks.iter().map(String::as_str).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn the_queue_figures_follow_from_the_window() {
        // 300 s: 600 arrivals (2/s) of 1.5 s mean on 4 processes.
        let runtimes: Vec<f64> = (0..600)
            .map(|i| if i % 2 == 0 { 1.0 } else { 2.0 })
            .collect();
        let mut w = worker("w1", &["q"], 4);
        w.active = Some(3);
        let a = advise_over(&[pair("q", "t.job", 600, &runtimes)], &[w]);
        let q = &a.queues[0];
        assert_eq!((q.arrived, q.completed), (600, 600));
        assert!((q.arrival_rate - 2.0).abs() < 1e-9);
        assert!((q.runtime_mean.unwrap() - 1.5).abs() < 1e-9);
        assert!((q.service_rate.unwrap() - 1.0 / 1.5).abs() < 1e-9);
        assert!((q.offered_load.unwrap() - 3.0).abs() < 1e-9);
        assert!((q.utilisation.unwrap() - 0.75).abs() < 1e-9);
        assert_eq!((q.processes, q.busy), (Some(4), Some(3)));
        assert_eq!(q.workers, ["w1"]);
        // The model's answer, checked against its own formula.
        let n = q.processes_needed.unwrap();
        assert_eq!(Some(n), queueing::processes_needed(2.0, 1.5, TARGET, 0.05));
        let p = q.wait_over_target.unwrap();
        assert!((p - queueing::wait_exceeds(4, 2.0, 1.5, TARGET)).abs() < 1e-12);
        assert_eq!(a.wait_probability, WAIT_PROBABILITY);
    }

    #[test]
    fn too_few_processes_is_under_capacity_and_an_overload_is_critical() {
        // 3/s of 1 s on 2 processes: a = 3 > 2.
        let runtimes = vec![1.0; 100];
        let a = advise_over(
            &[pair("q", "t", 900, &runtimes)],
            &[worker("w1", &["q"], 2)],
        );
        let f = &a.findings[0];
        assert_eq!(
            (f.kind, f.severity),
            (FindingKind::UnderCapacity, Severity::Critical)
        );
        let need = a.queues[0].processes_needed.unwrap();
        assert!(need > 3, "{need}");
        assert!(f.summary.contains("grows without bound"), "{}", f.summary);
        assert_eq!(
            f.snippets,
            [
                format!("celery -A <app> worker -Q q -c {}", need - 2),
                format!("celery -A <app> worker -Q q --autoscale={need},2"),
            ]
        );
        // The same load on enough processes: nothing to say.
        let a = advise_over(
            &[pair("q", "t", 900, &runtimes)],
            &[worker("w1", &["q"], 8)],
        );
        assert!(a.findings.is_empty(), "{:#?}", a.findings);
        // 0.15/s of 20 s (a = 3) on 4 processes: stable, but by Erlang C
        // (C(4, 3) = 27/53) 31 % wait over 10 s; 6 processes bring it to
        // 2.2 %, 5 leave 8.7 %.
        let slow = vec![20.0; 20];
        let a = advise_over(&[pair("q", "t", 45, &slow)], &[worker("w1", &["q"], 4)]);
        let f = &a.findings[0];
        assert_eq!(
            (f.kind, f.severity),
            (FindingKind::UnderCapacity, Severity::Warning)
        );
        assert_eq!(a.queues[0].processes_needed, Some(6));
        assert!(
            f.summary.contains("31 % of tasks wait longer than 10 s"),
            "{}",
            f.summary
        );
    }

    #[test]
    fn too_few_completions_say_nothing_about_capacity() {
        let a = advise_over(
            &[pair("q", "t", 900, &[1.0; 3])],
            &[worker("w1", &["q"], 1)],
        );
        assert_eq!(a.queues[0].processes_needed, None);
        assert!(a.findings.is_empty());
    }

    #[test]
    fn a_queue_without_a_live_consumer() {
        let pairs = [pair("orphan", "t", 5, &[])];
        let a = advise_over(&pairs, &[worker("w1", &["celery"], 2)]);
        assert_eq!(kinds(&a), [(FindingKind::NoWorkers, "orphan", vec![])]);
        assert_eq!(a.findings[0].severity, Severity::Critical);
        // The consumer is dead: still none.
        let mut dead = worker("w1", &["orphan"], 2);
        dead.alive = false;
        assert_eq!(advise_over(&pairs, &[dead]).findings.len(), 1);
        // A live worker that has not said what it consumes: unknown.
        let mut unknown = worker("w2", &[], 2);
        unknown.queues = None;
        assert!(
            advise_over(&pairs, &[worker("w1", &["celery"], 2), unknown])
                .findings
                .is_empty()
        );
        // Listed with the workers' queues, internal ones left out.
        let a = advise_over(
            &pairs,
            &[worker("w1", &["celery", "w1.dq2", "celeryev.x"], 2)],
        );
        let names: Vec<&str> = a.queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["celery", "orphan", "w1.dq2"]);
    }

    #[test]
    fn a_runtime_near_the_time_limit() {
        let mut w = worker("w1", &["q"], 8);
        w.soft_time_limit = Some(20.0);
        w.time_limit = Some(30.0);
        let near: Vec<f64> = (0..20).map(|i| 10.0 + i as f64 * 0.5).collect(); // p95 ≈ 19 s
        let far = vec![1.0; 20];
        let a = advise_over(
            &[pair("q", "t.near", 1, &near), pair("q", "t.far", 1, &far)],
            &[w.clone()],
        );
        let f: Vec<_> = a
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::NearTimeLimit)
            .collect();
        assert_eq!(f.len(), 1, "{:#?}", a.findings);
        assert_eq!(
            (f[0].tasks.as_slice(), f[0].severity),
            (&["t.near".to_string()][..], Severity::Warning)
        );
        assert!(
            f[0].summary.contains("task_soft_time_limit"),
            "{}",
            f[0].summary
        );
        // Twice the p95, the hard limit keeping its ratio to the soft one.
        let p95 = a.queues[0]
            .task_types
            .iter()
            .find(|t| t.name == "t.near")
            .and_then(|t| t.runtime_p95)
            .unwrap();
        assert!((p95 - 19.0).abs() <= 0.19, "{p95}");
        let soft: f64 = (2.0 * p95).ceil();
        assert_eq!(
            f[0].snippets,
            [format!(
                "app.conf.task_annotations = {{'t.near': {{'soft_time_limit': {soft}, 'time_limit': {}}}}}",
                (soft * 1.5).ceil()
            )]
        );
        // Past the limit: critical. Only a hard limit: that one.
        w.soft_time_limit = None;
        w.time_limit = Some(18.0);
        let a = advise_over(&[pair("q", "t.near", 1, &near)], &[w]);
        let f = &a.findings[0];
        assert_eq!(
            (f.kind, f.severity),
            (FindingKind::NearTimeLimit, Severity::Critical)
        );
        assert!(f.summary.contains("task_time_limit"), "{}", f.summary);
    }

    #[test]
    fn a_few_slow_types_among_many_fast_ones_are_routed_away() {
        // 200 fast tasks of ~5 ms and 6 of 1.5 s in `celery`, 2 processes.
        let fast: Vec<f64> = (0..200).map(|i| 0.004 + (i % 5) as f64 * 0.0005).collect();
        let slow = vec![1.5; 6];
        let pairs = [
            pair("celery", "tasks.add", 200, &fast),
            pair("celery", "tasks.sleep", 6, &slow),
        ];
        let a = advise_over(&pairs, &[worker("w1", &["celery"], 2)]);
        assert_eq!(
            kinds(&a),
            [(FindingKind::RouteSlowTasks, "celery", vec!["tasks.sleep"])]
        );
        let f = &a.findings[0];
        // 9 s of 10 s of processing time: a warning.
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.summary.contains("`tasks.sleep` (p95 1."), "{}", f.summary);
        assert_eq!(
            f.snippets[0],
            "app.conf.task_routes = {'tasks.sleep': {'queue': 'celery.slow'}}"
        );
        assert!(
            f.snippets[1].starts_with("celery -A <app> worker -Q celery.slow -c "),
            "{:?}",
            f.snippets
        );
    }

    #[test]
    fn similar_types_or_mostly_slow_arrivals_are_not_split_that_way() {
        // Two types of similar runtimes.
        let pairs = [
            pair("q", "a", 50, &[0.1; 50]),
            pair("q", "b", 50, &[0.5; 50]),
        ];
        assert!(advise_over(&pairs, &[worker("w1", &["q"], 4)])
            .findings
            .is_empty());
        // Slow tasks are most of the queue: the fast one is promoted out.
        let pairs = [
            pair("q", "t.ping", 10, &[0.01; 10]),
            pair("q", "t.report", 40, &[5.0; 40]),
        ];
        let a = advise_over(&pairs, &[worker("w1", &["q"], 8)]);
        assert_eq!(
            kinds(&a),
            [(FindingKind::RouteFastTasks, "q", vec!["t.ping"])]
        );
        assert_eq!(
            a.findings[0].snippets[0],
            "app.conf.task_routes = {'t.ping': {'queue': 'q.fast'}}"
        );
        // A type with too few completions is not judged.
        let pairs = [
            pair("q", "t.add", 100, &[0.005; 100]),
            pair("q", "t.sleep", 3, &[1.5; 3]),
        ];
        assert!(advise_over(&pairs, &[worker("w1", &["q"], 2)])
            .findings
            .is_empty());
    }

    #[test]
    fn findings_are_ordered_by_severity_kind_queue_and_tasks() {
        let mut w = worker("w1", &["a", "b"], 1);
        w.time_limit = Some(1.0);
        let fast: Vec<f64> = vec![0.005; 100];
        let pairs = [
            pair("a", "t.add", 100, &fast),
            pair("a", "t.slow", 5, &[0.95; 5]),
            pair("b", "t.add", 100, &fast),
            pair("b", "t.slow", 5, &[0.95; 5]),
            pair("z", "t.x", 1, &[]),
        ];
        let a = advise_over(&pairs, &[w]);
        let got: Vec<_> = a
            .findings
            .iter()
            .map(|f| (f.severity, f.kind, f.queue.as_str()))
            .collect();
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(got, sorted);
        assert_eq!(got[0], (Severity::Critical, FindingKind::NoWorkers, "z"));
        assert!(got.contains(&(Severity::Warning, FindingKind::NearTimeLimit, "a")));
        assert!(got
            .iter()
            .any(|g| g.1 == FindingKind::RouteSlowTasks && g.2 == "b"));
        // The same inputs, the same answer.
        assert_eq!(
            advise_over(
                &pairs,
                &[{
                    let mut w = worker("w1", &["a", "b"], 1);
                    w.time_limit = Some(1.0);
                    w
                }]
            ),
            a
        );
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(secs(0.000068), "68 µs");
        assert_eq!(secs(0.0123), "12 ms");
        assert_eq!(secs(1.5), "1.50 s");
        assert_eq!(secs(45.0), "45 s");
        assert_eq!(secs(300.0), "5.0 min");
        assert_eq!(pct(0.934), "93 %");
        assert_eq!(pct(0.004), "0.4 %");
        assert_eq!(pct(0.9986), "99.9 %");
        assert_eq!(pct(1.0), "100 %");
        assert_eq!(times(1.84, 0.000068), "over 1000×");
        assert_eq!(times(1.8, 0.01), "180×");
        assert_eq!(rate(0.5), "0.50/s");
        assert_eq!(py_str("it's"), r"'it\'s'");
    }
}
