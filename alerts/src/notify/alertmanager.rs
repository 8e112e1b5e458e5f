//! Alertmanager's v2 API: `POST {url}/api/v2/alerts` with an array of alerts.
//!
//! Alertmanager resolves an alert by itself once its `endsAt` passes, so a
//! firing alert is sent with `endsAt` four refresh intervals ahead and
//! re-sent every refresh interval while it fires (as Prometheus does). If
//! celeriac stops, the alerts resolve in Alertmanager shortly after instead
//! of firing forever; a resolve is sent with the real `endsAt`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::format::{now_unix, num, rfc3339};
use super::{AlertStatus, Notification};

/// How often firing alerts are re-sent by default.
pub(crate) const DEFAULT_REFRESH: Duration = Duration::from_secs(60);

/// The alerts currently firing, by fingerprint. Shared with the dispatcher
/// so that a reconfigured notifier takes them over.
pub(crate) type Firing = Arc<Mutex<BTreeMap<String, Notification>>>;

/// The keep-alive state of one Alertmanager notifier.
pub(crate) struct Active {
    firing: Firing,
    /// How far ahead a firing alert's `endsAt` is set: four missed refreshes.
    validity: Duration,
}

impl Active {
    pub(crate) fn new(refresh: Duration, firing: Firing) -> Active {
        Active {
            firing,
            validity: refresh * 4,
        }
    }

    /// Tracks `n` (firing) or forgets it (resolved).
    pub(crate) fn record(&mut self, n: &Notification) {
        match n.status {
            AlertStatus::Firing => {
                self.firing.lock().insert(n.fingerprint.clone(), n.clone());
            }
            AlertStatus::Resolved => {
                self.firing.lock().remove(&n.fingerprint);
            }
        }
    }

    /// The refresh body: every firing alert, or `None` when nothing fires.
    pub(crate) fn refresh_body(&self) -> Option<Value> {
        let firing = self.firing.lock();
        if firing.is_empty() {
            return None;
        }
        let now = now_unix();
        Some(Value::Array(
            firing
                .values()
                .map(|n| alert(n, now, self.validity))
                .collect(),
        ))
    }

    /// The body for one notification.
    pub(crate) fn body(&self, n: &Notification) -> Value {
        json!([alert(n, now_unix(), self.validity)])
    }
}

/// `{url}/api/v2/alerts`, tolerating a trailing slash on the base URL.
pub(crate) fn endpoint(base: &str) -> String {
    format!("{}/api/v2/alerts", base.trim_end_matches('/'))
}

/// One element of the posted array (Alertmanager's `postableAlert`).
fn alert(n: &Notification, now: f64, validity: Duration) -> Value {
    let mut labels = n.labels.clone();
    labels.insert("alertname".into(), n.rule.clone());
    if let Some(sev) = &n.severity {
        labels
            .entry("severity".into())
            .or_insert_with(|| sev.clone());
    }
    let mut annotations = n.annotations.clone();
    if let Some(v) = n.value {
        annotations.entry("value".into()).or_insert_with(|| num(v));
    }
    if let Some(t) = n.threshold {
        annotations
            .entry("threshold".into())
            .or_insert_with(|| num(t));
    }
    let ends_at = match n.status {
        AlertStatus::Resolved => n.ends_at.unwrap_or(now),
        AlertStatus::Firing => now + validity.as_secs_f64(),
    };
    let mut a = json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(n.starts_at),
        "endsAt": rfc3339(ends_at),
    });
    if let Some(url) = &n.generator_url {
        a["generatorURL"] = json!(url);
    }
    a
}
