//! Harness for the integration tests: the real `celeriac` binary against the
//! real RabbitMQ, with real Celery workers from the venv `cargo xtask test`
//! installs.
//!
//! Every test gets its own vhost ([`TestVhost`]), so tests run in parallel
//! (threads or nextest processes) without seeing each other's events. Every
//! process a test starts is killed when its handle drops, and its log is
//! printed when the test is failing.
//!
//! Environment (set by `cargo xtask test`):
//! - `CELERIAC_TEST_PYTHON`: the venv's python, with `celery==5.7.0`. Required.
//! - `CELERIAC_TEST_AMQP`: broker URL without vhost (default guest@127.0.0.1:5672).
//! - `CELERIAC_TEST_MGMT`: management API URL with credentials
//!   (default `http://guest:guest@127.0.0.1:15672`).
//! - `CELERIAC_TEST_REDIS`: Redis URL without a database number (default
//!   `redis://127.0.0.1:6379`); a test on Redis takes a database of its own
//!   ([`TestVhost::redis`]).

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use rustix::process::Signal;
use serde_json::Value;

pub mod events;
pub mod flower;
pub mod postgres;
mod redis_support;
pub mod sentinel;

pub const CELERY_APP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/celery_app");

/// Sends `sig` to a child the harness started. Its pid cannot have been
/// reused: the child is only reaped through the same `Child`.
fn signal(child: &Child, sig: Signal) {
    let _ = rustix::process::kill_process(rustix::process::Pid::from_child(child), sig);
}

/// Sends `sig` to the process group a worker leads, pool children included;
/// the group can outlive its reaped leader, so failure is not an error.
fn signal_group(child: &Child, sig: Signal) {
    let _ = rustix::process::kill_process_group(rustix::process::Pid::from_child(child), sig);
}

// ---------------------------------------------------------------------------
// Settings

pub struct Settings {
    pub python: PathBuf,
    /// `amqp://user:pass@host:port`, without the vhost.
    pub amqp: String,
    pub mgmt: Mgmt,
    /// `redis://host:port`, without the database.
    pub redis: String,
}

/// The test settings; panics with instructions when the venv is missing, so
/// integration tests fail loudly rather than pass without running.
pub fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let python = match std::env::var_os("CELERIAC_TEST_PYTHON") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => panic!(
                "CELERIAC_TEST_PYTHON is not set: the integration tests need a Python venv \
                 with celery==5.7.0 and a RabbitMQ with the management plugin. \
                 Run `cargo xtask test`, which installs both and sets the variables."
            ),
        };
        if !python.is_file() {
            panic!(
                "CELERIAC_TEST_PYTHON={} does not exist; run `cargo xtask test` to create the venv",
                python.display()
            );
        }
        let amqp = std::env::var("CELERIAC_TEST_AMQP")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672".into())
            .trim_end_matches('/')
            .to_string();
        let mgmt = std::env::var("CELERIAC_TEST_MGMT")
            .unwrap_or_else(|_| "http://guest:guest@127.0.0.1:15672".into());
        let redis = std::env::var("CELERIAC_TEST_REDIS")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
            .trim_end_matches('/')
            .to_string();
        Settings {
            python,
            amqp,
            mgmt: Mgmt::new(&mgmt),
            redis,
        }
    })
}

/// Where a test's logs go: `target/tmp/celeriac-tests/<vhost>/`.
fn log_dir(vhost: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("celeriac-tests")
        .join(vhost);
    std::fs::create_dir_all(&dir).expect("create the test log directory");
    dir
}

/// Prints the end of a log file to stderr (the test harness shows it for a
/// failing test).
fn dump_log(label: &str, path: &Path) {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(150);
    eprintln!(
        "----- {label}: last {} lines of {} -----",
        lines.len() - from,
        path.display()
    );
    for line in &lines[from..] {
        eprintln!("{line}");
    }
    eprintln!("----- end of {label} -----");
}

// ---------------------------------------------------------------------------
// Polling

