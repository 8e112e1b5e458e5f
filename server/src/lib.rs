//! celeriac: a monitor for Celery clusters. See docs/ARCHITECTURE.md.

pub mod config;
pub mod events;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod state;
