//! Dashboard end to end: Debian's Chromium driven by playwright-core
//! (`tests/browser/dashboard.cjs`) against the real binary with a real
//! Celery worker. The script asks this test (one line on stdout, the answer
//! on its stdin) to send tasks and to restart celeriac. Two scenarios:
//! the live pages under a URL prefix with no users (and the no-auth
//! banner), and remote control with an operator and a viewer.
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

use support::{Auth, Celeriac, TestVhost, Worker, WorkerOpts};

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
            // History in the test's directory, kept across the restart.
            .env("CELERIAC_DATA_DIR", log.with_file_name("data"))
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

/// playwright-core, or None (the test then says why and passes).
fn playwright() -> Option<PathBuf> {
    let Some(modules) = std::env::var_os("CELERIAC_TEST_NODE_MODULES").filter(|v| !v.is_empty())
    else {
        eprintln!("skipped: CELERIAC_TEST_NODE_MODULES is not set (run `cargo xtask test`)");
        return None;
    };
    let playwright = PathBuf::from(modules).join("playwright-core");
    assert!(
        playwright.is_dir(),
        "{} is missing: run `cargo xtask test`",
        playwright.display()
    );
    Some(playwright)
}

fn assert_embedded(http: &reqwest::blocking::Client, base: &str, auth: Option<(&str, &str)>) {
    let mut req = http.get(format!("{base}/"));
    if let Some((user, password)) = auth {
        req = req.basic_auth(user, Some(password));
    }
    let index = req.send().and_then(|r| r.text()).unwrap_or_default();
    assert!(
        index.contains("celeriac-prefix"),
        "the binary does not embed the dashboard: build with `cargo xtask test` \
         (it sets CELERIAC_DASHBOARD_DIR); / answered:\n{index}"
    );
}

/// Runs `dashboard.cjs` in `mode`, answering its `SEND` requests on
/// `vhost` and its `RESTART` and `KILL` requests with `request` (told
/// which); returns whether it succeeded.
fn drive(
    playwright: &Path,
    mode: &str,
    base: &str,
    vhost: &TestVhost,
    env: &[(&str, &str)],
    mut request: impl FnMut(&str),
) -> bool {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.cjs");
    let mut node = Command::new("node")
        .arg(&script)
        .env("PLAYWRIGHT_CORE", playwright)
        .env("MODE", mode)
        .env("CELERIAC_URL", base)
        .env("SCREENSHOTS", screenshots_dir())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node");
    let mut to_node = node.stdin.take().expect("piped stdin");
    let from_node = BufReader::new(node.stdout.take().expect("piped stdout"));
    for line in from_node.lines().map_while(Result::ok) {
        let mut words = line.splitn(5, ' ');
        match words.next() {
            Some("SEND") => {
                let task = words.next().expect("SEND task");
                let args = words.next().expect("SEND args");
                let count: usize = words.next().map_or(1, |c| c.parse().expect("count"));
                // An optional countdown (s) after the count; 0 for none.
                let countdown = words.next().filter(|c| *c != "0");
                let extra: Vec<&str> = countdown.map_or(vec![], |c| vec!["--countdown", c]);
                let ids = vhost.send_many(task, args, count, &extra);
                writeln!(to_node, "{}", serde_json::to_string(&ids).unwrap()).unwrap();
            }
            Some("WORKFLOW") => {
                let kind = words.next().expect("WORKFLOW kind");
                writeln!(to_node, "{}", vhost.start_workflow(kind)).unwrap();
            }
            Some(r @ ("RESTART" | "KILL")) => {
                request(r);
                writeln!(to_node, "OK").unwrap();
            }
            _ => println!("{line}"),
        }
    }
    node.wait().expect("wait for node").success()
}

