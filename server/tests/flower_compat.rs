//! Flower 2.2 and celeriac side by side on one vhost with one real worker:
//! every endpoint of Flower's `flower/urls.py` is asked of both, and the
//! answers compared — statuses, keys and value types, and values where the
//! same cluster must give the same ones (the same task, the same worker's
//! inspect replies, the same metric series). Extra keys in celeriac are
//! fine, and errors stay JSON where Flower writes plain text, but a status a
//! script can see must be Flower's. Where celeriac differs on purpose the
//! difference is spelled out below with its reason (and in README.md,
//! "Flower compatibility"), and asserted, so that neither side drifts
//! unnoticed.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::flower::Flower;
use support::{eventually, parse_metrics, Celeriac, TestVhost, Worker, WorkerOpts};

const W: &str = "w1@compat";

/// One answer: status, `Location` of a redirect, the body as JSON when it
/// is JSON (else as a string).
#[derive(Debug)]
struct Answer {
    status: u16,
    location: Option<String>,
    body: Value,
}

/// Flower and celeriac, and one client for both that does not follow
/// redirects (celeriac answers Flower's page addresses with one).
struct Pair {
    flower: String,
    celeriac: String,
    http: reqwest::blocking::Client,
    /// Every difference found, reported together at the end.
    diffs: Vec<String>,
}

fn ask(http: &reqwest::blocking::Client, method: &str, url: &str) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let resp = http
        .request(method.clone(), url)
        .send()
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        location,
        body,
    }
}

/// JSON pointer segments; `*` in a pattern matches any one segment.
fn matches(pattern: &str, at: &str) -> bool {
    let (p, a): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), at.split('/').collect());
    p.len() == a.len() && p.iter().zip(&a).all(|(p, a)| *p == "*" || p == a)
}

/// The same number, but for a microsecond: Python parses the events'
/// timestamps exactly, serde_json (without `float_roundtrip`) may be one
/// unit in the last place off, 2.4e-7 s at today's epoch, which shows in a
/// difference of two timestamps such as the prefetch time.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Flower's keys must be in celeriac's answer with values of the same type
/// (null goes with anything: whether a field is set yet is timing, and the
/// value comparisons catch a field that stays unset).
fn shape(f: &Value, c: &Value, at: &str, out: &mut Vec<String>) {
    match (f, c) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(fo), Value::Object(co)) => {
            for (k, fv) in fo {
                let at = format!("{at}/{k}");
                match co.get(k) {
                    Some(cv) => shape(fv, cv, &at, out),
                    None => out.push(format!("{at}: missing")),
                }
            }
        }
        (Value::Array(fa), Value::Array(ca)) => {
            if let (Some(fv), Some(cv)) = (fa.first(), ca.first()) {
                shape(fv, cv, &format!("{at}/0"), out);
            } else if ca.is_empty() && !fa.is_empty() {
                out.push(format!("{at}: empty, Flower has {}", fa.len()));
            }
        }
        _ if kind(f) != kind(c) => {
            out.push(format!(
                "{at}: Flower {} {f}, celeriac {} {c}",
                kind(f),
                kind(c)
            ));
        }
        _ => {}
    }
}

