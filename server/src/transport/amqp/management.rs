//! The RabbitMQ management API client (docs/celery-protocol.md §5.1–§5.2).
//!
//! Two requests per poll, whatever the number of queues:
//! 1. `GET /api/queues/{vhost}?disable_stats=true&enable_queue_totals=true
//!    &columns=name,messages,...`: every queue's live `messages`,
//!    `messages_ready`, `messages_unacknowledged`, read from the queue
//!    processes without the stats database. This is the depth, and it is
//!    never stale.
//! 2. `GET /api/queues/{vhost}`: the whole queue objects, as Flower reads
//!    them (`/api/queues/length` passes their keys on, secrets masked):
//!    consumers, publish and deliver rates, `idle_since` and the rest, in
//!    one unpaged listing. Pages would have the
//!    server compute stats for one page only, but each page pays for listing
//!    and sorting every queue again: measured with 10,000 queues, one
//!    listing took ~0.6 s and its 20 pages ~2.3 s. With `--queues` the
//!    listing is filtered by a name regex, which needs pagination. A failure
//!    here keeps the depth and leaves these fields out.

use std::collections::HashMap;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::broker::{is_delayed_cascade, wanted, QueueStat};
use crate::mask::{mask_password, mask_secrets};

/// Flower waits 1 s to connect and 2 s for the answer; a listing of
/// 10 000 queues can take longer than that.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The management API's largest page.
const PAGE_SIZE: usize = 500;
/// The columns of the totals request: a third of the full objects' bytes.
const TOTALS_COLUMNS: &str = "name,type,messages,messages_ready,messages_unacknowledged";

/// Everything after `unreserved` in RFC 3986 is escaped: `/` → `%2F`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid --broker-api `{0}`: {1}")]
    BadUrl(String, String),
    #[error("GET {url}: {error}")]
    Http { url: String, error: String },
}

/// A management API endpoint for one vhost.
#[derive(Debug, Clone)]
pub struct ManagementApi {
    /// `http://host:15672/api/`, always ending in `/`, no credentials.
    base: String,
    user: String,
    password: String,
    vhost: String,
    http: reqwest::Client,
}

/// One queue of the totals listing.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct QueueTotals {
    pub name: String,
    #[serde(default)]
    pub messages: Option<u64>,
    #[serde(default)]
    pub messages_ready: Option<u64>,
    #[serde(default)]
    pub messages_unacknowledged: Option<u64>,
    #[serde(default, rename = "type")]
    pub queue_type: Option<String>,
}

/// One poll of the management API.
#[derive(Debug, Default)]
pub struct Listing {
    pub queues: Vec<QueueStat>,
    /// The sum of the delayed delivery cascade, if the vhost has one.
    pub scheduled_broker_side: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    items: Vec<StatsItem>,
    #[serde(default)]
    page_count: usize,
}

/// One queue of the stats listing: the management API's whole object.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
struct StatsItem(Map<String, Value>);

/// The keys `/api/queues/length` answers from celeriac's own fields; the
/// others of a queue object are passed on as they came.
const OWN_KEYS: [&str; 7] = [
    "name",
    "messages",
    "messages_ready",
    "messages_unacknowledged",
    "consumers",
    "idle_since",
    "type",
];

impl StatsItem {
    fn name(&self) -> Option<&str> {
        self.0.get("name").and_then(Value::as_str)
    }

    fn consumers(&self) -> Option<u64> {
        self.0.get("consumers").and_then(Value::as_u64)
    }

