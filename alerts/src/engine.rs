//! The engine: evaluates every rule against [`Inputs`], moves each (rule,
//! instance) through inactive → pending → firing → resolved, and says which
//! notifications to send. No I/O and no clock of its own: time comes from
//! `Inputs::now`, so tests drive it with a fake clock.

use std::collections::HashMap;

use api::alerts::{AlertInstance, AlertState, RuleStatus};

use crate::evaluate::{observe, Labels, Windows};
use crate::inputs::Inputs;
use crate::notify::{AlertStatus, Notification};
use crate::rules::{Rule, RuleSet};
use crate::template::Context;
use crate::window::{History, Sample};

/// One active (pending or firing) alert instance.
#[derive(Clone, Debug, PartialEq)]
struct Active {
    value: Option<f64>,
    active_since: f64,
    firing_since: Option<f64>,
    /// When the last firing notification went out.
    last_sent: Option<f64>,
    /// The evaluation that last observed it.
    seen: u64,
}

/// A notification for one notifier.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub notifier: String,
    pub notification: Notification,
}

pub struct Engine {
    set: RuleSet,
    /// By rule name, then instance (queue, task or worker name; `""` for
    /// single-instance kinds).
    active: HashMap<String, HashMap<String, Active>>,
    /// Evaluations so far: `Active::seen` says whether an instance was
    /// observed in the current one.
    tick: u64,
    history: History,
    /// Link put in notifications (celeriac's alerts page).
    generator_url: Option<String>,
}

impl Engine {
    /// `started_at`: when celeriac started (counters are zero then).
    pub fn new(set: RuleSet, started_at: f64, generator_url: Option<String>) -> Engine {
        Engine {
            set,
            active: HashMap::new(),
            tick: 0,
            history: History::starting_at(started_at),
            generator_url,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.set.rules
    }

    pub fn rule_set(&self) -> &RuleSet {
        &self.set
    }

    /// Swaps in a reloaded rule set. Active alerts of rules that keep their
    /// name carry over (instances that no longer match clear at the next
    /// evaluation, with a resolve notification). Firing alerts of removed
    /// rules resolve now: the returned notifications, for the removed rules'
    /// notifiers (Alertmanager would otherwise keep them firing).
    pub fn replace_rules(&mut self, set: RuleSet, now: f64) -> Vec<Outgoing> {
        let mut out = Vec::new();
        for rule in &self.set.rules {
            if set.rules.iter().any(|r| r.name == rule.name) {
                continue;
            }
            if let Some(actives) = self.active.remove(&rule.name) {
                for (instance, a) in actives {
                    push_resolved(&mut out, rule, &instance, &a, now, &self.generator_url);
                }
            }
        }
        self.set = set;
        out
    }

    /// One evaluation at `inputs.now`: the notifications to send, in rule
    /// order (unordered within a rule).
    pub fn evaluate(&mut self, inputs: &Inputs) -> Vec<Outgoing> {
        let now = inputs.now;
        self.tick += 1;
        let tick = self.tick;
        let sample = Sample::from_inputs(inputs);
        let windows = Windows::new(&self.set.rules, &sample, &self.history);
        let mut out = Vec::new();
        for rule in &self.set.rules {
            let actives = match self.active.get_mut(&rule.name) {
                Some(a) => a,
                None => self.active.entry(rule.name.clone()).or_default(),
            };
            for o in observe(rule, inputs, &sample, &self.history, &windows) {
                match actives.get_mut(o.instance) {
                    Some(a) => {
                        a.value = Some(o.value);
                        a.seen = tick;
                    }
                    None if rule.triggers(o.value) => {
                        actives.insert(
                            o.instance.to_owned(),
                            Active {
                                value: Some(o.value),
                                active_since: now,
                                firing_since: None,
                                last_sent: None,
                                seen: tick,
                            },
                        );
                    }
                    None => {}
                }
            }
            let mut cleared = Vec::new();
            for (instance, a) in actives.iter_mut() {
                // Hysteresis: once active, only a value back past the clear
                // level (or no value at all) ends the alert.
                let observed = a.seen == tick;
                if !observed || a.value.is_none_or(|v| rule.clears(v)) {
                    cleared.push(instance.clone());
                    continue;
                }
                let due = match (a.firing_since, a.last_sent) {
                    (None, _) if now - a.active_since >= rule.for_secs => {
                        a.firing_since = Some(now);
                        true
                    }
                    (Some(_), Some(last)) => rule.repeat_secs.is_some_and(|r| now - last >= r),
                    _ => false,
                };
                if due {
                    a.last_sent = Some(now);
                    let n = notification(
                        rule,
                        instance,
                        a,
                        AlertStatus::Firing,
                        now,
                        &self.generator_url,
                    );
                    push(&mut out, rule, n);
                }
            }
            for instance in cleared {
                if let Some(a) = actives.remove(&instance) {
                    push_resolved(&mut out, rule, &instance, &a, now, &self.generator_url);
                }
            }
        }
        let keep = self
            .set
            .rules
            .iter()
            .map(|r| r.window_secs)
            .fold(0.0, f64::max);
        self.history.push(sample, keep);
        out
    }

    /// Every rule with its live state, for `GET /api/alerts`.
    pub fn status(&self) -> Vec<RuleStatus> {
        self.set
            .rules
            .iter()
            .map(|rule| {
                let mut instances: Vec<AlertInstance> = self
                    .active
                    .get(&rule.name)
                    .into_iter()
                    .flatten()
                    .map(|(instance, a)| AlertInstance {
                        labels: instance_labels(rule, instance),
                        state: if a.firing_since.is_some() {
                            AlertState::Firing
                        } else {
                            AlertState::Pending
                        },
                        value: a.value,
                        active_since: a.active_since,
                        firing_since: a.firing_since,
                    })
                    .collect();
                instances.sort_by(|a, b| a.labels.cmp(&b.labels));
                RuleStatus {
                    name: rule.name.clone(),
                    kind: rule.kind.as_str().to_owned(),
                    severity: rule.severity.clone(),
                    state: instances
                        .iter()
                        .map(|i| i.state)
                        .max()
                        .unwrap_or(AlertState::Inactive),
                    condition: rule.condition(),
                    threshold: rule.threshold,
                    for_secs: rule.for_secs,
                    notify: rule.notify.clone(),
                    labels: rule.labels.clone(),
                    annotations: rule
                        .annotations
                        .iter()
                        .map(|(k, t)| (k.clone(), t.source.clone()))
                        .collect(),
                    instances,
                }
            })
            .collect()
    }

    /// Firing instances per rule name (for the `celeriac_alerts_firing` gauge).
    pub fn firing_counts(&self) -> Vec<(String, usize)> {
        self.set
            .rules
            .iter()
            .map(|r| {
                let n = self.active.get(&r.name).map_or(0, |m| {
                    m.values().filter(|a| a.firing_since.is_some()).count()
                });
                (r.name.clone(), n)
            })
            .collect()
    }
}

/// Stable identity of an alert instance: FNV-1a of the rule name and the
/// instance labels, as 16 hex digits.
pub fn fingerprint(rule: &str, labels: &Labels) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes.iter().chain([0xffu8].iter()) {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    };
    eat(rule.as_bytes());
    for (k, v) in labels {
        eat(k.as_bytes());
        eat(v.as_bytes());
    }
    format!("{h:016x}")
}

