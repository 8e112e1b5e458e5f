//! Settings of the Prometheus and statsd output.

use clap::builder::TypedValueParser;
use clap::ArgAction;

use super::buckets::{parse_buckets, Buckets};

pub use crate::state::DEFAULT_MAX_TASK_NAMES;
pub const DEFAULT_STATSD_PREFIX: &str = "celery";

#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Distinct task names with aggregates of their own (metrics, the
    /// dashboard's task types, `/api/task/types`), the first seen; later
    /// names are counted together as `name="other"`.
    #[arg(long, env = "CELERIAC_MAX_TASK_NAMES", default_value_t = DEFAULT_MAX_TASK_NAMES,
          value_parser = clap::value_parser!(u64).range(1..).map(|v| v as usize))]
    pub max_task_names: usize,

    /// Upper bounds (seconds, ascending) of `celery_task_runtime` (and the
    /// dashboard's and the alerts' runtime quantiles); `+Inf` is implicit.
    /// celery-exporter's flag.
    #[arg(long = "buckets", env = "CELERIAC_BUCKETS", value_name = "S,S,...",
          default_value_t = Buckets::runtime_default(),
          value_parser = parse_buckets)]
    pub runtime_buckets: Buckets,

    /// Upper bounds (seconds, ascending) of `celery_task_queue_wait_time`
    /// and the prefetch time histogram; `+Inf` is implicit.
    #[arg(long, env = "CELERIAC_QUEUE_WAIT_BUCKETS", value_name = "S,S,...",
          default_value_t = Buckets::queue_wait_default(),
          value_parser = parse_buckets)]
    pub queue_wait_buckets: Buckets,

    /// Also export Flower's six `flower_*` metrics.
    #[arg(long, env = "CELERIAC_FLOWER_METRICS", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub flower_metrics: bool,

    /// Send statsd metrics to this UDP address (`host:port`).
    #[arg(long, env = "CELERIAC_STATSD", value_name = "HOST:PORT")]
    pub statsd: Option<String>,

    /// Prefix of every statsd metric name.
    #[arg(long, env = "CELERIAC_STATSD_PREFIX", default_value = DEFAULT_STATSD_PREFIX)]
    pub statsd_prefix: String,

    /// Send labels as DogStatsD tags (`|#task:add`) instead of in the name.
    #[arg(long, env = "CELERIAC_STATSD_TAGS", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub statsd_tags: bool,
}
