//! History with real workers: what celeriac saw survives its restart and
//! its memory, in the embedded store and in PostgreSQL, and a store that
//! goes away never holds up ingest.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::postgres::TestDb;
use support::{eventually, Celeriac, TestVhost, Worker, WorkerOpts};

const W1: &str = "w1@history";
const STATE_TIMEOUT: Duration = Duration::from_secs(30);
const WRITE_TIMEOUT: Duration = Duration::from_secs(20);

fn start(vhost: &TestVhost, extra: &[&str]) -> Celeriac {
    let c = Celeriac::start(vhost, extra);
    c.wait_readyz(200, Duration::from_secs(30));
    c
}

/// The `history` part of `/readyz`.
fn history(c: &Celeriac) -> Value {
    let (_, body) = c.get("/readyz");
    let v: Value = serde_json::from_str(&body).expect("/readyz is JSON");
    v["history"].clone()
}

/// Waits until the writer has written at least `n` task records and has
/// nothing left to write. Changes reach the backlog on the change feed's
/// next tick (every 250 ms), so what the API showed before this call is in
/// the backlog after two ticks; only then does an empty backlog mean it
/// was written.
fn wait_written(c: &Celeriac, n: f64) {
    std::thread::sleep(2 * celeriac::feed::INTERVAL + Duration::from_millis(100));
    eventually("history to be written", WRITE_TIMEOUT, || {
        let written = c.metric_or_zero("celeriac_history_written_total", &[]);
        let h = history(c);
        (written >= n && h["backlog"] == 0 && h["up"] == true).then_some(())
    });
}

/// The uuids `/api/tasks` answered, in its order (a JSON map does not
/// keep it).
fn listed(c: &Celeriac, query: &str) -> Vec<String> {
    let (status, body) = c.get(&format!("/api/tasks?{query}"));
    assert_eq!(status, 200, "{body}");
    body.match_indices("\"uuid\":\"")
        .map(|(at, key)| {
            let rest = &body[at + key.len()..];
            rest[..rest.find('"').expect("a closing quote")].to_string()
        })
        .collect()
}

fn tasks(c: &Celeriac, query: &str) -> serde_json::Map<String, Value> {
    match c.get_json(&format!("/api/tasks?{query}")) {
        Value::Object(m) => m,
        other => panic!("/api/tasks?{query} answered {other:#}"),
    }
}

/// Failed tasks, with their arguments and tracebacks, and a success are
/// still there after celeriac is killed and started again.
fn survive_a_restart(test: &str, db: &[&str]) {
    let vhost = TestVhost::new(test);
    let first = start(&vhost, db);
    let _worker = Worker::start(&vhost, W1, WorkerOpts::default());
    let failed: Vec<String> = (0..3)
        .map(|i| vhost.send("fail", &format!("[\"boom-{i}\"]"), &[]))
        .collect();
    let ok = vhost.send("add", "[20, 22]", &[]);
    for id in &failed {
        first.wait_task_state(id, "FAILURE", STATE_TIMEOUT);
    }
    first.wait_task_state(&ok, "SUCCESS", STATE_TIMEOUT);
    wait_written(&first, 4.0);
    // Killed, not stopped: nothing is flushed on the way out.
    drop(first);

    let second = start(&vhost, db);
    assert_eq!(history(&second)["loaded"], true);
    let t = second
        .task(&failed[1])
        .expect("a failed task after the restart");
    assert_eq!(t["state"], "FAILURE");
    assert_eq!(t["name"], "tasks.fail");
    assert_eq!(t["args"], "('boom-1',)");
    assert_eq!(t["exception"], "ValueError('boom-1')");
    assert!(
        t["traceback"]
            .as_str()
            .unwrap_or("")
            .contains("raise ValueError(msg)"),
        "{t:#}"
    );
    assert_eq!(t["worker"], W1);
    let ok = second
        .task(&ok)
        .expect("the succeeded task after the restart");
    assert_eq!(
        (ok["state"].as_str(), ok["result"].as_str()),
        (Some("SUCCESS"), Some("42"))
    );
    let listed = tasks(&second, "state=FAILURE");
    let mut ids: Vec<&String> = listed.keys().collect();
    ids.sort();
    let mut want: Vec<&String> = failed.iter().collect();
    want.sort();
    assert_eq!(ids, want);
    // Counters start at zero, as Prometheus expects of a restarted process:
    // loading history is not seeing events again.
    let failures = second.metric_or_zero("celery_task_failed_total", &[("name", "tasks.fail")]);
    assert_eq!(failures, 0.0);
}

#[test]
fn failed_tasks_survive_a_restart_in_the_embedded_store() {
    survive_a_restart("restart-sqlite", &[]);
}

#[test]
fn the_audit_log_survives_a_restart() {
    let vhost = TestVhost::new("audit-restart");
    let rules = vhost.log_dir.join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - name: Few\n    kind: workers_online\n    below: 1\n",
    )
    .unwrap();
    let args = ["--alerts", rules.to_str().unwrap()];
    let first = start(&vhost, &args);
    // Reloading the rules is a control action: audited.
    let (status, body) = first.post("/api/alerts/reload", None);
    assert_eq!(status, 200, "{body}");
    eventually("the audit entry to be written", WRITE_TIMEOUT, || {
        let h = history(&first);
        (h["backlog"] == 0
            && h["last_error"].is_null()
            && first.get_json("/api/audit")["entries"].as_array()?.len() == 1)
            .then_some(())
    });
    drop(first);

    let second = start(&vhost, &args);
    let audit = second.get_json("/api/audit");
    let entries = audit["entries"].as_array().expect("an array of entries");
    assert_eq!(entries.len(), 1, "{audit:#}");
    assert_eq!(entries[0]["command"], "alerts_reload");
}

