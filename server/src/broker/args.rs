//! Settings of the queue statistics poller.

/// Seconds between two polls by default: Prometheus scrapes every 15 s or
/// so, and RabbitMQ's own stats are sampled every 5 s.
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 5;

#[derive(Debug, Clone, clap::Args)]
pub struct QueueStatsArgs {
    /// RabbitMQ management API for queue statistics, e.g.
    /// `http://user:password@rabbit:15672/api/`. Default: the broker's host
    /// and credentials on port 15672. `off` uses only the AMQP fallback.
    #[arg(long, env = "CELERIAC_BROKER_API", value_name = "URL")]
    pub broker_api: Option<String>,

    /// Only these queues (comma-separated) in queue statistics; by default
    /// every queue of the vhost but Celery's and celeriac's internal ones.
    #[arg(
        long,
        env = "CELERIAC_QUEUES",
        value_delimiter = ',',
        value_name = "A,B"
    )]
    pub queues: Vec<String>,

    /// Seconds between two polls of queue statistics.
    #[arg(long, env = "CELERIAC_BROKER_STATS_INTERVAL", default_value_t = DEFAULT_POLL_INTERVAL_SECS,
          value_parser = clap::value_parser!(u64).range(1..), value_name = "SECONDS")]
    pub broker_stats_interval: u64,
}
