//! Sign-in with OpenID Connect against a real OpenID provider: the npm
//! package `oidc-provider` (an OpenID-certified implementation, run by
//! `tests/oidc/provider.mjs` on a free port), with celeriac's real binary
//! on a real RabbitMQ vhost, signed into from Debian's Chromium through
//! playwright-core (`tests/oidc/signin.cjs`): the redirect to the
//! provider, its login and consent pages, the callback.
//!
//! What stands in for what: expired ID tokens come from the same provider
//! with its clock 300 s behind and a 60 s ID-token lifetime; tampered ones
//! from the provider's own token endpoint, whose answer a middleware
//! alters on the way out (the payload gains the operators' group, the
//! signature stays), as a man in the middle would.
//!
//! Needs `CELERIAC_TEST_NODE_MODULES` with `oidc-provider` and
//! `playwright-core` (`cargo xtask test` installs both); without it the
//! tests say why and pass.

mod support;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{TestVhost, Worker, WorkerOpts};

const CLIENT_SECRET: &str = "celeriac-test-client-secret";

fn node_modules() -> Option<PathBuf> {
    let Some(modules) = std::env::var_os("CELERIAC_TEST_NODE_MODULES").filter(|v| !v.is_empty())
    else {
        eprintln!("skipped: CELERIAC_TEST_NODE_MODULES is not set (run `cargo xtask test`)");
        return None;
    };
    let modules = PathBuf::from(modules);
    for pkg in ["oidc-provider", "playwright-core"] {
        assert!(
            modules.join(pkg).is_dir(),
            "{} is missing: run `cargo xtask test`",
            modules.join(pkg).display()
        );
    }
    Some(modules)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a child with stdout piped and waits for a line starting with
/// `ready`; its output goes to `log`.
fn start_and_wait(mut cmd: Command, ready: &'static str, log: &Path, what: &str) -> Process {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the log");
    let err = out.try_clone().expect("clone the log handle");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = out;
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = writeln!(out, "[stdout] {line}");
            if line.starts_with(ready) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
        }
    });
    let process = Process(child);
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        panic!(
            "{what} did not start within 60 s:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    process
}

/// One provider and one celeriac that trusts it.
struct Setup {
    _provider: Process,
    _celeriac: Process,
    issuer: String,
    base: String,
    vhost: TestVhost,
}

impl Setup {
    fn start(modules: &Path, name: &str, mode: &str) -> Setup {
        let vhost = TestVhost::new(name);
        let (idp_port, port) = (free_port(), free_port());
        let issuer = format!("http://127.0.0.1:{idp_port}");
        let base = format!("http://127.0.0.1:{port}");
        let redirect = format!("{base}/login/callback");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/provider.mjs");
        let mut node = Command::new("node");
        node.arg(&script)
            .env("NODE_MODULES", modules)
            .env("PORT", idp_port.to_string())
            .env("REDIRECT_URI", &redirect)
            .env("MODE", mode);
        let provider = start_and_wait(
            node,
            "READY",
            &vhost.log_dir.join("provider.log"),
            "the OpenID provider",
        );
        let secret = vhost.log_dir.join("client-secret");
        std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).expect("write the secret");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_celeriac"));
        cmd.args(["--broker", &vhost.amqp_url(), "--port", &port.to_string()])
            .args(["--oidc-issuer", &issuer, "--oidc-client-id", "celeriac"])
            .args(["--oidc-redirect-url", &redirect])
            // The provider sends the groups claim for the `groups` scope only.
            .args(["--oidc-scopes", "openid email profile groups"])
            .args(["--oidc-operators", "celeriac-ops"])
            .args(["--oidc-viewers", "*@example.com"])
            .args(["--basic-auth", "ann:pw-ann-Kq7"])
            .env("CELERIAC_OIDC_CLIENT_SECRET_FILE", &secret)
            .env("CELERIAC_LOG", "info,celeriac=debug")
            .env("CELERIAC_DATA_DIR", vhost.log_dir.join("data"));
        let celeriac = start_and_wait(
            cmd,
            "celeriac listening on ",
            &vhost.log_dir.join("celeriac.log"),
            "celeriac",
        );
        Setup {
            _provider: provider,
            _celeriac: celeriac,
            issuer,
            base,
            vhost,
        }
    }

    /// Runs `signin.cjs`; panics with the logs when it fails.
    fn drive(&self, modules: &Path, env: &[(&str, &str)]) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/signin.cjs");
        let status = Command::new("node")
            .arg(&script)
            .env("PLAYWRIGHT_CORE", modules.join("playwright-core"))
            .env("CELERIAC_URL", &self.base)
            .env("ISSUER", &self.issuer)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .status()
            .expect("start node");
        if !status.success() {
            for log in ["celeriac.log", "provider.log"] {
                eprintln!(
                    "----- {log} -----\n{}",
                    std::fs::read_to_string(self.vhost.log_dir.join(log)).unwrap_or_default()
                );
            }
            panic!("the browser script failed");
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.vhost.log_dir.join("celeriac.log")).unwrap_or_default()
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

