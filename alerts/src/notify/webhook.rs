//! The generic webhook: celeriac's own JSON body (documented in
//! alerts/README.md, "Notifiers"). `version` changes only on breaking changes.

use serde_json::{json, Value};

use super::format::rfc3339;
use super::Notification;

/// The body POSTed for one notification.
pub(crate) fn body(n: &Notification) -> Value {
    json!({
        "version": "1",
        "status": n.status,
        "rule": n.rule,
        "severity": n.severity,
        "labels": n.labels,
        "annotations": n.annotations,
        "value": n.value,
        "threshold": n.threshold,
        "startsAt": rfc3339(n.starts_at),
        "endsAt": n.ends_at.map(rfc3339),
        "fingerprint": n.fingerprint,
        "generatorURL": n.generator_url,
    })
}
