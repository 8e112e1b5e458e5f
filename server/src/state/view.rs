//! Borrowed, read-only views of the model: what readers (HTTP, metrics,
//! queries) see. They never allocate; `to_api` builds the wire type when a
//! response needs it.

use api::TaskState;

/// One task, borrowed from the state. Field names match `api::Task`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskView<'a> {
    pub uuid: &'a str,
    pub name: Option<&'a str>,
    pub state: &'a TaskState,
    pub sent: Option<f64>,
    pub received: Option<f64>,
    pub started: Option<f64>,
    pub succeeded: Option<f64>,
    pub failed: Option<f64>,
    pub retried: Option<f64>,
    pub revoked: Option<f64>,
    pub rejected: Option<f64>,
    /// Timestamp of the event that last set the state (Flower's `timestamp`).
    pub timestamp: Option<f64>,
    pub args: Option<&'a str>,
    pub kwargs: Option<&'a str>,
    pub eta: Option<&'a str>,
    pub expires: Option<&'a str>,
    pub retries: Option<i64>,
    pub result: Option<&'a str>,
    pub exception: Option<&'a str>,
    pub traceback: Option<&'a str>,
    pub runtime: Option<f64>,
    pub exchange: Option<&'a str>,
    pub routing_key: Option<&'a str>,
    pub queue: Option<&'a str>,
    pub clock: Option<u64>,
    /// Nodename of the producer that sent it (from `task-sent`).
    pub client: Option<&'a str>,
    /// Nodename of the worker that handled it.
    pub worker: Option<&'a str>,
    pub root_id: Option<&'a str>,
    pub parent_id: Option<&'a str>,
    /// `root_id` when that task is retained (Celery's lazy `root` lookup).
    pub root: Option<&'a str>,
    /// `parent_id` when that task is retained.
    pub parent: Option<&'a str>,
    /// Ids of known children (never the task itself).
    pub children: Vec<&'a str>,
}

impl<'a> TaskView<'a> {
    /// A view of a record that is not in memory (one read from history),
    /// so the same queries run over it.
    pub fn of_api(t: &'a api::Task) -> TaskView<'a> {
        let s = |x: &'a Option<String>| x.as_deref();
        TaskView {
            uuid: &t.uuid,
            name: s(&t.name),
            state: &t.state,
            sent: t.sent,
            received: t.received,
            started: t.started,
            succeeded: t.succeeded,
            failed: t.failed,
            retried: t.retried,
            revoked: t.revoked,
            rejected: t.rejected,
            timestamp: t.timestamp,
            args: s(&t.args),
            kwargs: s(&t.kwargs),
            eta: s(&t.eta),
            expires: s(&t.expires),
            retries: t.retries,
            result: s(&t.result),
            exception: s(&t.exception),
            traceback: s(&t.traceback),
            runtime: t.runtime,
            exchange: s(&t.exchange),
            routing_key: s(&t.routing_key),
            queue: s(&t.queue),
            clock: t.clock,
            client: s(&t.client),
            worker: s(&t.worker),
            root_id: s(&t.root_id),
            parent_id: s(&t.parent_id),
            root: s(&t.root),
            parent: s(&t.parent),
            // `to_api` lists a retried task among its own children.
            children: t
                .children
                .iter()
                .map(String::as_str)
                .filter(|c| *c != t.uuid)
                .collect(),
        }
    }

    /// `children` as Flower shows them: a retry re-sends the task with
    /// itself as parent, and Celery's state then lists the task among its
    /// own children. celeriac's links never do (a workflow tree would
    /// cycle), so the task is added here, last, as Flower's list has it.
    fn api_children(&self) -> Vec<String> {
        let mut children: Vec<String> = self.children.iter().map(|c| (*c).to_owned()).collect();
        if self.parent_id == Some(self.uuid) {
            children.push(self.uuid.to_owned());
        }
        children
    }

    /// Flower's `Task.as_dict()` shape.
    pub fn to_api(&self) -> api::Task {
        let s = |x: Option<&str>| x.map(str::to_owned);
        api::Task {
            uuid: self.uuid.to_owned(),
            name: s(self.name),
            state: self.state.clone(),
            received: self.received,
            sent: self.sent,
            started: self.started,
            rejected: self.rejected,
            succeeded: self.succeeded,
            failed: self.failed,
            retried: self.retried,
            revoked: self.revoked,
            args: s(self.args),
            kwargs: s(self.kwargs),
            eta: s(self.eta),
            expires: s(self.expires),
            retries: self.retries,
            result: s(self.result),
            exception: s(self.exception),
            timestamp: self.timestamp,
            runtime: self.runtime,
            traceback: s(self.traceback),
            exchange: s(self.exchange),
            routing_key: s(self.routing_key),
            clock: self.clock,
            client: s(self.client),
            root: s(self.root),
            root_id: s(self.root_id),
            parent: s(self.parent),
            parent_id: s(self.parent_id),
            children: self.api_children(),
            worker: s(self.worker),
            queue: s(self.queue),
        }
    }
}
