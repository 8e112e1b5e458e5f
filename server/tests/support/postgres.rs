//! A PostgreSQL database of the test's own on the local server, dropped on
//! drop. Administered with `psql`, as an operator would.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The server (no database): `CELERIAC_TEST_POSTGRES`, else the local one.
pub fn server() -> String {
    std::env::var("CELERIAC_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        .trim_end_matches('/')
        .to_string()
}

/// Databases of this test binary start with this.
const PREFIX: &str = "celeriac_test_";

pub struct TestDb {
    pub name: String,
    /// `postgres://…/<name>`, for `--db`.
    pub url: String,
}

impl TestDb {
    pub fn new(test: &str) -> TestDb {
        static N: AtomicUsize = AtomicUsize::new(0);
        let test: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let name = format!(
            "{PREFIX}{test}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        admin(&format!("CREATE DATABASE {name}"));
        let url = format!("{}/{name}", server());
        TestDb { name, url }
    }

    /// Runs `sql` in this database; returns psql's unaligned output.
    pub fn query(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }

    /// Refuses (and cuts) or allows connections to the database: the store
    /// going away and coming back, without stopping a server other tests
    /// share.
    pub fn set_accepting(&self, allowed: bool) {
        admin(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS {allowed}",
            self.name
        ));
        if !allowed {
            admin(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                self.name
            ));
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([&format!("{}/postgres", server()), "-qtAc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

fn admin(sql: &str) -> String {
    psql(&format!("{}/postgres", server()), sql)
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qtAc", sql])
        .output()
        .expect("run psql (PostgreSQL's client)");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
