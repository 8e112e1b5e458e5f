//! Flower 2.2 from the test venv (`flower==2.2.0`, installed by `cargo
//! xtask test`), run against a test's vhost beside celeriac, for the
//! side-by-side comparison (`tests/flower_compat.rs`).

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{dump_log, eventually, settings, TestVhost, CELERY_APP_DIR};

/// A Flower process, killed on drop.
pub struct Flower {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    log: PathBuf,
}

impl Flower {
    /// Starts `celery -A tasks flower` on `vhost` (the management API for
    /// its queue listing, the API open without authentication) and waits
    /// until `/healthcheck` answers.
    pub fn start(vhost: &TestVhost) -> Flower {
        let s = settings();
        let log = vhost.log_dir.join("flower.log");
        let out = File::create(&log).expect("create the Flower log");
        let err = out.try_clone().expect("clone the log handle");
        let port = free_port();
        let child = Command::new(&s.python)
            .args(["-m", "celery", "-A", "tasks", "flower"])
            .arg(format!("--port={port}"))
            .arg("--address=127.0.0.1")
            .arg(format!("--broker_api={}", s.mgmt.api_url()))
            .current_dir(CELERY_APP_DIR)
            .env("CELERY_BROKER_URL", vhost.amqp_url())
            .env("FLOWER_UNAUTHENTICATED_API", "true")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start Flower with {}: {e}", s.python.display()));
        let mut flower = Flower {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        let health = format!("{}/healthcheck", flower.base);
        eventually(
            "Flower to answer /healthcheck (is flower==2.2.0 in the venv? `cargo xtask test` installs it)",
            Duration::from_secs(60),
            || {
                if let Ok(Some(status)) = flower.child.try_wait() {
                    dump_log("Flower", &flower.log);
                    panic!("Flower exited during start-up ({status})");
                }
                http.get(&health)
                    .send()
                    .is_ok_and(|r| r.status().is_success())
                    .then_some(())
            },
        );
        flower
    }
}

impl Drop for Flower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            dump_log("Flower", &self.log);
        }
    }
}

/// A port nothing listens on now (the kernel's pick, released at once).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}
