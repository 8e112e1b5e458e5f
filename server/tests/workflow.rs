//! The workflow tree (`GET /api/task/{id}/tree`) and the tasks of one
//! workflow (`/api/tasks?root_id=`) with a real worker running a real canvas:
//! chain(add, chord([add, add, add], tsum), fail) on the database result
//! backend (a SQLite file of the test's own), which Celery completes through
//! its `chord_unlock` task.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{eventually, Celeriac, TestVhost, Worker, WorkerOpts};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_chords_tree_holds_its_header_unlock_body_and_failed_branch() {
    let vhost = TestVhost::new("workflow-tree");
    let results = vhost.log_dir.join("results.sqlite");
    vhost.set_celery_env(
        "CELERY_RESULT_BACKEND",
        &format!("db+sqlite:///{}", results.display()),
    );
    let _worker = Worker::start(&vhost, "wf1@test", WorkerOpts::default());
    let c = Celeriac::start(&vhost, &[]);
    c.wait_readyz(200, WAIT);

    let flow = vhost.start_workflow("chord");
    let (root, last) = (
        flow["root"].as_str().unwrap(),
        flow["last"].as_str().unwrap(),
    );
    c.wait_task_state(last, "FAILURE", WAIT);

    // Every task of the workflow, whichever one is asked about.
    let tree = eventually("the whole workflow in the tree", WAIT, || {
        let t = c.get_json(&format!("/api/task/{last}/tree"));
        (t["nodes"].as_array().map_or(0, Vec::len) == 7).then_some(t)
    });
    assert_eq!(tree["root_id"], root);
    assert_eq!(tree["root_known"], true);
    assert_eq!(tree["truncated"], false);
    let nodes = tree["nodes"].as_array().unwrap();
    let line = |n: &Value| {
        format!(
            "{}{} {}{}",
            "  ".repeat(n["depth"].as_u64().unwrap() as usize),
            n["name"].as_str().unwrap_or("?"),
            n["state"].as_str().unwrap_or("?"),
            if n["failed_below"] == true { " !" } else { "" }
        )
    };
    let drawn: Vec<String> = nodes.iter().map(line).collect();
    // Siblings are ordered by when they were sent; the header tasks and
    // `chord_unlock` go out together, so their order among themselves is
    // not fixed: compare as sets per depth, and the failed path exactly.
    assert_eq!(drawn[0], "tasks.add SUCCESS !", "{drawn:#?}");
    let mut under_root: Vec<&str> = drawn
        .iter()
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .map(String::as_str)
        .collect();
    under_root.sort();
    assert_eq!(
        under_root,
        [
            "  celery.chord_unlock SUCCESS !",
            "  tasks.add SUCCESS",
            "  tasks.add SUCCESS",
            "  tasks.add SUCCESS",
        ],
        "{drawn:#?}"
    );
    let unlock = drawn
        .iter()
        .position(|l| l.contains("chord_unlock"))
        .unwrap();
    assert_eq!(drawn[unlock + 1], "    tasks.tsum SUCCESS !", "{drawn:#?}");
    assert_eq!(
        drawn[unlock + 2],
        "      tasks.fail FAILURE !",
        "{drawn:#?}"
    );
    assert_eq!(nodes[unlock + 2]["uuid"], last);
    assert_eq!(nodes[unlock + 2]["worker"], "wf1@test");
    assert!(nodes[unlock + 1]["runtime"].as_f64().is_some());

    // The same tree from the root and from a header task.
    let header = nodes
        .iter()
        .find(|n| n["name"] == "tasks.add" && n["depth"] == 1)
        .unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    for from in [root, header.as_str()] {
        let t = c.get_json(&format!("/api/task/{from}/tree"));
        assert_eq!(t["nodes"], tree["nodes"], "from {from}");
        assert_eq!(t["task_id"], from);
    }

    // The tasks page's workflow filter, through Flower's listing.
    let listed = c.get_json(&format!("/api/tasks?root_id={root}"));
    let listed = listed.as_object().expect("Flower's dict by uuid");
    assert_eq!(listed.len(), 7, "{listed:?}");
    let failed = c.get_json(&format!("/api/tasks?root_id={root}&state=FAILURE"));
    assert_eq!(
        failed.as_object().unwrap().keys().collect::<Vec<_>>(),
        [last]
    );

    // A bound on the answer keeps the task asked about.
    let small = c.get_json(&format!("/api/task/{last}/tree?limit=2"));
    assert_eq!(small["truncated"], true);
    assert!(small["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["uuid"] == last));

    // Errors a script can read.
    let (status, body) = c.get(&format!("/api/task/{last}/tree?limit=lots"));
    assert_eq!(status, 400, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["parameter"], "limit");
    let (status, body) = c.get("/api/task/00000000-0000-4000-8000-000000000000/tree");
    assert_eq!(status, 404, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("Unknown task"));
}
