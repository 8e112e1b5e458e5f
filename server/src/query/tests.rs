use std::sync::LazyLock;

use api::TaskState;

use super::*;

static PROGRESS: LazyLock<TaskState> = LazyLock::new(|| TaskState::Custom("PROGRESS".into()));

const RETRY_ID: &str = "7f8ee671-ae87-4bb3-8f5d-3f20e02ab053";

/// A task with only the fields every test cares about; the rest are set with
/// struct update syntax.
fn task<'a>(
    uuid: &'a str,
    name: Option<&'a str>,
    state: &'a TaskState,
    received: Option<f64>,
    started: Option<f64>,
    timestamp: Option<f64>,
    worker: Option<&'a str>,
) -> TaskView<'a> {
    TaskView {
        uuid,
        name,
        state,
        sent: None,
        received,
        started,
        succeeded: None,
        failed: None,
        retried: None,
        revoked: None,
        rejected: None,
        timestamp,
        args: None,
        kwargs: None,
        eta: None,
        expires: None,
        retries: None,
        result: None,
        exception: None,
        traceback: None,
        runtime: None,
        exchange: None,
        routing_key: None,
        queue: None,
        clock: None,
        client: None,
        worker,
        root_id: None,
        parent_id: None,
        root: None,
        parent: None,
        children: Vec::new(),
    }
}

/// Default order (timestamp desc, then id desc):
/// t6 7f8ee671 t5 t3 t2 t1 t4 t8.
fn fixture() -> Vec<TaskView<'static>> {
    vec![
        TaskView {
            args: Some("(2, 3)"),
            kwargs: Some("{}"),
            result: Some("5"),
            ..task(
                "t1",
                Some("tasks.add"),
                &TaskState::Success,
                Some(100.0),
                Some(101.0),
                Some(102.0),
                Some("w1@vm"),
            )
        },
        TaskView {
            args: Some("('boom',)"),
            kwargs: Some("{}"),
            exception: Some("ValueError('kaput')"),
            ..task(
                "t2",
                Some("tasks.fail"),
                &TaskState::Failure,
                Some(110.0),
                Some(111.0),
                Some(112.0),
                Some("w1@vm"),
            )
        },
        TaskView {
            args: Some("(60,)"),
            kwargs: Some("{'x': 1, 'y': 99}"),
            ..task(
                "t3",
                Some("tasks.sleep"),
                &TaskState::Started,
                Some(120.0),
                Some(121.0),
                Some(121.0),
                Some("w2@vm"),
            )
        },
        // Only `task-sent` seen: nothing received, no worker.
        TaskView {
            args: Some("(1, 1)"),
            kwargs: Some("{}"),
            ..task(
                "t4",
                Some("tasks.add"),
                &TaskState::Pending,
                None,
                None,
                Some(90.0),
                None,
            )
        },
        // `task-received` missed: no name, no received.
        task(
            "t5",
            None,
            &TaskState::Started,
            None,
            Some(130.0),
            Some(130.0),
            Some("w2@vm"),
        ),
        TaskView {
            args: Some("()"),
            kwargs: Some("{'user': 'Alice', 'n': 100, 'tags': ['a', 'b']}"),
            result: Some("100"),
            ..task(
                "t6",
                Some("Tasks.Report"),
                &TaskState::Success,
                Some(140.0),
                Some(141.0),
                Some(142.0),
                Some("w2@vm"),
            )
        },
        // Same timestamp as t6: the id breaks the tie ("t6" > "7f8e...").
        TaskView {
            args: Some("('hello world',)"),
            kwargs: Some("{}"),
            ..task(
                RETRY_ID,
                Some("tasks.retry"),
                &TaskState::Retry,
                Some(105.0),
                None,
                Some(142.0),
                Some("w1@vm"),
            )
        },
        TaskView {
            args: Some("()"),
            kwargs: Some("{}"),
            ..task(
                "t8",
                Some("tasks.long"),
                &PROGRESS,
                Some(150.0),
                Some(151.0),
                None,
                Some("W3@VM"),
            )
        },
    ]
}

/// Runs `params` over the fixture; renders the page as ids (first uuid
/// group) or the error as `400 <parameter>: <message>`.
fn check(params: &[(&str, &str)], expect: &str) {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let got = match TaskQuery::from_params(&params) {
        Ok(query) => {
            let page = query.run(fixture().into_iter());
            let ids: Vec<&str> = page
                .iter()
                .map(|t| t.uuid.split('-').next().unwrap_or_default())
                .collect();
            ids.join(" ")
        }
        Err(e) => format!("400 {}: {}", e.parameter, e.message),
    };
    assert_eq!(got, expect, "params {params:?}");
}

