//! Handler tests against a state fed from the captured fixtures.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use parking_lot::RwLock;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use tower::ServiceExt;

use crate::app::AppState;
use crate::clock;
use crate::events::fixtures;
use crate::metrics::testing::{self, Sample};
use crate::state::{Limits, State};
use crate::telemetry::SourceEvent;

const FLOWER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/flower-api");

fn flower_fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{FLOWER}/{name}.json")).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

fn shared_with(state: State, args: &[&str]) -> Arc<AppState> {
    // Built as `start` builds it, so fields added to AppState need no
    // change here.
    let mut shared = crate::test_app(args);
    shared.state = Arc::new(RwLock::new(state));
    Arc::new(shared)
}

/// Applies bodies at the real `now`, so workers are alive when handlers
/// (which read the real clock) look at them.
fn apply_bodies<'a>(state: &mut State, bodies: impl IntoIterator<Item = &'a str>) {
    let now = clock::now();
    for body in bodies {
        for event in fixtures::decode(body) {
            state.apply(&event, now);
        }
    }
}

fn scenarios(names: &[&str]) -> State {
    let mut state = State::new(Limits::default());
    for name in names {
        let bodies = fixtures::scenario(name);
        apply_bodies(&mut state, bodies.iter().map(String::as_str));
    }
    state
}

/// The mixed stream, which holds the tasks of `fixtures/flower-api`.
fn mixed_stream() -> State {
    let mut state = State::new(Limits::default());
    let msgs = fixtures::stream("stream-mixed.jsonl");
    apply_bodies(&mut state, msgs.iter().map(|(_, b)| b.as_str()));
    state
}

