//! Ingest against the real local RabbitMQ, in-process: recorded Celery
//! messages published to `celeryev` end up in the state; a connection closed
//! by the broker is re-established; a named `--events-queue` keeps what was
//! published while celeriac was down; what the broker drops is counted.
//!
//! Each test uses its own vhost, created through the management API and
//! deleted at the end. Environment: `CELERIAC_TEST_AMQP` (broker URL without
//! vhost, default guest@127.0.0.1:5672) and `CELERIAC_TEST_MGMT` (default
//! `http://guest:guest@127.0.0.1:15672`).

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use api::TaskState;
use celeriac::config::Config;
use celeriac::Running;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

fn amqp_base() -> String {
    std::env::var("CELERIAC_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672".into())
        .trim_end_matches('/')
        .to_string()
}

fn mgmt_base() -> String {
    std::env::var("CELERIAC_TEST_MGMT")
        .unwrap_or_else(|_| "http://guest:guest@127.0.0.1:15672".into())
        .trim_end_matches('/')
        .to_string()
}

/// A private vhost, deleted on drop (also when the test panics).
struct Vhost {
    name: String,
}

impl Vhost {
    async fn new(tag: &str) -> Vhost {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "celeriac-ingest-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let client = reqwest::Client::new();
        let base = mgmt_base();
        let url = format!("{base}/api/vhosts/{name}");
        let (url, user, pass) = split_credentials(&url);
        let resp = client
            .put(&url)
            .basic_auth(&user, Some(&pass))
            .send()
            .await
            .expect("management API reachable (rabbitmq-plugins enable rabbitmq_management)");
        assert!(
            resp.status().is_success(),
            "create vhost: {}",
            resp.status()
        );
        let (perm_url, _, _) = split_credentials(&format!("{base}/api/permissions/{name}/{user}"));
        let resp = client
            .put(&perm_url)
            .basic_auth(&user, Some(&pass))
            .json(&serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}))
            .send()
            .await
            .expect("set permissions");
        assert!(resp.status().is_success(), "permissions: {}", resp.status());
        Vhost { name }
    }

    async fn delete_queue(&self, queue: &str) {
        let (url, user, pass) =
            split_credentials(&format!("{}/api/queues/{}/{queue}", mgmt_base(), self.name));
        let resp = reqwest::Client::new()
            .delete(&url)
            .basic_auth(&user, Some(&pass))
            .send()
            .await
            .expect("management API");
        assert!(
            resp.status().is_success(),
            "delete queue: {}",
            resp.status()
        );
    }

    fn broker(&self) -> String {
        format!("{}/{}", amqp_base(), self.name)
    }

    /// Closes every client connection of the vhost from the broker side.
    fn close_connections(&self) {
        let out = std::process::Command::new("rabbitmqctl")
            .args(["close_all_connections", "-p", &self.name, "test"])
            .output()
            .expect("rabbitmqctl runs");
        assert!(
            out.status.success(),
            "rabbitmqctl close_all_connections: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        // Synchronous on purpose: Drop cannot await, and a leftover vhost
        // would keep its queues.
        let url = format!("{}/api/vhosts/{}", mgmt_base(), self.name);
        let _ = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-X", "DELETE", &url])
            .status();
    }
}

/// `http://user:pass@host/...` → (`http://host/...`, user, pass).
fn split_credentials(url: &str) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").expect("URL with scheme");
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            (format!("{scheme}://{host}"), user.into(), pass.into())
        }
        None => (url.to_string(), "guest".into(), "guest".into()),
    }
}

/// One recorded message: routing key and body.
struct Message {
    routing_key: String,
    hostname: String,
    body: String,
}

/// The messages of a fixture scenario, in wire order.
fn scenario(name: &str) -> Vec<Message> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/events/scenarios")
        .join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    let mut out = Vec::new();
    let mut routing_key = None;
    let mut hostname = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("exchange=") {
            routing_key = rest
                .split_once("routing_key=")
                .map(|(_, k)| k.trim().to_string());
        } else if let Some(h) = line.strip_prefix("headers: ") {
            let v: serde_json::Value = serde_json::from_str(h).expect("headers are JSON");
            hostname = v["hostname"].as_str().unwrap_or_default().to_string();
        } else if let Some(body) = line.strip_prefix("body: ") {
            out.push(Message {
                routing_key: routing_key.take().expect("routing key before body"),
                hostname: std::mem::take(&mut hostname),
                body: body.to_string(),
            });
        }
    }
    assert!(!out.is_empty(), "no messages in {}", path.display());
    out
}