const ALL: &str = "t6 7f8ee671 t5 t3 t2 t1 t4 t8";

#[test]
fn default_order_and_paging() {
    check(&[], ALL);
    check(&[("limit", "100")], ALL);
    check(&[("limit", "2")], "t6 7f8ee671");
    check(&[("limit", "2"), ("offset", "2")], "t5 t3");
    check(&[("offset", "6")], "t4 t8");
    check(&[("offset", "7"), ("limit", "5")], "t8");
    check(&[("offset", "8")], "");
    check(&[("offset", "20"), ("limit", "2")], "");
    check(&[("limit", "0")], "");
    check(&[("limit", " 2 ")], "t6 7f8ee671");
    check(&[("limit", "+2")], "t6 7f8ee671");
    check(&[("limit", "")], ALL);
    check(&[("offset", "")], ALL);
    // tornado's get_argument: the last value wins.
    check(&[("limit", "1"), ("limit", "3")], "t6 7f8ee671 t5");
    // Unknown parameters are ignored, as Flower does.
    check(&[("frobnicate", "yes"), ("started_start", "x")], ALL);
}

#[test]
fn bad_counts() {
    check(
        &[("limit", "abc")],
        "400 limit: Invalid value 'abc' for parameter 'limit': expected an integer",
    );
    check(
        &[("limit", "1.5")],
        "400 limit: Invalid value '1.5' for parameter 'limit': expected an integer",
    );
    check(
        &[("offset", "99999999999999999999999")],
        "400 offset: Invalid value '99999999999999999999999' for parameter 'offset': \
         expected a smaller integer",
    );
    // Long values are cut in the message.
    let long = "x".repeat(100);
    check(
        &[("limit", &long)],
        &format!(
            "400 limit: Invalid value '{}...' for parameter 'limit': expected an integer",
            "x".repeat(64)
        ),
    );
    // Huge but valid: must not try to reserve that much.
    check(&[("limit", &usize::MAX.to_string())], ALL);
    check(&[("limit", &usize::MAX.to_string()), ("offset", "7")], "t8");
}

/// Flower 2.2 clamps negative values: `offset = max(offset, 0)` and
/// `end = offset + max(limit, 0)`.
#[test]
fn negative_counts_are_clamped_as_flower_does() {
    check(&[("offset", "-3")], ALL);
    check(&[("offset", "-3"), ("limit", "2")], "t6 7f8ee671");
    // A negative limit is an empty page, whatever the offset.
    check(&[("limit", "-1")], "");
    check(&[("limit", "-10"), ("offset", "6")], "");
    check(&[("limit", "-1"), ("offset", "-6")], "");
    check(&[("limit", &format!("-{}", usize::MAX))], "");
}

#[test]
fn sorting() {
    check(&[("sort_by", "received")], "t4 t5 t1 7f8ee671 t2 t3 t6 t8");
    check(&[("sort_by", "-received")], "t8 t6 t3 t2 7f8ee671 t1 t5 t4");
    check(&[("sort_by", "started")], "7f8ee671 t4 t1 t2 t3 t5 t6 t8");
    check(&[("sort_by", "-started")], "t8 t6 t5 t3 t2 t1 t4 7f8ee671");
    // Case-insensitive: "Tasks.Report" sorts between long and retry.
    check(&[("sort_by", "name")], "t5 t1 t4 t2 t8 t6 7f8ee671 t3");
    check(&[("sort_by", "-name")], "t3 7f8ee671 t6 t8 t2 t4 t1 t5");
    check(&[("sort_by", "--name")], "t3 7f8ee671 t6 t8 t2 t4 t1 t5");
    check(&[("sort_by", "state")], "t2 t4 t8 7f8ee671 t3 t5 t1 t6");
    check(&[("sort_by", "-state")], "t6 t1 t5 t3 7f8ee671 t8 t4 t2");
    check(&[("sort_by", "")], ALL);
    // Paging applies after sorting.
    check(
        &[("sort_by", "received"), ("limit", "3"), ("offset", "1")],
        "t5 t1 7f8ee671",
    );
    check(&[("sort_by", "-name"), ("limit", "2")], "t3 7f8ee671");
    let bad = "400 sort_by: Invalid value '{}' for parameter 'sort_by': expected one of name, \
               state, received, started, optionally prefixed with '-' for descending order";
    for value in ["timestamp", "Name", "-", "+name", "uuid"] {
        check(&[("sort_by", value)], &bad.replace("{}", value));
    }
}