#[test]
fn signing_in_maps_roles_and_sessions_need_csrf_and_end_at_sign_out() {
    let Some(modules) = node_modules() else {
        return;
    };
    let s = Setup::start(&modules, "oidc-roles", "normal");
    let http = client();

    // API clients without credentials get 401; a browser asking for a
    // page is sent to sign in, and /login to the provider with PKCE S256.
    let r = http.get(format!("{}/api/workers", s.base)).send().unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{}/tasks", s.base))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/login?next=%2Ftasks");
    let r = http.get(format!("{}/login", s.base)).send().unwrap();
    assert_eq!(r.status(), 302);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with(&format!("{}/auth?", s.issuer)), "{to}");
    for part in [
        "response_type=code",
        "client_id=celeriac",
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "state=",
        "scope=openid+email+profile+groups",
    ] {
        assert!(to.contains(part), "{part} missing in {to}");
    }
    let login_cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        login_cookie.starts_with("celeriac_login=") && login_cookie.contains("HttpOnly"),
        "{login_cookie}"
    );
    // A callback whose state this browser was not given is refused.
    let r = http
        .get(format!("{}/login/callback?code=x&state=forged", s.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("did not start in this browser"));

    // Basic users keep working beside sign-in.
    let r = http
        .get(format!("{}/api/me", s.base))
        .basic_auth("ann", Some("pw-ann-Kq7"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let me: serde_json::Value = r.json().unwrap();
    assert_eq!(me["user"], "ann");
    assert_eq!(me["session"], false);

    let dashboard = http
        .get(format!("{}/", s.base))
        .basic_auth("ann", Some("pw-ann-Kq7"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default()
        .contains("celeriac-prefix");
    // A finished task, whose page in the dashboard asks the server
    // (a POST, dry run) whether to offer Retry: the dashboard's own control
    // request from a session, which must carry the CSRF token.
    let mut task = String::new();
    let _worker = dashboard.then(|| {
        let w = Worker::start(&s.vhost, "w1@oidc", WorkerOpts::default());
        task = s.vhost.send("add", "[1, 2]", &[]);
        support::eventually("the task to succeed", Duration::from_secs(60), || {
            let info: serde_json::Value = http
                .get(format!("{}/api/task/info/{task}", s.base))
                .basic_auth("ann", Some("pw-ann-Kq7"))
                .send()
                .ok()?
                .json()
                .ok()?;
            (info["state"] == "SUCCESS").then_some(())
        });
        w
    });
    if !dashboard {
        eprintln!(
            "note: the binary embeds no dashboard; its header, sign-out button and CSRF header \
             are not exercised"
        );
    }
    s.drive(
        &modules,
        &[
            ("MODE", "roles"),
            ("DASHBOARD", if dashboard { "1" } else { "0" }),
            ("TASK", &task),
        ],
    );

    let log = s.log();
    assert!(!log.contains(CLIENT_SECRET), "the client secret was logged");
    assert!(log.contains("signed in but not allowed"), "{log}");
}

#[test]
fn a_tampered_id_token_is_refused() {
    let Some(modules) = node_modules() else {
        return;
    };
    let s = Setup::start(&modules, "oidc-tamper", "tamper");
    // mallory is in no list; the forged token would make her an operator.
    s.drive(
        &modules,
        &[
            ("MODE", "refused"),
            ("LOGIN", "mallory"),
            ("EXPECT", "the ID token is not valid"),
        ],
    );
    let log = s.log();
    assert!(
        log.contains("sign-in failed") && log.to_lowercase().contains("signature"),
        "{log}"
    );
}

#[test]
fn an_expired_id_token_is_refused() {
    let Some(modules) = node_modules() else {
        return;
    };
    let s = Setup::start(&modules, "oidc-expired", "expired");
    s.drive(
        &modules,
        &[
            ("MODE", "refused"),
            ("LOGIN", "olga"),
            ("EXPECT", "expired"),
        ],
    );
}
