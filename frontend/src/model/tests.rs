use super::*;

fn row(uuid: &str, state: TaskState, received: f64) -> TaskRow {
    TaskRow {
        uuid: uuid.into(),
        name: Some("tasks.add".into()),
        state,
        worker: Some("w1@h".into()),
        queue: None,
        sent: None,
        received: Some(received),
        started: None,
        timestamp: Some(received),
        runtime: None,
        args: Some("(1, 2)".into()),
        kwargs: None,
        result: None,
        exception: None,
        parent_id: None,
        root_id: None,
        retries: None,
    }
}

fn worker(name: &str, status: bool) -> Worker {
    Worker {
        hostname: name.into(),
        status,
        active: None,
        processed: None,
        loadavg: None,
        freq: None,
        sw_ident: None,
        sw_ver: None,
        sw_sys: None,
        pid: None,
        clock: None,
        utcoffset: None,
        timestamp: None,
        last_heartbeat: None,
        heartbeat_expires: None,
    }
}

fn snapshot(tasks: Vec<TaskRow>) -> WsMessage {
    WsMessage::Snapshot {
        now: 10.0,
        workers: vec![worker("w2@h", false), worker("w1@h", true)],
        tasks,
        types: vec![],
        rates: vec![RatePoint {
            t: 9.0,
            succeeded: 1,
            failed: 0,
        }],
        ingest: Ingest::default(),
    }
}

fn delta(tasks: Vec<TaskRow>, rates: Vec<RatePoint>) -> WsMessage {
    WsMessage::Delta {
        now: 11.0,
        workers: None,
        tasks,
        types: vec![],
        types_gone: vec![],
        rates,
        ingest: None,
    }
}

fn stats(name: &str, sent: u64) -> TypeStats {
    TypeStats {
        name: name.into(),
        sent,
        ..TypeStats::default()
    }
}

/// A delta names only the types that changed: the others stay as they
/// were, new ones land in name order, gone ones leave.
#[test]
fn a_delta_upserts_task_types_by_name() {
    let mut m = Model::default();
    let WsMessage::Snapshot {
        now,
        workers,
        tasks,
        rates,
        ingest,
        ..
    } = snapshot(vec![])
    else {
        unreachable!()
    };
    m.apply(WsMessage::Snapshot {
        now,
        workers,
        tasks,
        types: vec![stats("a", 1), stats("c", 1), stats("d", 1)],
        rates,
        ingest,
    });
    let WsMessage::Delta {
        now,
        workers,
        tasks,
        rates,
        ingest,
        ..
    } = delta(vec![], vec![])
    else {
        unreachable!()
    };
    m.apply(WsMessage::Delta {
        now,
        workers,
        tasks,
        types: vec![stats("c", 5), stats("b", 1)],
        types_gone: vec!["d".into()],
        rates,
        ingest,
    });
    let got: Vec<(&str, u64)> = m.types.iter().map(|t| (t.name.as_str(), t.sent)).collect();
    assert_eq!(got, [("a", 1), ("b", 1), ("c", 5)]);
}

#[test]
fn a_snapshot_replaces_and_a_delta_upserts() {
    let mut m = Model::default();
    m.apply(snapshot(vec![row("a", TaskState::Received, 1.0)]));
    assert!(m.synced);
    assert_eq!(m.workers[0].hostname, "w1@h", "workers sorted");
    assert_eq!(m.workers_online(), 1);
    m.apply(delta(
        vec![
            row("a", TaskState::Success, 1.0),
            row("b", TaskState::Started, 2.0),
        ],
        vec![],
    ));
    assert_eq!(m.task_count(), 2);
    assert_eq!(m.task("a").unwrap().state, TaskState::Success);
    assert_eq!(m.now, 11.0);
    // A new snapshot (after a reconnect) forgets what it does not list.
    m.apply(snapshot(vec![row("c", TaskState::Received, 3.0)]));
    assert_eq!(m.task_count(), 1);
    assert!(m.task("a").is_none());
    assert_eq!(m.version, 3);
}

