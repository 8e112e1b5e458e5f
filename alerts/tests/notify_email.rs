//! The email notifier against a real SMTP server: Python's aiosmtpd (in the
//! test venv; `cargo xtask test` installs it and sets CELERIAC_TEST_PYTHON),
//! storing what it receives in a Maildir that the test reads back.

mod notify_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alerts::notify::Dispatcher;
use notify_common::*;

fn python() -> PathBuf {
    match std::env::var_os("CELERIAC_TEST_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "CELERIAC_TEST_PYTHON is not set: the email test needs a Python with aiosmtpd. \
             Run `cargo xtask test`, which installs it and sets the variable."
        ),
    }
}

/// aiosmtpd on a free port saving mail into a Maildir; killed on drop.
struct SmtpServer {
    child: Child,
    addr: String,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    fn start() -> SmtpServer {
        Self::start_with(&[])
    }

    /// With extra aiosmtpd arguments (e.g. a certificate for STARTTLS).
    fn start_with(extra: &[&std::ffi::OsStr]) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let python = python();
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l", &addr])
            .args(extra)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        let mut server = SmtpServer {
            child,
            addr,
            maildir,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&server.addr).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "aiosmtpd exited ({status}); is it installed in {}? \
                     (`cargo xtask test` installs it)",
                    python.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd never listened on {}",
                server.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The messages delivered so far, as raw RFC 5322 text.
    fn messages(&self) -> Vec<String> {
        read_dir_files(&self.maildir.join("new"))
    }

    async fn wait_for(&self, n: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} messages, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn read_dir_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server() {
    let smtp = SmtpServer::start();
    let configs = notifiers(&format!(
        "- name: mail\n  email:\n    smtp: '{}'\n    from: 'celeriac <celeriac@example.com>'\n    \
         to: [ops@example.com, oncall@example.com]\n    tls: none\n",
        smtp.addr
    ));
    let d = Dispatcher::new(&configs, fast_options());
    assert_eq!(stats(&d, "mail").kind, "email");

    d.send("mail", firing());
    let msgs = smtp.wait_for(1, Duration::from_secs(10)).await;
    let m = &msgs[0];
    assert!(m.contains("From: celeriac <celeriac@example.com>"), "{m}");
    assert!(m.contains("To: ops@example.com, oncall@example.com"), "{m}");
    assert!(
        m.contains("Subject: [FIRING] QueueBacklog {queue=\"default\"}"),
        "{m}"
    );
    assert!(m.contains("Queue default has 1500 messages"), "{m}");
    assert!(m.contains("Value: value 1500 (threshold 1000)"), "{m}");
    assert!(m.contains("Severity: warning"), "{m}");
    assert!(
        m.contains("runbook_url = https://runbooks.example/backlog"),
        "{m}"
    );

    d.send("mail", resolved());
    let msgs = smtp.wait_for(2, Duration::from_secs(10)).await;
    assert!(msgs
        .iter()
        .any(|m| m.contains("Subject: [RESOLVED] QueueBacklog")
            && m.contains("Resolved: 2023-11-14T22:18:20.000Z")));
    let s = wait_stats(&d, "mail", Duration::from_secs(2), |s| s.sent == 2).await;
    assert_eq!(s.failed, 0);
}

#[tokio::test]
async fn starttls_required_but_not_offered_fails_and_names_the_server() {
    // aiosmtpd without a certificate offers no STARTTLS: `tls: starttls`
    // must refuse to send in plain text.
    let smtp = SmtpServer::start();
    let configs = notifiers(&format!(
        "- name: mail\n  email: {{smtp: '{}', from: a@example.com, to: [b@example.com], tls: starttls}}\n",
        smtp.addr
    ));
    let d = Dispatcher::new(&configs, fast_options());
    d.send("mail", firing());
    let s = wait_stats(&d, "mail", Duration::from_secs(10), |s| s.failed == 1).await;
    let err = s.last_error.unwrap();
    println!("last_error: {err}");
    assert!(err.contains(&smtp.addr), "{err}");
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn starttls_checks_the_server_certificate() {
    // aiosmtpd offering STARTTLS with a self-signed certificate: the
    // notifier must not accept it (nor fall back to plain text).
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is needed to make a test certificate");
    assert!(status.success());
    let smtp = SmtpServer::start_with(&[
        "--tlscert".as_ref(),
        cert.as_os_str(),
        "--tlskey".as_ref(),
        key.as_os_str(),
    ]);
    let configs = notifiers(&format!(
        "- name: mail\n  email: {{smtp: '{}', from: a@example.com, to: [b@example.com], tls: starttls}}\n",
        smtp.addr
    ));
    let d = Dispatcher::new(&configs, fast_options());
    d.send("mail", firing());
    let s = wait_stats(&d, "mail", Duration::from_secs(10), |s| s.failed == 1).await;
    let err = s.last_error.unwrap();
    println!("last_error: {err}");
    assert!(
        err.contains(&smtp.addr) && err.contains("certificate"),
        "{err}"
    );
    assert!(smtp.messages().is_empty());
}
