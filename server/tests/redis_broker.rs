//! celeriac on a Redis broker, with real Celery workers on it: events over
//! pub/sub (task lifecycle, worker liveness), queue depth from the queues'
//! lists, remote control through the pidbox, `enable_events` for workers
//! started without `-E`, a lost subscription counted as a gap, a cluster
//! behind a real Redis Sentinel and one with kombu's `global_keyprefix`
//! (docs/celery-protocol.md §8). Each test holds a Redis database of its
//! own.

mod support;

use std::time::{Duration, Instant};

use support::sentinel::{free_port, Sentinel, Server};
use support::{eventually, Celeriac, TestVhost, Worker, WorkerOpts};

const WAIT: Duration = Duration::from_secs(30);

fn start(test: &str, extra: &[&str]) -> (TestVhost, Celeriac) {
    let broker = TestVhost::redis(test);
    let celeriac = Celeriac::start(&broker, extra);
    celeriac.wait_readyz(200, WAIT);
    (broker, celeriac)
}

fn wait_online(c: &Celeriac, nodename: &str) {
    eventually(&format!("{nodename} online"), WAIT, || {
        c.worker(nodename).filter(|w| w["status"] == true).map(drop)
    });
}

#[test]
fn tasks_and_workers_are_seen_over_pub_sub_and_a_killed_worker_goes_offline() {
    let (broker, c) = start("redis-lifecycle", &[]);
    let ready = c.get_json("/readyz");
    assert_eq!(ready["consuming"], true, "{ready}");
    let mut worker = Worker::start(&broker, "r1@test", WorkerOpts::default());
    wait_online(&c, "r1@test");
    let w = c.worker("r1@test").unwrap();
    assert_eq!(w["sw_ver"], "5.7.0", "{w}");

    let ok = broker.send("add", "[2, 3]", &[]);
    let task = c.wait_task_state(&ok, "SUCCESS", WAIT);
    assert_eq!(task["result"], "5", "{task}");
    assert_eq!(task["worker"], "r1@test", "{task}");
    assert_eq!(task["args"], "(2, 3)", "{task}");
    assert!(task["runtime"].as_f64().is_some(), "{task}");

    let failed = broker.send("fail", r#"["boom"]"#, &[]);
    let task = c.wait_task_state(&failed, "FAILURE", WAIT);
    assert!(
        task["exception"].as_str().unwrap_or("").contains("boom"),
        "{task}"
    );
    assert!(
        task["traceback"]
            .as_str()
            .unwrap_or("")
            .contains("ValueError"),
        "{task}"
    );

    // No worker-offline is sent by a SIGKILLed worker: only the missing
    // heartbeats can tell.
    worker.kill();
    eventually(
        "the killed worker to turn offline",
        Duration::from_secs(40),
        || {
            c.worker("r1@test")
                .filter(|w| w["status"] == false)
                .map(drop)
        },
    );
    assert_eq!(
        c.metric("celery_worker_up", &[("hostname", "r1@test")]),
        Some(0.0)
    );
}

#[test]
fn queue_depth_sums_every_priority_list_of_a_queue() {
    let (broker, c) = start("redis-depth", &["--broker-stats-interval", "1"]);
    // No worker consumes `waiting`: its messages stay in the lists.
    broker.send_many("add", "[1, 1]", 3, &["--queue", "waiting"]);
    broker.send_many(
        "add",
        "[1, 1]",
        2,
        &["--queue", "waiting", "--priority", "6"],
    );
    let queue = eventually("5 messages in `waiting`", WAIT, || {
        let v = c.get_json("/api/queues/length");
        v["active_queues"]
            .as_array()?
            .iter()
            .find(|q| q["name"] == "waiting" && q["messages"] == 5)
            .cloned()
            .map(|q| (q, v["source"].clone()))
    });
    assert_eq!(queue.0["messages_ready"], 5, "{queue:?}");
    assert_eq!(queue.1, "redis");
    // The priority-6 messages are in a list of their own, as kombu keeps them.
    let mut redis = broker.redis_connection();
    let high: u64 = redis::cmd("LLEN")
        .arg("waiting\x06\x166")
        .query(&mut redis)
        .unwrap();
    assert_eq!(high, 2);
    eventually("celery_queue_length to be 5", WAIT, || {
        (c.metric("celery_queue_length", &[("queue_name", "waiting")]) == Some(5.0)).then_some(())
    });
    let ready = c.get_json("/readyz");
    assert_eq!(ready["broker_stats"]["up"]["redis"], true, "{ready}");
    // Internal lists (pidbox replies, bindings) are not queues.
    let v = c.get_json("/api/queues/length");
    for q in v["active_queues"].as_array().unwrap() {
        let name = q["name"].as_str().unwrap();
        assert!(!name.contains("pidbox"), "{v}");
    }
}

#[test]
fn control_requests_reach_workers_and_their_replies_come_back() {
    let (broker, c) = start("redis-control", &[]);
    let _worker = Worker::start(&broker, "r2@test", WorkerOpts::default());
    wait_online(&c, "r2@test");

    let info = eventually("inspect replies over Redis", WAIT, || {
        let v = c.get_json("/api/workers?refresh=1&workername=r2@test");
        v["r2@test"]
            .get("registered")
            .is_some()
            .then(|| v["r2@test"].clone())
    });
    let registered = info["registered"].to_string();
    assert!(registered.contains("tasks.add"), "{info}");
    assert_eq!(info["active_queues"][0]["name"], "celery", "{info}");

    let body = r#"{"destination": ["r2@test"], "arguments": {}}"#;
    let (status, v) = c.post("/api/control/ping", Some(body));
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["replies"]["r2@test"],
        serde_json::json!({"ok": "pong"}),
        "{v}"
    );

    // Every call removes its reply list and binding once done (kombu's own
    // clients leave theirs behind). The periodic inspect refresh may be
    // collecting at any moment, so wait for a moment between calls.
    let mut redis = broker.redis_connection();
    eventually("celeriac's reply bindings to be gone", WAIT, || {
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg("_kombu.binding.reply.celery.pidbox")
            .query(&mut redis)
            .unwrap();
        let lists: Vec<String> = redis::cmd("KEYS")
            .arg("*.reply.celery.pidbox")
            .query(&mut redis)
            .unwrap();
        (members.is_empty() && lists.is_empty()).then_some(())
    });
}

