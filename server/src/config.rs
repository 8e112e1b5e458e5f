//! One typed configuration, from flags, environment variables and an optional
//! TOML file (precedence in that order, then the documented defaults).
//!
//! Flag names follow Flower's where a Flower user would look for them
//! (`--broker`, `--port`, `--max-tasks`, ...). Every flag has an environment
//! variable (`CELERIAC_<FLAG>`, and `CELERY_BROKER_URL` for the broker) and a
//! TOML key (the flag name with `_` or `-`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::alerting::AlertingArgs;
use crate::auth::{AuthArgs, SessionArgs};
use crate::broker::QueueStatsArgs;
use crate::control::ControlArgs;
use crate::history::HistoryArgs;
use crate::http::HttpArgs;
use crate::ingest::IngestArgs;
use crate::insight::InsightArgs;
use crate::metrics::MetricsArgs;
use crate::oidc::OidcArgs;
use crate::owner::StateArgs;
use crate::redact::RedactArgs;
use crate::results::ResultsArgs;
use crate::submit::SubmitArgs;
use crate::transport::redis::RedisArgs;

pub const DEFAULT_LOG: &str = "info";

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured only when stderr is a terminal.
    Text,
    /// One JSON object per line: time, level, target, message and fields.
    Json,
}

/// Every module's settings, composed. The modules own their flags, defaults
/// and help; this type only puts them on one command line.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "celeriac",
    version,
    about = "Watch and operate Celery clusters: live state, Flower's API, Prometheus metrics",
    // The one subcommand, handled before these flags.
    after_help = "Also: `celeriac check-alerts FILE...` validates alert rule files (exit 0/1)."
)]
pub struct Config {
    #[command(flatten)]
    pub ingest: IngestArgs,

    #[command(flatten)]
    pub redis: RedisArgs,

    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub state: StateArgs,

    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `celeriac=debug`.
    #[arg(long, env = "CELERIAC_LOG", default_value = DEFAULT_LOG)]
    pub log: String,

    /// Log lines as text, or as one JSON object per line for log shippers.
    #[arg(long, env = "CELERIAC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub queue_stats: QueueStatsArgs,

    #[command(flatten)]
    pub metrics: MetricsArgs,

    #[command(flatten)]
    pub control: ControlArgs,

    #[command(flatten)]
    pub auth: AuthArgs,

    #[command(flatten)]
    pub session: SessionArgs,

    #[command(flatten)]
    pub oidc: OidcArgs,

    #[command(flatten)]
    pub alerting: AlertingArgs,

    #[command(flatten)]
    pub history: HistoryArgs,

    #[command(flatten)]
    pub submit: SubmitArgs,

    #[command(flatten)]
    pub results: ResultsArgs,

    #[command(flatten)]
    pub insight: InsightArgs,

    #[command(flatten)]
    pub redact: RedactArgs,

    /// A TOML file with any of the options above (keys as the flag names).
    #[arg(long, env = "CELERIAC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Args(#[from] clap::Error),
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
}

impl ConfigError {
    /// Prints the error as clap would (help and version go to stdout) and
    /// exits with its code.
    pub fn exit(self) -> ! {
        match self {
            ConfigError::Args(e) => e.exit(),
            other => {
                eprintln!("error: {other}");
                std::process::exit(2)
            }
        }
    }
}

impl Config {
    /// Parses the process's arguments, environment and config file.
    pub fn load() -> Result<Config, ConfigError> {
        Self::load_from(std::env::args_os())
    }

    /// As `load`, from the given argument list (the first item is the
    /// program name).
    pub fn load_from<I, T>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let matches = Config::command().try_get_matches_from(&args)?;
        let file = matches.get_one::<PathBuf>("config").cloned();
        let Some(path) = file else {
            return Ok(Config::from_arg_matches(&matches)?);
        };
        // Keys from the file become extra arguments, but only for options that
        // neither a flag nor an environment variable set.
        let extra = file_args(&path, &matches)?;
        let mut all = Vec::with_capacity(args.len() + extra.len());
        all.extend(args.first().cloned());
        all.extend(extra);
        all.extend(args.into_iter().skip(1));
        let matches = Config::command().try_get_matches_from(all)?;
        Ok(Config::from_arg_matches(&matches)?)
    }
}