struct Reply {
    status: StatusCode,
    content_type: String,
    location: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// Top-level object entries in the order they were written.
    fn entries(&self) -> Vec<(String, Value)> {
        struct Ordered;
        impl<'de> Visitor<'de> for Ordered {
            type Value = Vec<(String, Value)>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(out)
            }
        }
        let mut de = serde_json::Deserializer::from_str(&self.body);
        de.deserialize_map(Ordered).expect("a JSON object")
    }

    fn error(&self) -> api::ApiError {
        assert!(
            self.content_type.starts_with("application/json"),
            "{}",
            self.content_type
        );
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

async fn get(shared: &Arc<AppState>, uri: &str) -> Reply {
    let app = super::router(shared.clone());
    let req = Request::get(uri).body(Body::empty()).expect("request");
    let resp = app.oneshot(req).await.expect("infallible");
    let status = resp.status();
    let header_text = |name| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let content_type = header_text(header::CONTENT_TYPE);
    let location = header_text(header::LOCATION);
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body = String::from_utf8(bytes.to_vec()).expect("UTF-8 body");
    Reply {
        status,
        content_type,
        location,
        body,
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("object").keys().cloned().collect()
}

/// Flower's keys, plus the `queue` celeriac adds when `task-sent` named one.
fn assert_flower_keys(ours: &Value, flower: &Value) {
    let mut ours = keys(ours);
    ours.remove("queue");
    assert_eq!(ours, keys(flower));
}

/// Equal to Flower's dict, ignoring celeriac's additions.
fn assert_flower_task(ours: &Value, flower: &Value) {
    assert_flower_keys(ours, flower);
    for (k, v) in flower.as_object().expect("object") {
        assert_eq!(&ours[k], v, "field {k} of {}", flower["uuid"]);
    }
}

#[tokio::test]
async fn task_info_matches_flower() {
    let shared = shared_with(mixed_stream(), &[]);
    for fixture in ["info_success", "info_failure"] {
        let flower = flower_fixture(fixture);
        let uuid = flower["uuid"].as_str().expect("uuid");
        let r = get(&shared, &format!("/api/task/info/{uuid}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.content_type.starts_with("application/json"));
        assert_flower_task(&r.json(), &flower);
    }
}

#[tokio::test]
async fn task_info_unknown_is_404_json() {
    let shared = shared_with(scenarios(&["success"]), &[]);
    let r = get(&shared, "/api/task/info/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error().error, "Unknown task 'nope'");
}

#[tokio::test]
async fn tasks_have_flowers_shape_and_values() {
    let shared = shared_with(mixed_stream(), &[]);
    let r = get(&shared, "/api/tasks").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let all = r.json();
    // Finished tasks are as Flower showed them; running ones had the shape.
    let finished = flower_fixture("tasks_limit2_b");
    for (uuid, flower) in finished.as_object().expect("object") {
        assert_flower_task(&all[uuid], flower);
    }
    let running = flower_fixture("tasks_limit2");
    for (uuid, flower) in running.as_object().expect("object") {
        assert_flower_keys(&all[uuid], flower);
    }
    // Every entry is keyed by its uuid and has every Flower key.
    let template = &running[running
        .as_object()
        .and_then(|o| o.keys().next())
        .expect("a task")];
    for (uuid, task) in r.entries() {
        assert_eq!(task["uuid"], uuid.as_str());
        assert_flower_keys(&task, template);
    }
}

#[tokio::test]
async fn tasks_come_in_the_querys_order() {
    let shared = shared_with(mixed_stream(), &[]);
    let total = shared.state.read().task_count();
    assert!(total > 10, "fixture too small: {total}");

    // Default: newest `timestamp` first, as Flower 2.2.
    let r = get(&shared, "/api/tasks").await;
    let entries = r.entries();
    assert_eq!(entries.len(), total);
    let stamps: Vec<f64> = entries
        .iter()
        .map(|(_, t)| t["timestamp"].as_f64().unwrap_or(0.0))
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "{stamps:?}");

    let r = get(&shared, "/api/tasks?sort_by=name").await;
    let names: Vec<String> = r
        .entries()
        .iter()
        .map(|(_, t)| t["name"].as_str().unwrap_or("").to_owned())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    // Paging slices the same order.
    let page = get(&shared, "/api/tasks?limit=3&offset=2").await.entries();
    let ids: Vec<&str> = page.iter().map(|(k, _)| k.as_str()).collect();
    let expect: Vec<&str> = entries[2..5].iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(ids, expect);
}

#[tokio::test]
async fn export_streams_what_the_listing_shows_as_ndjson_or_csv() {
    let shared = shared_with(mixed_stream(), &[]);
    let listing: Vec<String> = get(&shared, "/api/tasks?limit=5&offset=1")
        .await
        .entries()
        .into_iter()
        .map(|(k, _)| k)
        .collect();

    let r = get(&shared, "/api/tasks/export?limit=5&offset=1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "application/x-ndjson");
    let lines: Vec<Value> = r
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = lines.iter().map(|t| t["uuid"].as_str().unwrap()).collect();
    assert_eq!(ids, listing);

    let r = get(&shared, "/api/tasks/export?format=csv&state=FAILURE").await;
    assert_eq!(r.content_type, "text/csv; charset=utf-8");
    let mut csv = csv::Reader::from_reader(r.body.as_bytes());
    let header = csv.headers().unwrap().clone();
    let state = header.iter().position(|h| h == "state").unwrap();
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    let failures = get(&shared, "/api/tasks?state=FAILURE")
        .await
        .entries()
        .len();
    assert!(failures > 0);
    assert_eq!(rows.len(), failures);
    assert!(rows.iter().all(|r| &r[state] == "FAILURE"));

    for (uri, param) in [
        ("/api/tasks/export?format=xml", "format"),
        ("/api/tasks/export?sort_by=name", "sort_by"),
        ("/api/tasks/export?limit=x", "limit"),
    ] {
        let r = get(&shared, uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(r.error().parameter.as_deref(), Some(param), "{uri}");
    }
}

#[tokio::test]
async fn tasks_bad_params_are_400_naming_the_parameter() {
    let shared = shared_with(scenarios(&["success"]), &[]);
    for (uri, param) in [
        ("/api/tasks?limit=abc", "limit"),
        ("/api/tasks?offset=x", "offset"),
        ("/api/tasks?sort_by=color", "sort_by"),
    ] {
        let r = get(&shared, uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.body);
        let e = r.error();
        assert_eq!(e.parameter.as_deref(), Some(param), "{uri}: {e:?}");
        assert!(!e.error.is_empty());
    }
}

/// Tasks enough for several chunks of a streamed listing, many sharing a
/// timestamp (so runs of equal timestamps straddle the chunks' cuts).
fn many_tasks(n: usize) -> State {
    use crate::events::{Event, EventKind};
    let mut state = State::new(Limits::default());
    for i in 0..n {
        let uuid = format!("{:08x}-0000-4000-8000-{:012x}", i * 7_919 % 10_007, i);
        let ts = 1_700_000_000.0 + (i / 7) as f64;
        for kind in [EventKind::TaskReceived, EventKind::TaskSucceeded] {
            let kind = if i.is_multiple_of(5) && kind == EventKind::TaskSucceeded {
                EventKind::TaskFailed
            } else {
                kind
            };
            let e = Event {
                kind,
                hostname: format!("w{}@vm", i % 3),
                timestamp: ts,
                uuid: Some(uuid.clone()),
                name: Some("tasks.add".into()),
                ..Event::default()
            };
            state.apply(&e, ts);
        }
    }
    state
}

#[tokio::test]
async fn a_full_listing_streams_in_the_querys_order() {
    let shared = shared_with(many_tasks(2_600), &[]);
    for (uri, pairs) in [
        ("/api/tasks", vec![]),
        (
            "/api/tasks?state=failure&offset=7",
            vec![("state", "failure"), ("offset", "7")],
        ),
        (
            "/api/tasks?workername=w1@vm&offset=-1",
            vec![("workername", "w1@vm")],
        ),
    ] {
        let app = super::router(shared.clone());
        let req = Request::get(uri).body(Body::empty()).expect("request");
        let resp = app.oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::OK, "{uri}");
        // Streamed: no length known up front.
        assert!(
            resp.headers().get(header::CONTENT_LENGTH).is_none(),
            "{uri}"
        );
        let r = get(&shared, uri).await;
        let got: Vec<String> = r.entries().into_iter().map(|(k, _)| k).collect();
        let params: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let q = crate::query::TaskQuery::from_params(&params).expect("query");
        let state = shared.state.read();
        let want: Vec<String> = q
            .run(state.tasks())
            .iter()
            .map(|t| t.uuid.to_owned())
            .collect();
        assert!(want.len() > 500, "{uri}: {}", want.len());
        assert_eq!(got, want, "{uri}");
    }
    // Nothing matches: still one JSON object.
    let r = get(&shared, "/api/tasks?state=PENDING").await;
    assert_eq!(r.body, "{}");
}

#[tokio::test]
async fn negative_limit_and_offset_answer_as_flower() {
    let shared = shared_with(scenarios(&["success", "failure"]), &[]);
    let all = get(&shared, "/api/tasks").await.entries().len();
    assert_eq!(all, 2);
    for (uri, n) in [
        ("/api/tasks?limit=-1", 0),
        ("/api/tasks?offset=-5", 2),
        ("/api/tasks?offset=-5&limit=1", 1),
        ("/api/tasks?limit=-1&offset=-1", 0),
        ("/api/tasks?limit=-1&offset=2", 0),
    ] {
        let r = get(&shared, uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.body);
        assert_eq!(r.entries().len(), n, "{uri}");
    }
}

#[tokio::test]
async fn tasks_filter_by_state() {
    let shared = shared_with(scenarios(&["success", "failure"]), &[]);
    let r = get(&shared, "/api/tasks?state=FAILURE").await;
    let entries = r.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].1["name"], "tasks.fail");
    assert_eq!(entries[0].1["exception"], "ValueError('boom')");
    assert_eq!(entries[0].1["worker"], "w1@vm");
}

#[tokio::test]
async fn task_types_are_sorted_names() {
    let shared = shared_with(scenarios(&["success", "failure", "retry"]), &[]);
    let r = get(&shared, "/api/task/types").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        serde_json::json!({"task-types": ["tasks.add", "tasks.fail", "tasks.flaky"]})
    );
}

#[tokio::test]
async fn workers_and_status() {
    let shared = shared_with(
        scenarios(&["success", "heartbeat", "online", "offline"]),
        &[],
    );
    let r = get(&shared, "/api/workers").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let all = r.json();
    assert_eq!(keys(&all), BTreeSet::from(["w1@vm".into(), "w3@vm".into()]));
    assert_eq!(all["w1@vm"]["hostname"], "w1@vm");
    assert_eq!(all["w1@vm"]["active"], 2);

    let r = get(&shared, "/api/workers?status=true").await;
    assert_eq!(r.json(), serde_json::json!({"w1@vm": true, "w3@vm": false}));
    let r = get(&shared, "/api/workers?status=false&refresh=1").await;
    assert_eq!(keys(&r.json()), keys(&all));

    let r = get(&shared, "/api/workers?workername=w3@vm").await;
    assert_eq!(keys(&r.json()), BTreeSet::from(["w3@vm".into()]));
    // Flower answers every worker's status whatever `workername` names,
    // even a worker it does not know.
    for w in ["w3%40vm", "nobody"] {
        let r = get(&shared, &format!("/api/workers?workername={w}&status=yes")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json(), serde_json::json!({"w1@vm": true, "w3@vm": false}));
    }
}

#[tokio::test]
async fn workers_errors() {
    let shared = shared_with(scenarios(&["heartbeat"]), &[]);
    let r = get(&shared, "/api/workers?workername=nobody").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error().error, "Unknown worker 'nobody'");
    for param in ["status", "refresh"] {
        let r = get(&shared, &format!("/api/workers?{param}=maybe")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let e = r.error();
        assert_eq!(e.parameter.as_deref(), Some(param));
        assert_eq!(e.error, "Invalid argument 'maybe' of type 'bool'");
    }
}

#[tokio::test]
async fn unknown_api_path_is_404_json() {
    let shared = shared_with(State::new(Limits::default()), &[]);
    let r = get(&shared, "/api/nothing/here").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.error().error.contains("/api/nothing/here"));
    // Page paths (`/elsewhere`) are deep links into the dashboard when it is
    // embedded; a missing file is a 404 either way.
    let r = get(&shared, "/elsewhere.js").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = get(&shared, "/elsewhere").await;
    let want = if super::assets::ASSETS.is_empty() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    assert_eq!(r.status, want);
}

#[tokio::test]
async fn wrong_method_is_405() {
    let shared = shared_with(State::new(Limits::default()), &[]);
    let app = super::router(shared);
    let req = Request::post("/api/tasks")
        .body(Body::empty())
        .expect("request");
    let resp = app.oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn health_endpoints() {
    let shared = shared_with(State::new(Limits::default()), &[]);
    let r = get(&shared, "/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
    let r = get(&shared, "/healthcheck").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "OK"));

    let source = &shared.sources[0];
    source.emit(SourceEvent::Retrying {
        reason: "connection refused",
        delay: std::time::Duration::from_secs(1),
        repeated: false,
    });
    let r = get(&shared, "/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let v = r.json();
    assert_eq!(v["ready"], false);
    assert_eq!(v["last_error"], "connection refused");
    assert_eq!(v["last_event_at"], Value::Null);

    // Consuming, but still reading what was queued meanwhile: not ready.
    source.emit(SourceEvent::Connected {
        reconnect: true,
        queue: "q",
        backlog: 50_000,
    });
    let r = get(&shared, "/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let v = r.json();
    assert_eq!(v["consuming"], true);
    assert_eq!(v["events_behind"], 50_000);
    source.emit(SourceEvent::Received {
        messages: 49_500,
        truncated: 0,
    });
    shared.last_event.set(1795424223.5);
    let r = get(&shared, "/readyz").await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["ready"], true);
    assert_eq!(v["last_event_at"], 1795424223.5);
}

#[tokio::test]
async fn index_links_to_the_api() {
    let shared = shared_with(scenarios(&["success"]), &["--url-prefix", "/flower"]);
    let r = get(&shared, "/flower/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.content_type.starts_with("text/html"));
    // When the dashboard is embedded, `/` is the app, based under the prefix.
    if !super::assets::ASSETS.is_empty() {
        assert!(r.body.contains("<base href=\"/flower/\">"), "{}", r.body);
        return;
    }
    assert!(
        r.body.contains("href=\"/flower/api/tasks?limit=100\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("href=\"/flower/metrics\""));
}

#[tokio::test]
async fn flowers_page_addresses_lead_to_the_dashboards_pages() {
    for (flags, prefix) in [(&[][..], ""), (&["--url-prefix", "flower"][..], "/flower")] {
        let shared = shared_with(scenarios(&["success"]), flags);
        for (flower, ours) in [
            ("/task/0b9c-1", "/tasks/0b9c-1"),
            ("/worker/w1@host", "/workers/w1@host"),
            ("/worker/a%20b", "/workers/a%20b"),
            ("/broker", "/queues"),
        ] {
            let r = get(&shared, &format!("{prefix}{flower}")).await;
            assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT, "{prefix}{flower}");
            assert_eq!(r.location, format!("{prefix}{ours}"), "{prefix}{flower}");
        }
    }
}

#[tokio::test]
async fn url_prefix_nests_every_route() {
    let shared = shared_with(scenarios(&["success"]), &["--url-prefix", "flower/"]);
    for uri in [
        "/flower/api/tasks",
        "/flower/api/workers",
        "/flower/api/task/types",
        "/flower/metrics",
        "/flower/healthz",
        "/flower/healthcheck",
    ] {
        assert_eq!(get(&shared, uri).await.status, StatusCode::OK, "{uri}");
    }
    for uri in ["/api/tasks", "/metrics", "/healthz", "/"] {
        assert_eq!(
            get(&shared, uri).await.status,
            StatusCode::NOT_FOUND,
            "{uri}"
        );
    }
    let r = get(&shared, "/flower/api/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.error().error.contains("/api/nope"));
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = testing::find(samples, name, labels);
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].value
}

#[tokio::test]
async fn metrics_follow_the_scenarios() {
    let shared = shared_with(
        scenarios(&[
            "success",
            "failure",
            "retry",
            "rejected",
            "revoke_before_start",
            "heartbeat",
            "online",
            "offline",
        ]),
        &[],
    );
    let r = get(&shared, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.starts_with("text/plain; version=0.0.4"));
    let samples = testing::parse(&r.body).unwrap_or_else(|e| panic!("{e}\n{}", r.body));
    if let Some(check) = testing::promtool_check(&r.body) {
        check.unwrap_or_else(|e| panic!("promtool: {e}\n{}", r.body));
    }

    let w1 = |name| {
        [
            ("name", name),
            ("hostname", "w1@vm"),
            ("queue_name", "celery"),
        ]
    };
    let add = w1("tasks.add");
    assert_eq!(value(&samples, "celery_task_received_total", &add), 2.0);
    assert_eq!(value(&samples, "celery_task_started_total", &add), 1.0);
    assert_eq!(value(&samples, "celery_task_succeeded_total", &add), 1.0);
    assert_eq!(value(&samples, "celery_task_revoked_total", &add), 1.0);
    // Like celery-exporter, a series that never saw task-sent (the
    // worker's) has no `celery_task_sent_total` sample.
    assert!(testing::find(&samples, "celery_task_sent_total", &add).is_empty());
    let sent = [
        ("name", "tasks.add"),
        ("hostname", "gen16362@vm"),
        ("queue_name", "celery"),
    ];
    assert_eq!(value(&samples, "celery_task_sent_total", &sent), 2.0);

    let fail = w1("tasks.fail");
    let with = |exc| [fail[0], fail[1], ("exception", exc), fail[2]];
    assert_eq!(
        value(&samples, "celery_task_failed_total", &with("ValueError")),
        1.0
    );
    assert_eq!(value(&samples, "celery_task_failed_total", &with("")), 0.0);
    let rej = w1("tasks.rejecter");
    assert_eq!(value(&samples, "celery_task_rejected_total", &rej), 1.0);
    let unknown = [rej[0], rej[1], ("exception", "UnknownException"), rej[2]];
    assert_eq!(value(&samples, "celery_task_failed_total", &unknown), 1.0);

    let flaky = w1("tasks.flaky");
    assert_eq!(value(&samples, "celery_task_retried_total", &flaky), 1.0);
    assert_eq!(value(&samples, "celery_task_received_total", &flaky), 2.0);
    assert_eq!(value(&samples, "celery_task_succeeded_total", &flaky), 1.0);

    // Runtime 0.0082 s (success) lands in le=0.01, not le=0.005.
    let le = |b| [add[0], add[1], add[2], ("le", b)];
    assert_eq!(
        value(&samples, "celery_task_runtime_bucket", &le("0.005")),
        0.0
    );
    assert_eq!(
        value(&samples, "celery_task_runtime_bucket", &le("0.01")),
        1.0
    );
    assert_eq!(
        value(&samples, "celery_task_runtime_bucket", &le("+Inf")),
        1.0
    );
    assert_eq!(value(&samples, "celery_task_runtime_count", &add), 1.0);
    let sum = value(&samples, "celery_task_runtime_sum", &add);
    assert!((sum - 0.008196391999945263).abs() < 1e-12, "{sum}");
    // No observations, no histogram (as celery-exporter).
    assert!(testing::find(&samples, "celery_task_runtime_count", &fail).is_empty());

    assert_eq!(
        value(&samples, "celery_worker_up", &[("hostname", "w1@vm")]),
        1.0
    );
    assert_eq!(
        value(&samples, "celery_worker_up", &[("hostname", "w3@vm")]),
        0.0
    );
    let active = |h| value(&samples, "celery_worker_tasks_active", &[("hostname", h)]);
    assert_eq!(active("w1@vm"), 2.0);
    assert_eq!(active("w3@vm"), 0.0);

    let state = shared.state.read();
    let retained = value(&samples, "celeriac_tasks_retained", &[]);
    assert_eq!(retained, state.task_count() as f64);
    assert_eq!(value(&samples, "celeriac_workers_retained", &[]), 2.0);
    assert_eq!(value(&samples, "celeriac_tasks_evicted", &[]), 0.0);
}

#[tokio::test]
async fn metrics_of_an_empty_state_parse() {
    let shared = shared_with(State::new(Limits::default()), &[]);
    let r = get(&shared, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    testing::parse(&r.body).unwrap_or_else(|e| panic!("{e}\n{}", r.body));
    if let Some(check) = testing::promtool_check(&r.body) {
        check.unwrap_or_else(|e| panic!("promtool: {e}\n{}", r.body));
    }
}

#[tokio::test]
async fn metrics_of_the_mixed_stream_parse() {
    let shared = shared_with(mixed_stream(), &[]);
    let r = get(&shared, "/metrics").await;
    let samples = testing::parse(&r.body).unwrap_or_else(|e| panic!("{e}\n{}", r.body));
    if let Some(check) = testing::promtool_check(&r.body) {
        check.unwrap_or_else(|e| panic!("promtool: {e}\n{}", r.body));
    }
    // Each worker counter family has one sample per series; the sent
    // counter only for series that saw a task-sent (as celery-exporter).
    let (series, with_sent) = {
        let state = shared.state.read();
        let with_sent = state.task_series().filter(|s| s.counts.sent > 0).count();
        (state.task_series().count(), with_sent)
    };
    assert_eq!(
        testing::find(&samples, "celery_task_received_total", &[]).len(),
        series
    );
    assert_eq!(
        testing::find(&samples, "celery_task_sent_total", &[]).len(),
        with_sent
    );
}

async fn post(shared: &Arc<AppState>, uri: &str, body: &str) -> Reply {
    let app = super::router(shared.clone());
    let req = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .expect("request");
    let resp = app.oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        content_type: String::new(),
        location: String::new(),
        body: String::from_utf8(bytes.to_vec()).expect("UTF-8 body"),
    }
}

/// Every route of the worker endpoints' table is served, and refuses what
/// it must before anything is sent (no broker needed).
#[tokio::test]
async fn control_requests_are_refused_before_sending() {
    use crate::control::command::{Takes, WORKER_ENDPOINTS};
    let shared = shared_with(State::new(Limits::default()), &[]);
    for endpoint in WORKER_ENDPOINTS {
        let path = endpoint.path.replace("{w}", "nobody@x");
        let r = post(&shared, &path, "").await;
        let want = match endpoint.takes {
            Takes::Queue => (
                StatusCode::BAD_REQUEST,
                r#"{"error":"Missing argument queue","parameter":"queue"}"#,
            ),
            Takes::Bounds => (
                StatusCode::BAD_REQUEST,
                r#"{"error":"Missing argument min","parameter":"min"}"#,
            ),
            Takes::Count | Takes::NoReload | Takes::NothingNoReply => (
                StatusCode::NOT_FOUND,
                r#"{"error":"Unknown worker 'nobody@x'"}"#,
            ),
        };
        assert_eq!((r.status, r.body.as_str()), want, "{path}");
    }
    let r = post(&shared, "/api/worker/pool/grow/nobody@x", "n=two").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            r#"{"error":"Invalid argument 'two' for 'n'","parameter":"n"}"#
        )
    );
    let r = post(&shared, "/api/control/drop_tables", "").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            StatusCode::NOT_FOUND,
            r#"{"error":"Unknown or disallowed command 'drop_tables'"}"#
        )
    );
    let r = post(&shared, "/api/tasks/revoke", "dry_run=true").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["parameter"], "taskname");
    let r = post(
        &shared,
        "/api/tasks/revoke",
        "dry_run=true&taskname=tasks.add",
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::OK, r#"{"dry_run":true,"count":0,"ids":[]}"#)
    );
    let r = get(&shared, "/api/audit").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::OK, r#"{"entries":[]}"#)
    );
}

