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
        Self::spawn(|python, addr, maildir| {
            let mut c = Command::new(python);
            c.args(["-m", "aiosmtpd", "-n", "-l", addr])
                .args(extra)
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(maildir);
            c
        })
    }

    /// SMTPS (TLS from the first byte) with `cert`/`key`, requiring a
    /// login as `alerts` / `s3cret`: aiosmtpd's command line cannot set up
    /// either, so a few lines of Python drive its `Controller`.
    fn start_smtps_with_login(cert: &Path, key: &Path) -> SmtpServer {
        Self::spawn(|python, addr, maildir| {
            let (host, port) = addr.rsplit_once(':').unwrap();
            let mut c = Command::new(python);
            c.args(["-c", SMTPS_WITH_LOGIN, host, port])
                .arg(maildir)
                .arg(cert)
                .arg(key);
            c
        })
    }

    fn spawn(command: impl FnOnce(&Path, &str, &Path) -> Command) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let python = python();
        let child = command(&python, &addr, &maildir)
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
    let err = starttls_refused(&smtp).await;
    assert!(err.contains(&smtp.addr), "{err}");
}

/// Sends one notification with `tls: starttls` to `smtp`, which must
/// refuse it: nothing delivered, one failure; returns its error.
async fn starttls_refused(smtp: &SmtpServer) -> String {
    let configs = notifiers(&format!(
        "- name: mail\n  email: {{smtp: '{}', from: a@example.com, to: [b@example.com], tls: starttls}}\n",
        smtp.addr
    ));
    let d = Dispatcher::new(&configs, fast_options());
    d.send("mail", firing());
    let s = wait_stats(&d, "mail", Duration::from_secs(10), |s| s.failed == 1).await;
    let err = s.last_error.unwrap();
    println!("last_error: {err}");
    assert!(smtp.messages().is_empty());
    err
}

const SMTPS_WITH_LOGIN: &str = r#"
import ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword
host, port, maildir, cert, key = sys.argv[1:6]
def check(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"alerts", b"s3cret")
    return AuthResult(success=ok, handled=False)
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
Controller(Mailbox(maildir), hostname=host, port=int(port), ssl_context=context,
           authenticator=check, auth_required=True,
           # The connection is TLS from the first byte; aiosmtpd only knows
           # STARTTLS and would not offer AUTH otherwise.
           auth_require_tls=False).start()
while True:
    time.sleep(3600)
"#;

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

/// Runs openssl with `args`, failing the test if it fails.
fn openssl(args: &[&std::ffi::OsStr]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is needed to make test certificates");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed certificate for `subject` (also what a CA starts from).
fn self_signed(subject: &str, key: &Path, cert: &Path) {
    openssl(&[
        os("req"),
        os("-x509"),
        os("-newkey"),
        os("rsa:2048"),
        os("-nodes"),
        os("-days"),
        os("1"),
        os("-subj"),
        os(subject),
        os("-keyout"),
        key.as_os_str(),
        os("-out"),
        cert.as_os_str(),
    ]);
}

/// A private CA and a certificate it signed for 127.0.0.1: (ca, cert, key).
fn private_ca_and_server_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |name: &str| dir.join(name);
    let (ca, ca_key, cert, key, csr, ext) = (
        p("ca.pem"),
        p("ca.key"),
        p("cert.pem"),
        p("key.pem"),
        p("req.csr"),
        p("ext.cnf"),
    );
    self_signed("/CN=celeriac test CA", &ca_key, &ca);
    openssl(&[
        os("req"),
        os("-newkey"),
        os("rsa:2048"),
        os("-nodes"),
        os("-subj"),
        os("/CN=127.0.0.1"),
        os("-keyout"),
        key.as_os_str(),
        os("-out"),
        csr.as_os_str(),
    ]);
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        os("x509"),
        os("-req"),
        os("-in"),
        csr.as_os_str(),
        os("-CA"),
        ca.as_os_str(),
        os("-CAkey"),
        ca_key.as_os_str(),
        os("-CAcreateserial"),
        os("-days"),
        os("1"),
        os("-extfile"),
        ext.as_os_str(),
        os("-out"),
        cert.as_os_str(),
    ]);
    (ca, cert, key)
}

/// Implicit TLS (`tls: tls`) to a relay whose certificate comes from a
/// private CA named by `ca_file`, with a login: delivered; the same with a
/// wrong password fails and names the server; without `ca_file` the
/// certificate is refused.
#[tokio::test]
async fn smtps_with_a_private_ca_and_a_login() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca_and_server_cert(certs.path());
    let smtp = SmtpServer::start_smtps_with_login(&cert, &key);
    let config = |password: &str, ca_file: bool| {
        let ca_line = if ca_file {
            format!("\n    ca_file: '{}'", ca.display())
        } else {
            String::new()
        };
        notifiers(&format!(
            "- name: mail\n  email:\n    smtp: '{}'\n    from: a@example.com\n    to: [b@example.com]\n    \
             tls: tls\n    username: alerts\n    password: '{password}'{ca_line}\n",
            smtp.addr
        ))
    };

    let d = Dispatcher::new(&config("s3cret", true), fast_options());
    d.send("mail", firing());
    let msgs = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert!(
        msgs[0].contains("Subject: [FIRING] QueueBacklog"),
        "{}",
        msgs[0]
    );
    let s = wait_stats(&d, "mail", Duration::from_secs(2), |s| s.sent == 1).await;
    assert_eq!(s.failed, 0);

    let d = Dispatcher::new(&config("wrong", true), fast_options());
    d.send("mail", firing());
    let s = wait_stats(&d, "mail", Duration::from_secs(10), |s| s.failed == 1).await;
    let err = s.last_error.unwrap();
    println!("wrong password: {err}");
    assert!(err.contains(&smtp.addr) && err.contains("535"), "{err}");

    let d = Dispatcher::new(&config("s3cret", false), fast_options());
    d.send("mail", firing());
    let s = wait_stats(&d, "mail", Duration::from_secs(10), |s| s.failed == 1).await;
    let err = s.last_error.unwrap();
    assert!(err.contains("certificate"), "{err}");
    assert_eq!(
        smtp.messages().len(),
        1,
        "only the first notifier delivered"
    );
}

#[tokio::test]
async fn starttls_checks_the_server_certificate() {
    // aiosmtpd offering STARTTLS with a self-signed certificate: the
    // notifier must not accept it (nor fall back to plain text).
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    self_signed("/CN=127.0.0.1", &key, &cert);
    let smtp = SmtpServer::start_with(&[
        "--tlscert".as_ref(),
        cert.as_os_str(),
        "--tlskey".as_ref(),
        key.as_os_str(),
    ]);
    let err = starttls_refused(&smtp).await;
    assert!(
        err.contains(&smtp.addr) && err.contains("certificate"),
        "{err}"
    );
}
