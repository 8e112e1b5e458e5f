//! celeriac's benchmark: a load generator of real Celery event shapes, a
//! no-op lapin consumer as the baseline, and scenarios that run celeriac and
//! Flower side by side. It prints figures; it judges nothing.

pub mod loadgen;
pub mod mgmt;
pub mod monitor;
pub mod noop;
pub mod procs;
pub mod report;
pub mod scenarios;
