//! Worker liveness as celeriac derives it from real workers' events
//! (docs/celery-protocol.md §2.7): online from worker-online/heartbeats, offline at
//! once on worker-offline, and offline by heartbeat expiry when a worker dies
//! without saying so.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{eventually, Celeriac, TestVhost, Worker, WorkerOpts};

fn start(test: &str) -> (TestVhost, Celeriac) {
    let vhost = TestVhost::new(test);
    let celeriac = Celeriac::start(&vhost, &[]);
    celeriac.wait_readyz(200, Duration::from_secs(30));
    (vhost, celeriac)
}

fn wait_online(c: &Celeriac, nodename: &str) -> Value {
    eventually(
        &format!("{nodename} to be online in /api/workers"),
        Duration::from_secs(20),
        || c.worker(nodename).filter(|w| w["status"] == true),
    )
}

fn worker_up(c: &Celeriac, nodename: &str) -> Option<f64> {
    c.metric("celery_worker_up", &[("hostname", nodename)])
}

#[test]
fn worker_comes_online_with_its_version_and_load() {
    let (vhost, celeriac) = start("online");
    let _worker = Worker::start(&vhost, "w1@test", WorkerOpts::default());

    let w = wait_online(&celeriac, "w1@test");
    assert_eq!(w["hostname"], "w1@test");
    assert_eq!(w["sw_ident"], "py-celery");
    assert_eq!(w["sw_ver"], "5.7.0");
    assert_eq!(w["sw_sys"], "Linux");
    assert!(
        w["timestamp"].is_f64() && w["last_heartbeat"].is_f64(),
        "{w:#}"
    );
    // Timer heartbeats carry the load fields; a wake-up reply does not (§3.8).
    let w = eventually("a timer heartbeat", Duration::from_secs(10), || {
        let w = celeriac.worker("w1@test")?;
        (w["freq"] == 2.0 && w["loadavg"].is_array() && w["processed"].is_i64()).then_some(w)
    });
    assert_eq!(w["active"], 0, "{w:#}");
    eventually("celery_worker_up to be 1", Duration::from_secs(10), || {
        (worker_up(&celeriac, "w1@test") == Some(1.0)).then_some(())
    });
}

#[test]
fn killed_worker_goes_offline_by_heartbeat_expiry() {
    let (vhost, celeriac) = start("killed");
    let mut worker = Worker::start(&vhost, "w1@test", WorkerOpts::default());
    wait_online(&celeriac, "w1@test");
    // Kill right after a timer heartbeat (freq 2.0, not a wake-up reply's 5).
    let freq = eventually(
        "freq 2.0 from a timer heartbeat",
        Duration::from_secs(10),
        || {
            let w = celeriac.worker("w1@test")?;
            w["freq"].as_f64().filter(|f| *f == 2.0)
        },
    );
    eventually("celery_worker_up to be 1", Duration::from_secs(10), || {
        (worker_up(&celeriac, "w1@test") == Some(1.0)).then_some(())
    });

    worker.kill();
    let killed = Instant::now();
    let bound = 2.0 * freq + 3.0;
    eventually(
        "the SIGKILLed worker to turn offline",
        Duration::from_secs_f64(bound + 10.0),
        || {
            let w = celeriac.worker("w1@test")?;
            (w["status"] == false).then_some(())
        },
    );
    let offline_after = killed.elapsed().as_secs_f64();
    eprintln!("offline {offline_after:.2} s after SIGKILL (freq {freq})");
    assert!(
        offline_after <= bound,
        "offline only {offline_after:.2} s after SIGKILL; expiry is last heartbeat + 2×freq, so at most {bound} s"
    );
    // The last heartbeat was at most one period before the kill, so expiry
    // cannot come much sooner than one period after it: an earlier offline
    // means something other than heartbeat expiry decided it.
    assert!(
        offline_after >= freq - 1.0,
        "offline {offline_after:.2} s after SIGKILL, sooner than heartbeat expiry allows"
    );
    eventually("celery_worker_up to be 0", Duration::from_secs(5), || {
        (worker_up(&celeriac, "w1@test") == Some(0.0)).then_some(())
    });
}

#[test]
fn cleanly_stopped_worker_goes_offline_at_once() {
    let (vhost, celeriac) = start("stopped");
    // A 5 s heartbeat makes expiry take at least 5 s after the worker is
    // gone, so going offline sooner proves worker-offline was applied.
    let opts = WorkerOpts {
        heartbeat_interval: Some(5.0),
        ..WorkerOpts::default()
    };
    let mut worker = Worker::start(&vhost, "w1@test", opts);
    wait_online(&celeriac, "w1@test");

    let exited = worker.stop();
    eventually(
        "the stopped worker to turn offline",
        Duration::from_secs(20),
        || {
            let w = celeriac.worker("w1@test")?;
            (w["status"] == false).then_some(())
        },
    );
    let after = exited.elapsed().as_secs_f64();
    assert!(
        after < 2.5,
        "offline {after:.2} s after the worker exited: worker-offline was not applied at once"
    );
    eventually("celery_worker_up to be 0", Duration::from_secs(5), || {
        (worker_up(&celeriac, "w1@test") == Some(0.0)).then_some(())
    });
    // Offline workers stay listed (as in Flower), with their last values.
    let w = celeriac
        .worker("w1@test")
        .expect("offline worker is still listed");
    assert_eq!(w["sw_ver"], "5.7.0");
}

#[test]
fn worker_started_without_dash_e_sends_task_events_after_enable_events() {
    let vhost = TestVhost::new("enable-events");
    let celeriac = Celeriac::start(&vhost, &["--enable-events-interval", "1"]);
    celeriac.wait_readyz(200, Duration::from_secs(30));
    let opts = WorkerOpts {
        events: false,
        ..WorkerOpts::default()
    };
    let _worker = Worker::start(&vhost, "w1@test", opts);
    wait_online(&celeriac, "w1@test");
    // Tasks run before the first enable_events reaches the worker show only
    // their task-sent (PENDING), so send until one is seen end to end.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let id = vhost.send("add", "[1, 2]", &[]);
        let sent = Instant::now();
        while sent.elapsed() < Duration::from_secs(2) {
            if celeriac.task(&id).is_some_and(|t| t["state"] == "SUCCESS") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            Instant::now() < deadline,
            "no task event from a worker without -E within 30 s: enable_events was not broadcast"
        );
    }
}
