//! Garbage on the `celeryev` exchange, between real worker events: each bad
//! body or element is counted under its reason and skipped, good elements
//! beside it are applied, and ingestion goes on.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::BasicPublishOptions;
use lapin::{Channel, Connection};
use serde_json::{json, Value};
use support::{eventually, metric_value, Celeriac, TestVhost, Worker, WorkerOpts};

const MALFORMED: &str = "celeriac_events_malformed_total";

/// Publishes raw bodies to `celeryev` as a Celery worker would (§1.4).
struct Publisher {
    rt: tokio::runtime::Runtime,
    channel: Channel,
    _conn: Connection,
}

impl Publisher {
    fn connect(vhost: &TestVhost) -> Publisher {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let (conn, channel) = rt.block_on(support::events::connect(&vhost.amqp_url()));
        Publisher {
            rt,
            channel,
            _conn: conn,
        }
    }

    fn publish(&self, routing_key: &str, body: &[u8]) {
        let props = support::events::properties("probe@test");
        self.rt.block_on(async {
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
                .expect("publish confirmation");
        });
    }
}

#[allow(clippy::disallowed_methods)] // a test stamps the events it publishes, as a worker would
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A well-formed `task-received` of a synthetic task.
fn received(uuid: &str, name: &str) -> Value {
    json!({
        "hostname": "probe@test", "utcoffset": 0.0, "pid": 1, "clock": 1,
        "uuid": uuid, "name": name, "args": "()", "kwargs": "{}",
        "root_id": uuid, "parent_id": null, "retries": 0, "eta": null, "expires": null,
        "timestamp": now(), "type": "task-received"
    })
}

fn malformed_by_reason(c: &Celeriac) -> std::collections::BTreeMap<String, f64> {
    support::metric_series(&c.metrics(), MALFORMED)
        .into_iter()
        .map(|(labels, v)| (labels.get("reason").cloned().unwrap_or_default(), v))
        .collect()
}

