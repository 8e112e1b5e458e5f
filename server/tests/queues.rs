//! Queue depth from the broker (docs/celery-protocol.md §5): real tasks published
//! by the real Celery client to a queue nobody consumes must show their
//! exact count, from the management API and from the AMQP fallback alike,
//! in `/api/queues/length` and in `celery_queue_length`.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{eventually, Celeriac, TestVhost, Worker, WorkerOpts};

const BACKLOG: &str = "backlog";
const SENT: usize = 7;

fn queue(c: &Celeriac, name: &str) -> Option<(Value, Value)> {
    let body = c.get_json("/api/queues/length");
    let q = body["active_queues"]
        .as_array()?
        .iter()
        .find(|q| q["name"] == name)?
        .clone();
    Some((q, body["source"].clone()))
}

fn wait_depth(c: &Celeriac, name: &str, depth: u64) -> (Value, Value) {
    eventually(
        &format!("{name} to hold {depth} ready messages in /api/queues/length"),
        // The management API refreshes its figures every 5 s, and a loaded
        // machine runs the poller late: generous, never the test's limit.
        Duration::from_secs(60),
        || queue(c, name).filter(|(q, _)| q["messages_ready"] == depth),
    )
}

#[test]
fn depth_is_exact_from_the_management_api() {
    let vhost = TestVhost::new("queues-mgmt");
    let celeriac = Celeriac::start(&vhost, &["--broker-stats-interval", "1"]);
    celeriac.wait_readyz(200, Duration::from_secs(30));
    vhost.send_many("add", "[1, 2]", SENT, &["--queue", BACKLOG]);

    let (q, source) = wait_depth(&celeriac, BACKLOG, SENT as u64);
    assert_eq!(source, "management");
    assert_eq!(q["messages"], SENT as u64, "{q:#}");
    assert_eq!(q["messages_unacknowledged"], 0, "{q:#}");
    // Consumers come from the stats listing.
    let q = eventually("the consumer count", Duration::from_secs(20), || {
        queue(&celeriac, BACKLOG)
            .map(|(q, _)| q)
            .filter(|q| q["consumers"].is_u64())
    });
    assert_eq!(q["consumers"], 0, "{q:#}");

    let m = celeriac.metrics();
    let get = |name: &str, labels: &[(&str, &str)]| support::metric_value(&m, name, labels);
    assert_eq!(
        get("celery_queue_length", &[("queue_name", BACKLOG)]),
        Some(SENT as f64)
    );
    assert_eq!(
        get("celeriac_queue_messages", &[("queue_name", BACKLOG)]),
        Some(SENT as f64)
    );
    assert_eq!(
        get("celery_active_consumer_count", &[("queue_name", BACKLOG)]),
        Some(0.0)
    );
    assert_eq!(
        get("celeriac_broker_stats_up", &[("source", "management")]),
        Some(1.0)
    );
    assert_eq!(
        get("celeriac_broker_stats_up", &[("source", "amqp")]),
        Some(0.0)
    );
    // `/readyz` says where depths come from and that it works.
    let stats = &celeriac.get_json("/readyz")["broker_stats"];
    assert_eq!(stats["source"], "management", "{stats:#}");
    assert_eq!(stats["working"], true, "{stats:#}");
    assert!(stats["last_success_at"].as_f64().is_some(), "{stats:#}");
    assert_eq!(stats["last_error"], Value::Null, "{stats:#}");

    // celeriac's own events queue and Celery's pidbox are not task queues.
    let body = celeriac.get_json("/api/queues/length");
    for q in body["active_queues"].as_array().unwrap() {
        let name = q["name"].as_str().unwrap();
        assert!(
            !name.starts_with("celeriac.") && !name.ends_with(".pidbox"),
            "{name}"
        );
    }

    // `--queues` narrows the set to the named queues.
    let narrow = Celeriac::start(
        &vhost,
        &["--broker-stats-interval", "1", "--queues", "nosuch,backlog"],
    );
    let (_, _) = wait_depth(&narrow, BACKLOG, SENT as u64);
    let body = narrow.get_json("/api/queues/length");
    let names: Vec<&str> = body["active_queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [BACKLOG]);
}

#[test]
fn depth_is_exact_from_the_amqp_fallback() {
    let vhost = TestVhost::new("queues-amqp");
    // Nothing listens on port 1: the management API is unreachable.
    let celeriac = Celeriac::start(
        &vhost,
        &[
            "--broker-stats-interval",
            "1",
            "--broker-api",
            "http://127.0.0.1:1/api/",
        ],
    );
    celeriac.wait_readyz(200, Duration::from_secs(30));
    // The queue becomes known from the task-sent events' `queue`.
    vhost.send_many("add", "[1, 2]", SENT, &["--queue", BACKLOG]);

    let (q, source) = wait_depth(&celeriac, BACKLOG, SENT as u64);
    assert_eq!(source, "amqp");
    assert_eq!(q["consumers"], 0, "{q:#}");
    // The fallback cannot tell unacknowledged messages apart.
    assert!(q.get("messages_unacknowledged").is_none(), "{q:#}");

    let m = celeriac.metrics();
    let get = |name: &str, labels: &[(&str, &str)]| support::metric_value(&m, name, labels);
    assert_eq!(
        get("celery_queue_length", &[("queue_name", BACKLOG)]),
        Some(SENT as f64)
    );
    assert_eq!(
        get("celeriac_broker_stats_up", &[("source", "amqp")]),
        Some(1.0)
    );
    assert_eq!(
        get("celeriac_broker_stats_up", &[("source", "management")]),
        Some(0.0)
    );
    assert!(
        get(
            "celeriac_broker_stats_errors_total",
            &[("source", "management")]
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    // `/readyz` names the fallback and why the management API is not used.
    let stats = &celeriac.get_json("/readyz")["broker_stats"];
    assert_eq!(stats["source"], "amqp", "{stats:#}");
    assert_eq!(stats["working"], true, "{stats:#}");
    assert_eq!(stats["up"]["management"], false, "{stats:#}");
    assert!(
        stats["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("management API")),
        "{stats:#}"
    );
    assert!(
        stats["errors"]["management"].as_u64() >= Some(1),
        "{stats:#}"
    );
    assert!(
        celeriac.log().contains("queue statistics now from amqp"),
        "the switch to the fallback is logged"
    );
}

/// On quorum queues Celery sends countdown tasks through RabbitMQ's native
/// delayed delivery: they wait in the `celery_delayed_*` cascade, not in
/// their queue. They are shown as scheduled on the broker's side, the
/// cascade's 28 queues are not listed, and each queue says its type.
#[test]
fn quorum_queues_show_their_type_and_the_delayed_cascade_as_scheduled() {
    let vhost = TestVhost::new("queues-quorum");
    vhost.set_celery_env("CELERY_QUEUE_TYPE", "quorum");
    // The worker declares the quorum queue and the cascade.
    let _worker = Worker::start(&vhost, "q1@test", WorkerOpts::default());
    let celeriac = Celeriac::start(&vhost, &["--broker-stats-interval", "1"]);
    celeriac.wait_readyz(200, Duration::from_secs(30));
    vhost.send_many("add", "[1, 2]", 2, &["--countdown", "600"]);

    let body = eventually(
        "2 tasks scheduled on the broker's side",
        Duration::from_secs(60),
        || {
            let body = celeriac.get_json("/api/queues/length");
            (body["scheduled_broker_side"] == 2).then_some(body)
        },
    );
    let queues = body["active_queues"].as_array().unwrap();
    let celery = queues.iter().find(|q| q["name"] == "celery").unwrap();
    assert_eq!(celery["type"], "quorum", "{body}");
    assert_eq!(celery["messages_ready"], 0, "{body}");
    assert!(
        queues
            .iter()
            .all(|q| !q["name"].as_str().unwrap().starts_with("celery_delayed_")),
        "{body}"
    );
    eventually(
        "celeriac_queue_scheduled_broker_side to be 2",
        Duration::from_secs(30),
        || {
            (celeriac.metric("celeriac_queue_scheduled_broker_side", &[]) == Some(2.0))
                .then_some(())
        },
    );

    // Growing the pool works, but the answer says the prefetch stays put.
    let _ = celeriac.get_json("/api/workers?refresh=1");
    let (status, v) = celeriac.post("/api/worker/pool/grow/q1@test", Some("n=1"));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["message"], "Growing 'q1@test' worker's pool by 1");
    let note = v["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("quorum queues (celery)") && note.contains("prefetch"),
        "{v}"
    );
    // Not on a command that quorum queues do not blunt.
    let (status, v) = celeriac.post(
        "/api/task/rate-limit/tasks.add?workername=q1@test&ratelimit=10/m",
        None,
    );
    assert_eq!(status, 200, "{v}");
    assert!(v.get("note").is_none(), "{v}");
}
