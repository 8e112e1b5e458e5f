//! Where one notifier delivers and how: the per-kind request for one
//! notification, and Alertmanager's periodic refresh.

use std::collections::BTreeMap;
use std::time::Duration;

use super::alertmanager;
use super::dispatch::DispatchOptions;
use super::email::Email;
use super::error::NotifyError;
use super::http::post_json;
use super::{slack, webhook, Notification, NotifierConfig, NotifierKind, SlackConfig};

/// Where one notifier delivers, with what it needs to do so.
pub(crate) enum Target {
    Webhook {
        url: String,
        headers: BTreeMap<String, String>,
        timeout: Duration,
    },
    Slack {
        config: SlackConfig,
        timeout: Duration,
    },
    Alertmanager {
        endpoint: String,
        timeout: Duration,
        refresh: Duration,
        active: alertmanager::Active,
    },
    /// `Err` when the transport could not be built (e.g. TLS setup failed):
    /// every delivery then fails with that reason.
    Email(Result<Email, String>),
}

impl Target {
    /// `firing` is the Alertmanager notifier's keep-alive set.
    pub(crate) fn new(
        config: &NotifierConfig,
        options: &DispatchOptions,
        firing: Option<alertmanager::Firing>,
    ) -> Target {
        let timeout = options.timeout;
        match &config.kind {
            NotifierKind::Webhook(c) => Target::Webhook {
                url: c.url.clone(),
                headers: c.headers.clone(),
                timeout: c.timeout.unwrap_or(timeout),
            },
            NotifierKind::Slack(c) => Target::Slack {
                config: c.clone(),
                timeout,
            },
            NotifierKind::Alertmanager(c) => {
                let refresh = c.refresh.unwrap_or(alertmanager::DEFAULT_REFRESH);
                Target::Alertmanager {
                    endpoint: alertmanager::endpoint(&c.url),
                    timeout,
                    refresh,
                    active: alertmanager::Active::new(refresh, firing.unwrap_or_default()),
                }
            }
            NotifierKind::Email(c) => Target::Email(Email::new(c, timeout)),
        }
    }

    /// Where deliveries go, as errors name it.
    pub(crate) fn destination(&self) -> &str {
        match self {
            Target::Webhook { url, .. } => url,
            Target::Slack { config, .. } => &config.url,
            Target::Alertmanager { endpoint, .. } => endpoint,
            Target::Email(Ok(email)) => email.server(),
            Target::Email(Err(_)) => "the email server",
        }
    }

    pub(crate) fn timeout(&self, options: &DispatchOptions) -> Duration {
        match self {
            Target::Webhook { timeout, .. }
            | Target::Slack { timeout, .. }
            | Target::Alertmanager { timeout, .. } => *timeout,
            Target::Email(_) => options.timeout,
        }
    }

    /// Remembers what must be re-sent periodically (Alertmanager only).
    pub(crate) fn record(&mut self, n: &Notification) {
        if let Target::Alertmanager { active, .. } = self {
            active.record(n);
        }
    }

    pub(crate) async fn deliver(
        &self,
        client: &reqwest::Client,
        n: &Notification,
    ) -> Result<(), NotifyError> {
        match self {
            Target::Webhook {
                url,
                headers,
                timeout,
            } => post_json(client, url, headers, &webhook::body(n), *timeout).await,
            Target::Slack { config, timeout } => {
                post_json(
                    client,
                    &config.url,
                    &BTreeMap::new(),
                    &slack::body(config, n),
                    *timeout,
                )
                .await
            }
            Target::Alertmanager {
                endpoint,
                timeout,
                active,
                ..
            } => {
                post_json(
                    client,
                    endpoint,
                    &BTreeMap::new(),
                    &active.body(n),
                    *timeout,
                )
                .await
            }
            Target::Email(Ok(email)) => email.send(n).await,
            Target::Email(Err(reason)) => Err(NotifyError::Message(reason.clone())),
        }
    }

    /// Re-sends the firing alerts to Alertmanager; `None` when there is
    /// nothing to refresh.
    pub(crate) async fn refresh(
        &self,
        client: &reqwest::Client,
    ) -> Option<Result<(), NotifyError>> {
        let Target::Alertmanager {
            endpoint,
            timeout,
            active,
            ..
        } = self
        else {
            return None;
        };
        let body = active.refresh_body()?;
        Some(post_json(client, endpoint, &BTreeMap::new(), &body, *timeout).await)
    }
}
