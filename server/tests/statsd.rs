//! statsd output against a UDP receiver in the test that parses every line
//! (`name:value|type[|#tags]`): counters by task name and state, timers for
//! runtime and queue wait, gauges for workers, active tasks, queue depth.

mod support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use support::{Celeriac, TestVhost, Worker, WorkerOpts};

/// Receives datagrams until `done` holds for the lines so far.
fn receive_until(socket: &UdpSocket, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let mut lines = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 65536];
    while start.elapsed() < Duration::from_secs(40) {
        if let Ok(n) = socket.recv(&mut buf) {
            for line in String::from_utf8_lossy(&buf[..n]).lines() {
                let (name, rest) = line.split_once(':').unwrap_or_else(|| panic!("{line:?}"));
                assert!(!name.is_empty(), "{line:?}");
                let mut parts = rest.split('|');
                let value = parts.next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line:?}");
                let kind = parts.next().unwrap_or("");
                assert!(["c", "g", "ms"].contains(&kind), "{line:?}");
                lines.push(line.to_string());
            }
            if done(&lines) {
                return lines;
            }
        }
    }
    panic!("timed out waiting for {what}; got {lines:#?}");
}

fn sum(lines: &[String], prefix: &str) -> u64 {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|v| v.split('|').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn task_counters_timers_and_gauges_reach_statsd() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let vhost = TestVhost::new("statsd");
    let celeriac = Celeriac::start(&vhost, &["--statsd", &addr, "--broker-stats-interval", "1"]);
    celeriac.wait_readyz(200, Duration::from_secs(30));
    let _worker = Worker::start(&vhost, "w1@statsd", WorkerOpts::default());
    vhost.send_many("add", "[1, 2]", 3, &[]);
    vhost.send_many("add", "[1, 2]", 2, &["--queue", "backlog"]);

    let lines = receive_until(&socket, "3 succeeded tasks.add", |l| {
        sum(l, "celery.task.tasks.add.succeeded:") >= 3
            && l.iter()
                .any(|x| x.starts_with("celery.task.tasks.add.runtime:"))
            && l.iter()
                .any(|x| x.starts_with("celery.queue.backlog.length:2|g"))
    });
    assert_eq!(sum(&lines, "celery.task.tasks.add.succeeded:"), 3);
    assert!(sum(&lines, "celery.task.tasks.add.sent:") >= 3);
    assert!(lines
        .iter()
        .any(|l| l.starts_with("celery.task.tasks.add.queue_wait:") && l.ends_with("|ms")));
    assert!(lines.iter().any(|l| l == "celery.workers.online:1|g"));
    assert!(lines.iter().any(|l| l.starts_with("celery.tasks.active:")));
}

#[test]
fn dogstatsd_tags_carry_the_task_name() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let vhost = TestVhost::new("statsd-tags");
    let celeriac = Celeriac::start(
        &vhost,
        &["--statsd", &addr, "--statsd-tags", "--statsd-prefix", "cel"],
    );
    celeriac.wait_readyz(200, Duration::from_secs(30));
    vhost.send_many("add", "[1, 2]", 2, &[]);
    let lines = receive_until(&socket, "tagged task-sent counts", |l| {
        l.iter()
            .filter(|x| x.starts_with("cel.task.sent:") && x.ends_with("|c|#task:tasks.add"))
            .filter_map(|x| {
                x["cel.task.sent:".len()..]
                    .split('|')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum::<u64>()
            >= 2
    });
    assert!(
        !lines.iter().any(|l| l.contains("tasks.add.sent")),
        "{lines:#?}"
    );
}