/// Polls `probe` every 100 ms until it returns `Some`, or panics after
/// `timeout` naming `what`. Tests wait on observable state with this, never
/// with fixed sleeps.
pub fn eventually<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!(
                "timed out after {:.1} s waiting for {what}",
                timeout.as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------
// RabbitMQ management API

pub struct Mgmt {
    base: String,
    user: String,
    password: String,
    http: reqwest::blocking::Client,
}

impl Mgmt {
    /// From `http://user:pass@host:port`.
    fn new(url: &str) -> Mgmt {
        let (scheme, rest) = url.split_once("://").expect("CELERIAC_TEST_MGMT is a URL");
        let (userinfo, host) = rest.rsplit_once('@').unwrap_or(("guest:guest", rest));
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        Mgmt {
            base: format!("{scheme}://{}", host.trim_end_matches('/')),
            user: user.into(),
            password: password.into(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client"),
        }
    }

    /// The API's base URL with credentials in it (`http://u:p@host:port/api/`),
    /// as Flower's `--broker_api` takes it.
    pub fn api_url(&self) -> String {
        let (scheme, host) = self.base.split_once("://").unwrap_or(("http", &self.base));
        format!("{scheme}://{}:{}@{host}/api/", self.user, self.password)
    }

    fn request(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, String) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.password));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().unwrap_or_else(|e| {
            panic!(
                "RabbitMQ management API {method} {path} failed: {e}. \
                 Is RabbitMQ up with rabbitmq_management enabled? `cargo xtask test` sets it up."
            )
        });
        let status = resp.status().as_u16();
        (status, resp.text().unwrap_or_default())
    }

    fn expect_ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> String {
        let (status, text) = self.request(method.clone(), path, body);
        assert!(
            (200..300).contains(&status),
            "RabbitMQ management API {method} {path}: {status} {text}"
        );
        text
    }

    /// Takes up to `count` messages off `queue` (management API `get`,
    /// not requeued): each with `properties` (headers included) and
    /// `payload`.
    pub fn get_messages(&self, vhost: &str, queue: &str, count: usize) -> Vec<Value> {
        let body =
            serde_json::json!({"count": count, "ackmode": "ack_requeue_false", "encoding": "auto"});
        let text = self.expect_ok(
            reqwest::Method::POST,
            &format!("/api/queues/{vhost}/{queue}/get"),
            Some(body),
        );
        serde_json::from_str(&text).expect("management API get: JSON")
    }

    pub fn create_vhost(&self, vhost: &str) {
        self.expect_ok(reqwest::Method::PUT, &format!("/api/vhosts/{vhost}"), None);
        self.grant(vhost);
    }

    pub fn delete_vhost(&self, vhost: &str) {
        self.request(
            reqwest::Method::DELETE,
            &format!("/api/vhosts/{vhost}"),
            None,
        );
    }

    pub fn grant(&self, vhost: &str) {
        self.grant_user(vhost, &self.user.clone());
    }

    pub fn grant_user(&self, vhost: &str, user: &str) {
        self.expect_ok(
            reqwest::Method::PUT,
            &format!("/api/permissions/{vhost}/{user}"),
            Some(serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"})),
        );
    }

    pub fn revoke_user(&self, vhost: &str, user: &str) {
        self.expect_ok(
            reqwest::Method::DELETE,
            &format!("/api/permissions/{vhost}/{user}"),
            None,
        );
    }

    pub fn create_user(&self, user: &str, password: &str) {
        self.expect_ok(
            reqwest::Method::PUT,
            &format!("/api/users/{user}"),
            Some(serde_json::json!({"password": password, "tags": ""})),
        );
    }

    pub fn delete_user(&self, user: &str) {
        self.request(reqwest::Method::DELETE, &format!("/api/users/{user}"), None);
    }

    fn names(&self, path: &str) -> Vec<String> {
        let text = self.expect_ok(reqwest::Method::GET, path, None);
        let list: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
        list.iter()
            .filter_map(|v| v["name"].as_str().map(String::from))
            .collect()
    }

    pub fn vhosts(&self) -> Vec<String> {
        self.names("/api/vhosts?columns=name")
    }

    pub fn users(&self) -> Vec<String> {
        self.names("/api/users?columns=name")
    }

    /// Every queue of `vhost` as the management API lists it (name,
    /// durable, exclusive, auto_delete, arguments, ...).
    pub fn queues(&self, vhost: &str) -> Vec<Value> {
        let text = self.expect_ok(reqwest::Method::GET, &format!("/api/queues/{vhost}"), None);
        serde_json::from_str(&text).expect("a JSON list of queues")
    }
}

