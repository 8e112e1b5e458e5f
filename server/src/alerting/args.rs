//! Settings of the alert engine.

use std::path::PathBuf;

use super::parse_interval;

pub const DEFAULT_ALERTS_INTERVAL: &str = "5s";

#[derive(Debug, Clone, clap::Args)]
pub struct AlertingArgs {
    /// Alert rules (YAML; see alerts/README.md). Off without it. An invalid
    /// file stops start-up; `celeriac check-alerts FILE` checks one.
    #[arg(long, env = "CELERIAC_ALERTS", value_name = "FILE")]
    pub alerts: Option<PathBuf>,

    /// Time between two evaluations of the alert rules: seconds, or a
    /// duration such as `500ms` or `10s`.
    #[arg(long, env = "CELERIAC_ALERTS_INTERVAL", default_value = DEFAULT_ALERTS_INTERVAL, value_name = "DURATION",
          value_parser = parse_interval)]
    pub alerts_interval: f64,
}