#[test]
fn dashboard_in_a_real_browser() {
    let Some(playwright) = playwright() else {
        return;
    };

    let vhost = TestVhost::new("browser");
    let port = free_port();
    let log = vhost.log_dir.join("celeriac.log");
    let mut server = Some(Server::start(&vhost.amqp_url(), port, &log));
    let base = format!("http://127.0.0.1:{port}{PREFIX}");
    let http = reqwest::blocking::Client::new();
    assert_embedded(&http, &base, None);
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

    let ok = drive(
        &playwright,
        "live",
        &base,
        &vhost,
        &[("WORKER", WORKER)],
        |r| {
            assert_eq!(r, "RESTART", "the live scenario only restarts celeriac");
            drop(server.take());
            std::thread::sleep(Duration::from_millis(1500));
            server = Some(Server::start(&vhost.amqp_url(), port, &log));
        },
    );
    if !ok {
        eprintln!(
            "----- celeriac log -----\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    assert!(ok, "the browser script failed");
}

const OPERATOR: (&str, &str) = ("ann", "pw-ann-7Qx");
const VIEWER: (&str, &str) = ("vic", "pw-vic-3Lz");
const CONTROL_WORKER: &str = "w1@controls";
const ALERT_RULES: &str = r#"
notifiers:
  - name: hook
    webhook:
      url: "http://127.0.0.1:9/celeriac-alerts"
      timeout: 1s
rules:
  - name: FewWorkers
    kind: workers_online
    below: 5
    severity: warning
  - name: NoEvents
    kind: no_events
    above: 10m
    severity: critical
"#;

/// Remote control from the dashboard: an operator terminates a running
/// task and acts on a worker and a task type, each after confirming, and
/// sees the worker's reply and the audit log; a viewer sees no control and
/// is refused one. Alerting is on: the alerts page and the overview badge
/// show a firing rule.
#[test]
fn dashboard_controls_in_a_real_browser() {
    let Some(playwright) = playwright() else {
        return;
    };
    let vhost = TestVhost::new("browser-ctl");
    let op = format!("{}:{}", OPERATOR.0, OPERATOR.1);
    let viewer = format!("{}:{}", VIEWER.0, VIEWER.1);
    // One rule that fires at once (fewer than 5 workers), one that stays
    // inactive, and a notifier nobody listens to (its error shows).
    let rules = vhost.log_dir.join("alerts.yaml");
    std::fs::write(&rules, ALERT_RULES).expect("write the alert rules");
    let rules = rules.display().to_string();
    let celeriac = Celeriac::start(
        &vhost,
        &[
            "--basic-auth",
            &op,
            "--viewer",
            &viewer,
            "--alerts",
            &rules,
            "--alerts-interval",
            "500ms",
        ],
    );
    let http = reqwest::blocking::Client::new();
    assert_embedded(&http, &celeriac.base, Some(OPERATOR));
    celeriac.wait_readyz(200, Duration::from_secs(30));
    let mut worker = Worker::start(
        &vhost,
        CONTROL_WORKER,
        WorkerOpts {
            heartbeat_interval: Some(1.0),
            ..WorkerOpts::default()
        },
    );
    let ok = drive(
        &playwright,
        "controls",
        &celeriac.base,
        &vhost,
        &[
            ("WORKER", CONTROL_WORKER),
            ("OPERATOR", &op),
            ("VIEWER", &viewer),
        ],
        |r| {
            // Last: a task running on a killed worker turns LOST.
            assert_eq!(r, "KILL", "the controls scenario does not restart celeriac");
            worker.kill();
        },
    );
    if !ok {
        eprintln!("----- celeriac log -----\n{}", celeriac.log());
    }
    assert!(ok, "the browser script failed");

    // What the browser did is in the audit log, by the operator only.
    let (status, body) = celeriac.request(
        "GET",
        "/api/audit",
        Auth::Basic(OPERATOR.0, OPERATOR.1),
        &[],
        None,
    );
    assert_eq!(status, 200, "{body}");
    let audit: api::control::AuditResponse = serde_json::from_str(&body).unwrap();
    let commands: Vec<&str> = audit.entries.iter().map(|e| e.command.as_str()).collect();
    for c in [
        "revoke",
        "add_consumer",
        "pool_grow",
        "rate_limit",
        "failure_resolve",
    ] {
        assert!(
            commands.contains(&c),
            "no {c} in the audit log: {commands:?}"
        );
    }
    assert!(
        audit.entries.iter().all(|e| e.user == OPERATOR.0),
        "only the operator acted: {:?}",
        audit.entries
    );
    // Newest first: the oldest revoke is the task page's terminate.
    let terminate = audit
        .entries
        .iter()
        .rfind(|e| e.command == "revoke")
        .unwrap();
    assert_eq!(terminate.arguments["terminate"], true);
    assert_eq!(terminate.arguments["signal"], "SIGKILL");
}

/// `--read-only` (and no users): the banner still warns, the header says
/// read-only, no control shows, and a control request is refused.
#[test]
fn dashboard_read_only_hides_controls() {
    let Some(playwright) = playwright() else {
        return;
    };
    let vhost = TestVhost::new("browser-ro");
    let celeriac = Celeriac::start(&vhost, &["--read-only"]);
    let http = reqwest::blocking::Client::new();
    assert_embedded(&http, &celeriac.base, None);
    celeriac.wait_readyz(200, Duration::from_secs(30));
    let worker = "w1@readonly";
    let _worker = Worker::start(
        &vhost,
        worker,
        WorkerOpts {
            heartbeat_interval: Some(1.0),
            ..WorkerOpts::default()
        },
    );
    let ok = drive(
        &playwright,
        "readonly",
        &celeriac.base,
        &vhost,
        &[("WORKER", worker)],
        |r| panic!("the read-only scenario does not {r}"),
    );
    if !ok {
        eprintln!("----- celeriac log -----\n{}", celeriac.log());
    }
    assert!(ok, "the browser script failed");
    let (status, body) = celeriac.request("GET", "/api/audit", Auth::None, &[], None);
    assert_eq!(status, 200, "{body}");
    let audit: api::control::AuditResponse = serde_json::from_str(&body).unwrap();
    assert!(
        audit.entries.is_empty(),
        "nothing acted: {:?}",
        audit.entries
    );
}

/// A worker started without `-E` (and celeriac's own `enable_events`
/// broadcast off) and a producer without `task-sent`: the overview names
/// the worker and the queue, the operator's one click sends
/// `enable_events`, and the banner goes once the worker's task events flow;
/// then a task running past `--stuck-after` is marked stuck.
#[test]
fn dashboard_diagnoses_a_worker_without_task_events() {
    let Some(playwright) = playwright() else {
        return;
    };
    let vhost = TestVhost::new("browser-evoff");
    let celeriac = Celeriac::start(
        &vhost,
        &[
            "--enable-events",
            "false",
            "--inspect-interval",
            "2",
            "--stuck-after",
            "2",
        ],
    );
    let http = reqwest::blocking::Client::new();
    assert_embedded(&http, &celeriac.base, None);
    celeriac.wait_readyz(200, Duration::from_secs(30));
    vhost.set_celery_env("CELERY_TASK_SEND_SENT_EVENT", "0");
    let worker = "w1@eventsoff";
    let _worker = Worker::start(
        &vhost,
        worker,
        WorkerOpts {
            events: false,
            heartbeat_interval: Some(1.0),
            ..WorkerOpts::default()
        },
    );
    let ok = drive(
        &playwright,
        "eventsoff",
        &celeriac.base,
        &vhost,
        &[("WORKER", worker)],
        |r| panic!("the events-off scenario does not {r}"),
    );
    if !ok {
        eprintln!("----- celeriac log -----\n{}", celeriac.log());
    }
    assert!(ok, "the browser script failed");
}
