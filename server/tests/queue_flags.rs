//! RabbitMQ 4.3 refuses to declare a queue that is neither durable nor
//! exclusive (the deprecated `transient_nonexcl_queues` feature). Every queue
//! celeriac declares, read back from the management API, must be one or the
//! other, so celeriac starts on a current RabbitMQ.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{eventually, settings, Celeriac, TestVhost};

fn flag(q: &Value, name: &str) -> bool {
    q[name].as_bool().unwrap_or(false)
}

#[test]
fn every_queue_celeriac_declares_is_durable_or_exclusive() {
    let vhost = TestVhost::new("queue-flags");
    let celeriac = Celeriac::start(&vhost, &["--inspect-interval", "0"]);
    celeriac.wait_readyz(200, Duration::from_secs(30));
    // An inspect broadcast makes the pidbox client declare its reply queue.
    let (status, _) = celeriac.get("/api/workers?refresh=1");
    assert_eq!(status, 200);

    let queues = eventually(
        "the events, dropped-events and pidbox reply queues",
        Duration::from_secs(20),
        || {
            let queues = settings().mgmt.queues(&vhost.name);
            let has = |suffix: &str| {
                queues
                    .iter()
                    .any(|q| q["name"].as_str().is_some_and(|n| n.ends_with(suffix)))
            };
            (has(".dropped") && has(".reply.celery.pidbox")).then_some(queues)
        },
    );
    let events = queues
        .iter()
        .filter(|q| {
            q["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("celeriac."))
        })
        .count();
    assert!(
        events >= 2,
        "the events queue and its companion: {queues:#?}"
    );
    for q in &queues {
        assert!(
            flag(q, "durable") || flag(q, "exclusive"),
            "queue {} is neither durable nor exclusive: {q:#}",
            q["name"]
        );
        if q["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("celeriac."))
        {
            // Durable, yet gone a minute after celeriac is.
            assert_eq!(q["arguments"]["x-expires"], 60_000, "{q:#}");
            assert!(!flag(q, "auto_delete"), "{q:#}");
        }
    }
}
