//! Shared pieces of the notifier tests: a sample notification, a real local
//! HTTP receiver that records what it is sent, and endpoints that are dead
//! (closed port) or hang (accept, never answer).

#![allow(dead_code)] // each test binary uses a different part

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alerts::notify::{AlertStatus, DispatchOptions, Dispatcher, Notification};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use tokio::net::TcpListener;

/// A firing `QueueBacklog` alert on queue `default`.
pub fn firing() -> Notification {
    Notification {
        rule: "QueueBacklog".into(),
        status: AlertStatus::Firing,
        severity: Some("warning".into()),
        labels: BTreeMap::from([("queue".into(), "default".into())]),
        annotations: BTreeMap::from([
            ("summary".into(), "Queue default has 1500 messages".into()),
            (
                "runbook_url".into(),
                "https://runbooks.example/backlog".into(),
            ),
        ]),
        value: Some(1500.0),
        threshold: Some(1000.0),
        starts_at: 1_700_000_000.0,
        ends_at: None,
        fingerprint: "QueueBacklog{queue=default}".into(),
        generator_url: Some("http://celeriac.example/alerts".into()),
    }
}

/// The same alert, resolved 5 minutes later.
pub fn resolved() -> Notification {
    Notification {
        status: AlertStatus::Resolved,
        value: Some(10.0),
        ends_at: Some(1_700_000_300.0),
        ..firing()
    }
}

/// Short timeouts and backoffs so failure paths finish in seconds.
pub fn fast_options() -> DispatchOptions {
    DispatchOptions {
        queue_capacity: 16,
        max_retries: 2,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        timeout: Duration::from_secs(1),
    }
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: serde_json::Value,
    pub at: Instant,
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Status codes to answer with, in order; 200 once used up.
    answers: VecDeque<u16>,
}

/// A local HTTP server (axum) accepting POSTs of JSON on any path.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::answering(&[]).await
    }

    /// A receiver that answers the first requests with `answers`, then 200.
    pub async fn answering(answers: &[u16]) -> Receiver {
        let inner = Arc::new(Mutex::new(Inner {
            received: Vec::new(),
            answers: answers.iter().copied().collect(),
        }));
        let app = axum::Router::new()
            .fallback(record)
            .with_state(inner.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url: format!("http://{addr}/hook"),
            inner,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().received.clone()
    }

    /// Waits until `n` requests have arrived; panics after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} requests at {} within {within:?}, got {}",
                self.url,
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn record(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let at = Instant::now();
    let body = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    let mut inner = inner.lock();
    inner.received.push(Received { headers, body, at });
    let code = inner.answers.pop_front().unwrap_or(200);
    StatusCode::from_u16(code).unwrap()
}

/// A URL on a port nothing listens on: connections are refused.
pub async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/hook")
}

/// A URL whose server accepts connections and never answers.
pub async fn hanging_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn); // keep it open, say nothing
        }
    });
    format!("http://{addr}/hook")
}

/// The stats of notifier `name`.
pub fn stats(d: &Dispatcher, name: &str) -> api::alerts::NotifierStatus {
    d.stats()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no notifier `{name}` in stats"))
}

/// Waits until `cond` holds for notifier `name`'s stats; panics after `within`.
pub async fn wait_stats(
    d: &Dispatcher,
    name: &str,
    within: Duration,
    cond: impl Fn(&api::alerts::NotifierStatus) -> bool,
) -> api::alerts::NotifierStatus {
    let deadline = Instant::now() + within;
    loop {
        let s = stats(d, name);
        if cond(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "notifier `{name}` stats did not reach the expected state within {within:?}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Parses notifiers from YAML as written in a rule file's `notifiers:`.
pub fn notifiers(yaml: &str) -> Vec<alerts::notify::NotifierConfig> {
    serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("bad notifier YAML: {e}\n{yaml}"))
}