fn file_args(path: &Path, matches: &clap::ArgMatches) -> Result<Vec<OsString>, ConfigError> {
    let file_err = |message: String| ConfigError::File {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_err(e.to_string()))?;
    let command = Config::command();
    let mut out = Vec::new();
    for (key, value) in table {
        let id = key.replace('-', "_");
        let known = command
            .get_arguments()
            .any(|a| a.get_id() == id.as_str() && a.get_long().is_some());
        if !known || id == "config" {
            return Err(file_err(format!("unknown key `{key}`")));
        }
        let set_elsewhere = matches!(
            matches.value_source(&id),
            Some(ValueSource::CommandLine) | Some(ValueSource::EnvVariable)
        );
        if set_elsewhere {
            continue;
        }
        // An array is the flag repeated (`broker = ["amqp://a", "amqp://b"]`).
        let values = match value {
            toml::Value::Array(items) => items
                .into_iter()
                .map(|v| scalar(&key, v))
                .collect::<Result<Vec<_>, _>>(),
            other => scalar(&key, other).map(|v| vec![v]),
        }
        .map_err(file_err)?;
        let flag = format!("--{}", id.replace('_', "-"));
        for value in values {
            // Validate the key alone so the error names the file and the key.
            if let Err(e) = Config::command().try_get_matches_from(["celeriac", &flag, &value]) {
                let detail = e.kind().as_str().unwrap_or("invalid value").to_string();
                return Err(file_err(format!("key `{key}`: {detail}: {value:?}")));
            }
            out.push(OsString::from(&flag));
            out.push(OsString::from(value));
        }
    }
    Ok(out)
}