#[test]
fn a_worker_started_without_events_is_asked_to_send_them() {
    let (broker, c) = start("redis-enable", &["--enable-events-interval", "1"]);
    let opts = WorkerOpts {
        events: false,
        ..WorkerOpts::default()
    };
    let _worker = Worker::start(&broker, "r3@test", opts);
    // Heartbeats come without -E; task events only once enable_events
    // reached the worker, so keep sending until one task is seen running.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let id = broker.send("add", "[20, 22]", &[]);
        let seen = (0..50).find_map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            c.task(&id)
                .filter(|t| t["state"] == "SUCCESS" && t["worker"] == "r3@test")
        });
        if let Some(task) = seen {
            assert_eq!(task["result"], "42", "{task}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no task events from a worker without -E within 60 s"
        );
    }
}

#[test]
fn a_lost_subscription_is_re_established_and_its_gap_counted() {
    let (broker, c) = start("redis-gap", &[]);
    let gap = || c.metric_or_zero("celeriac_events_gap_seconds_total", &[]);
    assert_eq!(gap(), 0.0);
    let before = c.metric_or_zero("celeriac_broker_reconnects_total", &[]);

    eventually("celeriac's connections to be killed", WAIT, || {
        (broker.kill_redis_clients() > 0).then_some(())
    });
    eventually("a reconnect", WAIT, || {
        (c.metric_or_zero("celeriac_broker_reconnects_total", &[]) > before).then_some(())
    });
    eventually("the gap to be counted", WAIT, || {
        (gap() > 0.0).then_some(())
    });
    c.wait_readyz(200, WAIT);

    // Events flow again on the new subscription.
    let _worker = Worker::start(&broker, "r4@test", WorkerOpts::default());
    let id = broker.send("add", "[1, 2]", &[]);
    let task = c.wait_task_state(&id, "SUCCESS", WAIT);
    assert_eq!(task["result"], "3", "{task}");
    let log = c.log();
    assert!(log.contains("without a subscription are lost"), "{log}");
}

#[test]
fn messages_a_worker_prefetched_count_as_unacknowledged_in_their_queue() {
    let (broker, c) = start("redis-unacked", &["--broker-stats-interval", "1"]);
    let opts = WorkerOpts {
        queues: vec!["slow".into()],
        concurrency: 1,
        ..WorkerOpts::default()
    };
    let _worker = Worker::start(&broker, "r5@test", opts);
    wait_online(&c, "r5@test");
    // One runs (acknowledged when it starts), one waits prefetched in
    // kombu's `unacked` hash, one stays in the list.
    broker.send_many("sleep", "[60]", 3, &["--queue", "slow"]);
    let q = eventually(
        "1 ready and 1 unacknowledged in `slow`",
        Duration::from_secs(60),
        || {
            let v = c.get_json("/api/queues/length");
            v["active_queues"]
                .as_array()?
                .iter()
                .find(|q| {
                    q["name"] == "slow"
                        && q["messages_ready"] == 1
                        && q["messages_unacknowledged"] == 1
                })
                .cloned()
        },
    );
    assert_eq!(q["messages"], 2, "{q}");
}

