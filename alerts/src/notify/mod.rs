//! Notifiers: deliver alert notifications to webhooks, Slack, Alertmanager
//! and email.
//!
//! The rule engine hands each [`Notification`] to the [`Dispatcher`], which
//! queues it for the named notifier and returns at once. Every notifier has
//! its own bounded queue and tokio task, so a slow or dead destination only
//! delays (and eventually drops) its own notifications, never evaluation or
//! another notifier.

mod alertmanager;
mod config;
mod dispatch;
mod email;
mod error;
mod format;
mod http;
mod slack;
mod target;
mod webhook;

use std::collections::BTreeMap;

use serde::Serialize;

pub use config::{
    AlertmanagerConfig, EmailConfig, NotifierConfig, NotifierKind, RawNotifier, SlackConfig,
    TlsMode, WebhookConfig,
};
pub use dispatch::{DispatchOptions, Dispatcher};
pub use error::NotifyError;

/// One alert instance changing state (or repeating), as the engine reports it.
#[derive(Clone, Debug, Serialize)]
pub struct Notification {
    pub rule: String,
    pub status: AlertStatus,
    pub severity: Option<String>,
    /// The rule's labels plus the instance's (`queue`, `task`, `worker`).
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The watched value at the evaluation that produced this notification.
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// Unix seconds the alert started firing.
    pub starts_at: f64,
    /// Unix seconds it resolved; `None` while firing.
    pub ends_at: Option<f64>,
    /// Stable identity of the alert instance (rule + instance labels).
    pub fingerprint: String,
    /// Link back to celeriac (its alerts page).
    pub generator_url: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}
