//! The alert engine: rule parsing, evaluation and notifiers.
//!
//! [`rules`] reads and checks the YAML rule file; [`Engine`] evaluates the
//! rules against an [`Inputs`] snapshot of celeriac's live state and returns
//! the notifications to send, which [`notify::Dispatcher`] delivers. The
//! engine does no I/O, so everything but delivery is tested without a broker.

pub mod engine;
pub mod evaluate;
pub mod inputs;
pub mod notify;
pub mod rules;
pub mod template;
pub mod window;

pub use engine::{Engine, Outgoing};
pub use inputs::Inputs;
pub use rules::{load_file, parse, LoadError, RuleSet};
