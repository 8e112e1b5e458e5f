//! A task's workflow as a tree (`GET /api/task/{id}/tree`), from the parent
//! and root links Celery puts in task messages (docs/celery-protocol.md,
//! "Workflows"). Pure: it reads the state and builds the answer.
//!
//! Celery links chains (each task's parent is the previous one) and
//! everything a task starts (its children, including chord headers, the
//! chord's `chord_unlock` and body). It does not link the members of a
//! group or chord header applied straight from a client: each is its own
//! root and events carry no group id, so such a workflow shows as separate
//! trees — the body of a chord sits under the header task that completed
//! it last.

use std::collections::HashMap;

use api::tree::{TreeNode, WorkflowTree};
use api::TaskState;

use crate::state::{State, TaskView, LOST};

/// Nodes answered when the request does not say.
pub const DEFAULT_LIMIT: usize = 1_000;
/// Most nodes one answer may hold.
pub const MAX_LIMIT: usize = 10_000;

/// The workflow of task `id`, or `None` when the task is not retained.
pub fn workflow_tree(state: &State, id: &str, limit: usize) -> Option<WorkflowTree> {
    let task = state.task(id)?;
    let root = root_of(state, &task);
    let (mut members, truncated) = state.workflow(&root, limit);
    // The task asked about is always in its own answer, even past the limit.
    if !members.iter().any(|m| m.uuid == id) {
        members.push(task);
    }
    let root_known = members.iter().any(|m| m.uuid == root);
    Some(WorkflowTree {
        task_id: id.to_owned(),
        root_id: root,
        root_known,
        nodes: arrange(&members),
        truncated,
        limit,
    })
}

/// The task's `root_id`; without one (a client before message protocol 2),
/// the oldest ancestor reachable through retained parents.
fn root_of(state: &State, task: &TaskView<'_>) -> String {
    if let Some(root) = task.root_id {
        return root.to_owned();
    }
    let mut top = task.uuid.to_owned();
    let mut hops = 0;
    while let Some(parent) = state.task(&top).and_then(|t| t.parent.map(str::to_owned)) {
        hops += 1;
        // A cycle of parent links (only malformed input makes one) ends here.
        if parent == task.uuid || hops > MAX_LIMIT {
            break;
        }
        top = parent;
    }
    top
}

/// When a task entered the workflow, for ordering siblings.
fn created(t: &TaskView<'_>) -> Option<f64> {
    t.sent.or(t.received).or(t.started).or(t.timestamp)
}

fn failed(state: &TaskState) -> bool {
    *state == TaskState::Failure || matches!(state, TaskState::Custom(s) if s == LOST)
}

/// Depth-first order with depths and each branch's failure mark.
pub(crate) fn arrange(members: &[TaskView<'_>]) -> Vec<TreeNode> {
    let index: HashMap<&str, usize> = members
        .iter()
        .enumerate()
        .map(|(i, t)| (t.uuid, i))
        .collect();
    let parent_of = |i: usize| {
        members[i]
            .parent_id
            .and_then(|p| index.get(p).copied())
            .filter(|&p| p != i)
    };
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); members.len()];
    let mut tops = Vec::new();
    for i in 0..members.len() {
        match parent_of(i) {
            Some(p) => children[p].push(i),
            None => tops.push(i),
        }
    }
    let order = |a: &usize, b: &usize| {
        let key = |i: usize| created(&members[i]).unwrap_or(f64::INFINITY);
        key(*a)
            .total_cmp(&key(*b))
            .then_with(|| members[*a].uuid.cmp(members[*b].uuid))
    };
    tops.sort_by(order);
    for c in &mut children {
        c.sort_by(order);
    }

    let mut placed = vec![false; members.len()];
    let mut out: Vec<(usize, u32, Option<usize>)> = Vec::with_capacity(members.len());
    let mut walk = |start: usize, out: &mut Vec<(usize, u32, Option<usize>)>| {
        let mut stack = vec![(start, 0u32, None)];
        while let Some((i, depth, parent)) = stack.pop() {
            if std::mem::replace(&mut placed[i], true) {
                continue;
            }
            out.push((i, depth, parent));
            for &c in children[i].iter().rev() {
                stack.push((c, depth + 1, Some(i)));
            }
        }
    };
    for &t in &tops {
        walk(t, &mut out);
    }
    // Members on a cycle of parent links have no top; each such cycle is
    // entered once at its oldest member so no task is left out.
    let mut rest: Vec<usize> = (0..members.len()).collect();
    rest.sort_by(order);
    for i in rest {
        // A placed member is skipped by the walk itself.
        walk(i, &mut out);
    }

    // A branch failed if any task in it did: children come after their
    // parent, so one backwards pass carries the marks up.
    let mut failed_below: Vec<bool> = members.iter().map(|t| failed(t.state)).collect();
    for &(i, _, parent) in out.iter().rev() {
        if let Some(p) = parent {
            if failed_below[i] {
                failed_below[p] = true;
            }
        }
    }
    out.into_iter()
        .map(|(i, depth, parent)| {
            let t = &members[i];
            TreeNode {
                uuid: t.uuid.to_owned(),
                name: t.name.map(str::to_owned),
                state: t.state.clone(),
                worker: t.worker.map(str::to_owned),
                runtime: t.runtime,
                created: created(t),
                parent_id: parent.map(|p| members[p].uuid.to_owned()),
                depth,
                failed_below: failed_below[i],
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
