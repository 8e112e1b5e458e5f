//! The built-in alert engine end to end: the real celeriac binary with a
//! rule file, real Celery workers and RabbitMQ, and a real HTTP server in
//! the test as the webhook endpoint.

mod support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{eventually, Celeriac, Signal, TestVhost, Worker, WorkerOpts};

/// A webhook endpoint: an axum server on its own thread that records every
/// JSON body POSTed to it.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let store = bodies.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("receiver runtime");
            rt.block_on(async move {
                let app = axum::Router::new().route(
                    "/hook",
                    axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                        let store = store.clone();
                        async move {
                            store.lock().unwrap().push(body);
                            "ok"
                        }
                    }),
                );
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        Receiver { url, bodies }
    }

    fn all(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// Waits for a notification of `rule` with `status` whose `label` is
    /// `value`.
    fn wait_for(&self, rule: &str, status: &str, label: (&str, &str), timeout: Duration) -> Value {
        eventually(
            &format!("a {status} notification of {rule} {label:?}"),
            timeout,
            || {
                self.all().into_iter().find(|b| {
                    b["rule"] == rule && b["status"] == status && b["labels"][label.0] == label.1
                })
            },
        )
    }

    /// Waits for any notification of `rule` with `status`.
    fn wait_rule(&self, rule: &str, status: &str, timeout: Duration) -> Value {
        eventually(
            &format!("a {status} notification of {rule}"),
            timeout,
            || {
                self.all()
                    .into_iter()
                    .find(|b| b["rule"] == rule && b["status"] == status)
            },
        )
    }

    fn count(&self, rule: &str, status: &str) -> usize {
        self.all()
            .iter()
            .filter(|b| b["rule"] == rule && b["status"] == status)
            .count()
    }
}

/// Writes `text` as a rule file in the test's log directory.
fn rule_file(vhost: &TestVhost, name: &str, text: &str) -> PathBuf {
    let path = vhost.log_dir.join(name);
    std::fs::write(&path, text).expect("write the rule file");
    path
}

fn start(vhost: &TestVhost, rules: &std::path::Path) -> Celeriac {
    Celeriac::start(
        vhost,
        &[
            "--alerts",
            rules.to_str().unwrap(),
            "--alerts-interval",
            "500ms",
            "--broker-stats-interval",
            "1",
        ],
    )
}

/// The rule's entry in `GET /api/alerts`.
fn rule_status(c: &Celeriac, name: &str) -> Value {
    let all = c.get_json("/api/alerts");
    all["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no rule {name} in {all}"))
}

#[test]
fn queue_length_fires_when_tasks_pile_up_and_resolves_when_the_queue_drains() {
    let vhost = TestVhost::new("alerts-queue");
    let hook = Receiver::start();
    let rules = rule_file(
        &vhost,
        "rules.yaml",
        &format!(
            "notifiers:\n  - name: ops\n    webhook: {{url: \"{}\"}}\nrules:\n  - name: Backlog\n    kind: queue_length\n    queue: \"backlog*\"\n    above: 5\n    for: 1s\n    severity: warning\n    annotations:\n      summary: \"{{{{ $labels.queue }}}} holds {{{{ $value }}}}\"\n",
            hook.url
        ),
    );
    let celeriac = start(&vhost, &rules);
    assert_eq!(rule_status(&celeriac, "Backlog")["state"], "inactive");

    // Nobody consumes `backlog` yet.
    vhost.send_many("add", "[1, 2]", 12, &["--queue", "backlog"]);
    let fired = hook.wait_for(
        "Backlog",
        "firing",
        ("queue", "backlog"),
        Duration::from_secs(20),
    );
    assert_eq!(fired["value"], 12.0, "{fired}");
    assert_eq!(fired["threshold"], 5.0);
    assert_eq!(fired["severity"], "warning");
    assert_eq!(fired["annotations"]["summary"], "backlog holds 12");
    let status = rule_status(&celeriac, "Backlog");
    assert_eq!(status["state"], "firing", "{status}");
    assert_eq!(status["instances"][0]["labels"]["queue"], "backlog");
    assert_eq!(
        celeriac.metric("celeriac_alerts_firing", &[("rule", "Backlog")]),
        Some(1.0)
    );

    // A worker on the queue drains it: one resolve, and no second firing.
    let _worker = Worker::start(
        &vhost,
        "drain@test",
        WorkerOpts {
            queues: vec!["backlog".into()],
            ..WorkerOpts::default()
        },
    );
    let resolved = hook.wait_for(
        "Backlog",
        "resolved",
        ("queue", "backlog"),
        Duration::from_secs(30),
    );
    assert!(resolved["endsAt"].is_string(), "{resolved}");
    assert_eq!(resolved["fingerprint"], fired["fingerprint"]);
    assert_eq!(hook.count("Backlog", "firing"), 1);
    assert_eq!(rule_status(&celeriac, "Backlog")["state"], "inactive");
    assert!(
        celeriac.metric_or_zero("celeriac_alert_evaluation_seconds_count", &[]) > 0.0,
        "evaluations are timed"
    );
}

