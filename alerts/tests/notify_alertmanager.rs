//! The Alertmanager notifier against a real Alertmanager (Debian's
//! `prometheus-alertmanager`; `cargo xtask test` installs it and sets
//! `CELERIAC_TEST_ALERTMANAGER`): a firing alert shows in its API with our
//! labels, and a resolve ends it.

mod notify_common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alerts::notify::Dispatcher;
use notify_common::*;
use serde_json::Value;

/// The Alertmanager binary, or `None` (test skipped) when it is neither
/// named by `CELERIAC_TEST_ALERTMANAGER` nor on PATH.
fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CELERIAC_TEST_ALERTMANAGER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p)); // set: it must run, so no fallback
    }
    let name = "prometheus-alertmanager";
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// A running Alertmanager on a free port, killed on drop.
struct Alertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    async fn start(binary: PathBuf) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        // Routes everything to a receiver with no integrations: the test
        // reads alerts back from the API, nothing needs delivering.
        std::fs::write(
            &config,
            "route:\n  receiver: sink\nreceivers:\n  - name: sink\n",
        )
        .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No clustering: it would bind :9094 and gossip.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let am = Alertmanager {
            child,
            url,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = reqwest::get(format!("{}/-/ready", am.url)).await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return am;
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager at {} never became ready",
                am.url
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /api/v2/alerts` for alertname `rule`.
    async fn alerts(&self, rule: &str) -> Vec<Value> {
        let resp = reqwest::Client::new()
            .get(format!("{}/api/v2/alerts", self.url))
            .query(&[("filter", format!("alertname=\"{rule}\""))])
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{resp:?}");
        resp.json::<Vec<Value>>().await.unwrap()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn firing_alert_shows_in_alertmanager_and_resolve_ends_it() {
    let Some(binary) = binary() else {
        println!(
            "SKIPPED: prometheus-alertmanager is not installed and CELERIAC_TEST_ALERTMANAGER \
             is not set (`cargo xtask test` installs it)"
        );
        return;
    };
    let am = Alertmanager::start(binary).await;
    // The base URL with a trailing slash, as users paste it.
    let configs = notifiers(&format!(
        "- name: am\n  alertmanager: {{url: '{}/'}}\n",
        am.url
    ));
    let d = Dispatcher::new(&configs, fast_options());
    assert_eq!(stats(&d, "am").kind, "alertmanager");

    // Starts "now", so Alertmanager does not treat it as long over.
    let now = now();
    let mut n = firing();
    n.rule = format!("QueueBacklog{}", std::process::id());
    n.starts_at = now - 60.0;
    d.send("am", n.clone());

    let deadline = Instant::now() + Duration::from_secs(10);
    let alert = loop {
        if let Some(a) = am.alerts(&n.rule).await.pop() {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "alert never showed in Alertmanager: {:?}",
            d.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(alert["labels"]["alertname"], n.rule.as_str());
    assert_eq!(alert["labels"]["severity"], "warning");
    assert_eq!(alert["labels"]["queue"], "default");
    assert_eq!(
        alert["annotations"]["summary"],
        "Queue default has 1500 messages"
    );
    assert_eq!(
        alert["annotations"]["runbook_url"],
        "https://runbooks.example/backlog"
    );
    assert_eq!(alert["annotations"]["value"], "1500");
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(alert["generatorURL"], "http://celeriac.example/alerts");
    // Kept alive well past a refresh interval, not Alertmanager's default 5m.
    let ends_at = chrono::DateTime::parse_from_rfc3339(alert["endsAt"].as_str().unwrap()).unwrap();
    let left = ends_at.timestamp() as f64 - now;
    assert!(
        (120.0..=300.0).contains(&left),
        "endsAt {ends_at} is {left}s ahead"
    );
    assert_eq!(
        wait_stats(&d, "am", Duration::from_secs(2), |s| s.sent == 1)
            .await
            .failed,
        0
    );

    let mut r = n.clone();
    r.status = alerts::notify::AlertStatus::Resolved;
    r.ends_at = Some(now);
    d.send("am", r);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !am.alerts(&n.rule).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "resolved alert still listed: {:?}",
            am.alerts(&n.rule).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats(&d, "am").sent, 2);
}

#[tokio::test]
async fn firing_alerts_are_kept_alive_and_expire_when_celeriac_stops() {
    let Some(binary) = binary() else {
        println!(
            "SKIPPED: prometheus-alertmanager is not installed (`cargo xtask test` installs it)"
        );
        return;
    };
    let am = Alertmanager::start(binary).await;
    // endsAt is 4 refreshes (1.2 s) ahead; only the refresh keeps it alive.
    let configs = notifiers(&format!(
        "- name: am\n  alertmanager: {{url: '{}', refresh: 300ms}}\n",
        am.url
    ));
    let d = Dispatcher::new(&configs, fast_options());
    let mut n = firing();
    n.rule = format!("Refresh{}", std::process::id());
    n.starts_at = now() - 60.0;
    d.send("am", n.clone());

    let first = wait_listed(&am, &n.rule, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = am.alerts(&n.rule).await;
    assert_eq!(
        later.len(),
        1,
        "alert expired although celeriac kept it firing"
    );
    assert!(
        later[0]["endsAt"].as_str() > first["endsAt"].as_str(),
        "endsAt not moved forward: {} then {}",
        first["endsAt"],
        later[0]["endsAt"]
    );
    // Only the one notification counts as sent; refreshes do not.
    assert_eq!(stats(&d, "am").sent, 1);

    // celeriac goes away without resolving: Alertmanager ends the alert.
    drop(d);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !am.alerts(&n.rule).await.is_empty() {
        assert!(Instant::now() < deadline, "alert outlived celeriac by 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_reconfigured_notifier_keeps_firing_alerts_alive() {
    let Some(binary) = binary() else {
        println!(
            "SKIPPED: prometheus-alertmanager is not installed (`cargo xtask test` installs it)"
        );
        return;
    };
    let am = Alertmanager::start(binary).await;
    let config = |refresh: &str| {
        notifiers(&format!(
            "- name: am\n  alertmanager: {{url: '{}', refresh: {refresh}}}\n",
            am.url
        ))
    };
    let mut d = Dispatcher::new(&config("300ms"), fast_options());
    let mut n = firing();
    n.rule = format!("Reload{}", std::process::id());
    n.starts_at = now() - 60.0;
    d.send("am", n.clone());
    wait_listed(&am, &n.rule, Duration::from_secs(10)).await;

    // A reload changes the notifier: its task restarts, and must go on
    // refreshing the alert it was keeping alive (endsAt is only 1.2-1.6 s
    // ahead), although the engine sends nothing new.
    d.reconfigure(&config("400ms"));
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(
        am.alerts(&n.rule).await.len(),
        1,
        "alert expired after the notifier was reconfigured"
    );
}

#[allow(clippy::disallowed_methods)] // Alertmanager judges alerts by real time
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Waits until Alertmanager lists an alert named `rule`; returns it.
async fn wait_listed(am: &Alertmanager, rule: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(a) = am.alerts(rule).await.pop() {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "alert {rule} never showed in Alertmanager"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
