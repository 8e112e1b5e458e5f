//! The alert engine: rule parsing, evaluation and notifiers.
//!
//! Not built yet: see the alerting issue. The crate exists so the workspace
//! layout matches docs/ARCHITECTURE.md and later work has a home.