/// The uuid of the first task event of a scenario.
fn task_id(messages: &[Message]) -> String {
    for m in messages {
        let v: serde_json::Value = serde_json::from_str(&m.body).expect("JSON body");
        let first = if v.is_array() { v[0].clone() } else { v };
        if let Some(id) = first["uuid"].as_str() {
            return id.to_string();
        }
    }
    panic!("no task in scenario")
}

struct Publisher {
    _conn: Connection,
    channel: lapin::Channel,
}

impl Publisher {
    async fn new(vhost: &Vhost) -> Publisher {
        let conn = Connection::connect(&vhost.broker(), ConnectionProperties::default())
            .await
            .expect("publisher connects");
        let channel = conn.create_channel().await.expect("channel");
        Publisher {
            _conn: conn,
            channel,
        }
    }

    /// Publishes as a Celery worker would (docs/celery-protocol.md §1.4).
    async fn publish(&self, routing_key: &str, hostname: &str, body: &[u8]) {
        let mut headers = FieldTable::default();
        headers.insert("hostname".into(), AMQPValue::LongString(hostname.into()));
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_delivery_mode(1)
            .with_priority(0)
            .with_headers(headers);
        self.channel
            .basic_publish(
                "celeryev".into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .expect("publish")
            .await
            .expect("publish done");
    }

    async fn scenario(&self, messages: &[Message]) {
        for m in messages {
            self.publish(&m.routing_key, &m.hostname, m.body.as_bytes())
                .await;
        }
    }
}

fn config(vhost: &Vhost, extra: &[&str]) -> Config {
    let broker = vhost.broker();
    let mut args = vec![
        "celeriac",
        "--broker",
        &broker,
        "--port",
        "0",
        "--enable-events-interval",
        "1",
        // What reaches the state here comes from the broker alone, not from
        // a history store.
        "--db",
        "none",
    ];
    args.extend_from_slice(extra);
    Config::load_from(args).expect("valid config")
}

async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_consuming(c: &Running) {
    eventually("ingest to consume", Duration::from_secs(20), || async {
        c.app.consuming().then_some(())
    })
    .await
}

fn task_state(c: &Running, id: &str) -> Option<TaskState> {
    c.app.state.read().task(id).map(|t| t.state.clone())
}

async fn wait_task(c: &Running, id: &str, state: TaskState) {
    eventually(
        &format!("task {id} to be {state:?}"),
        Duration::from_secs(20),
        || {
            let done = task_state(c, id).as_ref() == Some(&state);
            async move { done.then_some(()) }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_events_reach_the_state_across_a_broker_side_close() {
    let vhost = Vhost::new("basic").await;
    let c = celeriac::start(config(&vhost, &[])).await.expect("starts");
    wait_consuming(&c).await;
    assert_eq!(connected(&c.app), 1);

    let publisher = Publisher::new(&vhost).await;
    for (name, state) in [
        ("success", TaskState::Success),
        ("failure", TaskState::Failure),
        ("retry", TaskState::Success),
    ] {
        let messages = scenario(name);
        publisher.scenario(&messages).await;
        wait_task(&c, &task_id(&messages), state).await;
    }
    // The scenarios hold 4 + 4 + 8 messages, one event each.
    assert_eq!(c.app.metrics.messages_received.get(), 16);
    assert_eq!(c.app.metrics.events_ingested.get(), 16);
    assert!(c.app.last_event_at().is_some());

    // A malformed body is counted, acked and skipped; the next one flows.
    publisher.publish("task.multi", "w1@vm", b"{not json").await;
    eventually(
        "the malformed body to be counted",
        Duration::from_secs(10),
        || async {
            let n = c
                .app
                .metrics
                .events_malformed
                .with_label_values(&["invalid_json"])
                .get();
            (n == 1).then_some(())
        },
    )
    .await;

    vhost.close_connections();
    eventually("a reconnect", Duration::from_secs(20), || async {
        (reconnects(&c.app) >= 1 && c.app.consuming()).then_some(())
    })
    .await;
    assert_eq!(connected(&c.app), 1);
    assert_eq!(c.app.last_error(), None);

    let publisher = Publisher::new(&vhost).await;
    let messages = scenario("revoke_terminate");
    publisher.scenario(&messages).await;
    wait_task(&c, &task_id(&messages), TaskState::Revoked).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_queue_keeps_what_was_published_while_celeriac_was_down() {
    let vhost = Vhost::new("named").await;
    let queue = ["--events-queue", "celeriac-test-events"];
    let c = celeriac::start(config(&vhost, &queue))
        .await
        .expect("starts");
    wait_consuming(&c).await;
    c.stop().await;

    let publisher = Publisher::new(&vhost).await;
    let messages = scenario("success");
    publisher.scenario(&messages).await;

    let c = celeriac::start(config(&vhost, &queue))
        .await
        .expect("restarts");
    wait_task(&c, &task_id(&messages), TaskState::Success).await;
    assert_eq!(c.app.metrics.events_ingested.get(), 4);

    // Deleting the queue cancels the consumer: celeriac declares it again.
    vhost.delete_queue("celeriac-test-events").await;
    eventually("a reconnect", Duration::from_secs(20), || async {
        (reconnects(&c.app) >= 1 && c.app.consuming()).then_some(())
    })
    .await;
    let messages = scenario("failure");
    publisher.scenario(&messages).await;
    wait_task(&c, &task_id(&messages), TaskState::Failure).await;
    c.stop().await;

    // The queue exists now with celeriac's TTL: other values are refused,
    // and the error says which argument and what to do.
    let mut other_ttl = queue.to_vec();
    other_ttl.extend(["--events-ttl", "5"]);
    let c = celeriac::start(config(&vhost, &other_ttl))
        .await
        .expect("starts anyway");
    let error = eventually(
        "the mismatch to be reported",
        Duration::from_secs(20),
        || async { c.app.last_error() },
    )
    .await;
    assert!(!c.app.consuming());
    assert!(
        error.contains("celeriac-test-events")
            && error.contains("x-message-ttl")
            && error.contains("--events-ttl"),
        "{error}"
    );
    c.stop().await;
}

/// A restarted celeriac with a named queue first reads what was published
/// while it was down. It must not call itself ready while it still
/// replays that past: a load balancer would send users to a monitor that
/// shows an old picture as the present.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_is_ready_only_once_the_events_queued_meanwhile_are_read() {
    const QUEUED: u64 = 20_000;
    let vhost = Vhost::new("behind").await;
    let queue = ["--events-queue", "celeriac-test-behind"];
    let c = celeriac::start(config(&vhost, &queue))
        .await
        .expect("starts");
    wait_consuming(&c).await;
    c.stop().await;

    let publisher = Publisher::new(&vhost).await;
    for i in 0..QUEUED {
        let body = format!(
            r#"{{"type": "worker-heartbeat", "hostname": "w{}@behind", "timestamp": 1795424223.5, "freq": 2.0, "clock": {i}}}"#,
            i % 10
        );
        publisher
            .channel
            .basic_publish(
                "celeryev".into(),
                "worker.heartbeat".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default().with_content_type("application/json".into()),
            )
            .await
            .expect("publish");
    }
    // Publishes are not confirmed: wait until the queue holds them all.
    eventually(
        "the burst to be queued",
        Duration::from_secs(60),
        || async {
            let q = publisher
                .channel
                .queue_declare(
                    "celeriac-test-behind".into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .expect("passive declare");
            (u64::from(q.message_count()) >= QUEUED).then_some(())
        },
    )
    .await;

    let c = celeriac::start(config(&vhost, &queue))
        .await
        .expect("restarts");
    let readyz = format!("http://{}/readyz", c.addr);
    let http = reqwest::Client::new();
    eventually("/readyz to answer 200", Duration::from_secs(60), || async {
        let resp = http.get(&readyz).send().await.ok()?;
        let ready = resp.status().as_u16() == 200;
        // Read after the answer: what was applied by then can only be less.
        let applied = c.app.metrics.events_ingested.get();
        let body: serde_json::Value = resp.json().await.ok()?;
        if ready {
            // Ready means read off the broker down to 1,000 messages; what
            // was read may still wait in the batch channel (its batches and
            // the one being built) for a few milliseconds more.
            let in_flight = (celeriac::ingest::BATCH_CHANNEL_CAPACITY as u64 + 1)
                * celeriac::ingest::MAX_BATCH_EVENTS as u64;
            assert!(
                applied + 1_000 + in_flight >= QUEUED,
                "ready with only {applied} of {QUEUED} queued events applied: {body}"
            );
            return Some(());
        }
        None
    })
    .await;
    assert!(c.app.events_behind() <= 1_000);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_broker_drops_is_counted_by_reason() {
    let vhost = Vhost::new("drops").await;
    let queue = [
        "--events-queue",
        "celeriac-test-drops",
        "--events-max-length",
        "2",
    ];
    let c = celeriac::start(config(&vhost, &queue))
        .await
        .expect("starts");
    wait_consuming(&c).await;
    c.stop().await;

    // While celeriac is down the queue holds the 2 newest messages; older
    // ones overflow to the dead-letter exchange and wait in the dropped
    // queue to be counted. The first message is a `task.multi` of two
    // events: drops count events, not messages.
    let publisher = Publisher::new(&vhost).await;
    let messages = scenario("retry");
    let pair = messages[7].body.replacen(
        "[",
        &format!("[{}, ", &messages[6].body[1..messages[6].body.len() - 1]),
        1,
    );
    publisher
        .publish("task.multi", "w1@vm", pair.as_bytes())
        .await;
    publisher.scenario(&messages).await;

    let c = celeriac::start(config(&vhost, &queue))
        .await
        .expect("restarts");
    let maxlen = || {
        c.app
            .metrics
            .events_dropped
            .with_label_values(&["maxlen"])
            .get()
    };
    // 9 messages published, the 2 newest kept: 2 + 6 events dropped.
    eventually("drops to be counted", Duration::from_secs(20), || async {
        (maxlen() == 8).then_some(())
    })
    .await;
    eventually(
        "the kept messages to be ingested",
        Duration::from_secs(20),
        || async { (c.app.metrics.messages_received.get() == 2).then_some(()) },
    )
    .await;
    c.stop().await;

    // Expiry: a 1 s TTL and a 2 s outage.
    let queue = ["--events-queue", "celeriac-test-ttl", "--events-ttl", "1"];
    let c = celeriac::start(config(&vhost, &queue))
        .await
        .expect("starts");
    wait_consuming(&c).await;
    c.stop().await;
    publisher.scenario(&scenario("success")).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let c = celeriac::start(config(&vhost, &queue))
        .await
        .expect("restarts");
    eventually(
        "expired events to be counted",
        Duration::from_secs(20),
        || async {
            let n = c
                .app
                .metrics
                .events_dropped
                .with_label_values(&["expired"])
                .get();
            (n == 4).then_some(())
        },
    )
    .await;
    assert_eq!(c.app.metrics.events_ingested.get(), 0);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_is_served_while_the_broker_is_unreachable() {
    // Nothing listens on port 1: every connect is refused at once.
    let config = Config::load_from([
        "celeriac",
        "--broker",
        "amqp://guest:guest@127.0.0.1:1//",
        "--port",
        "0",
        // Not the user's own store under ~/.local/share.
        "--db",
        "none",
    ])
    .expect("valid config");
    let c = celeriac::start(config)
        .await
        .expect("starts without a broker");
    let error = eventually(
        "the failure to be reported",
        Duration::from_secs(10),
        || async { c.app.last_error() },
    )
    .await;
    assert!(error.contains("127.0.0.1:1"), "{error}");
    assert!(!c.app.consuming());
    assert_eq!(connected(&c.app), 0);
    let resp = reqwest::get(format!("http://{}/healthz", c.addr))
        .await
        .expect("HTTP answers");
    assert_eq!(resp.status(), 200);
    let resp = reqwest::get(format!("http://{}/readyz", c.addr))
        .await
        .expect("HTTP answers");
    assert_eq!(resp.status(), 503);
    c.stop().await;
}

/// Declares a durable queue as another tool would, with only a TTL and a
/// max length (as 64-bit ints, which RabbitMQ treats as equal to 32-bit).
async fn declare_foreign(vhost: &Vhost, name: &str, ttl_ms: i64, max_length: i64) {
    let conn = Connection::connect(&vhost.broker(), ConnectionProperties::default())
        .await
        .expect("connects");
    let channel = conn.create_channel().await.expect("channel");
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl_ms));
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(max_length));
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .expect("declared");
    let _ = conn.close(200, "OK".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_declared_by_someone_else_is_consumed_or_its_mismatch_reported() {
    let vhost = Vhost::new("foreign").await;
    // Same bounds as celeriac's, but no dead-letter arguments: consumed,
    // only without drop counting.
    declare_foreign(&vhost, "same", 600_000, 1_000).await;
    let c = celeriac::start(config(
        &vhost,
        &["--events-queue", "same", "--events-max-length", "1000"],
    ))
    .await
    .expect("starts");
    wait_consuming(&c).await;
    let publisher = Publisher::new(&vhost).await;
    let messages = scenario("success");
    publisher.scenario(&messages).await;
    wait_task(&c, &task_id(&messages), TaskState::Success).await;
    c.stop().await;

    // Celery's 5 s TTL: refused, and the error names queue and argument.
    declare_foreign(&vhost, "celery-ttl", 5_000, 1_000).await;
    let c = celeriac::start(config(
        &vhost,
        &[
            "--events-queue",
            "celery-ttl",
            "--events-max-length",
            "1000",
        ],
    ))
    .await
    .expect("starts");
    let error = eventually(
        "the mismatch to be reported",
        Duration::from_secs(20),
        || async { c.app.last_error() },
    )
    .await;
    assert!(
        error.contains("`celery-ttl`") && error.contains("`x-message-ttl`"),
        "{error}"
    );
    c.stop().await;
}

/// Reads every message waiting in `queue`: (method, headers) of each.
async fn drain_pidbox(vhost: &Vhost, queue: &str) -> Vec<(String, FieldTable)> {
    let conn = Connection::connect(&vhost.broker(), ConnectionProperties::default())
        .await
        .expect("connects");
    let channel = conn.create_channel().await.expect("channel");
    let mut out = Vec::new();
    while let Some(m) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        let body: serde_json::Value = serde_json::from_slice(&m.delivery.data).expect("JSON body");
        assert_eq!(body["destination"], serde_json::Value::Null);
        assert!(body.get("reply_to").is_none());
        assert_eq!(
            m.delivery
                .properties
                .content_type()
                .as_ref()
                .map(|s| s.as_str()),
            Some("application/json")
        );
        let headers = m.delivery.properties.headers().clone().unwrap_or_default();
        out.push((
            body["method"].as_str().unwrap_or_default().to_string(),
            headers,
        ));
    }
    let _ = conn.close(200, "OK".into()).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_woken_on_each_connect_and_asked_for_events() {
    let vhost = Vhost::new("pidbox").await;
    // Stand in for a worker's pidbox queue, declared as Celery declares the
    // exchange; durable so it outlives the broker-side close below.
    let conn = Connection::connect(&vhost.broker(), ConnectionProperties::default())
        .await
        .expect("connects");
    let channel = conn.create_channel().await.expect("channel");
    channel
        .exchange_declare(
            "celery.pidbox".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("pidbox exchange");
    channel
        .queue_declare(
            "w1.pidbox".into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue");
    channel
        .queue_bind(
            "w1.pidbox".into(),
            "celery.pidbox".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    let _ = conn.close(200, "OK".into()).await;

    let c = celeriac::start(config(&vhost, &[])).await.expect("starts");
    wait_consuming(&c).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let first = drain_pidbox(&vhost, "w1.pidbox").await;
    let methods: Vec<&str> = first.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(methods.first(), Some(&"heartbeat"), "{methods:?}");
    assert_eq!(methods.iter().filter(|m| **m == "heartbeat").count(), 1);
    // Every second (the test's interval), starting at once.
    let enables = methods.iter().filter(|m| **m == "enable_events").count();
    assert!((2..=4).contains(&enables), "{methods:?}");
    let headers = first[0].1.inner();
    assert!(matches!(headers.get("clock"), Some(AMQPValue::LongInt(_))));
    match headers.get("expires") {
        Some(AMQPValue::Double(t)) => assert!((t - celeriac::clock::now()).abs() < 10.0),
        other => panic!("expires: {other:?}"),
    }

    vhost.close_connections();
    eventually("a reconnect", Duration::from_secs(20), || async {
        (reconnects(&c.app) >= 1 && c.app.consuming()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = drain_pidbox(&vhost, "w1.pidbox").await;
    assert!(
        again.iter().any(|(m, _)| m == "heartbeat"),
        "a new wake-up after reconnecting: {:?}",
        again.iter().map(|(m, _)| m).collect::<Vec<_>>()
    );
    c.stop().await;

    // With --enable-events false only the wake-up goes out.
    let c = celeriac::start(config(&vhost, &["--enable-events", "false"]))
        .await
        .expect("starts");
    wait_consuming(&c).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let methods: Vec<String> = drain_pidbox(&vhost, "w1.pidbox")
        .await
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(methods, ["heartbeat"]);
    c.stop().await;
}

/// `celeriac_broker_connected` of the one broker.
fn connected(app: &celeriac::app::AppState) -> i64 {
    let broker = app.sources[0].name();
    app.metrics
        .broker_connected
        .with_label_values(&[broker])
        .get()
}

/// `celeriac_broker_reconnects_total` of the one broker.
fn reconnects(app: &celeriac::app::AppState) -> u64 {
    let broker = app.sources[0].name();
    app.metrics
        .broker_reconnects
        .with_label_values(&[broker])
        .get()
}