#[tokio::test]
async fn task_stats_answer_the_fixtures_endings_and_refuse_a_bad_window() {
    let shared = shared_with(scenarios(&["success", "failure"]), &[]);
    let mut feed = crate::feed::Feed::default();
    feed.subscribe(crate::insight::InsightFeed(shared.insight.clone()));
    feed.publish(&shared.state, clock::now());

    let body = get(&shared, "/api/task/stats").await.json();
    assert_eq!(body["window"], "5m", "the default window: {body:#}");
    let all = get(&shared, "/api/task/stats?window=all").await.json();
    let tasks = all["tasks"].as_array().expect("tasks");
    let ended: u64 = tasks
        .iter()
        .map(|t| {
            t["counts"]["succeeded"].as_u64().unwrap() + t["counts"]["failed"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(ended, 2, "one success, one failure: {all:#}");
    assert!(
        tasks
            .iter()
            .all(|t| t["runtime"]["count"] == 1 && t["runtime"]["p95"].as_f64().is_some()),
        "{all:#}"
    );
    for bad in ["1d", "5M", "all,1h"] {
        let r = get(&shared, &format!("/api/task/stats?window={bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
        assert_eq!(r.error().parameter.as_deref(), Some("window"));
    }
}

#[tokio::test]
async fn advice_lists_the_queues_of_the_window_and_refuses_a_bad_window() {
    let shared = shared_with(scenarios(&["success", "failure"]), &[]);
    let mut feed = crate::feed::Feed::default();
    feed.subscribe(crate::insight::InsightFeed(shared.insight.clone()));
    feed.publish(&shared.state, clock::now());

    let body = get(&shared, "/api/advice").await.json();
    assert_eq!(body["window"], "5m", "the default window: {body:#}");
    assert_eq!(body["wait_target"], 10.0);
    assert_eq!(body["wait_probability"], 0.05);
    let queues = body["queues"].as_array().expect("queues");
    assert_eq!(queues.len(), 1, "{body:#}");
    assert_eq!(
        (
            &queues[0]["name"],
            &queues[0]["arrived"],
            &queues[0]["completed"]
        ),
        (
            &serde_json::json!("celery"),
            &serde_json::json!(2),
            &serde_json::json!(2)
        ),
        "{body:#}"
    );
    let hour = get(&shared, "/api/advice?window=1h").await.json();
    assert_eq!(hour["window"], "1h");
    for bad in ["all", "1d", "5M"] {
        let r = get(&shared, &format!("/api/advice?window={bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
        assert_eq!(r.error().parameter.as_deref(), Some("window"));
    }
}
