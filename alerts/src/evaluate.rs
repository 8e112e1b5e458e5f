//! Per kind: the instances a rule currently sees and their values. Pure
//! functions of the inputs and the counter history.

use std::collections::{BTreeMap, HashMap};

use crate::inputs::Hist;
use crate::inputs::Inputs;
use crate::rules::{allows, Kind, Rule};
use crate::window::{quantile, Counters, History, Sample};

/// Labels of a notification or an instance.
pub type Labels = BTreeMap<String, String>;

/// One instance's value. The instance is the name of the queue, task or
/// worker ([`Kind::instance_label`] says which), or `""` for the kinds with
/// a single instance; labels are only built when a notification needs them.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation<'a> {
    pub instance: &'a str,
    pub value: f64,
}

/// The instances of `rule` and their values. An instance that is not
/// returned has no value now (its object is gone, or a windowed rate has
/// too few samples); an active alert for it clears.
pub fn observe<'a>(
    rule: &Rule,
    inputs: &'a Inputs,
    now_sample: &'a Sample,
    history: &History,
    windows: &Windows,
) -> Vec<Observation<'a>> {
    let now = inputs.now;
    match rule.kind {
        Kind::QueueLength | Kind::QueueUnconsumed => {
            let Some(queues) = &inputs.queues else {
                return Vec::new();
            };
            queues
                .iter()
                .filter(|q| allows(&rule.queue, &q.name))
                .filter_map(|q| {
                    let value = if rule.kind == Kind::QueueLength {
                        q.ready as f64
                    } else {
                        match q.consumers {
                            Some(0) => q.ready as f64,
                            Some(_) => 0.0,
                            None => return None,
                        }
                    };
                    Some(Observation {
                        instance: &q.name,
                        value,
                    })
                })
                .collect()
        }
        Kind::QueueWaitP95 | Kind::TaskFailureRate | Kind::TaskRuntimeP95 | Kind::TaskLost => {
            let by_queue = rule.kind == Kind::QueueWaitP95;
            let deltas = windows.deltas(rule.window_secs);
            // Only what the kind reads is summed: (succeeded, failed) or one
            // histogram.
            let mut groups: HashMap<&str, (u64, u64, Hist)> = HashMap::new();
            for (s, d) in now_sample.series.iter().zip(deltas.iter()) {
                if !allows(&rule.task, &s.task) || !allows(&rule.queue, &s.queue) {
                    continue;
                }
                let key = if by_queue {
                    s.queue.as_str()
                } else {
                    s.task.as_str()
                };
                let g = groups.entry(key).or_default();
                match rule.kind {
                    Kind::TaskFailureRate => {
                        g.0 += d.succeeded;
                        g.1 += d.failed;
                    }
                    Kind::TaskLost => g.1 += d.lost,
                    Kind::TaskRuntimeP95 => add_hist(&mut g.2, &d.runtime),
                    _ => add_hist(&mut g.2, &d.queue_wait),
                }
            }
            groups
                .into_iter()
                .filter_map(|(key, (succeeded, failed, hist))| {
                    let value = match rule.kind {
                        Kind::QueueWaitP95 => quantile(0.95, &inputs.queue_wait_bounds, &hist)?,
                        Kind::TaskRuntimeP95 => quantile(0.95, &inputs.runtime_bounds, &hist)?,
                        Kind::TaskLost => failed as f64,
                        _ => {
                            let finished = succeeded + failed;
                            if finished == 0 || finished < rule.min_count {
                                return None;
                            }
                            failed as f64 / finished as f64
                        }
                    };
                    Some(Observation {
                        instance: key,
                        value,
                    })
                })
                .collect()
        }
        Kind::TaskStuckStarted => {
            let cut = now - rule.older_than_secs;
            let mut counts: HashMap<&str, u64> = HashMap::new();
            for t in &inputs.started {
                if t.started_at <= cut
                    && allows(&rule.task, &t.name)
                    && allows(&rule.worker, &t.worker)
                {
                    *counts.entry(&t.name).or_default() += 1;
                }
            }
            counts
                .into_iter()
                .map(|(name, n)| Observation {
                    instance: name,
                    value: n as f64,
                })
                .collect()
        }
        Kind::QueueLatency => inputs
            .queue_latency
            .iter()
            .filter(|q| allows(&rule.queue, &q.name))
            .map(|q| Observation {
                instance: &q.name,
                value: q.oldest_age,
            })
            .collect(),
        Kind::NewFailureGroup => {
            let since = now - rule.window_secs;
            inputs
                .failure_groups
                .iter()
                .filter(|g| g.opened_at >= since)
                .filter(|g| rule.task.is_none() || g.tasks.iter().any(|t| allows(&rule.task, t)))
                .map(|g| Observation {
                    instance: &g.fingerprint,
                    value: g.count as f64,
                })
                .collect()
        }
        Kind::WorkerOffline => inputs
            .workers
            .iter()
            .filter(|w| allows(&rule.worker, &w.hostname))
            .map(|w| Observation {
                instance: &w.hostname,
                value: w.offline_since.map_or(0.0, |t| (now - t).max(0.0)),
            })
            .collect(),
        Kind::WorkersOnline => {
            let n = inputs
                .workers
                .iter()
                .filter(|w| w.offline_since.is_none() && allows(&rule.worker, &w.hostname))
                .count();
            vec![Observation {
                instance: "",
                value: n as f64,
            }]
        }
        Kind::NoEvents => {
            let since = inputs.last_event_at.unwrap_or(inputs.started_at);
            vec![Observation {
                instance: "",
                value: (now - since).max(0.0),
            }]
        }
        Kind::MalformedRate | Kind::EventsLost => {
            let base = history
                .base(now, rule.window_secs)
                .map(|b| b.events)
                .unwrap_or_default();
            let e = now_sample.events;
            let malformed = e.malformed.saturating_sub(base.malformed);
            let value = if rule.kind == Kind::EventsLost {
                e.dropped.saturating_sub(base.dropped) as f64
            } else {
                let total = malformed + e.ingested.saturating_sub(base.ingested);
                if total == 0 || total < rule.min_count {
                    return Vec::new();
                }
                malformed as f64 / total as f64
            };
            vec![Observation {
                instance: "",
                value,
            }]
        }
    }
}