#[test]
fn rates_append_in_order_and_ignore_repeats() {
    let mut m = Model::default();
    m.apply(snapshot(vec![]));
    let p = |t| RatePoint {
        t,
        succeeded: 2,
        failed: 1,
    };
    m.apply(delta(vec![], vec![p(10.0)]));
    m.apply(delta(vec![], vec![p(10.0), p(9.0)]));
    assert_eq!(m.rates.len(), 2);
    assert_eq!(m.totals(), (3, 1));
    for i in 0..1000 {
        m.apply(delta(vec![], vec![p(100.0 + i as f64)]));
    }
    assert_eq!(m.rates.len(), MAX_RATES);
}

#[test]
fn rows_are_bounded_oldest_first() {
    let mut m = Model::default();
    let many: Vec<TaskRow> = (0..MAX_ROWS + MAX_ROWS / 10 + 1)
        .map(|i| row(&format!("t{i}"), TaskState::Received, i as f64))
        .collect();
    m.apply(delta(many, vec![]));
    assert_eq!(m.task_count(), MAX_ROWS);
    assert!(m.task("t0").is_none());
    let last = format!("t{}", MAX_ROWS + MAX_ROWS / 10);
    assert_eq!(m.task(&last).unwrap().uuid, last);
    // The index still points at the right rows after eviction.
    m.apply(delta(vec![row(&last, TaskState::Failure, 0.0)], vec![]));
    assert_eq!(m.task(&last).unwrap().state, TaskState::Failure);
    assert_eq!(m.task_count(), MAX_ROWS);
}