/// Publishes `body`, then a good probe event behind it; once the probe is
/// applied the body has been handled (one queue, one consumer, in order).
/// Returns how each reason's counter moved.
fn publish_and_settle(
    c: &Celeriac,
    p: &Publisher,
    routing_key: &str,
    body: &[u8],
) -> std::collections::BTreeMap<String, f64> {
    let before = malformed_by_reason(c);
    p.publish(routing_key, body);
    let probe = new_id();
    let probe_body = serde_json::to_vec(&json!([received(&probe, "tasks.probe")])).unwrap();
    p.publish("task.multi", &probe_body);
    eventually(
        "the probe event behind it to be applied",
        Duration::from_secs(15),
        || c.task(&probe),
    );
    let after = malformed_by_reason(c);
    after
        .iter()
        .map(|(reason, v)| {
            (
                reason.clone(),
                v - before.get(reason).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

#[test]
fn malformed_events_are_counted_by_reason_and_skipped() {
    let vhost = TestVhost::new("malformed");
    let celeriac = Celeriac::start(&vhost, &[]);
    celeriac.wait_readyz(200, Duration::from_secs(30));
    let _worker = Worker::start(&vhost, "w1@test", WorkerOpts::default());
    let publisher = Publisher::connect(&vhost);
    let ingested_before = celeriac.metric_or_zero("celeriac_events_ingested_total", &[]);

    let good_in_mixed = new_id();
    let ts = now();
    let huge = "x".repeat(2 << 20);
    let cases: Vec<(&str, &str, Vec<u8>, Option<&str>)> = vec![
        (
            "invalid JSON",
            "task.multi",
            br#"[{"type": "task-started", "uuid": "#.to_vec(),
            Some("invalid_json"),
        ),
        (
            "non-UTF-8 bytes",
            "task.started",
            b"{\"type\": \"task-started\", \"hostname\": \"\xff\xfe\"}".to_vec(),
            Some("invalid_utf8"),
        ),
        (
            "array with one bad element among good ones",
            "task.multi",
            serde_json::to_vec(&json!([
                received(&good_in_mixed, "tasks.mixed"),
                "not an event",
            ]))
            .unwrap(),
            Some("not_an_object"),
        ),
        (
            "missing type",
            "task.started",
            serde_json::to_vec(&json!({
                "hostname": "probe@test", "uuid": new_id(), "timestamp": ts
            }))
            .unwrap(),
            Some("missing_type"),
        ),
        (
            "task event without uuid",
            "task.started",
            serde_json::to_vec(&json!({
                "hostname": "probe@test", "timestamp": ts, "type": "task-started"
            }))
            .unwrap(),
            Some("missing_uuid"),
        ),
        (
            "wrong field type",
            "task.multi",
            serde_json::to_vec(&json!([{
                "hostname": "probe@test", "uuid": new_id(), "timestamp": ts,
                "retries": "many", "type": "task-received"
            }]))
            .unwrap(),
            Some("wrong_type"),
        ),
        (
            "2 MB string",
            "task.multi",
            serde_json::to_vec(&json!([{
                "hostname": "probe@test", "uuid": new_id(), "timestamp": ts,
                "args": huge, "type": "task-received"
            }]))
            .unwrap(),
            Some("too_large"),
        ),
        // Celery ≤5.6 flushes empty task.multi buffers (§1.5): valid, not
        // malformed.
        ("empty task.multi array", "task.multi", b"[]".to_vec(), None),
    ];

    let mut failures = Vec::new();
    for (i, (what, key, body, reason)) in cases.iter().enumerate() {
        let moved = publish_and_settle(&celeriac, &publisher, key, body);
        let want: std::collections::BTreeMap<String, f64> =
            reason.iter().map(|r| (r.to_string(), 1.0)).collect();
        if moved != want {
            failures.push(format!(
                "{what}: malformed counters moved {moved:?}, want {want:?}"
            ));
        }
        // Real traffic halfway through: ingestion must not have stalled.
        if i == cases.len() / 2 {
            let id = vhost.send("add", "[4, 4]", &[]);
            celeriac.wait_task_state(&id, "SUCCESS", Duration::from_secs(30));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let mixed = celeriac
        .task(&good_in_mixed)
        .expect("the good element of the mixed array was applied");
    assert_eq!(mixed["state"], "RECEIVED");
    assert_eq!(mixed["name"], "tasks.mixed");

    // Still alive, ready and ingesting real events after all of it.
    let id = vhost.send("add", "[5, 6]", &[]);
    let task = celeriac.wait_task_state(&id, "SUCCESS", Duration::from_secs(30));
    assert_eq!(task["result"], "11");
    assert_eq!(celeriac.get("/healthz").0, 200);
    assert_eq!(celeriac.get("/readyz").0, 200);
    let ingested = celeriac.metric_or_zero("celeriac_events_ingested_total", &[]);
    assert!(
        ingested > ingested_before,
        "events_ingested_total did not grow ({ingested_before} -> {ingested})"
    );
}

#[test]
fn metrics_parser_reads_labels_escapes_and_specials() {
    let text = "# HELP x help\n# TYPE x counter\n\
                x{name=\"tasks.add\",hostname=\"w1@test\",queue_name=\"celery\"} 3\n\
                x{name=\"a\\\"b\\\\c\",hostname=\"w2@test\"} 1.5 1700000000\n\
                y 7\n\
                h_bucket{le=\"+Inf\"} 2\n\
                z{} +Inf\n";
    assert_eq!(metric_value(text, "x", &[("name", "tasks.add")]), Some(3.0));
    assert_eq!(metric_value(text, "x", &[]), Some(4.5));
    assert_eq!(metric_value(text, "x", &[("name", "a\"b\\c")]), Some(1.5));
    assert_eq!(metric_value(text, "y", &[]), Some(7.0));
    assert_eq!(metric_value(text, "h_bucket", &[("le", "+Inf")]), Some(2.0));
    assert_eq!(metric_value(text, "z", &[]), Some(f64::INFINITY));
    assert_eq!(metric_value(text, "x", &[("name", "nope")]), None);
    assert_eq!(metric_value(text, "missing", &[]), None);
}
