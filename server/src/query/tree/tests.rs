//! The shapes below are those Celery 5.7 produced for real canvases (a chain,
//! a chain into a chord on the database backend with `chord_unlock`, a chord
//! on the Redis backend, a group applied from a client), replayed with short
//! ids.

use super::*;
use crate::events::fixtures::decode;
use crate::state::Limits;

struct Sent<'a> {
    id: &'a str,
    name: &'a str,
    root: &'a str,
    parent: Option<&'a str>,
    at: f64,
}

fn id(short: &str) -> String {
    format!("{short:0>8}-0000-4000-8000-000000000000")
}

fn apply(state: &mut State, body: String, at: f64) {
    for e in decode(&body) {
        state.apply(&e, at);
    }
}

/// `task-sent` and `task-received` for each, then the given outcomes.
fn cluster(tasks: &[Sent<'_>], outcomes: &[(&str, &str, f64)]) -> State {
    let mut state = State::new(Limits::default());
    for t in tasks {
        let parent = t
            .parent
            .map_or("null".to_owned(), |p| format!("\"{}\"", id(p)));
        for (kind, host) in [("task-sent", "client@h"), ("task-received", "w1@h")] {
            let body = format!(
                r#"{{"type":"{kind}","uuid":"{}","name":"{}","root_id":"{}","parent_id":{parent},"hostname":"{host}","timestamp":{},"args":"()","kwargs":"{{}}"}}"#,
                id(t.id),
                t.name,
                id(t.root),
                t.at
            );
            apply(&mut state, body, t.at);
        }
    }
    for &(short, kind, at) in outcomes {
        let extra = if kind == "task-failed" {
            r#","exception":"ValueError('x')","traceback":"Traceback""#
        } else {
            r#","result":"1","runtime":0.5"#
        };
        let body = format!(
            r#"{{"type":"{kind}","uuid":"{}","hostname":"w1@h","timestamp":{at}{extra}}}"#,
            id(short)
        );
        apply(&mut state, body, at);
    }
    state
}

/// `depth name-or-id state` per node, with `!` on failed branches.
fn render(tree: &WorkflowTree) -> Vec<String> {
    tree.nodes
        .iter()
        .map(|n| {
            let short = n.uuid[..8].trim_start_matches('0').to_owned();
            format!(
                "{}{} {}{}",
                "  ".repeat(n.depth as usize),
                short,
                n.state.as_str(),
                if n.failed_below { " !" } else { "" }
            )
        })
        .collect()
}

fn s<'a>(id: &'a str, name: &'a str, root: &'a str, parent: Option<&'a str>, at: f64) -> Sent<'a> {
    Sent {
        id,
        name,
        root,
        parent,
        at,
    }
}

#[test]
fn a_chain_is_a_line_from_any_of_its_tasks() {
    let state = cluster(
        &[
            s("a1", "add", "a1", None, 1.0),
            s("a2", "add", "a1", Some("a1"), 2.0),
            s("a3", "add", "a1", Some("a2"), 3.0),
        ],
        &[("a1", "task-succeeded", 1.5), ("a2", "task-failed", 2.5)],
    );
    for from in ["a1", "a3"] {
        let tree = workflow_tree(&state, &id(from), DEFAULT_LIMIT).expect("retained");
        assert_eq!(tree.root_id, id("a1"));
        assert!(tree.root_known);
        assert_eq!(
            render(&tree),
            ["a1 SUCCESS !", "  a2 FAILURE !", "    a3 RECEIVED"],
            "from {from}"
        );
    }
}

#[test]
fn a_chord_after_a_task_holds_its_header_unlock_and_body() {
    // chain(add.si(1, 1), chord([add.si(0, 0), add.si(1, 1)], tsum.s()), add.s(5))
    // on the database backend: the headers and `chord_unlock` are children
    // of the first task, the body a child of `chord_unlock`, the last task a
    // child of the body.
    let state = cluster(
        &[
            s("f1", "add", "f1", None, 1.0),
            s("c0", "celery.chord_unlock", "f1", Some("f1"), 2.0),
            s("h1", "add", "f1", Some("f1"), 2.1),
            s("h2", "add", "f1", Some("f1"), 2.2),
            s("b1", "tsum", "f1", Some("c0"), 3.0),
            s("l1", "add", "f1", Some("b1"), 4.0),
        ],
        &[
            ("f1", "task-succeeded", 1.5),
            ("h1", "task-succeeded", 2.5),
            ("h2", "task-succeeded", 2.6),
            ("c0", "task-succeeded", 3.1),
            ("b1", "task-succeeded", 3.5),
            ("l1", "task-succeeded", 4.5),
        ],
    );
    let tree = workflow_tree(&state, &id("h2"), DEFAULT_LIMIT).expect("retained");
    assert_eq!(
        render(&tree),
        [
            "f1 SUCCESS",
            "  c0 SUCCESS",
            "    b1 SUCCESS",
            "      l1 SUCCESS",
            "  h1 SUCCESS",
            "  h2 SUCCESS",
        ]
    );
    assert_eq!(tree.nodes[1].parent_id.as_deref(), Some(id("f1").as_str()));
    assert_eq!(tree.nodes[0].parent_id, None);
    assert_eq!(tree.nodes[2].name.as_deref(), Some("tsum"));
}

#[test]
fn a_client_applied_chord_shows_its_body_under_the_last_header() {
    // On the Redis backend the header task that completes last sends the
    // body, which takes that task as parent and root; the other headers are
    // roots of their own (nothing in the events links them).
    let state = cluster(
        &[
            s("h0", "add", "h0", None, 1.0),
            s("h1", "add", "h1", None, 1.1),
            s("h2", "add", "h2", None, 1.2),
            s("b0", "tsum", "h2", Some("h2"), 2.0),
        ],
        &[("b0", "task-failed", 2.5)],
    );
    let tree = workflow_tree(&state, &id("b0"), DEFAULT_LIMIT).expect("retained");
    assert_eq!(render(&tree), ["h2 RECEIVED !", "  b0 FAILURE !"]);
    let alone = workflow_tree(&state, &id("h0"), DEFAULT_LIMIT).expect("retained");
    assert_eq!(render(&alone), ["h0 RECEIVED"]);
}

#[test]
fn an_unknown_root_leaves_its_known_descendants_on_top() {
    let state = cluster(
        &[
            s("k1", "add", "gone", Some("gone"), 2.0),
            s("k2", "add", "gone", Some("k1"), 3.0),
            s("k3", "add", "gone", Some("gone"), 2.5),
        ],
        &[],
    );
    let tree = workflow_tree(&state, &id("k2"), DEFAULT_LIMIT).expect("retained");
    assert!(!tree.root_known);
    assert_eq!(tree.root_id, id("gone"));
    assert_eq!(
        render(&tree),
        ["k1 RECEIVED", "  k2 RECEIVED", "k3 RECEIVED"]
    );
}

#[test]
fn the_limit_bounds_the_answer_but_keeps_the_task_asked_about() {
    let mut tasks = vec![s("r0", "fan", "r0", None, 1.0)];
    let names: Vec<String> = (1..=50).map(|i| format!("c{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        tasks.push(s(n, "add", "r0", Some("r0"), 2.0 + i as f64));
    }
    let state = cluster(&tasks, &[]);
    let tree = workflow_tree(&state, &id("c50"), 10).expect("retained");
    assert!(tree.truncated);
    assert_eq!(tree.nodes.len(), 11);
    assert!(tree.nodes.iter().any(|n| n.uuid == id("c50")));
    let whole = workflow_tree(&state, &id("c50"), DEFAULT_LIMIT).expect("retained");
    assert!(!whole.truncated);
    assert_eq!(whole.nodes.len(), 51);
}

#[test]
fn a_cycle_of_parent_links_is_shown_once_and_ends() {
    // Only malformed input can make one; the answer must still end.
    let state = cluster(
        &[
            s("y1", "add", "y1", Some("y2"), 1.0),
            s("y2", "add", "y1", Some("y1"), 2.0),
        ],
        &[],
    );
    let tree = workflow_tree(&state, &id("y2"), DEFAULT_LIMIT).expect("retained");
    assert_eq!(tree.nodes.len(), 2);
    assert_eq!(render(&tree), ["y1 RECEIVED", "  y2 RECEIVED"]);
}

#[test]
fn an_unknown_task_has_no_tree() {
    let state = cluster(&[], &[]);
    assert!(workflow_tree(&state, &id("nope"), DEFAULT_LIMIT).is_none());
}