#[test]
fn a_failed_task_is_re_run_through_the_redis_queue() {
    let (broker, c) = start("redis-retry", &[]);
    let _worker = Worker::start(&broker, "r6@test", WorkerOpts::default());
    wait_online(&c, "r6@test");
    let flag = broker.log_dir.join("flag");
    let _ = std::fs::remove_file(&flag);
    let flag = flag.to_str().unwrap().to_string();
    let args = serde_json::json!([flag, "it's", 3]);
    let id = broker.send("fail_until", &args.to_string(), &[]);
    c.wait_task_state(&id, "FAILURE", WAIT);

    std::fs::write(&flag, "ok").unwrap();
    let (status, answer) = c.post(&format!("/api/task/retry/{id}"), None);
    assert_eq!(status, 200, "{answer}");
    let new_id = answer["task-id"].as_str().expect("task-id").to_string();
    let done = c.wait_task_state(&new_id, "SUCCESS", WAIT);
    assert_eq!(done["args"], c.task(&id).unwrap()["args"], "{done}");
    assert_eq!(done["retry_of"], id.as_str(), "{done}");

    // Another queue, no worker on it: the message waits in its list.
    let body = r#"{"queue": "parked"}"#;
    let (status, answer) = c.post(&format!("/api/task/retry/{id}"), Some(body));
    assert_eq!(status, 200, "{answer}");
    let mut redis = broker.redis_connection();
    let parked: u64 = redis::cmd("LLEN").arg("parked").query(&mut redis).unwrap();
    assert_eq!(parked, 1, "the re-run waits in the `parked` list");
}

#[test]
fn tasks_are_revoked_and_terminated_through_the_redis_pidbox() {
    let (broker, c) = start("redis-revoke", &[]);
    let _worker = Worker::start(&broker, "r7@test", WorkerOpts::default());
    wait_online(&c, "r7@test");

    // Terminate a running task.
    let running = broker.send("sleep", "[60]", &[]);
    c.wait_task_state(&running, "STARTED", WAIT);
    let (status, v) = c.post(
        &format!("/api/task/revoke/{running}"),
        Some("terminate=true&signal=SIGKILL"),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["replies"]["r7@test"]["ok"],
        format!("terminate: {running}"),
        "{v}"
    );
    let task = c.wait_task_state(&running, "REVOKED", WAIT);
    assert!(task["succeeded"].is_null(), "{task}");

    // Revoke a task waiting on its countdown: it never runs.
    // Celery reports the revoke when the countdown ends.
    let waiting = broker.send("add", "[1, 2]", &["--countdown", "10"]);
    c.wait_task_state(&waiting, "RECEIVED", WAIT);
    let (status, v) = c.post(&format!("/api/task/revoke/{waiting}"), None);
    assert_eq!(status, 200, "{v}");
    let task = c.wait_task_state(&waiting, "REVOKED", Duration::from_secs(60));
    assert!(task["started"].is_null(), "{task}");
}

/// The local Redis the tests share, as host and port.
fn local_redis() -> (String, u16) {
    let url = &support::settings().redis;
    let hostport = url
        .split_once("://")
        .map(|(_, rest)| rest.rsplit_once('@').map_or(rest, |(_, h)| h))
        .expect("CELERIAC_TEST_REDIS is a URL")
        .trim_end_matches('/');
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "6379"));
    (host.to_string(), port.parse().expect("a port number"))
}

