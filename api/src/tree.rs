//! `GET /api/task/{id}/tree`: a task's workflow as Celery's parent and root
//! links describe it.

use serde::{Deserialize, Serialize};

use crate::TaskState;

/// The workflow a task belongs to, rooted where its `root_id` points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowTree {
    /// The task asked about.
    pub task_id: String,
    /// The workflow's root (the task's `root_id`, else its oldest retained
    /// ancestor).
    pub root_id: String,
    /// Whether the root task itself is known; when it is not, its known
    /// descendants are listed as top-level nodes.
    pub root_known: bool,
    /// Depth-first, parents before their children, siblings oldest first:
    /// drawn top to bottom and indented by `depth`, this is the tree.
    pub nodes: Vec<TreeNode>,
    /// More tasks belong to the workflow than `limit` allowed.
    pub truncated: bool,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeNode {
    pub uuid: String,
    pub name: Option<String>,
    pub state: TaskState,
    pub worker: Option<String>,
    /// Seconds.
    pub runtime: Option<f64>,
    /// Unix seconds: sent, else received, else the state's timestamp.
    pub created: Option<f64>,
    /// The parent, when it is part of this tree (`None` for top-level
    /// nodes, including those whose parent is not known).
    pub parent_id: Option<String>,
    pub depth: u32,
    /// This task or one below it failed (FAILURE or LOST): the branch to
    /// open first.
    pub failed_below: bool,
}
