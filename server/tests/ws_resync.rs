//! The dashboard websocket under back-pressure (ARCHITECTURE: "a client that
//! falls behind is resynchronised with a snapshot, never buffered without
//! bound"). Two real websocket clients watch `/ws` while events flow through
//! the real broker: one keeps reading, one stops reading for a while. The
//! stalled one must get a fresh snapshot when it resumes, after a bounded
//! number of stale deltas (what sat in the socket buffers and the server's
//! per-client backlog), not the whole backlog; the reading one must never be
//! resynchronised.
//!
//! The events are synthetic (the real `task.multi` shape,
//! docs/celery-protocol.md §1.4, §3), published by this test straight to `celeryev`: a Celery worker
//! on this box cannot be made to emit a steady thousands-of-tasks-per-second
//! stream on cue, and the server treats both alike once decoded.

mod support;

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use api::ws::WsMessage;
use lapin::options::BasicPublishOptions;
use support::{eventually, Celeriac, TestVhost};
use tungstenite::{Message, WebSocket};

/// How long the slow client stops reading: 60 publish ticks of 250 ms,
/// far more than the server's 32-delta backlog per client.
const PAUSE: Duration = Duration::from_secs(15);
/// Tasks per second the publisher aims at; each delta then carries about
/// 500 rows (~300 kB), so the stalled client's socket buffers fill in a
/// few ticks and the server has to drop it behind.
const TASKS_PER_SEC: u64 = 2_000;
/// The stalled client's receive buffer; setting it also turns off Linux's
/// receive-buffer autotuning (up to 6 MB), which would otherwise soak up
/// deltas and blur what the server held back.
const SLOW_RCVBUF: usize = 64 * 1024;

#[allow(clippy::disallowed_methods)] // a test stamps the events it publishes, as a worker would
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// Publishes `[task-received, task-started, task-succeeded]` of fresh tasks
/// to `celeryev` at [`TASKS_PER_SEC`] until stopped; returns how many.
fn start_publisher(vhost: &TestVhost, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    let url = vhost.amqp_url();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(async move {
            let (conn, channel) = support::events::connect(&url).await;
            let props = support::events::properties("w1@resync");
            // Long enough args that a row is a few hundred bytes (the server
            // clips row texts at 256).
            let args = format!("('{}',)", "x".repeat(200));
            let tick = Duration::from_millis(50);
            let per_tick = TASKS_PER_SEC * tick.as_millis() as u64 / 1000;
            let mut sent = 0u64;
            let mut clock = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                for _ in 0..per_tick {
                    let id = uuid::Uuid::new_v4();
                    let ts = now();
                    let body = format!(
                        r#"[{{"hostname": "w1@resync", "utcoffset": 0.0, "pid": 7, "clock": {c1}, "uuid": "{id}", "name": "tasks.resync", "args": "{args}", "kwargs": "{{}}", "root_id": "{id}", "parent_id": null, "retries": 0, "timestamp": {ts}, "type": "task-received"}}, {{"hostname": "w1@resync", "utcoffset": 0.0, "pid": 7, "clock": {c2}, "uuid": "{id}", "timestamp": {ts}, "type": "task-started"}}, {{"hostname": "w1@resync", "utcoffset": 0.0, "pid": 7, "clock": {c3}, "uuid": "{id}", "result": "{args}", "runtime": 0.001, "timestamp": {ts}, "type": "task-succeeded"}}]"#,
                        c1 = clock + 1,
                        c2 = clock + 2,
                        c3 = clock + 3,
                    );
                    clock += 3;
                    channel
                        .basic_publish(
                            "celeryev".into(),
                            "task.multi".into(),
                            BasicPublishOptions::default(),
                            body.as_bytes(),
                            props.clone(),
                        )
                        .await
                        .expect("publish");
                    sent += 1;
                }
                tokio::time::sleep(tick.saturating_sub(started.elapsed())).await;
            }
            let _ = conn.close(200, "done".into()).await;
            sent
        })
    })
}

fn connect(base: &str, rcvbuf: Option<usize>) -> WebSocket<TcpStream> {
    let addr = base.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).expect("connect to celeriac");
    if let Some(size) = rcvbuf {
        rustix::net::sockopt::set_socket_recv_buffer_size(&stream, size)
            .expect("setsockopt(SO_RCVBUF)");
    }
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set a read timeout");
    let (ws, _) =
        tungstenite::client(format!("ws://{addr}/ws"), stream).expect("websocket handshake on /ws");
    ws
}

#[derive(Debug)]
enum Kind {
    Snapshot {
        tasks: usize,
        /// Newest task event time carried.
        newest: f64,
    },
    Delta {
        tasks: usize,
    },
}