#[test]
fn filters_narrow_and_round_trip_through_the_url() {
    let mut m = Model::default();
    let mut failed = row("f00d", TaskState::Failure, 5.0);
    failed.exception = Some("ValueError('boom')".into());
    failed.name = Some("tasks.fail".into());
    m.apply(snapshot(vec![
        row("a1", TaskState::Success, 1.0),
        failed,
        row("b2", TaskState::Started, 3.0),
    ]));
    let q = |pairs: &[(&str, &str)]| {
        let f = Filter::from_pairs(pairs.iter().copied());
        m.query(&f, &Sort::default())
            .iter()
            .map(|t| t.uuid.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(q(&[]), ["f00d", "b2", "a1"], "newest first by default");
    assert_eq!(q(&[("state", "failure")]), ["f00d"]);
    assert_eq!(q(&[("name", "tasks.add")]), ["b2", "a1"]);
    assert_eq!(q(&[("q", "BOOM")]), ["f00d"], "search is case-insensitive");
    assert_eq!(q(&[("q", "b2")]), ["b2"], "search by uuid");
    assert_eq!(q(&[("from", "2"), ("to", "4")]), ["b2"]);
    assert_eq!(q(&[("worker", "nobody")]), Vec::<String>::new());
    let idx = m.query_indices(&Filter::default(), &Sort::default());
    assert_eq!(idx, [1, 2, 0]);

    let f = Filter::from_pairs([
        ("state", "SUCCESS"),
        ("q", "x y"),
        ("from", "1.5"),
        ("root", "a1"),
    ]);
    let pairs = f.to_pairs();
    let back = Filter::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
    assert_eq!(back, f);
}

#[test]
fn a_workflow_filter_keeps_its_root_and_members() {
    let mut m = Model::default();
    let mut member = row("m1", TaskState::Failure, 2.0);
    member.root_id = Some("r0".into());
    let mut other = row("o1", TaskState::Success, 3.0);
    other.root_id = Some("o1".into());
    m.apply(snapshot(vec![
        row("r0", TaskState::Success, 1.0),
        member,
        other,
    ]));
    let f = Filter::from_pairs([("root", "r0")]);
    let ids: Vec<String> = m
        .query(&f, &Sort::default())
        .iter()
        .map(|t| t.uuid.clone())
        .collect();
    assert_eq!(ids, ["m1", "r0"]);
    let history = f.history_params(0, 50).unwrap();
    assert!(
        history.contains(&("root_id", "r0".to_owned())),
        "{history:?}"
    );
}

#[test]
fn sorting_by_any_column_and_toggling() {
    let mut m = Model::default();
    let mut a = row("a", TaskState::Success, 1.0);
    a.runtime = Some(3.0);
    let mut b = row("b", TaskState::Success, 2.0);
    b.runtime = Some(1.0);
    m.apply(snapshot(vec![a, b, row("c", TaskState::Started, 3.0)]));
    let ids = |s: Sort| {
        m.query(&Filter::default(), &s)
            .iter()
            .map(|t| t.uuid.as_str())
            .collect::<String>()
    };
    assert_eq!(ids(Sort::parse("-runtime")), "abc");
    assert_eq!(ids(Sort::parse("runtime")), "cba");
    assert_eq!(ids(Sort::parse("uuid")), "abc");
    assert_eq!(ids(Sort::parse("bogus")), "cba", "unknown: newest first");
    let s = Sort::parse("-name").toggled(Column::Name);
    assert_eq!(s.to_param(), "name");
    assert_eq!(s.toggled(Column::Runtime).to_param(), "-runtime");
}

#[test]
fn backlog_and_children() {
    let mut m = Model::default();
    let mut child = row("kid", TaskState::Received, 2.0);
    child.parent_id = Some("a".into());
    child.queue = Some("high".into());
    m.apply(snapshot(vec![
        row("a", TaskState::Started, 1.0),
        child,
        row("z", TaskState::Success, 1.0),
    ]));
    assert_eq!(
        m.queue_backlog(),
        [("celery".to_owned(), 1), ("high".to_owned(), 1)]
    );
    assert_eq!(m.children("a")[0].uuid, "kid");
}

#[test]
fn humane_times() {
    assert_eq!(relative(0.2), "just now");
    assert_eq!(relative(5.0), "5 s ago");
    assert_eq!(relative(125.0), "2 min ago");
    assert_eq!(relative(-7200.0), "in 2 h");
    assert_eq!(duration(0.25), "250 ms");
    assert_eq!(duration(2.5), "2.50 s");
    assert_eq!(duration(200.0), "3 min 20 s");
}

#[test]
fn flower_minutes_are_utc_dates() {
    assert_eq!(flower_minute(0.0), "1970-01-01 00:00");
    // The example of the server's own tests.
    assert_eq!(flower_minute(1_795_425_060.0), "2026-11-23 09:11");
    assert_eq!(flower_minute(951_782_400.0 + 59.9), "2000-02-29 00:00");
    assert_eq!(flower_minute(1_704_424_020.0), "2024-01-05 03:07");
}

#[test]
fn history_params_carry_the_filters_as_the_api_names_them() {
    let f = Filter::from_pairs([
        ("state", "FAILURE"),
        ("name", "tasks.add"),
        ("worker", "w1@h"),
        ("q", "say \"hi\""),
        ("from", "1795425060"),
    ]);
    let p = f.history_params(100, 50).unwrap();
    let get = |k: &str| p.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("limit"), Some("50"));
    assert_eq!(get("offset"), Some("100"));
    assert_eq!(get("state"), Some("FAILURE"));
    assert_eq!(get("taskname"), Some("tasks.add"));
    assert_eq!(get("workername"), Some("w1@h"));
    assert_eq!(get("search"), Some("\"say \\\"hi\\\"\""));
    assert_eq!(get("received_start"), Some("2026-11-23 09:11"));
    assert_eq!(get("received_end"), None);
    let short = Filter::from_pairs([("q", "ab")]);
    assert!(short
        .history_params(0, 10)
        .unwrap_err()
        .contains("3 characters"));
}

#[test]
fn a_listing_keeps_the_servers_order() {
    let task = |id: &str| {
        serde_json::json!({"uuid": id, "name": "tasks.add", "state": "SUCCESS", "received": null,
            "sent": null, "started": null, "rejected": null, "succeeded": 2.0, "failed": null,
            "retried": null, "revoked": null, "args": "(1, 2)", "kwargs": "{}", "eta": null,
            "expires": null, "retries": 0, "result": "3", "exception": null, "timestamp": 2.0,
            "runtime": 0.1, "traceback": null, "exchange": null, "routing_key": null, "clock": 1,
            "client": null, "root": null, "root_id": null, "parent": null, "parent_id": null,
            "children": [], "worker": "w1@h"})
    };
    let body = format!(r#"{{"zz": {}, "aa": {}}}"#, task("zz"), task("aa"));
    let tasks = parse_listing(&body).unwrap();
    let ids: Vec<&str> = tasks.iter().map(|t| t.uuid.as_str()).collect();
    assert_eq!(ids, ["zz", "aa"]);
    assert!(parse_listing("[]").is_err());
}
