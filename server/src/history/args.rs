//! Settings of the history store.

use std::path::PathBuf;

use clap::builder::TypedValueParser;

use super::target::Target;

/// Task ids waiting to be written, at most; beyond this they are dropped
/// (and counted) rather than holding up ingest.
pub const DEFAULT_DB_BACKLOG: usize = 1_000_000;
/// How long a task is kept after its last change.
pub const DEFAULT_HISTORY_RETENTION: &str = "14d";
/// How long a failed task is kept: failures are what people come back for.
pub const DEFAULT_HISTORY_FAILED_RETENTION: &str = "30d";
/// The file name of the embedded store under `--data-dir`.
pub const SQLITE_FILE: &str = "history.db";

#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// Where celeriac keeps its files (the embedded history store,
    /// `history.db`). Default: `$XDG_DATA_HOME/celeriac`, else
    /// `~/.local/share/celeriac`.
    #[arg(long, env = "CELERIAC_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// The history store: a file path or `sqlite:PATH` (embedded SQLite),
    /// `postgres://user@host/db` (also `postgresql://`) for history shared
    /// between replicas, or `none` to keep nothing beyond memory. Default:
    /// `history.db` under `--data-dir`.
    #[arg(long, env = "CELERIAC_DB", value_name = "URL", value_parser = Target::parse)]
    pub db: Option<Target>,

    /// Changed tasks waiting to be written, at most. A store that is slow or
    /// down never holds up ingest: beyond this, changes are dropped and
    /// counted (`celeriac_history_dropped_total`).
    #[arg(long, env = "CELERIAC_DB_BACKLOG", default_value_t = DEFAULT_DB_BACKLOG, value_name = "TASKS",
          value_parser = clap::value_parser!(u64).range(1..).map(|v| v as usize))]
    pub db_backlog: usize,

    /// Keep a task this long after its last change (e.g. `14d`, `12h`).
    #[arg(long, env = "CELERIAC_HISTORY_RETENTION", default_value = DEFAULT_HISTORY_RETENTION,
          value_name = "DURATION", value_parser = parse_retention)]
    pub history_retention: f64,

    /// Keep a failed task this long after it failed.
    #[arg(long, env = "CELERIAC_HISTORY_FAILED_RETENTION", default_value = DEFAULT_HISTORY_FAILED_RETENTION,
          value_name = "DURATION", value_parser = parse_retention)]
    pub history_failed_retention: f64,

    /// Keep at most this many tasks in the store (the oldest go first);
    /// unbounded by default, only the retention applies.
    #[arg(long, env = "CELERIAC_HISTORY_MAX_TASKS", value_name = "TASKS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub history_max_tasks: Option<u64>,
}

impl HistoryArgs {
    /// The store these settings name, with the default file resolved;
    /// `None` for `--db none`.
    pub fn target(&self) -> Option<Target> {
        match &self.db {
            Some(Target::None) => None,
            Some(t) => Some(t.clone()),
            None => Some(Target::Sqlite(self.data_dir().join(SQLITE_FILE))),
        }
    }

    fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        default_data_dir(
            std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )
    }
}

/// `$XDG_DATA_HOME/celeriac`, else `$HOME/.local/share/celeriac`, else a
/// directory under the working directory (a service account without a home).
fn default_data_dir(xdg: Option<PathBuf>, home: Option<PathBuf>) -> PathBuf {
    let base = xdg
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| h.join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("celeriac")
}

/// A retention: a duration of at least a minute.
fn parse_retention(s: &str) -> Result<f64, String> {
    let secs = alerts::rules::parse_duration(s)?.0;
    if secs >= 60.0 {
        Ok(secs)
    } else {
        Err(format!("`{s}` is too short: at least 1m"))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::test_args::{parse, try_parse};

    #[test]
    fn the_embedded_store_is_the_default_under_the_data_dir() {
        let args: HistoryArgs = parse(&["--data-dir", "/var/lib/celeriac"]);
        assert_eq!(
            args.target(),
            Some(Target::Sqlite("/var/lib/celeriac/history.db".into()))
        );
        let args: HistoryArgs = parse(&["--data-dir", "/x", "--db", "none"]);
        assert_eq!(args.target(), None);
        let args: HistoryArgs = parse(&["--db", "postgres://u@h/db"]);
        assert_eq!(
            args.target(),
            Some(Target::Postgres("postgres://u@h/db".into()))
        );
    }

    #[test]
    fn the_data_dir_follows_xdg_then_home() {
        let d = default_data_dir(Some("/xdg".into()), Some("/home/ann".into()));
        assert_eq!(d, Path::new("/xdg/celeriac"));
        // A relative XDG_DATA_HOME is invalid by the spec and ignored.
        let d = default_data_dir(Some("rel".into()), Some("/home/ann".into()));
        assert_eq!(d, Path::new("/home/ann/.local/share/celeriac"));
        assert_eq!(default_data_dir(None, None), Path::new("./celeriac"));
    }

    #[test]
    fn retention_takes_durations_and_bad_values_name_the_flag() {
        let args: HistoryArgs = parse(&["--history-retention", "2h"]);
        assert_eq!(args.history_retention, 7200.0);
        assert_eq!(args.history_failed_retention, 30.0 * 86400.0);
        let err = try_parse::<HistoryArgs>(&["--history-retention", "5s"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--history-retention") && err.contains("at least 1m"),
            "{err}"
        );
        let err = try_parse::<HistoryArgs>(&["--db-backlog", "0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--db-backlog"), "{err}");
    }
}
