//! Settings for submitting tasks.

/// Celery's `task_default_queue`: where a task goes when nothing else says.
pub const DEFAULT_QUEUE: &str = "celery";

#[derive(Debug, Clone, clap::Args)]
pub struct SubmitArgs {
    /// Celery's `task_default_queue`: the queue of tasks submitted without
    /// `queue`/`exchange`, and of re-runs whose original route is unknown.
    #[arg(long, env = "CELERIAC_TASK_QUEUE", default_value = DEFAULT_QUEUE,
          value_name = "QUEUE")]
    pub task_queue: String,
}