#[test]
fn a_cluster_behind_sentinel_is_seen_inspected_and_measured_through_it() {
    let broker = TestVhost::redis("redis-sentinel");
    let db = broker.redis_db().unwrap();
    let (host, port) = local_redis();
    // A Sentinel of this test's own watches the shared Redis, which has no
    // replica, so it can never fail it over.
    // The Sentinel wants a password of its own (Celery's `sentinel_kwargs`).
    let sentinel = Sentinel::start(
        &broker.log_dir,
        "mymaster",
        (&host, port),
        30_000,
        Some(SENTINEL_PASSWORD),
    );
    // The master's credentials are in the URL, as kombu takes them: an ACL
    // user of this test's own.
    let user = AclUser::create(&broker, &format!("{}-user", broker.name), PASSWORD);
    // The first node of the list is down: both kombu and celeriac must go
    // on to the next. The database comes from the first URL, as in kombu.
    let url = format!(
        "sentinel://{0}:{PASSWORD}@127.0.0.1:{1}/{db};sentinel://{0}:{PASSWORD}@127.0.0.1:{2}/{db}",
        user.name,
        free_port(),
        sentinel.port
    );
    broker.set_celery_env("CELERY_BROKER_URL", &url);
    broker.set_celery_env("CELERY_REDIS_MASTER_NAME", "mymaster");
    broker.set_celery_env("CELERY_REDIS_SENTINEL_PASSWORD", SENTINEL_PASSWORD);
    let c = Celeriac::start_with_broker(
        &url,
        &broker.log_dir,
        &[
            "--redis-master-name",
            "mymaster",
            "--redis-sentinel-password",
            SENTINEL_PASSWORD,
            "--broker-stats-interval",
            "1",
        ],
    );
    c.wait_readyz(200, WAIT);
    let _worker = Worker::start(&broker, "s1@test", WorkerOpts::default());
    wait_online(&c, "s1@test");

    let id = broker.send("add", "[4, 5]", &[]);
    let task = c.wait_task_state(&id, "SUCCESS", WAIT);
    assert_eq!(task["result"], "9", "{task}");
    assert_eq!(task["worker"], "s1@test", "{task}");

    let info = eventually("inspect replies through Sentinel", WAIT, || {
        let v = c.get_json("/api/workers?refresh=1&workername=s1@test");
        v["s1@test"]
            .get("registered")
            .is_some()
            .then(|| v["s1@test"].clone())
    });
    assert!(
        info["registered"].to_string().contains("tasks.add"),
        "{info}"
    );
    // The worker reports its transport options, the Sentinel password among
    // them: masked before it is shown.
    let options = &info["stats"]["broker"]["transport_options"];
    assert_eq!(options["master_name"], "mymaster", "{info}");
    assert_eq!(options["sentinel_kwargs"]["password"], "********", "{info}");

    // Nobody consumes `parked`: its depth is read on the master Sentinel named.
    broker.send_many("add", "[1, 1]", 3, &["--queue", "parked"]);
    eventually("3 messages in `parked`", WAIT, || {
        let v = c.get_json("/api/queues/length");
        v["active_queues"]
            .as_array()?
            .iter()
            .find(|q| q["name"] == "parked" && q["messages"] == 3)
            .map(drop)
    });
    // They really are in this test's database of the shared server.
    let mut redis = broker.redis_connection();
    let parked: u64 = redis::cmd("LLEN").arg("parked").query(&mut redis).unwrap();
    assert_eq!(parked, 3);

    // The password never shows; every node of the list does.
    let metrics = c.metrics();
    let masked = format!("sentinel://{}:********@127.0.0.1:", user.name);
    assert!(metrics.contains(&masked), "{masked} not in /metrics");
    let workers = c.get_json("/api/workers").to_string();
    for text in [metrics, c.log(), c.get_json("/readyz").to_string(), workers] {
        for secret in [PASSWORD, SENTINEL_PASSWORD] {
            assert!(!text.contains(secret), "a password leaked:\n{text}");
        }
    }
}

const PASSWORD: &str = "hunter2-master";
const SENTINEL_PASSWORD: &str = "hunter2-sentinel";

/// A Redis ACL user with every right, removed on drop.
struct AclUser {
    name: String,
    conn: redis::Connection,
}