/// `{queue: NAME}` (or task, worker) for an instance; empty for the kinds
/// with a single instance.
pub fn instance_labels(rule: &Rule, instance: &str) -> Labels {
    match rule.kind.instance_label() {
        Some(label) => Labels::from([(label.to_owned(), instance.to_owned())]),
        None => Labels::new(),
    }
}

fn notification(
    rule: &Rule,
    instance: &str,
    a: &Active,
    status: AlertStatus,
    now: f64,
    generator_url: &Option<String>,
) -> Notification {
    let instance = instance_labels(rule, instance);
    let mut labels = rule.labels.clone();
    labels.extend(instance.iter().map(|(k, v)| (k.clone(), v.clone())));
    let cx = Context {
        rule: &rule.name,
        value: a.value,
        threshold: rule.threshold,
        labels: &labels,
    };
    let annotations = rule
        .annotations
        .iter()
        .map(|(k, t)| (k.clone(), t.render(&cx)))
        .collect();
    Notification {
        rule: rule.name.clone(),
        status,
        severity: rule.severity.clone(),
        annotations,
        value: a.value,
        threshold: Some(rule.threshold),
        starts_at: a.firing_since.unwrap_or(a.active_since),
        ends_at: (status == AlertStatus::Resolved).then_some(now),
        fingerprint: fingerprint(&rule.name, &instance),
        generator_url: generator_url.clone(),
        labels,
    }
}

/// One copy of `n` per notifier of the rule.
/// The resolve of an alert that ends: only one that fired was ever
/// announced, so a pending one ends silently.
fn push_resolved(
    out: &mut Vec<Outgoing>,
    rule: &Rule,
    instance: &str,
    a: &Active,
    now: f64,
    generator_url: &Option<String>,
) {
    if a.firing_since.is_some() {
        let n = notification(rule, instance, a, AlertStatus::Resolved, now, generator_url);
        push(out, rule, n);
    }
}

fn push(out: &mut Vec<Outgoing>, rule: &Rule, n: Notification) {
    for name in &rule.notify {
        out.push(Outgoing {
            notifier: name.clone(),
            notification: n.clone(),
        });
    }
}

#[cfg(test)]
mod tests;