/// Flower's values must be celeriac's (objects: Flower's keys; numbers to
/// within [`close`]), except at the `skip` patterns.
fn values(f: &Value, c: &Value, at: &str, skip: &[&str], out: &mut Vec<String>) {
    if skip.iter().any(|p| matches(p, at)) {
        return;
    }
    match (f, c) {
        (Value::Object(fo), Value::Object(co)) => {
            for (k, fv) in fo {
                let at = format!("{at}/{k}");
                match co.get(k) {
                    Some(cv) => values(fv, cv, &at, skip, out),
                    None if skip.iter().any(|p| matches(p, &at)) => {}
                    None => out.push(format!("{at}: missing (Flower {fv})")),
                }
            }
        }
        (Value::Array(fa), Value::Array(ca)) if fa.len() == ca.len() => {
            for (i, (fv, cv)) in fa.iter().zip(ca).enumerate() {
                values(fv, cv, &format!("{at}/{i}"), skip, out);
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            if !close(a, b) {
                out.push(format!("{at}: Flower {a}, celeriac {b}"));
            }
        }
        _ if f != c => out.push(format!("{at}: Flower {f}, celeriac {c}")),
        _ => {}
    }
}

impl Pair {
    fn both(&self, method: &str, path: &str) -> (Answer, Answer) {
        (
            ask(&self.http, method, &format!("{}{path}", self.flower)),
            ask(&self.http, method, &format!("{}{path}", self.celeriac)),
        )
    }

    fn note(&mut self, what: String) {
        eprintln!("DIFFERENCE {what}");
        self.diffs.push(what);
    }

    /// The same status, and Flower's keys with the same types.
    fn same_shape(&mut self, method: &str, path: &str) -> (Answer, Answer) {
        let (f, c) = self.both(method, path);
        self.compare(method, path, &f, &c, None);
        (f, c)
    }

    /// The same status, and Flower's values except at `skip`.
    fn same_values(&mut self, method: &str, path: &str, skip: &[&str]) -> (Answer, Answer) {
        let (f, c) = self.both(method, path);
        self.compare(method, path, &f, &c, Some(skip));
        (f, c)
    }

    fn compare(&mut self, method: &str, path: &str, f: &Answer, c: &Answer, skip: Option<&[&str]>) {
        if f.status != c.status {
            self.note(format!(
                "{method} {path}: status Flower {} {}, celeriac {} {}",
                f.status, f.body, c.status, c.body
            ));
            return;
        }
        // Flower's errors are text; celeriac's stay JSON.
        if !matches!(f.body, Value::Object(_) | Value::Array(_)) {
            return;
        }
        let mut out = Vec::new();
        match skip {
            None => shape(&f.body, &c.body, "", &mut out),
            Some(skip) => values(&f.body, &c.body, "", skip, &mut out),
        }
        for d in out {
            self.note(format!("{method} {path}: {d}"));
        }
    }

    /// A deliberate difference: both statuses as stated, and why.
    fn differs(&mut self, method: &str, path: &str, flower: u16, celeriac: u16, why: &str) {
        let (f, c) = self.both(method, path);
        if (f.status, c.status) != (flower, celeriac) {
            self.note(format!(
                "{method} {path}: expected Flower {flower} and celeriac {celeriac} ({why}), got {} {} and {} {}",
                f.status, f.body, c.status, c.body
            ));
        }
    }
}

/// The `flower_*` series of a `/metrics` page, `_created` left out.
fn flower_series(text: &str) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = parse_metrics(text)
        .into_iter()
        .filter(|s| s.name.starts_with("flower_") && !s.name.ends_with("_created"))
        .map(|s| (format!("{}{:?}", s.name, s.labels), s.value))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn same_series(f: &[(String, f64)], c: &[(String, f64)]) -> bool {
    f.len() == c.len() && f.iter().zip(c).all(|(a, b)| a.0 == b.0 && close(a.1, b.1))
}

/// Waits until Flower knows `id` in `state`.
fn flower_task_state(p: &Pair, id: &str, state: &str) {
    eventually(
        &format!("Flower to see {id} in {state}"),
        Duration::from_secs(30),
        || {
            let a = ask(&p.http, "GET", &format!("{}/api/task/info/{id}", p.flower));
            (a.body["state"] == state).then_some(())
        },
    );
}

#[test]
fn flower_and_celeriac_answer_alike() {
    let started = Instant::now();
    let vhost = TestVhost::new("flower-compat");
    let _worker = Worker::start(&vhost, W, WorkerOpts::default());
    // Both start once the worker is up: Flower inspects it at start, and
    // celeriac as it first sees it.
    let celeriac = Celeriac::start(
        &vhost,
        &["--flower-metrics", "--broker-stats-interval", "1"],
    );
    let flower = Flower::start(&vhost);
    let mut p = Pair {
        flower: flower.base.clone(),
        celeriac: celeriac.base.clone(),
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client"),
        diffs: Vec::new(),
    };

    // celeriac's first answer that lists the worker has what inspect tells.
    let first = eventually(
        "celeriac to list the worker",
        Duration::from_secs(20),
        || celeriac.workers().get(W).cloned(),
    );
    for field in ["stats", "registered", "active_queues", "conf"] {
        assert!(
            !first[field].is_null(),
            "the first /api/workers answer listing {W} has no `{field}`: {first:#}"
        );
    }

    // One task of each ending: success, failure, a retry (countdown 1 s),
    // a countdown task.
    let ok = vhost.send("add", "[1, 2]", &[]);
    let failed = vhost.send("fail", "[\"boom\"]", &[]);
    let retried = vhost.send("flaky", "[7]", &[]);
    let countdown = vhost.send("add", "[5, 5]", &["--countdown", "1"]);
    for (id, state) in [
        (&ok, "SUCCESS"),
        (&failed, "FAILURE"),
        (&retried, "SUCCESS"),
        (&countdown, "SUCCESS"),
    ] {
        celeriac.wait_task_state(id, state, Duration::from_secs(30));
        flower_task_state(&p, id, state);
    }

    // ---- /api/workers
    let (f, _) = p.same_shape("GET", "/api/workers?refresh=1");
    assert!(
        f.body[W]["stats"].is_object(),
        "Flower's /api/workers: {}",
        f.body
    );
    p.same_shape("GET", "/api/workers");
    // The same worker's inspect replies; the rest is timing.
    let inspected = ["registered", "active_queues", "conf"];
    let (f, _) = p.same_shape("GET", &format!("/api/workers?workername={W}"));
    let skip: Vec<String> = f.body[W]
        .as_object()
        .map(|o| {
            o.keys()
                .filter(|k| !inspected.contains(&k.as_str()))
                .map(|k| format!("/{W}/{k}"))
                .collect()
        })
        .unwrap_or_default();
    let skip: Vec<&str> = skip.iter().map(String::as_str).collect();
    p.same_values("GET", &format!("/api/workers?workername={W}"), &skip);
    p.same_shape("GET", &format!("/api/workers?refresh=1&workername={W}"));
    p.same_values("GET", "/api/workers?status=true", &[]);
    p.same_values(
        "GET",
        &format!("/api/workers?status=true&workername={W}"),
        &[],
    );
    p.same_values("GET", "/api/workers?status=true&workername=nobody@x", &[]);
    p.same_shape("GET", "/api/workers?workername=nobody@x");
    p.same_shape("GET", "/api/workers?status=maybe");

    // ---- /api/tasks and /api/task/*
    // Every task field Flower renders, with its value, for the same tasks
    // in the same order.
    let (f, c) = p.same_values("GET", "/api/tasks", &[]);
    let order = |a: &Answer| -> Vec<String> {
        a.body
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    // The comparisons compare something: Flower lists the four tasks.
    assert_eq!(order(&f).len(), 4, "Flower's /api/tasks: {}", f.body);
    if order(&f) != order(&c) {
        p.note(format!(
            "GET /api/tasks: order Flower {:?}, celeriac {:?}",
            order(&f),
            order(&c)
        ));
    }
    let by_worker = format!("workername={W}");
    for query in [
        "limit=2",
        "offset=1&limit=2",
        "limit=0",
        "limit=-1",
        "offset=-2&limit=1",
        "offset=-1",
        "state=FAILURE",
        "state=All",
        "taskname=tasks.add",
        by_worker.as_str(),
        "workername=nobody@x",
        "sort_by=name",
        "sort_by=-received",
        "sort_by=started",
        "search=flaky",
        "search=name:tasks.add",
        "received_start=2020-01-01%2000:00",
        "limit=abc",
        "offset=abc",
        "sort_by=bogus",
        "received_start=yesterday",
        "search=ab",
    ] {
        let path = format!("/api/tasks?{query}");
        let (f, c) = p.same_values("GET", &path, &[]);
        if f.status == 200 && order(&f) != order(&c) {
            p.note(format!(
                "GET {path}: order Flower {:?}, celeriac {:?}",
                order(&f),
                order(&c)
            ));
        }
    }
    for id in [&ok, &failed, &retried, &countdown] {
        p.same_values("GET", &format!("/api/task/info/{id}"), &[]);
    }
    p.same_shape("GET", "/api/task/info/no-such-task");
    p.same_values("GET", "/api/task/types", &[]);

    // ---- /api/queues/length: the queue Flower lists (the one the worker
    // consumes), with the management API's keys.
    // celeriac answers from its last poll (every second here) and Flower
    // asks the management API, whose stats (`message_stats.publish` once
    // a message was published) appear every few seconds: the two agree
    // once both have read the same figures.
    let celery = |a: &Answer| {
        a.body["active_queues"]
            .as_array()
            .and_then(|qs| qs.iter().find(|q| q["name"] == "celery").cloned())
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let queue_diffs = loop {
        let (f, c) = p.both("GET", "/api/queues/length");
        let mut out = Vec::new();
        if f.status != c.status {
            out.push(format!("status Flower {}, celeriac {}", f.status, c.status));
        }
        match (celery(&f), celery(&c)) {
            (Some(fq), Some(cq)) => {
                shape(&fq, &cq, "", &mut out);
                for key in [
                    "name",
                    "vhost",
                    "durable",
                    "auto_delete",
                    "exclusive",
                    "arguments",
                ] {
                    if fq[key] != cq[key] {
                        out.push(format!("{key}: Flower {}, celeriac {}", fq[key], cq[key]));
                    }
                }
            }
            (fq, cq) => out.push(format!("queue celery: Flower {fq:?}, celeriac {cq:?}")),
        }
        if out.is_empty() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    for d in queue_diffs {
        p.note(format!("GET /api/queues/length: {d}"));
    }

    // ---- /healthcheck, /metrics
    let (f, c) = p.same_values("GET", "/healthcheck", &[]);
    if f.body != c.body {
        p.note(format!(
            "GET /healthcheck: Flower {}, celeriac {}",
            f.body, c.body
        ));
    }
    let page = |base: &str| {
        ask(&p.http, "GET", &format!("{base}/metrics"))
            .body
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    // Both have read the same events once their series agree; they may
    // take a moment (heartbeats move the executing-tasks gauge).
    let deadline = Instant::now() + Duration::from_secs(10);
    let (fm, cm) = loop {
        let (fm, cm) = (
            flower_series(&page(&p.flower)),
            flower_series(&page(&p.celeriac)),
        );
        if same_series(&fm, &cm) || Instant::now() > deadline {
            break (fm, cm);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        fm.iter()
            .any(|(k, _)| k.starts_with("flower_task_prefetch_time_seconds")),
        "Flower's /metrics has no prefetch gauge: {fm:?}"
    );
    if !same_series(&fm, &cm) {
        let only = |a: &[(String, f64)], b: &[(String, f64)]| -> Vec<String> {
            a.iter()
                .filter(|x| !b.iter().any(|y| y.0 == x.0 && close(y.1, x.1)))
                .map(|(k, v)| format!("{k} {v}"))
                .collect()
        };
        p.note(format!(
            "GET /metrics: Flower only {:#?}\nceleriac only {:#?}",
            only(&fm, &cm),
            only(&cm, &fm)
        ));
    }

    // ---- Flower's page addresses: celeriac sends them to its own pages.
    for (path, to) in [
        (format!("/task/{ok}"), format!("/tasks/{ok}")),
        (format!("/worker/{W}"), format!("/workers/{W}")),
        ("/broker".to_string(), "/queues".to_string()),
    ] {
        let (f, c) = p.both("GET", &path);
        if f.status != 200 || c.status != 307 || c.location.as_deref() != Some(to.as_str()) {
            p.note(format!(
                "GET {path}: Flower {}, celeriac {} to {:?} (expected a 307 to {to})",
                f.status, c.status, c.location
            ));
        }
    }
    for path in ["/tasks", "/workers", "/"] {
        p.same_shape("GET", path);
    }

    // ---- Control: a status a script can see is Flower's.
    p.same_values(
        "POST",
        &format!("/api/task/rate-limit/tasks.nope?ratelimit=1/s&workername={W}"),
        &[],
    );
    p.same_values(
        "POST",
        "/api/task/rate-limit/tasks.add?ratelimit=1/s&workername=nobody@x",
        &[],
    );
    p.same_values(
        "POST",
        &format!("/api/task/rate-limit/tasks.add?workername={W}"),
        &[],
    );
    p.same_values(
        "POST",
        &format!("/api/task/rate-limit/tasks.add?ratelimit=100/s&workername={W}"),
        &[],
    );
    p.same_values(
        "POST",
        &format!("/api/task/timeout/tasks.nope?soft=1&workername={W}"),
        &[],
    );
    p.same_values(
        "POST",
        "/api/task/timeout/tasks.add?soft=1&workername=nobody@x",
        &[],
    );
    p.same_values(
        "POST",
        &format!("/api/task/timeout/tasks.add?soft=100&hard=200&workername={W}"),
        &[],
    );
    p.same_values(
        "POST",
        &format!("/api/task/timeout/tasks.add?soft=soon&workername={W}"),
        &[],
    );
    p.differs(
        "POST",
        "/api/task/rate-limit/tasks.add?ratelimit=100/s",
        400,
        200,
        "without workername Flower refuses; celeriac sets the limit on every worker",
    );
    p.differs(
        "POST",
        "/api/task/timeout/tasks.add?soft=100&hard=200",
        400,
        200,
        "without workername Flower refuses; celeriac sets the limits on every worker",
    );
    for path in [
        "/api/worker/shutdown/nobody@x",
        "/api/worker/pool/restart/nobody@x",
        "/api/worker/pool/grow/nobody@x",
        "/api/worker/pool/shrink/nobody@x",
        "/api/worker/pool/autoscale/nobody@x?min=1&max=2",
        "/api/worker/queue/add-consumer/nobody@x?queue=extra",
        "/api/worker/queue/cancel-consumer/nobody@x?queue=extra",
    ] {
        p.same_values("POST", path, &[]);
    }
    for path in [
        format!("/api/worker/pool/autoscale/{W}?min=1"),
        format!("/api/worker/pool/grow/{W}?n=abc"),
        format!("/api/worker/queue/add-consumer/{W}"),
        format!("/api/worker/queue/cancel-consumer/{W}"),
    ] {
        p.same_values("POST", &path, &[]);
    }
    p.same_values("POST", &format!("/api/worker/pool/grow/{W}?n=1"), &[]);
    p.same_values("POST", &format!("/api/worker/pool/shrink/{W}?n=1"), &[]);
    p.same_values("POST", "/api/task/revoke/no-such-task", &[]);

    // ---- Flower's task API: its own issue; the statuses of the calls that
    // change nothing here.
    p.same_shape("POST", "/api/task/async-apply/tasks.nope");
    p.same_shape("POST", "/api/task/apply/tasks.nope");

    drop(flower);
    eprintln!(
        "side by side in {:.1} s, {} differences",
        started.elapsed().as_secs_f64(),
        p.diffs.len()
    );
    assert!(
        p.diffs.is_empty(),
        "celeriac answers differently from Flower 2.2:\n{}",
        p.diffs.join("\n")
    );
}