impl AclUser {
    fn create(broker: &TestVhost, name: &str, password: &str) -> AclUser {
        let mut conn = broker.redis_connection();
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(name)
            .arg("on")
            .arg(format!(">{password}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .query(&mut conn)
            .expect("ACL SETUSER");
        AclUser {
            name: name.to_string(),
            conn,
        }
    }
}

impl Drop for AclUser {
    fn drop(&mut self) {
        let _: Result<i64, _> = redis::cmd("ACL")
            .arg("DELUSER")
            .arg(&self.name)
            .query(&mut self.conn);
    }
}

#[test]
fn a_cluster_with_a_global_keyprefix_is_seen_controlled_and_measured() {
    let broker = TestVhost::redis("redis-keyprefix");
    broker.set_celery_env("CELERY_REDIS_GLOBAL_KEYPREFIX", "app1:");
    let c = Celeriac::start(
        &broker,
        &[
            "--redis-global-keyprefix",
            "app1:",
            "--broker-stats-interval",
            "1",
        ],
    );
    c.wait_readyz(200, WAIT);
    let _worker = Worker::start(&broker, "p1@test", WorkerOpts::default());
    wait_online(&c, "p1@test");

    let id = broker.send("add", "[6, 7]", &[]);
    let task = c.wait_task_state(&id, "SUCCESS", WAIT);
    assert_eq!(task["result"], "13", "{task}");

    let body = r#"{"destination": ["p1@test"], "arguments": {}}"#;
    let (status, v) = c.post("/api/control/ping", Some(body));
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["replies"]["p1@test"],
        serde_json::json!({"ok": "pong"}),
        "{v}"
    );

    broker.send_many("add", "[1, 1]", 3, &["--queue", "parked"]);
    broker.send_many(
        "add",
        "[1, 1]",
        2,
        &["--queue", "parked", "--priority", "6"],
    );
    let q = eventually("5 messages in `parked`", WAIT, || {
        let v = c.get_json("/api/queues/length");
        v["active_queues"]
            .as_array()?
            .iter()
            .find(|q| q["name"] == "parked" && q["messages"] == 5)
            .cloned()
    });
    assert_eq!(q["messages_ready"], 5, "{q}");
    // The queue is known by its bare name while its lists carry the prefix,
    // and nothing of the cluster's or celeriac's lives outside the prefix.
    let mut redis = broker.redis_connection();
    let lists: (u64, u64) = redis::pipe()
        .llen("app1:parked")
        .llen("app1:parked\x06\x166")
        .query(&mut redis)
        .unwrap();
    assert_eq!(lists, (3, 2));
    eventually(
        "only prefixed keys, celeriac's reply lists gone",
        WAIT,
        || {
            let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut redis).unwrap();
            let outside: Vec<&String> = keys.iter().filter(|k| !k.starts_with("app1:")).collect();
            assert!(outside.is_empty(), "keys without the prefix: {outside:?}");
            let replies: Vec<String> = redis::cmd("SMEMBERS")
                .arg("app1:_kombu.binding.reply.celery.pidbox")
                .query(&mut redis)
                .unwrap();
            replies.is_empty().then_some(())
        },
    );
}

#[test]
fn after_a_sentinel_failover_celeriac_follows_the_new_master() {
    // Servers of this test's own: the shared Redis must never be failed over.
    let broker = TestVhost::redis("redis-failover");
    let dir = &broker.log_dir;
    let mut master = Server::start(dir, "failover-master", None);
    let replica = Server::start(dir, "failover-replica", Some(master.port));
    eventually("the replica to be in sync", WAIT, || {
        replica.replica_in_sync().then_some(())
    });
    let sentinel = Sentinel::start(dir, "failover", ("127.0.0.1", master.port), 1000, None);
    eventually("Sentinel to know the replica", WAIT, || {
        (sentinel.replicas() == 1).then_some(())
    });
    let url = format!("sentinel://127.0.0.1:{}/0", sentinel.port);
    broker.set_celery_env("CELERY_BROKER_URL", &url);
    broker.set_celery_env("CELERY_REDIS_MASTER_NAME", "failover");
    let c = Celeriac::start_with_broker(&format!("{url}?master_name=failover"), dir, &[]);
    c.wait_readyz(200, WAIT);
    let _worker = Worker::start(&broker, "f1@test", WorkerOpts::default());
    wait_online(&c, "f1@test");
    let before = c.metric_or_zero("celeriac_broker_reconnects_total", &[]);

    master.kill();
    eventually("Sentinel to promote the replica", WAIT, || {
        (sentinel.master_port() == Some(replica.port)).then_some(())
    });
    eventually("celeriac to reconnect", Duration::from_secs(60), || {
        (c.metric_or_zero("celeriac_broker_reconnects_total", &[]) > before).then_some(())
    });
    // celeriac listens on the new master, and events published there by the
    // worker (which followed too) reach it.
    let mut new_master = replica.connection();
    let patterns: i64 = redis::cmd("PUBSUB")
        .arg("NUMPAT")
        .query(&mut new_master)
        .unwrap();
    assert!(patterns >= 1, "no pattern subscription on the new master");
    let id = broker.send("add", "[20, 22]", &[]);
    let task = c.wait_task_state(&id, "SUCCESS", Duration::from_secs(60));
    assert_eq!(task["result"], "42", "{task}");
    c.wait_readyz(200, WAIT);
    // The time without a subscription is counted, never hidden.
    assert!(c.metric_or_zero("celeriac_events_gap_seconds_total", &[]) > 0.0);
}
