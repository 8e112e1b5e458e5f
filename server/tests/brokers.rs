//! One cluster spread over several brokers: celeriac consumes events from
//! each, merges them into one view, reaches every worker for remote
//! control, sums queue depth over them, and keeps the others flowing while
//! one is down.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{eventually, metric_value, Celeriac, TestVhost, Worker, WorkerOpts};

const WA: &str = "wa@brokers";
const WB: &str = "wb@brokers";
const WR: &str = "wr@brokers";
const WAIT: Duration = Duration::from_secs(60);

fn succeeded(c: &Celeriac, worker: &str) -> f64 {
    c.metric_or_zero(
        "celery_task_succeeded_total",
        &[("name", "tasks.add"), ("hostname", worker)],
    )
}

fn readyz_brokers(c: &Celeriac) -> Vec<Value> {
    let (_, body) = c.get("/readyz");
    let v: Value = serde_json::from_str(&body).expect("/readyz is JSON");
    v["brokers"].as_array().cloned().unwrap_or_default()
}

#[test]
fn two_vhosts_and_a_redis_database_make_one_merged_cluster() {
    let (a, b, r) = (
        TestVhost::new("brokers-a"),
        TestVhost::new("brokers-b"),
        TestVhost::redis("brokers-r"),
    );
    let c = Celeriac::start_with_broker(
        &a.amqp_url(),
        &a.log_dir,
        &["--broker", &b.amqp_url(), "--broker", &r.amqp_url()],
    );
    c.wait_readyz(200, Duration::from_secs(30));
    eventually("every broker consuming", Duration::from_secs(30), || {
        let brokers = readyz_brokers(&c);
        (brokers.len() == 3 && brokers.iter().all(|b| b["consuming"] == true)).then_some(())
    });
    let _wa = Worker::start(&a, WA, WorkerOpts::default());
    let _wb = Worker::start(&b, WB, WorkerOpts::default());
    let _wr = Worker::start(&r, WR, WorkerOpts::default());

    let mut ids = a.send_many("add", "[1, 2]", 3, &[]);
    ids.extend(b.send_many("add", "[2, 3]", 2, &[]));
    ids.extend(r.send_many("add", "[3, 4]", 4, &[]));
    for id in &ids {
        c.wait_task_state(id, "SUCCESS", WAIT);
    }
    eventually(
        "each broker's successes counted",
        Duration::from_secs(10),
        || {
            let counts = (succeeded(&c, WA), succeeded(&c, WB), succeeded(&c, WR));
            (counts == (3.0, 2.0, 4.0)).then_some(())
        },
    );
    let listed = c.get_json("/api/tasks");
    assert_eq!(listed.as_object().map(|m| m.len()), Some(9), "{listed}");
    // Task-sent from the client and the worker's events of each broker
    // met in one task.
    let one = c.task(&ids[3]).expect("a task sent on broker b");
    assert_eq!(one["worker"], WB, "{one}");
    assert!(
        one["sent"].is_number() || one["received"].is_number(),
        "{one}"
    );

    // Remote control reaches the worker on each broker: inspect (every
    // worker) and a command addressed to one worker of the second broker.
    let workers = c.get_json("/api/workers?refresh=1");
    for w in [WA, WB, WR] {
        assert!(
            workers[w]["registered"]
                .as_array()
                .is_some_and(|r| r.iter().any(|t| t == "tasks.add")),
            "{w}: {workers}"
        );
    }
    let started = Instant::now();
    let (status, v) = c.post(
        &format!("/api/task/rate-limit/tasks.add?workername={WB}&ratelimit=10/m"),
        None,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["replies"][WB]["ok"], "new rate limit set successfully");
    // The worker's broker is known from the inspect replies, so the command
    // went there alone and returned with its reply, not after a timeout.
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "took {:?}",
        started.elapsed()
    );

    // Depth of one queue on two brokers is their sum.
    a.send_many("add", "[1, 1]", 2, &["--queue", "parked"]);
    b.send_many("add", "[1, 1]", 3, &["--queue", "parked"]);
    eventually("parked queue summed", Duration::from_secs(30), || {
        let q = c.get_json("/api/queues/length");
        let parked = q["active_queues"]
            .as_array()?
            .iter()
            .find(|q| q["name"] == "parked")?
            .clone();
        (parked["messages"] == 5).then_some(())
    });
    let metrics = c.metrics();
    for broker in [a.amqp_url(), b.amqp_url()] {
        let masked = broker.replace("guest:guest@", "guest:********@");
        assert_eq!(
            metric_value(
                &metrics,
                "celeriac_broker_connected",
                &[("broker", &masked)]
            ),
            Some(1.0),
            "{masked}: {metrics}"
        );
    }
}

#[test]
fn one_broker_down_leaves_the_other_flowing_and_it_comes_back() {
    let (a, b) = (
        TestVhost::new("brokers-down-a"),
        TestVhost::new("brokers-down-b"),
    );
    // celeriac reaches broker a as its own user, so only its access can be
    // taken away there; the worker (guest) reconnects at once.
    let (monitor, url_a) = a.add_user("monitor");
    let c = Celeriac::start_with_broker(&url_a, &a.log_dir, &["--broker", &b.amqp_url()]);
    c.wait_readyz(200, Duration::from_secs(30));
    let _wa = Worker::start(&a, WA, WorkerOpts::default());
    let _wb = Worker::start(&b, WB, WorkerOpts::default());
    for id in a.send_many("add", "[1, 2]", 2, &[]) {
        c.wait_task_state(&id, "SUCCESS", WAIT);
    }

    a.set_access(&monitor, false);
    a.close_connections();
    let masked_a = url_a.replace(":secret@", ":********@");
    eventually("broker a reported down", Duration::from_secs(15), || {
        let brokers = readyz_brokers(&c);
        let down = brokers.iter().find(|x| x["broker"] == masked_a.as_str())?;
        (down["consuming"] == false && down["last_error"].is_string()).then_some(())
    });
    // The other broker keeps flowing, and celeriac stays ready with it.
    assert_eq!(c.get("/readyz").0, 200, "{:?}", readyz_brokers(&c));
    assert_eq!(
        c.metric("celeriac_broker_connected", &[("broker", &masked_a)]),
        Some(0.0)
    );
    for id in b.send_many("add", "[5, 5]", 3, &[]) {
        c.wait_task_state(&id, "SUCCESS", WAIT);
    }
    // Tasks run on broker a meanwhile wait in celeriac's events queue there.
    let during = a.send_many("add", "[1, 2]", 2, &[]);

    a.set_access(&monitor, true);
    eventually("broker a reconnected", Duration::from_secs(60), || {
        (c.metric("celeriac_broker_connected", &[("broker", &masked_a)]) == Some(1.0)
            && c.metric_or_zero("celeriac_broker_reconnects_total", &[("broker", &masked_a)])
                >= 1.0)
            .then_some(())
    });
    for id in &during {
        c.wait_task_state(id, "SUCCESS", WAIT);
    }
    eventually(
        "every success counted once",
        Duration::from_secs(10),
        || (succeeded(&c, WA) == 4.0 && succeeded(&c, WB) == 3.0).then_some(()),
    );
}