    fn idle_since(&self) -> Option<String> {
        self.0
            .get("idle_since")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// `message_stats.<stat>_details.rate`; 0 when the queue has no such
    /// stat yet (no publish so far has no `publish` key).
    fn rate(&self, stat: &str) -> f64 {
        self.0
            .get("message_stats")
            .and_then(|m| m.get(format!("{stat}_details")))
            .and_then(|d| d.get("rate"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    }

    /// The keys Flower passes on that celeriac has no field of its own
    /// for, with secrets masked.
    fn rest(mut self) -> Map<String, Value> {
        for k in OWN_KEYS {
            self.0.remove(k);
        }
        match mask_secrets(Value::Object(self.0)) {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

impl ManagementApi {
    /// From `--broker-api`, or derived from `--broker` (same host and
    /// credentials, port 15672, as Flower does). `None` for `off`.
    pub fn new(broker: &str, broker_api: Option<&str>) -> Result<Option<ManagementApi>, ApiError> {
        let amqp = super::parse_broker_url(broker)
            .map_err(|e| ApiError::BadUrl(mask_password(broker), e.to_string()))?;
        let vhost = amqp.vhost.clone();
        let (base, user, password) = match broker_api {
            Some("off" | "none" | "") => return Ok(None),
            Some(url) => split_credentials(url, &amqp.authority.userinfo)?,
            None => {
                let host = &amqp.authority.host;
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                (
                    format!("http://{host}:15672/api/"),
                    amqp.authority.userinfo.username.clone(),
                    amqp.authority.userinfo.password.clone(),
                )
            }
        };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| ApiError::BadUrl(base.clone(), e.to_string()))?;
        Ok(Some(ManagementApi {
            base,
            user,
            password,
            vhost,
            http,
        }))
    }

    /// `http://host:15672/api/queues/%2F`
    fn queues_url(&self) -> String {
        format!(
            "{}queues/{}",
            self.base,
            utf8_percent_encode(&self.vhost, SEGMENT)
        )
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: String) -> Result<T, ApiError> {
        let err = |error: String| ApiError::Http {
            url: url.clone(),
            error,
        };
        let response = self
            .http
            .get(&url)
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .map_err(|e| err(without_url(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(200).collect();
            return Err(err(format!("HTTP {status}: {body}")));
        }
        response.json().await.map_err(|e| err(without_url(&e)))
    }

    /// Every queue of the vhost (or of `only`) with live counts, and the
    /// messages in the delayed delivery cascade.
    pub async fn totals(
        &self,
        only: &[String],
    ) -> Result<(Vec<QueueTotals>, Option<u64>), ApiError> {
        let url = format!(
            "{}?disable_stats=true&enable_queue_totals=true&columns={TOTALS_COLUMNS}",
            self.queues_url()
        );
        let all: Vec<QueueTotals> = self.get(url).await?;
        let scheduled = all
            .iter()
            .filter(|q| is_delayed_cascade(&q.name))
            .map(|q| q.messages.unwrap_or(0))
            .reduce(|a, b| a + b);
        Ok((
            all.into_iter().filter(|q| wanted(&q.name, only)).collect(),
            scheduled,
        ))
    }

    /// Consumers and rates by queue name: one listing of every queue, or
    /// the pages of those `only` names.
    async fn stats(&self, only: &[String]) -> Result<HashMap<String, StatsItem>, ApiError> {
        if only.is_empty() {
            let items: Vec<StatsItem> = self.get(self.queues_url()).await?;
            return Ok(items
                .into_iter()
                .filter_map(|i| Some((i.name()?.to_owned(), i)))
                .collect());
        }
        let alternatives: Vec<String> = only.iter().map(|q| regex_escape(q)).collect();
        let re = format!("^({})$", alternatives.join("|"));
        let filter = format!("&use_regex=true&name={}", utf8_percent_encode(&re, SEGMENT));
        let mut out = HashMap::new();
        let mut page = 1;
        loop {
            let url = format!(
                "{}?page={page}&page_size={PAGE_SIZE}{filter}",
                self.queues_url()
            );
            let p: Page = self.get(url).await?;
            for item in p.items {
                if let Some(name) = item.name().filter(|n| wanted(n, only)) {
                    out.insert(name.to_owned(), item);
                }
            }
            if page >= p.page_count {
                return Ok(out);
            }
            page += 1;
        }
    }

    /// One poll: depth from the totals listing, the rest from the stats
    /// listing when it answers.
    pub async fn poll(&self, only: &[String]) -> Result<Listing, ApiError> {
        // Both at once: the stats listing is the slow one, and the depth
        // need not wait for it.
        let (totals, stats) = tokio::join!(self.totals(only), self.stats(only));
        let (totals, scheduled_broker_side) = totals?;
        let mut stats = match stats {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("queue stats without consumers and rates: {e}");
                HashMap::new()
            }
        };
        let queues = totals
            .into_iter()
            .map(|t| {
                let s = stats.remove(&t.name);
                QueueStat {
                    messages: t.messages,
                    messages_ready: t.messages_ready.unwrap_or(0),
                    messages_unacknowledged: t.messages_unacknowledged,
                    consumers: s.as_ref().and_then(StatsItem::consumers),
                    publish_rate: s.as_ref().map(|s| s.rate("publish")),
                    deliver_rate: s.as_ref().map(|s| s.rate("deliver_get")),
                    idle_since: s.as_ref().and_then(StatsItem::idle_since),
                    queue_type: t.queue_type,
                    name: t.name,
                    management: s.map(|s| std::sync::Arc::new(s.rest())),
                }
            })
            .collect();
        Ok(Listing {
            queues,
            scheduled_broker_side,
        })
    }
}

/// reqwest's errors repeat the URL; ours already names it.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(&format!(" ({url})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// Splits `http://user:pass@host:port/api/` into a credential-free base
/// (ending in `/api/`) and the credentials, which default to the broker's.
fn split_credentials(
    url: &str,
    broker: &lapin::uri::AMQPUserInfo,
) -> Result<(String, String, String), ApiError> {
    let bad = |why: &str| ApiError::BadUrl(mask_password(url), why.to_string());
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("expected http:// or https://"));
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let (user, password) = if parsed.username().is_empty() {
        (broker.username.clone(), broker.password.clone())
    } else {
        (
            decode(parsed.username()),
            decode(parsed.password().unwrap_or("")),
        )
    };
    let mut base = parsed.clone();
    let _ = base.set_username("");
    let _ = base.set_password(None);
    base.set_query(None);
    base.set_fragment(None);
    let mut path = base.path().trim_end_matches('/').to_string();
    if !path.ends_with("/api") {
        path.push_str("/api");
    }
    path.push('/');
    base.set_path(&path);
    Ok((base.to_string(), user, password))
}

/// Escapes a queue name for the management API's (Erlang `re`) name filter.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API as `--broker` and the queue statistics flags make it.
    fn management(broker: &str, flags: &[&str]) -> Result<Option<ManagementApi>, ApiError> {
        let args: crate::broker::QueueStatsArgs = crate::test_args::parse(flags);
        ManagementApi::new(broker, args.broker_api.as_deref())
    }

    const BROKER: &str = crate::ingest::DEFAULT_BROKER;

    #[test]
    fn the_default_endpoint_is_the_brokers_host_on_15672() {
        let api = management("amqp://u:p%40ss@rabbit:5673/vh", &[])
            .unwrap()
            .unwrap();
        assert_eq!(api.base, "http://rabbit:15672/api/");
        assert_eq!((api.user.as_str(), api.password.as_str()), ("u", "p@ss"));
        assert_eq!(api.queues_url(), "http://rabbit:15672/api/queues/vh");
        let api = management(BROKER, &[]).unwrap().unwrap();
        assert_eq!(api.queues_url(), "http://localhost:15672/api/queues/%2F");
    }

    #[test]
    fn an_explicit_endpoint_takes_its_own_credentials_or_the_brokers() {
        let api = management(
            BROKER,
            &["--broker-api", "https://admin:s3cret@mq.example:443/rabbit"],
        )
        .unwrap()
        .unwrap();
        assert_eq!(api.base, "https://mq.example/rabbit/api/");
        assert_eq!(
            (api.user.as_str(), api.password.as_str()),
            ("admin", "s3cret")
        );
        let api = management(BROKER, &["--broker-api", "http://h:15672/api/"])
            .unwrap()
            .unwrap();
        assert_eq!(api.base, "http://h:15672/api/");
        assert_eq!(api.user, "guest");
        assert!(management(BROKER, &["--broker-api", "off"])
            .unwrap()
            .is_none());
        assert!(management(BROKER, &["--broker-api", "ftp://x"]).is_err());
    }

    #[test]
    fn a_queue_object_passes_on_its_other_keys_without_secrets() {
        let item: StatsItem = serde_json::from_value(serde_json::json!({
            "name": "celery", "messages": 3, "consumers": 2, "type": "classic",
            "message_stats": {"publish_details": {"rate": 1.5}},
            "durable": true, "vhost": "v",
            "arguments": {"x-upstream": "amqp://u:hunter2@up//", "x-api-token": "t0k"},
        }))
        .unwrap();
        assert_eq!(
            (
                item.name(),
                item.consumers(),
                item.rate("publish"),
                item.rate("deliver_get")
            ),
            (Some("celery"), Some(2), 1.5, 0.0)
        );
        let rest = Value::Object(item.rest());
        assert_eq!(
            rest,
            serde_json::json!({
                "message_stats": {"publish_details": {"rate": 1.5}},
                "durable": true, "vhost": "v",
                "arguments": {"x-upstream": "amqp://u:********@up//", "x-api-token": "********"},
            })
        );
    }

    #[test]
    fn names_are_escaped_for_the_regex_filter() {
        assert_eq!(regex_escape("a.b(c)"), "a\\.b\\(c\\)");
    }
}