#[test]
fn filters() {
    check(&[("workername", "w1@vm")], "7f8ee671 t2 t1");
    check(&[("workername", "w3@vm")], "t8");
    check(&[("workername", "w1")], "");
    check(&[("workername", "All")], ALL);
    check(&[("workername", "")], ALL);
    check(&[("taskname", "tasks.add")], "t1 t4");
    check(&[("taskname", "TASKS.REPORT")], "t6");
    check(&[("taskname", "tasks")], "");
    check(&[("taskname", "All")], ALL);
    check(&[("state", "STARTED")], "t5 t3");
    check(&[("state", "started")], "t5 t3");
    check(&[("state", "Progress")], "t8");
    check(&[("state", "All")], ALL);
    // Only the exact word `All` disables a filter, as in Flower.
    check(&[("state", "all")], "");
    check(&[("workername", "w2@vm"), ("state", "SUCCESS")], "t6");
    check(
        &[("workername", "w2@vm"), ("sort_by", "received")],
        "t5 t3 t6",
    );
}

#[test]
fn received_range() {
    // 1970-01-01 00:02 UTC is 120 s; tasks without `received` (t4, t5) stay.
    check(&[("received_start", "1970-01-01 00:02")], "t6 t5 t3 t4 t8");
    check(
        &[("received_end", "1970-01-01 00:02")],
        "7f8ee671 t5 t3 t2 t1 t4",
    );
    check(
        &[
            ("received_start", "1970-01-01 00:02"),
            ("received_end", "1970-01-01 00:02"),
        ],
        "t5 t3 t4",
    );
    check(
        &[
            ("received_start", "1970-1-1 0:2"),
            ("received_end", "1970-01-01 00:01"),
        ],
        "t5 t4",
    );
    check(&[("received_start", "")], ALL);
    check(&[("received_start", "2026-11-23 09:11")], "t5 t4");
    for (param, value) in [
        ("received_start", "yesterday"),
        ("received_end", "2024-01-05T10:07"),
        ("received_end", "2024-01-05 10:07:00"),
        ("received_start", "2024-13-05 10:07"),
        ("received_start", "1700000000"),
    ] {
        check(
            &[(param, value)],
            &format!(
                "400 {param}: Invalid value '{value}' for parameter '{param}': \
                 expected a UTC date and time as 'YYYY-MM-DD HH:MM'"
            ),
        );
    }
}

#[test]
fn dates_are_utc() {
    let q = |v: &str| {
        TaskQuery::from_params(&[("received_start".to_string(), v.to_string())])
            .map(|q| q.received_start)
    };
    assert_eq!(q("2026-11-23 09:11"), Ok(Some(1_795_425_060.0)));
    assert_eq!(q("2024-1-5 3:7"), Ok(Some(1_704_424_020.0)));
}

