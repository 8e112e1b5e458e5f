//! `GET /api/alerts`: the alert rules, their live state, and the notifiers.
//! Shared by the server (which fills it from the alert engine) and the
//! dashboard's alerts page and overview badge.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertsResponse {
    /// False when celeriac runs without `--alerts`; the lists are then empty.
    pub enabled: bool,
    /// The rule file in use.
    pub file: Option<String>,
    /// Unix seconds of the last (re)load of the rule file.
    pub loaded_at: Option<f64>,
    /// Unix seconds of the last evaluation.
    pub evaluated_at: Option<f64>,
    pub eval_interval_secs: f64,
    /// Why the last reload failed (the previous rules stay in force).
    pub reload_error: Option<String>,
    pub rules: Vec<RuleStatus>,
    pub notifiers: Vec<NotifierStatus>,
}

impl AlertsResponse {
    /// Alerts currently firing, over all rules: the overview badge.
    pub fn firing(&self) -> usize {
        self.rules
            .iter()
            .flat_map(|r| &r.instances)
            .filter(|i| i.state == AlertState::Firing)
            .count()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleStatus {
    pub name: String,
    /// The rule kind, as written in the file (`queue_length`, ...).
    pub kind: String,
    pub severity: Option<String>,
    /// The worst state over the rule's instances.
    pub state: AlertState,
    /// Human form of the condition, e.g. `queue_length{queue="default*"} > 1000 for 5m`.
    pub condition: String,
    pub threshold: f64,
    pub for_secs: f64,
    pub notify: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// One per matched object (queue, task name, worker) that is pending or
    /// firing; empty when the rule is inactive.
    pub instances: Vec<AlertInstance>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertInstance {
    /// Identifies the instance within its rule: `queue`, `task`, `worker`.
    pub labels: BTreeMap<String, String>,
    pub state: AlertState,
    /// The watched value at the last evaluation.
    pub value: Option<f64>,
    /// Unix seconds the condition first held (pending since).
    pub active_since: f64,
    /// Unix seconds it started firing.
    pub firing_since: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifierStatus {
    pub name: String,
    /// `webhook`, `slack`, `alertmanager` or `email`.
    pub kind: String,
    pub sent: u64,
    pub failed: u64,
    /// Notifications dropped because the notifier's queue was full.
    pub dropped: u64,
    pub last_error: Option<String>,
    pub last_success_at: Option<f64>,
}