/// The next text message, decoded as the dashboard's message type.
fn next(ws: &mut WebSocket<TcpStream>) -> (Kind, usize) {
    loop {
        match ws.read().expect("read from /ws") {
            Message::Text(text) => {
                let len = text.len();
                let msg: WsMessage = serde_json::from_str(text.as_str())
                    .unwrap_or_else(|e| panic!("undecodable /ws message ({e}): {text:.200}"));
                let kind = match msg {
                    WsMessage::Snapshot { tasks, .. } => Kind::Snapshot {
                        tasks: tasks.len(),
                        newest: tasks.iter().filter_map(|t| t.timestamp).fold(0.0, f64::max),
                    },
                    WsMessage::Delta { tasks, .. } => Kind::Delta { tasks: tasks.len() },
                };
                return (kind, len);
            }
            Message::Close(frame) => panic!("the server closed /ws: {frame:?}"),
            _ => continue,
        }
    }
}

/// What the reading client saw.
#[derive(Default)]
struct Seen {
    snapshots: u64,
    deltas: u64,
    delta_rows: u64,
}

#[test]
fn a_stalled_dashboard_client_is_resynchronised_and_a_reading_one_is_not() {
    let vhost = TestVhost::new("ws_resync");
    let celeriac = Celeriac::start(&vhost, &[]);
    celeriac.wait_readyz(200, Duration::from_secs(30));

    // The well-behaved client reads everything, all along.
    let good = Arc::new(Mutex::new(Seen::default()));
    let done = Arc::new(AtomicBool::new(false));
    let mut good_ws = connect(&celeriac.base, None);
    let reader = {
        let (good, done) = (good.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let (kind, _) = next(&mut good_ws);
                let mut g = good.lock().unwrap();
                match kind {
                    Kind::Snapshot { .. } => g.snapshots += 1,
                    Kind::Delta { tasks } => {
                        g.deltas += 1;
                        g.delta_rows += tasks as u64;
                    }
                }
            }
            let _ = good_ws.close(None);
        })
    };

    let stop = Arc::new(AtomicBool::new(false));
    let publisher = start_publisher(&vhost, stop.clone());
    let mut slow = connect(&celeriac.base, Some(SLOW_RCVBUF));
    let (first, _) = next(&mut slow);
    assert!(
        matches!(first, Kind::Snapshot { .. }),
        "the first /ws message is a snapshot, got {first:?}"
    );
    // Read until deltas carry the flow, so the stall starts mid-stream.
    eventually("deltas carrying tasks", Duration::from_secs(30), || {
        matches!(next(&mut slow).0, Kind::Delta { tasks } if tasks > 100).then_some(())
    });

    let good_before = good.lock().unwrap().deltas;
    std::thread::sleep(PAUSE);
    let resumed = now();
    let good_during = good.lock().unwrap().deltas - good_before;

    // Resume: whatever stale deltas were already in flight, then a snapshot.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stale = 0u64;
    let mut stale_bytes = 0usize;
    let snapshot = loop {
        assert!(
            Instant::now() < deadline,
            "no resync snapshot within 30 s of resuming ({stale} deltas read)"
        );
        match next(&mut slow) {
            (Kind::Snapshot { tasks, newest }, _) => break (tasks, newest),
            (Kind::Delta { .. }, len) => {
                stale += 1;
                stale_bytes += len;
            }
        }
    };
    // Live again after the snapshot.
    let (after, _) = next(&mut slow);
    let resyncs = celeriac.metric_or_zero("celeriac_ws_resyncs_total", &[]);
    stop.store(true, Ordering::Relaxed);
    let published = publisher.join().expect("publisher thread");
    done.store(true, Ordering::Relaxed);
    reader.join().expect("reader thread");
    let good = good.lock().unwrap();
    eprintln!(
        "published {published} tasks; the reading client got {} deltas ({} rows), {good_during} \
         during the {PAUSE:?} stall; the stalled one read {stale} stale deltas ({stale_bytes} B) \
         then a snapshot of {} tasks",
        good.deltas, good.delta_rows, snapshot.0
    );

    assert!(
        good_during >= 30,
        "the flow should have produced a delta per tick during the stall, the reading client got {good_during}"
    );
    // Bounded: the server's per-client backlog is 32 deltas, plus what the
    // two socket buffers hold; far fewer than the ticks of the stall.
    assert!(
        stale < good_during,
        "the stalled client was replayed {stale} deltas, as many as the {good_during} published during \
         the stall: it was buffered, not resynchronised"
    );
    assert!(
        stale <= 40,
        "the stalled client read {stale} stale deltas before its resync: more than the server's \
         32-delta backlog plus a few in the socket buffers"
    );
    assert!(
        resyncs >= 1.0,
        "the stalled client's resync is counted in celeriac_ws_resyncs_total, which reads {resyncs}"
    );
    assert!(snapshot.0 > 0, "the resync snapshot carries the tasks");
    assert!(
        snapshot.1 >= resumed - 3.0,
        "the resync snapshot is fresh: its newest task is from {:.1} s before resuming",
        resumed - snapshot.1
    );
    assert!(
        matches!(after, Kind::Delta { .. }),
        "after the resync snapshot deltas flow again, got {after:?}"
    );
    assert_eq!(
        good.snapshots, 1,
        "the client that kept reading got only its initial snapshot"
    );
}