#[test]
fn task_failure_rate_fires_for_the_failing_task_only() {
    let vhost = TestVhost::new("alerts-failrate");
    let hook = Receiver::start();
    let rules = rule_file(
        &vhost,
        "rules.yaml",
        &format!(
            "notifiers:\n  - name: ops\n    webhook: {{url: \"{}\"}}\nrules:\n  - name: Failing\n    kind: task_failure_rate\n    task: \"tasks.*\"\n    above: 50%\n    min_tasks: 4\n    window: 5m\n",
            hook.url
        ),
    );
    let celeriac = start(&vhost, &rules);
    let _worker = Worker::start(&vhost, "fw@test", WorkerOpts::default());
    vhost.send_many("fail", "[\"boom\"]", 5, &[]);
    vhost.send_many("add", "[1, 2]", 5, &[]);
    let fired = hook.wait_for(
        "Failing",
        "firing",
        ("task", "tasks.fail"),
        Duration::from_secs(30),
    );
    assert_eq!(fired["value"], 1.0, "{fired}");
    // Let the adds finish and a few evaluations pass: tasks.add never fires.
    eventually("the adds to succeed", Duration::from_secs(20), || {
        let tasks = celeriac.get_json("/api/tasks?taskname=tasks.add&state=SUCCESS");
        (tasks.as_object().map_or(0, |m| m.len()) == 5).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !hook
            .all()
            .iter()
            .any(|b| b["labels"]["task"] == "tasks.add"),
        "{:?}",
        hook.all()
    );
}

#[test]
fn worker_offline_fires_when_a_worker_is_killed() {
    let vhost = TestVhost::new("alerts-offline");
    let hook = Receiver::start();
    let rules = rule_file(
        &vhost,
        "rules.yaml",
        &format!(
            "notifiers:\n  - name: ops\n    webhook: {{url: \"{}\"}}\nrules:\n  - name: Gone\n    kind: worker_offline\n    worker: \"victim@*\"\n    severity: critical\n",
            hook.url
        ),
    );
    let celeriac = start(&vhost, &rules);
    let mut victim = Worker::start(
        &vhost,
        "victim@test",
        WorkerOpts {
            heartbeat_interval: Some(1.0),
            ..WorkerOpts::default()
        },
    );
    let _other = Worker::start(&vhost, "bystander@test", WorkerOpts::default());
    eventually(
        "celeriac to see the worker online",
        Duration::from_secs(20),
        || {
            celeriac
                .worker("victim@test")
                .filter(|w| w["status"] == true)
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        hook.all().is_empty(),
        "nothing fires while it is online: {:?}",
        hook.all()
    );

    let killed = Instant::now();
    victim.kill();
    let fired = hook.wait_for(
        "Gone",
        "firing",
        ("worker", "victim@test"),
        Duration::from_secs(20),
    );
    assert_eq!(fired["severity"], "critical");
    // Heartbeats every 1 s expire after 2 s; evaluation every 0.5 s.
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "{:?}",
        killed.elapsed()
    );
    assert_eq!(hook.count("Gone", "firing"), 1);
}

/// A server that accepts connections and never answers.
fn hanging_server() -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(50) {
            held.push(conn);
        }
    });
    (url, handle)
}

#[test]
fn a_dead_or_hanging_webhook_does_not_hold_up_another_notifier() {
    let vhost = TestVhost::new("alerts-deadhook");
    let hook = Receiver::start();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let (hanging, _h) = hanging_server();
    // No worker sends events here, so `no_events` fires at once and repeats
    // every second: the live receiver must keep getting them on time while
    // the other two notifiers fail or hang.
    let rules = rule_file(
        &vhost,
        "rules.yaml",
        &format!(
            "notifiers:\n  - name: dead\n    webhook: {{url: \"{closed}\"}}\n  - name: stuck\n    webhook: {{url: \"{hanging}\", timeout: 30s}}\n  - name: ops\n    webhook: {{url: \"{}\"}}\nrules:\n  - name: Blind\n    kind: no_events\n    above: 0s\n    repeat: 1s\n    notify: [dead, stuck, ops]\n",
            hook.url
        ),
    );
    let started = Instant::now();
    let celeriac = start(&vhost, &rules);
    eventually(
        "four notifications at the live receiver",
        Duration::from_secs(15),
        || (hook.count("Blind", "firing") >= 4).then_some(()),
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "one notification a second, not held up by the dead ones: {:?}",
        started.elapsed()
    );
    let notifiers = celeriac.get_json("/api/alerts")["notifiers"].clone();
    let ops = notifiers
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "ops")
        .cloned()
        .unwrap();
    assert!(ops["sent"].as_u64().unwrap() >= 4, "{notifiers}");
    assert_eq!(ops["kind"], "webhook");
}

