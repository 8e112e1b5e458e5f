//! `GET /api/series`: a chart's points, kept by the server (the last hour
//! at 10 s, the last day at 1 min).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesAnswer {
    /// `queue_depth`, `queue_oldest_age_seconds`,
    /// `task_succeeded_per_second`, `task_failed_per_second`,
    /// `worker_processed_per_second` or `worker_active`.
    pub metric: String,
    /// `1h` or `24h`.
    pub range: String,
    /// Seconds between two points.
    pub step: f64,
    /// Per queue, task name or worker: `[epoch seconds, value]`, oldest
    /// first.
    pub series: BTreeMap<String, Vec<(f64, f64)>>,
    /// Series the server does not keep because it keeps its maximum.
    #[serde(default)]
    pub dropped: u64,
}