// ---------------------------------------------------------------------------
// Redis database per test (beside a vhost: a result backend, say)

/// A Redis database held by one test, empty at the start and emptied and
/// freed on drop.
pub struct RedisDb {
    db: u32,
    owner: String,
}

impl RedisDb {
    pub fn claim(test: &str) -> RedisDb {
        let owner = format!("{test}-{}", std::process::id());
        let db = redis_support::claim_db(&owner);
        redis_support::flush(db);
        RedisDb { db, owner }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", settings().redis, self.db)
    }
}

impl Drop for RedisDb {
    fn drop(&mut self) {
        redis_support::flush(self.db);
        redis_support::release_db(self.db, &self.owner);
    }
}

// ---------------------------------------------------------------------------
// Vhost per test

const VHOST_PREFIX: &str = "celeriac-test-";

/// A fresh vhost, deleted on drop (which also closes every connection in it),
/// with the users made for it.
pub struct TestVhost {
    pub name: String,
    pub log_dir: PathBuf,
    users: Mutex<Vec<String>>,
    /// On Redis: the database this test holds instead of a vhost.
    redis_db: Option<u32>,
    /// Extra environment of the Celery workers and clients (the test app's
    /// switches, see `celery_app/tasks.py`).
    celery_env: Mutex<Vec<(String, String)>>,
}

impl TestVhost {
    pub fn new(test: &str) -> TestVhost {
        let vhost = TestVhost::unborn(test);
        vhost.create();
        vhost
    }

    /// A unique vhost name, not created yet (for a broker URL that points at
    /// a vhost that does not exist); [`create`](Self::create) makes it.
    pub fn unborn(test: &str) -> TestVhost {
        static N: AtomicUsize = AtomicUsize::new(0);
        remove_stale_vhosts(&settings().mgmt);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let test: String = test
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let name = format!("{VHOST_PREFIX}{test}-{}-{n}", std::process::id());
        let log_dir = log_dir(&name);
        TestVhost {
            name,
            log_dir,
            users: Mutex::new(Vec::new()),
            redis_db: None,
            celery_env: Mutex::new(Vec::new()),
        }
    }

    /// A test on Redis: a database of its own (1 to 15, held through a lock
    /// key in database 0 while the test runs), empty at the start and
    /// emptied at the end. Workers, clients and celeriac all use
    /// [`amqp_url`](Self::amqp_url), which is then its Redis URL.
    pub fn redis(test: &str) -> TestVhost {
        let mut vhost = TestVhost::unborn(test);
        let db = redis_support::claim_db(&vhost.name);
        vhost.redis_db = Some(db);
        redis_support::flush(db);
        vhost
    }

    pub fn create(&self) {
        if self.redis_db.is_none() {
            settings().mgmt.create_vhost(&self.name);
        }
    }

    /// The broker URL for this test: its vhost as the default (guest) user,
    /// or its Redis database.
    pub fn amqp_url(&self) -> String {
        match self.redis_db {
            Some(db) => format!("{}/{db}", settings().redis),
            None => format!("{}/{}", settings().amqp, self.name),
        }
    }