#[test]
fn failed_tasks_survive_a_restart_in_postgres() {
    let db = TestDb::new("restart");
    survive_a_restart("restart-pg", &["--db", &db.url]);
    let stored: u64 = db.query("SELECT count(*) FROM tasks").parse().unwrap();
    assert_eq!(stored, 4);
}

#[test]
fn search_and_paging_reach_tasks_evicted_from_memory() {
    let vhost = TestVhost::new("evicted");
    let c = start(&vhost, &["--max-tasks", "3"]);
    let _worker = Worker::start(&vhost, W1, WorkerOpts::default());
    let failed = vhost.send("fail", "[\"needle-in-history\"]", &[]);
    c.wait_task_state(&failed, "FAILURE", STATE_TIMEOUT);
    let adds: Vec<String> = (0..5)
        .map(|i| vhost.send("add", &format!("[{i}, 1]"), &[]))
        .collect();
    for id in &adds {
        c.wait_task_state(id, "SUCCESS", STATE_TIMEOUT);
    }
    wait_written(&c, 6.0);
    assert!(c.metric_or_zero("celeriac_tasks_evicted", &[]) >= 3.0);

    // Only the traceback holds this text (the args say needle-in-history).
    let found = tasks(&c, "search=%22raise+ValueError(msg)%22");
    assert_eq!(found.keys().collect::<Vec<_>>(), [&failed]);
    assert_eq!(found[&failed]["state"], "FAILURE");
    let t = c.task(&failed).expect("task info of an evicted task");
    assert_eq!(t["exception"], "ValueError('needle-in-history')");

    // A page longer than memory: newest first, every task, no duplicates.
    let page = listed(&c, "limit=10");
    assert_eq!(page.len(), 6, "{page:#?}");
    let stamps: Vec<f64> = page
        .iter()
        .map(|id| c.task(id).unwrap()["timestamp"].as_f64().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "{stamps:?}");
    assert_eq!(page.last(), Some(&failed));
    assert_eq!(listed(&c, "limit=2&offset=4"), page[4..]);

    // The export streams the same tasks, history included.
    let (status, ndjson) = c.get("/api/tasks/export");
    assert_eq!(status, 200);
    let exported: Vec<String> = ndjson
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["uuid"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(exported, page);
    let (_, csv) = c.get("/api/tasks/export?format=csv&state=FAILURE");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("uuid,name,state,"), "{csv}");
    assert!(
        lines[1].starts_with(&format!("{failed},tasks.fail,FAILURE,")),
        "{csv}"
    );
    assert!(csv.contains("raise ValueError(msg)"), "{csv}");
}

#[test]
fn ingest_goes_on_while_postgres_refuses_and_the_backlog_drains_after() {
    let db = TestDb::new("outage");
    let vhost = TestVhost::new("pg-outage");
    let c = start(&vhost, &["--db", &db.url]);
    let _worker = Worker::start(&vhost, W1, WorkerOpts::default());
    let warm = vhost.send("add", "[1, 1]", &[]);
    c.wait_task_state(&warm, "SUCCESS", STATE_TIMEOUT);
    wait_written(&c, 1.0);

    db.set_accepting(false);
    let ids = vhost.send_many("add", "[2, 2]", 20, &[]);
    // The live view does not wait for the store.
    for id in &ids {
        c.wait_task_state(id, "SUCCESS", STATE_TIMEOUT);
    }
    eventually("the store to be reported down", WRITE_TIMEOUT, || {
        let h = history(&c);
        (h["up"] == false && h["backlog"].as_u64() > Some(0)).then_some(())
    });
    assert!(c.metric_or_zero("celeriac_history_write_errors_total", &[]) > 0.0);
    let h = history(&c);
    assert!(h["last_error"].is_string(), "{h:#}");
    assert_eq!(
        c.get("/readyz").0,
        200,
        "a store outage does not make celeriac unready"
    );

    db.set_accepting(true);
    wait_written(&c, 21.0);
    let stored: u64 = db
        .query("SELECT count(*) FROM tasks WHERE state = 'SUCCESS'")
        .parse()
        .unwrap();
    assert_eq!(stored, 21);
    assert_eq!(c.metric_or_zero("celeriac_history_dropped_total", &[]), 0.0);
}

#[test]
fn two_replicas_on_one_postgres_share_history_and_a_restarted_one_catches_up() {
    let db = TestDb::new("replicas");
    let vhost = TestVhost::new("replicas");
    let args = ["--db", db.url.as_str()];
    let a = start(&vhost, &args);
    let b = start(&vhost, &args);
    let _worker = Worker::start(&vhost, W1, WorkerOpts::default());
    let first = vhost.send("fail", "[\"seen-by-both\"]", &[]);
    for c in [&a, &b] {
        c.wait_task_state(&first, "FAILURE", STATE_TIMEOUT);
        wait_written(c, 1.0);
    }
    // Both wrote the same task: one row, in its final state.
    assert_eq!(db.query("SELECT state FROM tasks"), "FAILURE");

    drop(a);
    let while_down = vhost.send("add", "[3, 4]", &[]);
    b.wait_task_state(&while_down, "SUCCESS", STATE_TIMEOUT);
    wait_written(&b, 2.0);

    // The restarted replica loads what the other one wrote meanwhile.
    let a = start(&vhost, &args);
    let t = a
        .task(&while_down)
        .expect("the task sent while this replica was down");
    assert_eq!(t["state"], "SUCCESS");
    assert_eq!(t["result"], "7");
    assert_eq!(tasks(&a, "").len(), 2);
}