/// One TOML value as the text a flag takes.
fn scalar(key: &str, value: toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!(
            "key `{key}`: expected a string, number or boolean, got {}",
            other.type_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["celeriac"];
        all.extend_from_slice(args);
        Config::load_from(all)
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let c = load(&[]).unwrap();
        assert_eq!(c.http.port, 5555);
        assert_eq!(c.state.max_tasks, 100_000);
        assert!(c.ingest.enable_events);
        assert_eq!(c.ingest.events_ttl, crate::ingest::DEFAULT_EVENTS_TTL_SECS);
        assert_eq!(c.http.url_prefix, "");
    }

    #[test]
    fn a_bad_value_names_its_flag() {
        let err = load(&["--port", "nope"]).unwrap_err().to_string();
        assert!(err.contains("--port"), "{err}");
        let err = load(&["--max-tasks", "0"]).unwrap_err().to_string();
        assert!(err.contains("--max-tasks"), "{err}");
        let err = load(&["--no-such-flag"]).unwrap_err().to_string();
        assert!(err.contains("--no-such-flag"), "{err}");
    }

    #[test]
    fn enable_events_takes_an_optional_bool() {
        assert!(
            !load(&["--enable-events", "false"])
                .unwrap()
                .ingest
                .enable_events
        );
        assert!(load(&["--enable-events"]).unwrap().ingest.enable_events);
    }

    #[test]
    fn url_prefix_is_normalised() {
        assert_eq!(
            load(&["--url-prefix", "flower/"]).unwrap().http.url_prefix,
            "/flower"
        );
        assert_eq!(load(&["--url-prefix", "/"]).unwrap().http.url_prefix, "");
    }

    #[test]
    fn file_values_apply_below_flags() {
        let dir = std::env::temp_dir().join(format!("celeriac-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "port = 6000\nmax_tasks = 10\nevents-queue = \"ev\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let c = load(&["--config", p]).unwrap();
        assert_eq!((c.http.port, c.state.max_tasks), (6000, 10));
        assert_eq!(c.ingest.events_queue.as_deref(), Some("ev"));
        let c = load(&["--config", p, "--port", "7000"]).unwrap();
        assert_eq!(c.http.port, 7000);

        std::fs::write(&path, "broker = [\"amqp://h/a\", \"redis://h/1\"]\n").unwrap();
        let c = load(&["--config", p]).unwrap();
        assert_eq!(c.ingest.broker, ["amqp://h/a", "redis://h/1"]);
        std::fs::write(&path, "broker = [1, [2]]\n").unwrap();
        let err = load(&["--config", p]).unwrap_err().to_string();
        assert!(
            err.contains("key `broker`") && err.contains("array"),
            "{err}"
        );

        std::fs::write(&path, "portt = 1\n").unwrap();
        let err = load(&["--config", p]).unwrap_err().to_string();
        assert!(err.contains("portt") && err.contains("c.toml"), "{err}");
        std::fs::write(&path, "port = \"x\"\n").unwrap();
        let err = load(&["--config", p]).unwrap_err().to_string();
        assert!(err.contains("key `port`"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Every flag's id (its TOML key), long name, environment variable and
    /// default, as they were when the configuration was one struct: moving
    /// a setting between modules must not rename anything users type.
    #[test]
    fn flags_env_vars_and_file_keys_are_stable() {
        let expected: &[(&str, &str, Option<&str>, &[&str])] = &[
            (
                "broker",
                "broker",
                Some("CELERY_BROKER_URL"),
                &["amqp://guest:guest@localhost:5672//"],
            ),
            (
                "address",
                "address",
                Some("CELERIAC_ADDRESS"),
                &["127.0.0.1"],
            ),
            ("port", "port", Some("CELERIAC_PORT"), &["5555"]),
            (
                "max_tasks",
                "max-tasks",
                Some("CELERIAC_MAX_TASKS"),
                &["100000"],
            ),
            (
                "max_workers",
                "max-workers",
                Some("CELERIAC_MAX_WORKERS"),
                &["5000"],
            ),
            (
                "url_prefix",
                "url-prefix",
                Some("CELERIAC_URL_PREFIX"),
                &[""],
            ),
            (
                "purge_offline_workers",
                "purge-offline-workers",
                Some("CELERIAC_PURGE_OFFLINE_WORKERS"),
                &[],
            ),
            (
                "enable_events",
                "enable-events",
                Some("CELERIAC_ENABLE_EVENTS"),
                &["true"],
            ),
            (
                "enable_events_interval",
                "enable-events-interval",
                Some("CELERIAC_ENABLE_EVENTS_INTERVAL"),
                &["5"],
            ),
            (
                "events_queue",
                "events-queue",
                Some("CELERIAC_EVENTS_QUEUE"),
                &[],
            ),
            (
                "events_ttl",
                "events-ttl",
                Some("CELERIAC_EVENTS_TTL"),
                &["600"],
            ),
            (
                "events_max_length",
                "events-max-length",
                Some("CELERIAC_EVENTS_MAX_LENGTH"),
                &["1000000"],
            ),
            ("prefetch", "prefetch", Some("CELERIAC_PREFETCH"), &["2000"]),
            (
                "max_event_bytes",
                "max-event-bytes",
                Some("CELERIAC_MAX_EVENT_BYTES"),
                &["1048576"],
            ),
            (
                "max_failure_groups",
                "max-failure-groups",
                Some("CELERIAC_MAX_FAILURE_GROUPS"),
                &["1000"],
            ),
            (
                "max_failure_group_series",
                "max-failure-group-series",
                Some("CELERIAC_MAX_FAILURE_GROUP_SERIES"),
                &["100"],
            ),
            (
                "max_latency_queues",
                "max-latency-queues",
                Some("CELERIAC_MAX_LATENCY_QUEUES"),
                &["100"],
            ),
            (
                "max_stats_task_names",
                "max-stats-task-names",
                Some("CELERIAC_MAX_STATS_TASK_NAMES"),
                &["200"],
            ),
            (
                "stuck_after",
                "stuck-after",
                Some("CELERIAC_STUCK_AFTER"),
                &["3600"],
            ),
            (
                "advice_wait_target",
                "advice-wait-target",
                Some("CELERIAC_ADVICE_WAIT_TARGET"),
                &["10"],
            ),
            ("log", "log", Some("CELERIAC_LOG"), &["info"]),
            (
                "log_format",
                "log-format",
                Some("CELERIAC_LOG_FORMAT"),
                &["text"],
            ),
            ("broker_api", "broker-api", Some("CELERIAC_BROKER_API"), &[]),
            ("queues", "queues", Some("CELERIAC_QUEUES"), &[]),
            (
                "broker_stats_interval",
                "broker-stats-interval",
                Some("CELERIAC_BROKER_STATS_INTERVAL"),
                &["5"],
            ),
            (
                "max_task_names",
                "max-task-names",
                Some("CELERIAC_MAX_TASK_NAMES"),
                &["500"],
            ),
            (
                "runtime_buckets",
                "buckets",
                Some("CELERIAC_BUCKETS"),
                &["0.005,0.01,0.025,0.05,0.075,0.1,0.25,0.5,0.75,1,2.5,5,7.5,10"],
            ),
            (
                "queue_wait_buckets",
                "queue-wait-buckets",
                Some("CELERIAC_QUEUE_WAIT_BUCKETS"),
                &["0.05,0.1,0.25,0.5,1,2.5,5,10,30,60,120,300,600,1800"],
            ),
            (
                "flower_metrics",
                "flower-metrics",
                Some("CELERIAC_FLOWER_METRICS"),
                &["false"],
            ),
            ("statsd", "statsd", Some("CELERIAC_STATSD"), &[]),
            (
                "statsd_prefix",
                "statsd-prefix",
                Some("CELERIAC_STATSD_PREFIX"),
                &["celery"],
            ),
            (
                "statsd_tags",
                "statsd-tags",
                Some("CELERIAC_STATSD_TAGS"),
                &["false"],
            ),
            (
                "inspect_timeout",
                "inspect-timeout",
                Some("CELERIAC_INSPECT_TIMEOUT"),
                &["1000"],
            ),
            (
                "inspect_interval",
                "inspect-interval",
                Some("CELERIAC_INSPECT_INTERVAL"),
                &["60"],
            ),
            ("basic_auth", "basic-auth", Some("CELERIAC_BASIC_AUTH"), &[]),
            ("viewer", "viewer", Some("CELERIAC_VIEWER"), &[]),
            ("users", "users", Some("CELERIAC_USERS"), &[]),
            ("api_token", "api-token", Some("CELERIAC_API_TOKEN"), &[]),
            (
                "read_only",
                "read-only",
                Some("CELERIAC_READ_ONLY"),
                &["false"],
            ),
            (
                "open_metrics",
                "open-metrics",
                Some("CELERIAC_OPEN_METRICS"),
                &["false"],
            ),
            ("alerts", "alerts", Some("CELERIAC_ALERTS"), &[]),
            (
                "alerts_interval",
                "alerts-interval",
                Some("CELERIAC_ALERTS_INTERVAL"),
                &["5s"],
            ),
            ("data_dir", "data-dir", Some("CELERIAC_DATA_DIR"), &[]),
            ("db", "db", Some("CELERIAC_DB"), &[]),
            (
                "db_backlog",
                "db-backlog",
                Some("CELERIAC_DB_BACKLOG"),
                &["1000000"],
            ),
            (
                "history_retention",
                "history-retention",
                Some("CELERIAC_HISTORY_RETENTION"),
                &["14d"],
            ),
            (
                "history_failed_retention",
                "history-failed-retention",
                Some("CELERIAC_HISTORY_FAILED_RETENTION"),
                &["30d"],
            ),
            (
                "history_max_tasks",
                "history-max-tasks",
                Some("CELERIAC_HISTORY_MAX_TASKS"),
                &[],
            ),
            (
                "task_queue",
                "task-queue",
                Some("CELERIAC_TASK_QUEUE"),
                &["celery"],
            ),
            (
                "result_backend",
                "result-backend",
                Some("CELERIAC_RESULT_BACKEND"),
                &[],
            ),
            ("config", "config", Some("CELERIAC_CONFIG"), &[]),
            (
                "redis_master_name",
                "redis-master-name",
                Some("CELERIAC_REDIS_MASTER_NAME"),
                &[],
            ),
            (
                "redis_sentinel_password",
                "redis-sentinel-password",
                Some("CELERIAC_REDIS_SENTINEL_PASSWORD"),
                &[],
            ),
            (
                "redis_global_keyprefix",
                "redis-global-keyprefix",
                Some("CELERIAC_REDIS_GLOBAL_KEYPREFIX"),
                &[],
            ),
            (
                "redact_keys",
                "redact-keys",
                Some("CELERIAC_REDACT_KEYS"),
                &["password,token,secret,authorization,api_key"],
            ),
            (
                "hide_args",
                "hide-args",
                Some("CELERIAC_HIDE_ARGS"),
                &["false"],
            ),
            (
                "trust_proxy_headers",
                "trust-proxy-headers",
                Some("CELERIAC_TRUST_PROXY_HEADERS"),
                &["false"],
            ),
            (
                "session_ttl",
                "session-ttl",
                Some("CELERIAC_SESSION_TTL"),
                &["12h"],
            ),
            (
                "session_secret_file",
                "session-secret-file",
                Some("CELERIAC_SESSION_SECRET_FILE"),
                &[],
            ),
            (
                "oidc_issuer",
                "oidc-issuer",
                Some("CELERIAC_OIDC_ISSUER"),
                &[],
            ),
            (
                "oidc_client_id",
                "oidc-client-id",
                Some("CELERIAC_OIDC_CLIENT_ID"),
                &[],
            ),
            (
                "oidc_client_secret",
                "oidc-client-secret",
                Some("CELERIAC_OIDC_CLIENT_SECRET"),
                &[],
            ),
            (
                "oidc_client_secret_file",
                "oidc-client-secret-file",
                Some("CELERIAC_OIDC_CLIENT_SECRET_FILE"),
                &[],
            ),
            (
                "oidc_redirect_url",
                "oidc-redirect-url",
                Some("CELERIAC_OIDC_REDIRECT_URL"),
                &[],
            ),
            (
                "oidc_scopes",
                "oidc-scopes",
                Some("CELERIAC_OIDC_SCOPES"),
                &["openid email profile"],
            ),
            (
                "oidc_groups_claim",
                "oidc-groups-claim",
                Some("CELERIAC_OIDC_GROUPS_CLAIM"),
                &["groups"],
            ),
            (
                "oidc_operators",
                "oidc-operators",
                Some("CELERIAC_OIDC_OPERATORS"),
                &[],
            ),
            (
                "oidc_viewers",
                "oidc-viewers",
                Some("CELERIAC_OIDC_VIEWERS"),
                &[],
            ),
        ];
        let mut actual: Vec<(String, String, Option<String>, Vec<String>)> = Config::command()
            .get_arguments()
            .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
            .map(|a| {
                (
                    a.get_id().to_string(),
                    a.get_long().unwrap_or_default().to_string(),
                    a.get_env().map(|e| e.to_string_lossy().into_owned()),
                    a.get_default_values()
                        .iter()
                        .map(|v| v.to_string_lossy().into_owned())
                        .collect(),
                )
            })
            .collect();
        actual.sort();
        let mut expected: Vec<_> = expected
            .iter()
            .map(|(id, long, env, defaults)| {
                (
                    id.to_string(),
                    long.to_string(),
                    env.map(str::to_string),
                    defaults.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                )
            })
            .collect();
        expected.sort();
        assert_eq!(actual, expected);
    }

    #[test]
    fn help_names_no_internal_constant() {
        let help = Config::command().render_long_help().to_string();
        assert!(!help.contains("DEFAULT_"), "{help}");
        assert!(!help.contains("auto-deleted"), "{help}");
    }
}
