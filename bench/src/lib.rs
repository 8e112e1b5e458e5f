//! celeriac's benchmark: a load generator of real Celery event shapes, a
//! no-op lapin consumer as the baseline, and scenarios that run celeriac and
//! Flower side by side. It prints figures; it judges nothing.

pub mod alerts_eval; // the alert engine evaluating 500 rules
pub mod broker_poll; // management API poll cost with many queues
pub mod dashboard; // the dashboard's figures in Chromium
pub mod history; // the history store: bulk writes, disk, restart, queries beyond memory
pub mod listing; // /api/tasks at 1M retained tasks: indexes vs the full path, streaming
pub mod loadgen;
pub mod metrics_render; // /metrics render at 1000 workers x 200 names
pub mod mgmt;
pub mod monitor;
pub mod names; // a flood of distinct task names against 50 names
pub mod noop;
pub mod pg; // throwaway PostgreSQL databases for the history figures
pub mod procs;
pub mod redis_ingest; // celeriac on a Redis broker beside a no-op subscriber
pub mod report;
pub mod scenarios;