    /// Sets an environment variable for the Celery workers and clients
    /// started from now on.
    pub fn set_celery_env(&self, key: &str, value: &str) {
        self.celery_env
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key.to_string(), value.to_string()));
    }

    fn celery_env(&self) -> Vec<(String, String)> {
        self.celery_env
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The Redis database of a test made by [`redis`](Self::redis).
    pub fn redis_db(&self) -> Option<u32> {
        self.redis_db
    }

    /// A connection to this test's Redis database.
    pub fn redis_connection(&self) -> redis::Connection {
        redis_support::connect(self.redis_db.expect("a Redis test"))
    }

    /// Closes every connection to this test's Redis database (celeriac's and
    /// the workers'), as a Redis restart would, without touching other tests.
    pub fn kill_redis_clients(&self) -> usize {
        redis_support::kill_clients(self.redis_db.expect("a Redis test"))
    }

    /// Creates a user with full access to this vhost only (deleted with the
    /// vhost) and returns its broker URL. Taking its access away leaves the
    /// workers, which connect as guest, untouched.
    pub fn add_user(&self, role: &str) -> (String, String) {
        let user = format!("{}-{role}", self.name);
        let mgmt = &settings().mgmt;
        mgmt.create_user(&user, "secret");
        mgmt.grant_user(&self.name, &user);
        self.users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(user.clone());
        let host = settings()
            .amqp
            .split_once("://")
            .map(|(_, rest)| rest.rsplit_once('@').map_or(rest, |(_, host)| host))
            .expect("CELERIAC_TEST_AMQP is a URL");
        let url = format!("amqp://{user}:secret@{host}/{}", self.name);
        (user, url)
    }

    /// Closes every AMQP connection in this vhost (celeriac's and the
    /// workers'), as a broker restart would, without touching other tests.
    pub fn close_connections(&self) {
        let out = Command::new(rabbitmqctl())
            .args(["close_all_connections", "-p", &self.name, "test"])
            .output()
            .expect("run rabbitmqctl");
        assert!(
            out.status.success(),
            "rabbitmqctl close_all_connections failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Takes away (or gives back) `user`'s access to this vhost, so its
    /// reconnection attempts fail until access is given back.
    pub fn set_access(&self, user: &str, allowed: bool) {
        let mgmt = &settings().mgmt;
        if allowed {
            mgmt.grant_user(&self.name, user)
        } else {
            mgmt.revoke_user(&self.name, user)
        }
    }

    fn python(&self, args: &[&str]) -> std::process::Output {
        let s = settings();
        Command::new(&s.python)
            .args(args)
            .current_dir(CELERY_APP_DIR)
            .env("CELERY_BROKER_URL", self.amqp_url())
            .envs(self.celery_env())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", s.python.display()))
    }

    /// Sends `count` tasks `tasks.<task>` with JSON `args` (plus `client.py
    /// send` options such as `--countdown 3`); returns their ids.
    pub fn send_many(&self, task: &str, args: &str, count: usize, opts: &[&str]) -> Vec<String> {
        let count = count.to_string();
        let mut argv = vec!["client.py", "send", task, args, "--count", &count];
        argv.extend_from_slice(opts);
        let out = self.python(&argv);
        assert!(
            out.status.success(),
            "client.py send {task} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("client.py send printed {stdout:?}: {e}"))
    }

    /// Sends one task; returns its id.
    pub fn send(&self, task: &str, args: &str, opts: &[&str]) -> String {
        self.send_many(task, args, 1, opts).remove(0)
    }

    /// Starts `client.py workflow <kind>` (`chord`: a chain through a chord
    /// into a failing task; `chain`: three tasks, the last failing);
    /// returns its JSON answer (`root`, `last`).
    pub fn start_workflow(&self, kind: &str) -> serde_json::Value {
        let out = self.python(&["client.py", "workflow", kind]);
        assert!(
            out.status.success(),
            "client.py workflow failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("client.py workflow printed {stdout:?}: {e}"))
    }

    /// Broadcasts `revoke` for `id` (with `terminate`, SIGTERM).
    pub fn revoke(&self, id: &str, terminate: bool) {
        let mut argv = vec!["client.py", "revoke", id];
        if terminate {
            argv.extend(["--terminate", "--signal", "SIGTERM"]);
        }
        let out = self.python(&argv);
        assert!(
            out.status.success(),
            "client.py revoke failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        if let Some(db) = self.redis_db {
            redis_support::flush(db);
            redis_support::release_db(db, &self.name);
            return;
        }
        let mgmt = &settings().mgmt;
        mgmt.delete_vhost(&self.name);
        for user in self.users.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            mgmt.delete_user(user);
        }
    }
}

/// Deletes vhosts and users left by test processes that died before their
/// drops ran (the pid in the name is no longer alive). Once per process.
fn remove_stale_vhosts(mgmt: &Mgmt) {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    *done = true;
    let stale = |name: &str| {
        owner_pid(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    };
    for vhost in mgmt.vhosts().into_iter().filter(|v| stale(v)) {
        mgmt.delete_vhost(&vhost);
    }
    for user in mgmt.users().into_iter().filter(|u| stale(u)) {
        mgmt.delete_user(&user);
    }
}

/// The pid in `celeriac-test-<test>-<pid>-<n>` (a vhost) or
/// `celeriac-test-<test>-<pid>-<n>-<role>` (a user).
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(VHOST_PREFIX)?;
    let mut parts: Vec<&str> = rest.split('-').collect();
    if parts.last()?.parse::<u32>().is_err() {
        parts.pop();
    }
    parts.pop()?.parse::<u32>().ok()?;
    parts.pop()?.parse().ok()
}

fn rabbitmqctl() -> &'static str {
    if Path::new("/usr/sbin/rabbitmqctl").is_file() {
        "/usr/sbin/rabbitmqctl"
    } else {
        "rabbitmqctl"
    }
}

// ---------------------------------------------------------------------------
// Celery workers

#[derive(Debug, Clone)]
pub struct WorkerOpts {
    pub queues: Vec<String>,
    /// `-E`: send task events from the start.
    pub events: bool,
    /// `--heartbeat-interval` (Celery's default is 2 s).
    pub heartbeat_interval: Option<f64>,
    pub concurrency: u32,
    /// Celery's `result_backend` (`CELERY_RESULT_BACKEND`); none by default.
    pub result_backend: Option<String>,
}

impl Default for WorkerOpts {
    fn default() -> Self {
        WorkerOpts {
            queues: vec!["celery".into()],
            events: true,
            heartbeat_interval: None,
            concurrency: 2,
            result_backend: None,
        }
    }
}

/// A Celery prefork worker in its own process group (main process and pool
/// children), killed as a group on drop.
pub struct Worker {
    pub nodename: String,
    child: Child,
    log: PathBuf,
    exited: bool,
}

impl Worker {
    /// Starts `celery -A tasks worker` on `vhost` and waits until it is
    /// consuming (it logs `<nodename> ready.`).
    pub fn start(vhost: &TestVhost, nodename: &str, opts: WorkerOpts) -> Worker {
        use std::os::unix::process::CommandExt;

        let s = settings();
        let log = vhost.log_dir.join(format!("worker-{nodename}.log"));
        let out = File::create(&log).expect("create the worker log");
        let err = out.try_clone().expect("clone the log handle");
        let concurrency = opts.concurrency.to_string();
        let queues = opts.queues.join(",");
        let mut cmd = Command::new(&s.python);
        // worker.py is `python -m celery` plus a watchdog that kills the
        // group if this test process dies without running drops.
        cmd.args(["worker.py", "-A", "tasks", "worker", "-n", nodename])
            .args(["--concurrency", &concurrency, "-P", "prefork"])
            .args(["--without-gossip", "--without-mingle"])
            .args(["--loglevel", "INFO", "-Q", &queues]);
        if opts.events {
            cmd.arg("-E");
        }
        if let Some(hb) = opts.heartbeat_interval {
            cmd.args(["--heartbeat-interval", &hb.to_string()]);
        }
        if let Some(backend) = &opts.result_backend {
            cmd.env("CELERY_RESULT_BACKEND", backend);
        }
        cmd.current_dir(CELERY_APP_DIR)
            .env("CELERY_BROKER_URL", vhost.amqp_url())
            .envs(vhost.celery_env())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("could not start a worker with {}: {e}", s.python.display())
        });
        let mut worker = Worker {
            nodename: nodename.to_string(),
            child,
            log,
            exited: false,
        };
        let ready = format!("{nodename} ready.");
        eventually(
            &format!("worker {nodename} to be ready"),
            Duration::from_secs(60),
            || {
                if let Ok(Some(status)) = worker.child.try_wait() {
                    worker.exited = true;
                    dump_log(&format!("worker {nodename}"), &worker.log);
                    panic!("worker {nodename} exited during start-up ({status})");
                }
                let text = std::fs::read_to_string(&worker.log).unwrap_or_default();
                text.contains(&ready).then_some(())
            },
        );
        worker
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL to the main process and its pool children: no worker-offline
    /// is sent, so only heartbeat expiry can tell it is gone.
    pub fn kill(&mut self) {
        signal_group(&self.child, Signal::KILL);
        let _ = self.child.wait();
        self.exited = true;
    }

    /// SIGTERM to the main process (Celery's warm shutdown, which sends
    /// worker-offline); waits until it has exited and returns when it did.
    pub fn stop(&mut self) -> Instant {
        signal(&self.child, Signal::TERM);
        eventually(
            &format!("worker {} to exit after SIGTERM", self.nodename),
            Duration::from_secs(30),
            || self.child.try_wait().ok().flatten(),
        );
        self.exited = true;
        Instant::now()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            dump_log(&format!("worker {}", self.nodename), &self.log);
        }
        // The group may outlive its leader (pool children), so signal it
        // even after the main process has been reaped.
        signal_group(&self.child, Signal::KILL);
        if !self.exited {
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// celeriac

/// Credentials for [`Celeriac::request`] (the control and auth tests).
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    None,
    Basic(&'a str, &'a str),
    Bearer(&'a str),
}

/// The celeriac binary under test, killed on drop.
pub struct Celeriac {
    child: Child,
    /// `http://IP:PORT`
    pub base: String,
    log: PathBuf,
    http: reqwest::blocking::Client,
}

const LISTENING: &str = "celeriac listening on ";

impl Celeriac {
    /// Starts celeriac on `vhost` with `--port 0` plus `extra` flags; returns
    /// once it printed its listening line.
    pub fn start(vhost: &TestVhost, extra: &[&str]) -> Celeriac {
        Celeriac::start_with_broker(&vhost.amqp_url(), &vhost.log_dir, extra)
    }

    /// As `start`, against any broker URL (which may be unreachable).
    pub fn start_with_broker(broker: &str, log_dir: &Path, extra: &[&str]) -> Celeriac {
        let log = log_dir.join("celeriac.log");
        let stderr = File::create(&log).expect("create the celeriac log");
        let mut stdout_log = stderr.try_clone().expect("clone the log handle");
        let mut child = Command::new(env!("CARGO_BIN_EXE_celeriac"))
            .args(["--broker", broker, "--port", "0"])
            .args(extra)
            .env("CELERIAC_LOG", "info,celeriac=debug")
            // History (on by default) goes in the test's own directory; a
            // test that names a store with --db overrides this.
            .env("CELERIAC_DATA_DIR", log_dir.join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start the celeriac binary");

        // Stdout is read to the end by a thread (so celeriac never blocks on
        // a full pipe); the listening line is handed back over a channel.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(stdout_log, "[stdout] {line}");
                if let Some(addr) = line.strip_prefix(LISTENING) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.trim().to_string());
                    }
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => base,
            Err(_) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                let _ = child.wait();
                dump_log("celeriac", &log);
                panic!(
                    "celeriac did not print `{LISTENING}http://IP:PORT` on stdout within 30 s \
                     (exit status: {status:?})"
                );
            }
        };
        Celeriac {
            child,
            base: base.trim_end_matches('/').to_string(),
            log,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` to the celeriac process (SIGHUP reloads its rules).
    pub fn signal(&self, sig: Signal) {
        signal(&self.child, sig);
    }

    /// GET `path`; returns status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let resp = self.get_response(path);
        let status = resp.status().as_u16();
        (status, resp.text().unwrap_or_default())
    }

    fn get_response(&self, path: &str) -> reqwest::blocking::Response {
        let url = format!("{}{path}", self.base);
        self.http
            .get(&url)
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// Any request (the control and auth tests): `auth` is Basic `(user, password)`,
    /// `bearer` a token, `headers` extra headers, `body` a form or JSON body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        auth: Auth<'_>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut req = self.http.request(method.clone(), &url);
        match auth {
            Auth::None => {}
            Auth::Basic(user, password) => req = req.basic_auth(user, Some(password)),
            Auth::Bearer(token) => req = req.bearer_auth(token),
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            let kind = if body.starts_with('{') {
                "application/json"
            } else {
                "application/x-www-form-urlencoded"
            };
            req = req.header("content-type", kind).body(body.to_string());
        }
        let resp = req.send().unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.text().unwrap_or_default())
    }

    /// POST `path` anonymously; returns status and the JSON body.
    pub fn post(&self, path: &str, body: Option<&str>) -> (u16, Value) {
        let (status, text) = self.request("POST", path, Auth::None, &[], body);
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("POST {path}: not JSON ({e}): {text}"));
        (status, json)
    }

    /// GET `path`, which must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
    }

    /// `/api/task/info/{uuid}`, or None while celeriac does not know it (404).
    pub fn task(&self, uuid: &str) -> Option<Value> {
        let path = format!("/api/task/info/{uuid}");
        let (status, body) = self.get(&path);
        match status {
            200 => Some(serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}"))),
            404 => {
                let json: Result<Value, _> = serde_json::from_str(&body);
                assert!(json.is_ok(), "GET {path}: a 404 must be JSON, got {body:?}");
                None
            }
            other => panic!("GET {path}: {other} {body}"),
        }
    }

    /// Waits until task `uuid` is in `state`; returns the task.
    pub fn wait_task_state(&self, uuid: &str, state: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        let mut last = None;
        loop {
            if let Some(task) = self.task(uuid) {
                if task["state"] == state {
                    return task;
                }
                last = Some(task);
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {:.1} s waiting for task {uuid} to reach {state}; last seen: {}",
                    timeout.as_secs_f64(),
                    last.map_or("never".to_string(), |t| format!("{t:#}"))
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `/api/workers`.
    pub fn workers(&self) -> Value {
        self.get_json("/api/workers")
    }

    /// `/api/workers` entry for `nodename`, if known.
    pub fn worker(&self, nodename: &str) -> Option<Value> {
        let w = self.workers();
        w.get(nodename).cloned()
    }

    /// `/metrics` text.
    /// `/metrics`; its `Content-Length` must be the page's (the page is
    /// served as slices of kept text, its length summed beforehand).
    pub fn metrics(&self) -> String {
        let resp = self.get_response("/metrics");
        assert_eq!(resp.status().as_u16(), 200, "GET /metrics");
        let length = resp.content_length();
        let body = resp.text().unwrap_or_default();
        assert_eq!(
            length,
            Some(body.len() as u64),
            "GET /metrics: Content-Length"
        );
        body
    }

    /// Sum of `name`'s series whose labels include all of `labels`; None
    /// when no series matches.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        metric_value(&self.metrics(), name, labels)
    }

    /// Like `metric`, 0 when absent (counters not yet incremented).
    pub fn metric_or_zero(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.metric(name, labels).unwrap_or(0.0)
    }

    /// Waits until `/readyz` answers `status`.
    pub fn wait_readyz(&self, status: u16, timeout: Duration) {
        eventually(&format!("/readyz to answer {status}"), timeout, || {
            (self.get("/readyz").0 == status).then_some(())
        });
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Celeriac {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            dump_log("celeriac", &self.log);
        }
    }
}

// ---------------------------------------------------------------------------
// Prometheus text format

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text exposition format (comments skipped).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(parse_sample)
        .collect()
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if rest.starts_with('{') {
        rest = &rest[1..];
        loop {
            rest = rest.trim_start_matches([',', ' ']);
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find('=')?;
            let key = rest[..eq].trim().to_string();
            rest = rest[eq + 1..].strip_prefix('"')?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break i,
                    c => value.push(c),
                }
            };
            rest = &rest[end + 1..];
            labels.insert(key, value);
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Sum of the series of `name` whose labels include every pair of `labels`.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = parse_metrics(text)
        .into_iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// Every series of `name` with its labels, for messages and exploration.
pub fn metric_series(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    parse_metrics(text)
        .into_iter()
        .filter(|s| s.name == name)
        .map(|s| (s.labels, s.value))
        .collect()
}
