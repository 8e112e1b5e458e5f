//! Slack incoming-webhook messages (also accepted by Mattermost and
//! Rocket.Chat): a `text` line for notifications and clients without
//! attachments, plus one attachment coloured by status with the details.

use serde_json::{json, Map, Value};

use super::config::SlackConfig;
use super::format::{headline, value_line};
use super::{AlertStatus, Notification};

/// Slack's "danger" red and "good" green, as hex so every client agrees.
pub(crate) const FIRING_COLOR: &str = "#d63232";
pub(crate) const RESOLVED_COLOR: &str = "#2eb886";

pub(crate) fn body(cfg: &SlackConfig, n: &Notification) -> Value {
    let color = match n.status {
        AlertStatus::Firing => FIRING_COLOR,
        AlertStatus::Resolved => RESOLVED_COLOR,
    };
    let mut fields = Vec::new();
    if let Some(sev) = &n.severity {
        fields.push(json!({"title": "Severity", "value": sev, "short": true}));
    }
    if let Some(line) = value_line(n) {
        fields.push(json!({"title": "Value", "value": line, "short": true}));
    }
    for (k, v) in &n.labels {
        fields.push(json!({"title": k, "value": v, "short": true}));
    }
    // Summary/description first, as Alertmanager's Slack template does;
    // other annotations (runbook_url, ...) follow as fields.
    let mut text = Vec::new();
    for key in ["summary", "description"] {
        if let Some(v) = n.annotations.get(key) {
            text.push(v.clone());
        }
    }
    for (k, v) in &n.annotations {
        if k != "summary" && k != "description" {
            fields.push(json!({"title": k, "value": v, "short": false}));
        }
    }
    let mut attachment = json!({
        "color": color,
        "fallback": headline(n),
        "title": headline(n),
        "text": text.join("\n"),
        "fields": fields,
        "footer": "celeriac",
        "ts": n.ends_at.unwrap_or(n.starts_at) as i64,
    });
    if let Some(url) = &n.generator_url {
        attachment["title_link"] = json!(url);
    }
    let mut msg = Map::new();
    msg.insert("text".into(), json!(headline(n)));
    if let Some(c) = &cfg.channel {
        msg.insert("channel".into(), json!(c));
    }
    if let Some(u) = &cfg.username {
        msg.insert("username".into(), json!(u));
    }
    msg.insert("attachments".into(), json!([attachment]));
    Value::Object(msg)
}