#[test]
fn search() {
    let s = |q: &'static str| [("search", q)];
    check(&s("boom"), "t2");
    // Beyond Flower, which does not: a bare term searches the exception
    // and traceback too (what a post-mortem looks for).
    check(&s("kaput"), "t2");
    check(&s("result:kaput"), "");
    check(&s("result:100"), "t6");
    check(&s("100"), "t6");
    check(&s("kwargs:y=99"), "t3");
    check(&s("kwargs:y=9"), "");
    check(&s("\"kwargs:Y = 99\""), "t3");
    check(&s("kwargs:user=alice"), "t6");
    check(&s("kwargs:user='Alice'"), "t6");
    check(&s("kwargs:n=100"), "t6");
    check(&s("kwargs:n='100'"), "");
    check(&s(r#"kwargs:"tags=['a', 'b']""#), "t6");
    check(&s("kwargs:'x'"), "t3");
    check(&s("state:FAILURE OR state:STARTED"), "t5 t3 t2");
    check(&s("state:progress"), "t8");
    check(&s("state:START"), "");
    check(&s("7f8ee671"), "7f8ee671");
    check(&s("\"hello world\""), "7f8ee671");
    check(&s("hello world"), "7f8ee671");
    check(&s("\"world hello\""), "");
    check(&s("(state:SUCCESS OR state:FAILURE) w1@vm"), "t2 t1");
    check(&s("tasks.add OR sleep"), "t3 t1 t4");
    check(&s("success"), "t6 t1");
    check(&s("progress"), "t8");
    check(&s("name:tasks"), "t6 7f8ee671 t3 t2 t1 t4 t8");
    check(&s("NAME:report"), "t6");
    check(&s("worker:W2@"), "t6 t5 t3");
    check(&s("args:boom"), "t2");
    check(&s("args:hello"), "7f8ee671");
    check(&s("result:hello"), "");
    check(&s(""), ALL);
    check(&[("search", "boom"), ("state", "SUCCESS")], "");
    check(
        &[("search", "tasks"), ("sort_by", "name"), ("limit", "3")],
        "t1 t4 t2",
    );
}

#[test]
fn search_errors() {
    let s = |q: &'static str| [("search", q)];
    check(
        &s("ab"),
        "400 search: Substring search terms must contain at least 3 characters at position 0.",
    );
    check(
        &s("boom x"),
        "400 search: Substring search terms must contain at least 3 characters at position 5.",
    );
    check(
        &s("kwargs:x"),
        "400 search: Substring search terms must contain at least 3 characters at position 0.",
    );
    check(
        &s("NOT boom"),
        "400 search: NOT is not supported at position 0.",
    );
    check(
        &s("-boom"),
        "400 search: Negation with '-' is not supported at position 0.",
    );
    check(
        &s("(boom"),
        "400 search: Missing closing parenthesis at position 0.",
    );
    check(
        &s("((((((boom))))))"),
        "400 search: Query nesting exceeds 5 levels at position 5.",
    );
}

/// Deterministic tasks with many ties and missing values, to compare the
/// bounded-heap path (with a limit) against a full sort (without one).
#[test]
fn heap_page_equals_slice_of_full_sort() {
    const NAMES: [Option<&str>; 4] = [Some("a.x"), Some("A.y"), None, Some("b")];
    static STATES: [TaskState; 3] = [TaskState::Success, TaskState::Failure, TaskState::Started];
    let ids: Vec<String> = (0..300)
        .map(|i| format!("{:08x}", i * 2_654_435_761u64 % 997))
        .collect();
    let mut rng = 12345u64;
    let mut next = move |n: u64| {
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (rng >> 33) % n
    };
    let mut tasks = Vec::new();
    for id in &ids {
        let maybe = |v: u64| (v > 0).then_some(v as f64);
        tasks.push(task(
            id,
            NAMES[next(4) as usize],
            &STATES[next(3) as usize],
            maybe(next(20)),
            maybe(next(20)),
            maybe(next(10)),
            None,
        ));
    }
    for sort in [
        "",
        "name",
        "-name",
        "state",
        "-state",
        "received",
        "-received",
        "started",
        "-started",
    ] {
        let full = TaskQuery::from_params(&[("sort_by".into(), sort.into())])
            .map(|q| q.run(tasks.iter().cloned()))
            .map(|p| p.iter().map(|t| t.uuid).collect::<Vec<_>>());
        let Ok(full) = full else {
            panic!("sort {sort:?} rejected");
        };
        assert_eq!(full.len(), tasks.len());
        for (offset, limit) in [(0, 1), (0, 10), (5, 10), (290, 20), (0, 300), (100, 0)] {
            let params = [
                ("sort_by".to_string(), sort.to_string()),
                ("offset".to_string(), offset.to_string()),
                ("limit".to_string(), limit.to_string()),
            ];
            let page: Vec<&str> = match TaskQuery::from_params(&params) {
                Ok(q) => q
                    .run(tasks.iter().cloned())
                    .iter()
                    .map(|t| t.uuid)
                    .collect(),
                Err(e) => panic!("{e}"),
            };
            let end = (offset + limit).min(full.len());
            let start = offset.min(end);
            assert_eq!(
                page,
                full[start..end],
                "sort {sort:?} offset {offset} limit {limit}"
            );
        }
    }
}

#[test]
fn a_workflow_is_its_root_and_the_tasks_naming_it() {
    let query = |pairs: &[(&str, &str)]| {
        let params: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TaskQuery::from_params(&params).unwrap()
    };
    let mut tasks = fixture();
    for t in &mut tasks {
        if matches!(t.uuid, "t2" | "t5" | "t8") {
            t.root_id = Some("t1");
        }
    }
    let ids = |q: &TaskQuery| -> Vec<&str> {
        q.run(tasks.clone().into_iter())
            .iter()
            .map(|t| t.uuid)
            .collect()
    };
    assert_eq!(ids(&query(&[("root_id", "t1")])), ["t5", "t2", "t1", "t8"]);
    assert_eq!(
        ids(&query(&[("root_id", "t1"), ("state", "STARTED")])),
        ["t5"]
    );
    assert_eq!(ids(&query(&[("root_id", "t3")])), ["t3"]);
    assert!(ids(&query(&[("root_id", "nobody")])).is_empty());
    assert_eq!(ids(&query(&[("root_id", "")])).len(), 8);
}
