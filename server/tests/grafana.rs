//! The Grafana dashboards (`grafana/dashboards/*.json`) against the real
//! Prometheus from Debian scraping a celeriac fed by a real worker: every
//! panel query must parse and return data once the cluster has done what
//! the panel shows (tasks succeeded and failed, a backlog queued, heartbeats
//! sent), and every template variable must list values.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{eventually, Celeriac, TestVhost, Worker, WorkerOpts};

const DASHBOARDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../grafana/dashboards");

/// Prometheus in its own process, killed on drop.
struct Prometheus {
    child: Child,
    base: String,
    log: PathBuf,
    http: reqwest::blocking::Client,
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Prometheus {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: celeriac\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let data = dir.join("prometheus-data");
        let _ = std::fs::remove_dir_all(&data);
        let log = dir.join("prometheus.log");
        let out = std::fs::File::create(&log).expect("create the prometheus log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone"))
            .stderr(out)
            .spawn()
            .expect("start prometheus (`cargo xtask test` installs Debian's `prometheus`)");
        Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
        }
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .ok()?;
        r.json().ok()
    }

    /// An instant query's result vector; panics on a query error (a panel
    /// that does not parse).
    fn query(&self, expr: &str) -> Option<Vec<Value>> {
        let v = self.get("/api/v1/query", &[("query", expr)])?;
        assert_ne!(v["status"], "error", "query {expr}: {v}");
        v["data"]["result"].as_array().cloned()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("----- prometheus log (last lines, newest first) -----");
            for l in tail {
                eprintln!("{l}");
            }
        }
    }
}

/// Grafana's variables as the test fills them: every value.
fn expand(expr: &str) -> String {
    expr.replace("$__rate_interval", "30s")
        .replace("$__range", "5m")
        .replace("${datasource}", "prometheus")
        .replace("$job", ".*")
        .replace("$queue", ".*")
        .replace("$task", ".*")
        .replace("$worker", ".*")
}

fn dashboards() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(DASHBOARDS).expect("grafana/dashboards") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("read a dashboard");
            let json: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path.display().to_string(), json));
        }
    }
    assert!(out.len() >= 3, "three dashboards: {out:?}");
    out
}

#[test]
fn every_panel_query_returns_data_from_real_prometheus() {
    let vhost = TestVhost::new("grafana");
    let celeriac = Celeriac::start(&vhost, &["--broker-stats-interval", "1"]);
    celeriac.wait_readyz(200, Duration::from_secs(30));
    let _worker = Worker::start(&vhost, "w1@grafana", WorkerOpts::default());
    let target = celeriac.base.trim_start_matches("http://").to_string();
    let prometheus = Prometheus::start(&vhost.log_dir, &target);

    // What the panels show: successes, failures, a backlog nobody consumes.
    let ok = vhost.send_many("add", "[1, 2]", 5, &[]);
    let failed = vhost.send_many("fail", "[\"boom\"]", 2, &[]);
    vhost.send_many("add", "[3, 4]", 3, &["--queue", "backlog"]);
    for id in &ok {
        celeriac.wait_task_state(id, "SUCCESS", Duration::from_secs(30));
    }
    for id in &failed {
        celeriac.wait_task_state(id, "FAILURE", Duration::from_secs(30));
    }
    eventually(
        "prometheus to scrape celeriac",
        Duration::from_secs(30),
        || {
            prometheus
                .query("up{job=\"celeriac\"} == 1")
                .filter(|r| !r.is_empty())
        },
    );
    // A few more tasks after the first scrapes, so rates see increases.
    let later = vhost.send_many("add", "[5, 6]", 3, &[]);
    for id in &later {
        celeriac.wait_task_state(id, "SUCCESS", Duration::from_secs(30));
    }

    let mut checked = 0;
    for (file, dashboard) in dashboards() {
        for var in dashboard["templating"]["list"].as_array().unwrap() {
            let Some(def) = var["definition"].as_str() else {
                continue;
            };
            // label_values(metric, label)
            let inner = def
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or_else(|| panic!("{file}: variable {def}"));
            let (metric, label) = inner.split_once(',').expect("metric, label");
            let path = format!("/api/v1/label/{}/values", label.trim());
            eventually(
                &format!("{file}: variable {def} to list values"),
                Duration::from_secs(30),
                || {
                    let v = prometheus.get(&path, &[("match[]", metric.trim())])?;
                    (!v["data"].as_array()?.is_empty()).then_some(())
                },
            );
        }
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = expand(target["expr"].as_str().expect("expr"));
                let title = panel["title"].as_str().unwrap_or("?");
                eventually(
                    &format!("{file}: panel {title:?} to return data for {expr}"),
                    Duration::from_secs(40),
                    || prometheus.query(&expr).filter(|r| !r.is_empty()),
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "{checked} panel queries checked");
}

/// The provisioning files are valid YAML-ish Grafana providers pointing at
/// the dashboards, and every dashboard has the template variables.
#[test]
fn dashboards_use_template_variables_and_rate_interval() {
    for (file, d) in dashboards() {
        let vars: Vec<&str> = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert!(vars.contains(&"job"), "{file}: {vars:?}");
        let text = d.to_string();
        assert!(!text.contains("[1m]") && !text.contains("[5m]"), "{file}");
        assert!(text.contains("$__rate_interval"), "{file}");
        assert!(d["uid"].is_string(), "{file}");
    }
    let root = Path::new(DASHBOARDS).join("../provisioning");
    for f in ["datasources/celeriac.yaml", "dashboards/celeriac.yaml"] {
        let text = std::fs::read_to_string(root.join(f)).expect(f);
        assert!(text.contains("apiVersion: 1"), "{f}");
    }
}
