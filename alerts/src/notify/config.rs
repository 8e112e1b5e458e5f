//! Parsing of one item of the rule file's `notifiers:` list.
//!
//! The YAML shape is `{name: ops, <kind>: {...}}` with exactly one kind key.
//! Serde's externally tagged enums cannot express "a `name` next to the tag",
//! so the item is read into [`RawNotifier`] (all kinds optional, unknown
//! fields rejected) and then checked into a [`NotifierConfig`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// One configured notifier: its name (what rules' `notify:` refers to) and
/// where and how it delivers.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawNotifier")]
pub struct NotifierConfig {
    pub name: String,
    pub kind: NotifierKind,
}

impl NotifierConfig {
    /// `webhook`, `slack`, `alertmanager` or `email`: the key used in the file.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            NotifierKind::Webhook(_) => "webhook",
            NotifierKind::Slack(_) => "slack",
            NotifierKind::Alertmanager(_) => "alertmanager",
            NotifierKind::Email(_) => "email",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum NotifierKind {
    Webhook(WebhookConfig),
    Slack(SlackConfig),
    Alertmanager(AlertmanagerConfig),
    Email(EmailConfig),
}

/// `webhook: {url, headers?, timeout?}`: POST of celeriac's JSON body.
/// (`Debug` hides header values: they often hold tokens.)
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Extra request headers, e.g. `Authorization`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Per-request timeout overriding the dispatcher's default (`10s`, `500ms`).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// `slack: {url, channel?, username?}`: a Slack incoming-webhook message.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    pub url: String,
    pub channel: Option<String>,
    pub username: Option<String>,
}

/// `alertmanager: {url, refresh?}`: the Alertmanager base URL (`http://am:9093`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    pub url: String,
    /// How often firing alerts are re-sent to keep them alive (default 1m);
    /// their `endsAt` is set four refreshes ahead.
    #[serde(default, with = "humantime_serde")]
    pub refresh: Option<Duration>,
}

/// `email: {smtp: "host:port", from, to: [..], username?, password?, tls,
/// ca_file?}`. (`Debug` hides the password.)
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `host:port` of the SMTP server.
    pub smtp: String,
    pub from: String,
    pub to: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: TlsMode,
    /// PEM certificates trusted beside the system's, for a relay whose
    /// certificate comes from a private CA.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: BTreeMap<&str, &str> =
            self.headers.keys().map(|k| (k.as_str(), "***")).collect();
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp", &self.smtp)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text (a local relay).
    None,
    /// Plain connection upgraded with STARTTLS (usually port 587).
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

/// The item as written; [`NotifierConfig::try_from`] checks it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotifier {
    name: String,
    webhook: Option<WebhookConfig>,
    slack: Option<SlackConfig>,
    alertmanager: Option<AlertmanagerConfig>,
    email: Option<EmailConfig>,
}

impl RawNotifier {
    /// The first kind key the item has (`webhook`, …), where an error in
    /// its settings is best reported.
    pub fn kind_key(&self) -> Option<&'static str> {
        [
            ("webhook", self.webhook.is_some()),
            ("slack", self.slack.is_some()),
            ("alertmanager", self.alertmanager.is_some()),
            ("email", self.email.is_some()),
        ]
        .into_iter()
        .find_map(|(key, set)| set.then_some(key))
    }
}

impl TryFrom<RawNotifier> for NotifierConfig {
    type Error = String;

    fn try_from(raw: RawNotifier) -> Result<Self, String> {
        let name = raw.name;
        if name.trim().is_empty() {
            return Err("notifier `name` must not be empty".into());
        }
        let mut kinds = Vec::new();
        if let Some(c) = raw.webhook {
            kinds.push(NotifierKind::Webhook(c));
        }
        if let Some(c) = raw.slack {
            kinds.push(NotifierKind::Slack(c));
        }
        if let Some(c) = raw.alertmanager {
            kinds.push(NotifierKind::Alertmanager(c));
        }
        if let Some(c) = raw.email {
            kinds.push(NotifierKind::Email(c));
        }
        let kind = match kinds.len() {
            1 => kinds.pop().expect("one kind"),
            0 => {
                return Err(format!(
                    "notifier `{name}` needs one of `webhook`, `slack`, `alertmanager`, `email`"
                ))
            }
            _ => {
                return Err(format!(
                    "notifier `{name}` has more than one of `webhook`, `slack`, `alertmanager`, `email`; \
                     use one notifier per destination"
                ))
            }
        };
        let config = NotifierConfig { name, kind };
        config.validate()?;
        Ok(config)
    }
}

impl NotifierConfig {
    /// Checks what serde cannot: URLs parse, addresses are well formed.
    fn validate(&self) -> Result<(), String> {
        let name = &self.name;
        let check_url = |field: &str, url: &str| -> Result<(), String> {
            match reqwest::Url::parse(url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(()),
                Ok(u) => Err(format!(
                    "notifier `{name}`: {field} `{url}` must be http or https, not `{}`",
                    u.scheme()
                )),
                Err(e) => Err(format!(
                    "notifier `{name}`: {field} `{url}` is not a URL: {e}"
                )),
            }
        };
        match &self.kind {
            NotifierKind::Webhook(c) => {
                check_url("webhook url", &c.url)?;
                for (k, v) in &c.headers {
                    reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                        format!("notifier `{name}`: `{k}` is not a valid HTTP header name")
                    })?;
                    reqwest::header::HeaderValue::from_str(v).map_err(|_| {
                        format!("notifier `{name}`: header `{k}` has an invalid value")
                    })?;
                }
                if c.timeout == Some(Duration::ZERO) {
                    return Err(format!(
                        "notifier `{name}`: webhook timeout must be above zero"
                    ));
                }
            }
            NotifierKind::Slack(c) => check_url("slack url", &c.url)?,
            NotifierKind::Alertmanager(c) => {
                check_url("alertmanager url", &c.url)?;
                if c.refresh == Some(Duration::ZERO) {
                    return Err(format!(
                        "notifier `{name}`: alertmanager refresh must be above zero"
                    ));
                }
            }
            NotifierKind::Email(c) => {
                crate::notify::email::validate(c).map_err(|e| format!("notifier `{name}`: {e}"))?
            }
        }
        Ok(())
    }
}