fn add_hist(a: &mut Hist, b: &Hist) {
    if a.cumulative.is_empty() {
        a.cumulative.clone_from(&b.cumulative);
    } else {
        for (x, y) in a.cumulative.iter_mut().zip(&b.cumulative) {
            *x += y;
        }
    }
    a.count += b.count;
}

/// Every series' increase over each window length the rules use, computed
/// once per evaluation rather than once per rule.
pub struct Windows {
    by_window: Vec<(f64, Vec<Counters>)>,
}

impl Windows {
    pub fn new(rules: &[Rule], now_sample: &Sample, history: &History) -> Windows {
        let mut by_window: Vec<(f64, Vec<Counters>)> = Vec::new();
        for r in rules {
            let series_kind = matches!(
                r.kind,
                Kind::QueueWaitP95 | Kind::TaskFailureRate | Kind::TaskRuntimeP95 | Kind::TaskLost
            );
            if series_kind && !by_window.iter().any(|(w, _)| *w == r.window_secs) {
                let base = history.base(now_sample.at, r.window_secs);
                by_window.push((r.window_secs, now_sample.deltas(base.map(|b| &**b))));
            }
        }
        Windows { by_window }
    }

    fn deltas(&self, window: f64) -> &[Counters] {
        self.by_window
            .iter()
            .find(|(w, _)| *w == window)
            .map(|(_, d)| d.as_slice())
            .unwrap_or(&[])
    }
}
