//! Bounded whatever the task names: a flood of distinct task names (a bug
//! or an attack that names tasks dynamically) must not slow ingest, grow
//! memory or swamp the dashboard (ARCHITECTURE: per-name aggregates are
//! bounded by `--max-task-names`; interned strings are swept).
//!
//! The same load is published twice through the real broker, each time to
//! a fresh celeriac: once with 50 task names, once with a distinct name per
//! task, far beyond the cap. The events are the real wire shapes the load
//! generator of the bench sends (a `task-sent` object from the client, a
//! `task.multi` array `[task-received, task-started, task-succeeded]` from
//! a worker; docs/celery-protocol.md §1.4, §3), published straight to
//! `celeryev`: no Celery worker makes up thirty thousand task names.
//!
//! The full 300,000-name flood is `cargo xtask bench -- --scenario names`
//! (bench/README.md); this test floods 30,000 names with `--max-tasks 3000`,
//! which is 60 times the default cap of 500 names and ten times what is
//! retained, enough to show each bound.

mod support;

use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lapin::options::BasicPublishOptions;
use serde_json::Value;
use support::{Celeriac, TestVhost};
use tungstenite::Message;

/// Tasks per run (4 events each).
const TASKS: u64 = 30_000;
/// Retained tasks: a tenth of the flood, so names of evicted tasks must be
/// freed for the interned strings to stay bounded.
const MAX_TASKS: &str = "3000";
/// The default `--max-task-names`.
const CAP: u64 = 500;
/// How long the dashboard client reads.
const WS_WINDOW: Duration = Duration::from_secs(10);

#[allow(clippy::disallowed_methods)] // a test stamps the events it publishes, as a worker would
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// Task `i`'s id in a run whose ids start at `base`.
fn task_id(base: u128, i: u64) -> uuid::Uuid {
    uuid::Uuid::from_u128(base | u128::from(i))
}

/// Publishes [`TASKS`] tasks as fast as the broker takes them, in order on
/// one channel; task `i` is named `name(i)`. Names of both runs have the
/// same length.
fn publish(vhost: &TestVhost, base: u128, name: fn(u64) -> String) -> std::thread::JoinHandle<()> {
    let url = vhost.amqp_url();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(async move {
            let (conn, channel) = support::events::connect(&url).await;
            let client = support::events::properties("client@names");
            let worker = support::events::properties("w1@names");
            let mut clock = 0u64;
            for i in 0..TASKS {
                let id = task_id(base, i);
                let name = name(i);
                let ts = now();
                let args = format!("({i}, {})", i % 97);
                let sent = format!(
                    r#"{{"hostname": "client@names", "utcoffset": 0.0, "pid": 9, "clock": {i}, "uuid": "{id}", "root_id": "{id}", "parent_id": null, "name": "{name}", "args": "{args}", "kwargs": "{{}}", "retries": 0, "eta": null, "expires": null, "queue": "celery", "exchange": "", "routing_key": "celery", "timestamp": {ts}, "type": "task-sent"}}"#
                );
                let multi = format!(
                    r#"[{{"hostname": "w1@names", "utcoffset": 0.0, "pid": 7, "clock": {c1}, "uuid": "{id}", "name": "{name}", "args": "{args}", "kwargs": "{{}}", "root_id": "{id}", "parent_id": null, "retries": 0, "eta": null, "expires": null, "timestamp": {t1}, "type": "task-received"}}, {{"hostname": "w1@names", "utcoffset": 0.0, "pid": 7, "clock": {c2}, "uuid": "{id}", "timestamp": {t2}, "type": "task-started"}}, {{"hostname": "w1@names", "utcoffset": 0.0, "pid": 7, "clock": {c3}, "uuid": "{id}", "result": "{i}", "runtime": 0.004, "timestamp": {t3}, "type": "task-succeeded"}}]"#,
                    c1 = clock + 1,
                    c2 = clock + 2,
                    c3 = clock + 3,
                    t1 = ts + 0.001,
                    t2 = ts + 0.002,
                    t3 = ts + 0.006,
                );
                clock += 3;
                for (key, body, props) in [
                    ("task.sent", &sent, &client),
                    ("task.multi", &multi, &worker),
                ] {
                    channel
                        .basic_publish(
                            "celeryev".into(),
                            key.into(),
                            BasicPublishOptions::default(),
                            body.as_bytes(),
                            props.clone(),
                        )
                        .await
                        .expect("publish");
                }
            }
            // A synchronous method: the broker answers it after routing
            // every publish before it on this channel.
            channel
                .exchange_declare(
                    "celeryev".into(),
                    lapin::ExchangeKind::Topic,
                    lapin::options::ExchangeDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    lapin::types::FieldTable::default(),
                )
                .await
                .expect("sync with the broker");
            let _ = channel.close(200, "done".into()).await;
            let _ = conn.close(200, "done".into()).await;
        })
    })
}