#[test]
fn reload_by_api_and_sighup_keeps_alert_state() {
    let vhost = TestVhost::new("alerts-reload");
    let hook = Receiver::start();
    let head = format!(
        "notifiers:\n  - name: ops\n    webhook: {{url: \"{}\"}}\nrules:\n",
        hook.url
    );
    let blind = "  - name: Blind\n    kind: no_events\n    above: 0s\n";
    let rules = rule_file(&vhost, "rules.yaml", &format!("{head}{blind}"));
    let celeriac = start(&vhost, &rules);
    hook.wait_rule("Blind", "firing", Duration::from_secs(10));
    let since = rule_status(&celeriac, "Blind")["instances"][0]["firing_since"].clone();
    assert!(since.is_f64(), "{since}");

    // API reload with a new rule: Blind keeps firing since the same time,
    // and is not notified again.
    std::fs::write(
        &rules,
        format!("{head}{blind}  - name: Backlog\n    kind: queue_length\n    above: 100\n"),
    )
    .unwrap();
    let (status, body) = celeriac.post("/api/alerts/reload", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rules"].as_array().unwrap().len(), 2);
    assert_eq!(
        rule_status(&celeriac, "Blind")["instances"][0]["firing_since"],
        since
    );

    // A bad file is refused with its line; the rules in force stay.
    std::fs::write(&rules, format!("{head}{blind}    for: 5x\n")).unwrap();
    let (status, body) = celeriac.post("/api/alerts/reload", None);
    assert_eq!(status, 422, "{body}");
    let error = body["error"].as_str().unwrap_or_default().to_string() + &body.to_string();
    assert!(
        error.contains("rules.yaml:8: ") && error.contains("5x"),
        "{body}"
    );
    let all = celeriac.get_json("/api/alerts");
    assert_eq!(all["rules"].as_array().unwrap().len(), 2);
    assert!(
        all["reload_error"].as_str().unwrap().contains("5x"),
        "{all}"
    );
    // Both reloads are operators' actions in the audit log, newest first,
    // with their outcome.
    let audit = celeriac.get_json("/api/audit?limit=10");
    let reloads: Vec<&serde_json::Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["command"] == "alerts_reload")
        .collect();
    assert_eq!(reloads.len(), 2, "{audit}");
    assert_eq!(reloads[0]["status"], 422, "{audit}");
    assert!(reloads[0]["replies"]["error"]
        .as_str()
        .unwrap()
        .contains("5x"));
    assert_eq!(reloads[1]["status"], 200, "{audit}");
    assert_eq!(reloads[1]["replies"]["rules"], 2, "{audit}");

    // SIGHUP reloads too; removing a firing rule resolves it.
    std::fs::write(
        &rules,
        format!("{head}  - name: Backlog\n    kind: queue_length\n    above: 100\n"),
    )
    .unwrap();
    celeriac.signal(Signal::HUP);
    eventually(
        "SIGHUP to reload the rules",
        Duration::from_secs(10),
        || {
            let all = celeriac.get_json("/api/alerts");
            (all["rules"].as_array().unwrap().len() == 1 && all["reload_error"].is_null())
                .then_some(())
        },
    );
    hook.wait_rule("Blind", "resolved", Duration::from_secs(10));
    assert_eq!(
        hook.count("Blind", "firing"),
        1,
        "never re-sent by a reload"
    );
}

fn check_alerts(file: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_celeriac"))
        .args(["check-alerts", file.to_str().unwrap()])
        .output()
        .expect("run celeriac check-alerts");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_alerts_names_the_line_and_start_up_refuses_a_bad_file() {
    let dir = std::env::temp_dir().join(format!("celeriac-check-alerts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "rules:\n  - name: Backlog\n    kind: queue_length\n    above: 10\n    for: 5x\n",
    )
    .unwrap();
    let (code, _, stderr) = check_alerts(&bad);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("bad.yaml:5: ") && stderr.contains("bad duration `5x`"),
        "{stderr}"
    );

    let unknown = dir.join("unknown.yaml");
    std::fs::write(
        &unknown,
        "rules:\n  - name: A\n    kind: queue_length\n    above: 1\n    notify: [pager]\n",
    )
    .unwrap();
    let (code, _, stderr) = check_alerts(&unknown);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("unknown.yaml:5: ") && stderr.contains("unknown notifier `pager`"),
        "{stderr}"
    );

    let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../alerts/default-rules.yaml");
    let (code, stdout, stderr) = check_alerts(&default);
    assert_eq!(code, 0, "the shipped default rules are valid: {stderr}");
    assert!(stdout.contains("OK"), "{stdout}");

    // Start-up with the bad file stops with the same message.
    let out = Command::new(env!("CARGO_BIN_EXE_celeriac"))
        .args([
            "--port",
            "0",
            "--broker",
            "amqp://guest:guest@127.0.0.1:1//",
        ])
        .args(["--alerts", bad.to_str().unwrap()])
        .output()
        .expect("run celeriac");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bad.yaml:5: ") && stderr.contains("5x"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
