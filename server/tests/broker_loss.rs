//! celeriac keeps serving, reports itself unready, and reconnects when the
//! broker goes away, without losing the events published meanwhile; and it
//! starts without a broker at all.

mod support;

use std::time::Duration;

use support::{eventually, Celeriac, TestVhost, Worker, WorkerOpts};

const W1: &str = "w1@test";

fn succeeded(c: &Celeriac) -> f64 {
    c.metric_or_zero(
        "celery_task_succeeded_total",
        &[("name", "tasks.add"), ("hostname", W1)],
    )
}

fn run_tasks(vhost: &TestVhost, c: &Celeriac, n: usize) {
    let ids = vhost.send_many("add", "[1, 2]", n, &[]);
    for id in &ids {
        c.wait_task_state(id, "SUCCESS", Duration::from_secs(60));
    }
}

#[test]
fn reconnects_after_the_broker_drops_its_connections() {
    let vhost = TestVhost::new("reconnect");
    // celeriac connects as its own user so that only its access can be
    // taken away: the workers (guest) reconnect as soon as they can.
    let (monitor, broker) = vhost.add_user("monitor");
    let celeriac = Celeriac::start_with_broker(&broker, &vhost.log_dir, &[]);
    celeriac.wait_readyz(200, Duration::from_secs(30));
    let worker = Worker::start(&vhost, W1, WorkerOpts::default());

    run_tasks(&vhost, &celeriac, 3);
    eventually("3 successes counted", Duration::from_secs(10), || {
        (succeeded(&celeriac) == 3.0).then_some(())
    });
    assert_eq!(celeriac.metric("celeriac_broker_connected", &[]), Some(1.0));
    let reconnects_before = celeriac.metric_or_zero("celeriac_broker_reconnects_total", &[]);

    // Without access to the vhost, celeriac's reconnection attempts fail for
    // as long as it takes to see /readyz answer 503; a bare close would
    // often be healed before a poll could see it.
    vhost.set_access(&monitor, false);
    vhost.close_connections();
    celeriac.wait_readyz(503, Duration::from_secs(15));
    assert_eq!(celeriac.get("/healthz").0, 200, "/healthz stays 200");
    eventually(
        "celeriac_broker_connected to be 0",
        Duration::from_secs(5),
        || (celeriac.metric("celeriac_broker_connected", &[]) == Some(0.0)).then_some(()),
    );

    // Tasks run while celeriac is away: its events queue outlives the
    // connection (it expires a minute after), so their events wait there.
    let during = vhost.send_many("add", "[1, 2]", 2, &[]);
    eventually(
        "the worker to run them while celeriac is away",
        Duration::from_secs(40),
        || {
            let log = worker.log();
            let done = |id: &String| log.contains(&format!("[{id}] succeeded"));
            during.iter().all(done).then_some(())
        },
    );
    assert_eq!(celeriac.get("/readyz").0, 503, "still away");

    vhost.set_access(&monitor, true);
    celeriac.wait_readyz(200, Duration::from_secs(60));
    for id in &during {
        celeriac.wait_task_state(id, "SUCCESS", Duration::from_secs(20));
    }
    eventually("a reconnect to be counted", Duration::from_secs(5), || {
        let n = celeriac.metric_or_zero("celeriac_broker_reconnects_total", &[]);
        (n >= reconnects_before + 1.0).then_some(())
    });
    assert_eq!(celeriac.metric("celeriac_broker_connected", &[]), Some(1.0));

    // Tasks sent after the outage are seen and counted on top of the
    // earlier ones.
    run_tasks(&vhost, &celeriac, 2);
    eventually("7 successes counted", Duration::from_secs(10), || {
        (succeeded(&celeriac) == 7.0).then_some(())
    });
    eventually(
        "the worker to be online again",
        Duration::from_secs(20),
        || celeriac.worker(W1).filter(|w| w["status"] == true),
    );
}

#[test]
fn serves_health_when_the_broker_port_is_closed() {
    let vhost = TestVhost::unborn("closed-port");
    let dir = vhost.log_dir.clone();
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let broker = format!("amqp://guest:guest@127.0.0.1:{port}//");
    let celeriac = Celeriac::start_with_broker(&broker, &dir, &[]);

    assert_eq!(celeriac.get("/healthz").0, 200);
    assert_eq!(celeriac.get("/readyz").0, 503);
    // Still unready after a few failed attempts, and still serving the API.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(celeriac.get("/readyz").0, 503);
    assert_eq!(celeriac.get("/healthz").0, 200);
    assert_eq!(celeriac.get_json("/api/workers"), serde_json::json!({}));
    assert_eq!(celeriac.metric("celeriac_broker_connected", &[]), Some(0.0));
}

#[test]
fn waits_for_a_vhost_that_does_not_exist_yet() {
    let vhost = TestVhost::unborn("late-vhost");
    let celeriac = Celeriac::start(&vhost, &[]);
    assert_eq!(celeriac.get("/healthz").0, 200);
    assert_eq!(celeriac.get("/readyz").0, 503);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(celeriac.get("/readyz").0, 503);

    vhost.create();
    // Reconnect backoff is capped, so the vhost is found within a minute.
    celeriac.wait_readyz(200, Duration::from_secs(60));
    let _worker = Worker::start(&vhost, W1, WorkerOpts::default());
    run_tasks(&vhost, &celeriac, 1);
}