fn fifty_names(i: u64) -> String {
    format!("tasks.names.t{:06}", i % 50)
}

fn distinct_names(i: u64) -> String {
    format!("tasks.names.t{i:06}")
}

/// What one run measured.
struct Run {
    /// Events applied per second, from the first publish to the last event.
    ingest: f64,
    /// Events applied per second of celeriac's CPU time (user + system):
    /// the rate it sustains with a core of its own, which a box shared with
    /// other work does not blur as it blurs the wall-clock rate.
    per_cpu_second: f64,
    /// Bytes per second a dashboard client received while the flow ran
    /// (at most [`WS_WINDOW`]), and its largest message.
    ws_rate: f64,
    ws_largest: usize,
    /// Of those bytes per second, the task types' part, and the other
    /// bytes per task row carried.
    ws_types_rate: f64,
    ws_bytes_per_row: f64,
    /// Peak resident memory of the celeriac process (VmHWM).
    peak_rss: u64,
    celeriac: Celeriac,
}

/// A dashboard client: reads `/ws` until `deadline` or `stop`, counting
/// bytes; returns them with the largest message and the seconds read.
/// What the dashboard client read: bytes, of which task types' bytes, task
/// rows, the largest message, and the seconds read.
struct Read {
    bytes: usize,
    types_bytes: usize,
    rows: usize,
    largest: usize,
    secs: f64,
}

fn watch(base: &str, window: Duration) -> std::thread::JoinHandle<Read> {
    let addr = base.trim_start_matches("http://").to_owned();
    std::thread::spawn(move || {
        let stream = TcpStream::connect(&addr).expect("connect to celeriac");
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("set a read timeout");
        let (mut ws, _) = tungstenite::client(format!("ws://{addr}/ws"), stream)
            .expect("websocket handshake on /ws");
        let start = Instant::now();
        let mut r = Read {
            bytes: 0,
            types_bytes: 0,
            rows: 0,
            largest: 0,
            secs: 0.0,
        };
        while start.elapsed() < window {
            match ws.read() {
                Ok(Message::Text(t)) => {
                    r.bytes += t.len();
                    r.largest = r.largest.max(t.len());
                    let msg: api::ws::WsMessage =
                        serde_json::from_str(t.as_str()).expect("a dashboard message");
                    let (tasks, types) = match msg {
                        api::ws::WsMessage::Snapshot { tasks, types, .. } => (tasks, types),
                        api::ws::WsMessage::Delta { tasks, types, .. } => (tasks, types),
                    };
                    r.rows += tasks.len();
                    r.types_bytes += serde_json::to_string(&types).map_or(0, |s| s.len());
                }
                Ok(Message::Close(f)) => panic!("the server closed /ws: {f:?}"),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("reading /ws: {e}"),
            }
        }
        let _ = ws.close(None);
        r.secs = start.elapsed().as_secs_f64();
        r
    })
}

fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM in /proc/PID/status")
        * 1024
}

/// User + system CPU time of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the command name (which may hold spaces), from `state`.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    ticks as f64 / rustix::param::clock_ticks_per_second() as f64
}

fn run(vhost: &TestVhost, name: fn(u64) -> String) -> Run {
    let celeriac = Celeriac::start(vhost, &["--db", "none", "--max-tasks", MAX_TASKS]);
    celeriac.wait_readyz(200, Duration::from_secs(30));
    let base = uuid::Uuid::new_v4().as_u128() & !u128::from(u32::MAX);
    let last = format!("/api/task/info/{}", task_id(base, TASKS - 1));
    let client = watch(&celeriac.base, WS_WINDOW);
    let cpu_before = cpu_seconds(celeriac.pid());
    let start = Instant::now();
    let publisher = publish(vhost, base, name);
    // One channel, one queue: the last task's `task-succeeded` is the last
    // event applied. Polling it costs a lookup, where polling /metrics
    // would cost more with more series and so tax one run more.
    let deadline = start + Duration::from_secs(600);
    let ingested_in = loop {
        let (status, body) = celeriac.get(&last);
        let done = status == 200
            && serde_json::from_str::<Value>(&body).is_ok_and(|t| t["state"] == "SUCCESS");
        if done {
            break start.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "the last task was not applied within 600 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let cpu = cpu_seconds(celeriac.pid()) - cpu_before;
    publisher.join().expect("publisher thread");
    let read = client.join().expect("dashboard client thread");
    // The flow is what is measured: a window longer than the run is cut to it.
    let secs = read.secs.min(ingested_in.as_secs_f64()).max(1.0);
    assert_eq!(
        celeriac.metric_or_zero("celeriac_events_ingested_total", &[]),
        (TASKS * 4) as f64
    );
    Run {
        ingest: (TASKS * 4) as f64 / ingested_in.as_secs_f64(),
        per_cpu_second: (TASKS * 4) as f64 / cpu.max(1e-3),
        ws_rate: read.bytes as f64 / secs,
        ws_largest: read.largest,
        ws_types_rate: read.types_bytes as f64 / secs,
        ws_bytes_per_row: (read.bytes - read.types_bytes) as f64 / read.rows.max(1) as f64,
        peak_rss: peak_rss(celeriac.pid()),
        celeriac,
    }
}

#[test]
fn a_flood_of_task_names_stays_bounded_and_keeps_ingest_speed() {
    let vhost = TestVhost::new("task_names");
    // Best of two for each: the box is shared, and one run can lose a
    // second to another process.
    let (mut baseline, mut flood): (Option<Run>, Option<Run>) = (None, None);
    for round in 0..2 {
        let b = run(&vhost, fifty_names);
        let f = run(&vhost, distinct_names);
        for (what, r) in [("50 names", &b), ("distinct names", &f)] {
            eprintln!(
                "round {round}, {what}: {:.0} events/s ({:.0} per CPU second), peak RSS {:.1} MiB, \
                 dashboard client {:.0} B/s (task types {:.0} B/s, {:.0} B per task row, \
                 largest message {} B)",
                r.ingest,
                r.per_cpu_second,
                r.peak_rss as f64 / 1048576.0,
                r.ws_rate,
                r.ws_types_rate,
                r.ws_bytes_per_row,
                r.ws_largest,
            );
        }
        if baseline
            .as_ref()
            .is_none_or(|x| b.per_cpu_second > x.per_cpu_second)
        {
            baseline = Some(b);
        }
        if flood
            .as_ref()
            .is_none_or(|x| f.per_cpu_second > x.per_cpu_second)
        {
            flood = Some(f);
        }
        let (b, f) = (baseline.as_ref().unwrap(), flood.as_ref().unwrap());
        if f.per_cpu_second >= 0.8 * b.per_cpu_second {
            break;
        }
    }
    let (baseline, flood) = (baseline.unwrap(), flood.unwrap());
    let c = &flood.celeriac;

    assert!(
        flood.per_cpu_second >= 0.8 * baseline.per_cpu_second,
        "ingest with {TASKS} names ({:.0} events per CPU second) is within 20% of ingest with 50 \
         ({:.0} events per CPU second)",
        flood.per_cpu_second,
        baseline.per_cpu_second
    );

    // Per-name aggregates: the first 500 names, the rest under `other`.
    let (status, body) = c.get("/api/task/types");
    assert_eq!(status, 200);
    let types: Value = serde_json::from_str(&body).expect("JSON");
    let listed = types["task-types"].as_array().expect("task-types").len() as u64;
    assert_eq!(listed, CAP, "/api/task/types lists the first {CAP} names");
    assert_eq!(types["folded"], TASKS - CAP);
    assert!(
        body.len() < 20_000,
        "/api/task/types is {} bytes",
        body.len()
    );
    assert_eq!(
        c.metric_or_zero("celeriac_task_names_folded_total", &[]),
        (TASKS - CAP) as f64
    );
    let other = c.metric_or_zero(
        "celery_task_succeeded_total",
        &[("name", "other"), ("hostname", "w1@names")],
    );
    assert_eq!(
        other,
        (TASKS - CAP) as f64,
        "folded names count under other"
    );
    let metrics = c.metrics();
    let names: std::collections::HashSet<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("celery_task_received_total{"))
        .filter_map(|l| l.split("name=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(names.len() as u64, CAP + 1, "{CAP} names and other");

    // Retained tasks keep their own names, and the listing filters by them.
    let newest = distinct_names(TASKS - 1);
    let (status, body) = c.get(&format!("/api/tasks?taskname={newest}&limit=5"));
    assert_eq!(status, 200);
    let tasks: Value = serde_json::from_str(&body).expect("JSON");
    let found: Vec<&Value> = tasks.as_object().expect("a dict").values().collect();
    assert_eq!(found.len(), 1, "{body}");
    assert_eq!(found[0]["name"], newest.as_str());

    // Interned strings: about what is retained, not every name ever seen.
    let interned = c.metric_or_zero("celeriac_interned_strings", &[]);
    assert!(
        interned < 12_000.0,
        "{interned} strings interned after {TASKS} names with {MAX_TASKS} tasks retained"
    );

    // The dashboard: a client's traffic while the flood flows. Its task
    // rows follow the task rate whatever the names (at the broker's
    // ceiling they alone pass 1 MB/s, with 50 names as with 30,000); what
    // the names may add is task types: at most the 500 capped ones and
    // `other` once a second (each ~170 bytes; a type's throughput, a
    // one-minute average, changes every second while it has tasks in the
    // minute), and no row grows with them.
    assert!(
        flood.ws_types_rate < 150_000.0,
        "task types took {:.0} bytes/s of a dashboard client's traffic during the flood",
        flood.ws_types_rate
    );
    assert!(
        flood.ws_bytes_per_row < 1.25 * baseline.ws_bytes_per_row,
        "a dashboard client received {:.0} bytes per task row with {TASKS} names, {:.0} with 50",
        flood.ws_bytes_per_row,
        baseline.ws_bytes_per_row
    );
    assert!(
        flood.ws_largest < 1_000_000,
        "a dashboard message of {} bytes during the flood",
        flood.ws_largest
    );
    // Memory: the flood costs what its retained tasks' names cost, not a
    // structure per name ever seen.
    assert!(
        flood.peak_rss < baseline.peak_rss + 48 * 1024 * 1024,
        "peak RSS {:.1} MiB with {TASKS} names against {:.1} MiB with 50",
        flood.peak_rss as f64 / 1048576.0,
        baseline.peak_rss as f64 / 1048576.0
    );
}
