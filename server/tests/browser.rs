//! Dashboard end to end: Debian's Chromium driven by playwright-core
//! (`tests/browser/dashboard.cjs`) against the real binary, under a URL
//! prefix, with a real Celery worker. The script asks this test (one line on
//! stdout, the answer on its stdin) to send tasks and to restart celeriac.
//! Screenshots go to `target/dashboard-screenshots/`.
//!
//! Needs the dashboard embedded and `CELERIAC_TEST_NODE_MODULES` (set by
//! `cargo xtask test`); without them it says why and passes, so a plain
//! `cargo test` on a machine without Chromium still works.

mod support;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{TestVhost, Worker, WorkerOpts};

const PREFIX: &str = "/flower";
const WORKER: &str = "w1@browser";

/// A celeriac on a fixed port (so a restart comes back where the page
/// reconnects), killed on drop.
struct Server {
    child: Child,
}

impl Server {
    fn start(broker: &str, port: u16, log: &Path) -> Server {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the celeriac log");
        let err = out.try_clone().expect("clone the log handle");
        let mut child = Command::new(env!("CARGO_BIN_EXE_celeriac"))
            .args(["--broker", broker, "--port", &port.to_string()])
            .args(["--url-prefix", PREFIX])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("start celeriac");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut out = out;
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(out, "[stdout] {line}");
                if line.starts_with("celeriac listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("celeriac did not start listening within 30 s");
        Server { child }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn screenshots_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("create the screenshot directory");
    dir
}

#[test]
fn dashboard_in_a_real_browser() {
    let Some(modules) = std::env::var_os("CELERIAC_TEST_NODE_MODULES").filter(|v| !v.is_empty())
    else {
        eprintln!("skipped: CELERIAC_TEST_NODE_MODULES is not set (run `cargo xtask test`)");
        return;
    };
    let playwright = PathBuf::from(modules).join("playwright-core");
    assert!(
        playwright.is_dir(),
        "{} is missing: run `cargo xtask test`",
        playwright.display()
    );

    let vhost = TestVhost::new("browser");
    let port = free_port();
    let log = vhost.log_dir.join("celeriac.log");
    let mut server = Some(Server::start(&vhost.amqp_url(), port, &log));
    let base = format!("http://127.0.0.1:{port}{PREFIX}");
    let http = reqwest::blocking::Client::new();
    let index = http
        .get(format!("{base}/"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    assert!(
        index.contains("celeriac-prefix"),
        "the binary does not embed the dashboard: build with `cargo xtask test` \
         (it sets CELERIAC_DASHBOARD_DIR); / answered:\n{index}"
    );
    support::eventually("celeriac to consume", Duration::from_secs(30), || {
        let r = http.get(format!("{base}/readyz")).send().ok()?;
        (r.status() == 200).then_some(())
    });
    let _worker = Worker::start(
        &vhost,
        WORKER,
        WorkerOpts {
            heartbeat_interval: Some(1.0),
            ..WorkerOpts::default()
        },
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.cjs");
    let mut node = Command::new("node")
        .arg(&script)
        .env("PLAYWRIGHT_CORE", &playwright)
        .env("CELERIAC_URL", &base)
        .env("WORKER", WORKER)
        .env("SCREENSHOTS", screenshots_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node");
    let mut to_node = node.stdin.take().expect("piped stdin");
    let from_node = BufReader::new(node.stdout.take().expect("piped stdout"));
    for line in from_node.lines().map_while(Result::ok) {
        let mut words = line.splitn(4, ' ');
        match words.next() {
            Some("SEND") => {
                let task = words.next().expect("SEND task");
                let args = words.next().expect("SEND args");
                let count: usize = words.next().map_or(1, |c| c.parse().expect("count"));
                let ids = vhost.send_many(task, args, count, &[]);
                writeln!(to_node, "{}", serde_json::to_string(&ids).unwrap()).unwrap();
            }
            Some("RESTART") => {
                drop(server.take());
                std::thread::sleep(Duration::from_millis(1500));
                server = Some(Server::start(&vhost.amqp_url(), port, &log));
                writeln!(to_node, "OK").unwrap();
            }
            _ => println!("{line}"),
        }
    }
    let status = node.wait().expect("wait for node");
    if !status.success() {
        eprintln!(
            "----- celeriac log -----\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    assert!(status.success(), "the browser script failed ({status})");
}
