//! One typed configuration, from flags, environment variables and an optional
//! TOML file (precedence in that order, then the documented defaults).
//!
//! Flag names follow Flower's where a Flower user would look for them
//! (`--broker`, `--port`, `--max-tasks`, ...). Every flag has an environment
//! variable (`CELERIAC_<FLAG>`, and `CELERY_BROKER_URL` for the broker) and a
//! TOML key (the flag name with `_` or `-`).

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::parser::ValueSource;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};

pub const DEFAULT_BROKER: &str = "amqp://guest:guest@localhost:5672//";
pub const DEFAULT_PORT: u16 = 5555;
pub const DEFAULT_MAX_TASKS: usize = 100_000;
pub const DEFAULT_MAX_WORKERS: usize = 5_000;
/// Celery's own default is 5 s, which makes a monitor that lags for 5 s lose
/// events silently. Ten minutes covers any burst celeriac can drain (1M
/// events at ~30k/s is ~35 s) and restarts of a stalled host, while
/// `--events-max-length` still bounds what the broker holds for us.
pub const DEFAULT_EVENTS_TTL_SECS: u64 = 600;
/// Bounds the broker memory a dead or stalled celeriac can pin (an event
/// message is ~0.5 KB, so ~500 MB at most). Overflow drops the oldest.
pub const DEFAULT_EVENTS_MAX_LENGTH: u64 = 1_000_000;
/// Unacked deliveries in flight between the broker and the state owner.
pub const DEFAULT_PREFETCH: u16 = 2_000;
/// Celery truncates reprs near 1 KB; a body this large is not a real event.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;
/// Flower broadcasts `enable_events` every 5 s.
pub const DEFAULT_ENABLE_EVENTS_INTERVAL_SECS: u64 = 5;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "celeriac",
    version,
    about = "Watch and operate Celery clusters: live state, Flower's API, Prometheus metrics",
    // alerting (issue 6): the one subcommand, handled before these flags.
    after_help = "Also: `celeriac check-alerts FILE...` validates alert rule files (exit 0/1)."
)]
pub struct Config {
    /// AMQP URL of the Celery broker.
    #[arg(long, env = "CELERY_BROKER_URL", default_value = DEFAULT_BROKER)]
    pub broker: String,

    /// Address to listen on.
    #[arg(long, env = "CELERIAC_ADDRESS", default_value = "127.0.0.1")]
    pub address: IpAddr,

    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "CELERIAC_PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,

    /// Tasks kept in memory; the oldest are evicted beyond this.
    #[arg(long, env = "CELERIAC_MAX_TASKS", default_value_t = DEFAULT_MAX_TASKS, value_parser = clap::value_parser!(u64).range(1..).map(|v| v as usize))]
    pub max_tasks: usize,

    /// Workers kept in memory; the longest-silent are evicted beyond this.
    #[arg(long, env = "CELERIAC_MAX_WORKERS", default_value_t = DEFAULT_MAX_WORKERS, value_parser = clap::value_parser!(u64).range(1..).map(|v| v as usize))]
    pub max_workers: usize,

    /// Serve everything under this path prefix (e.g. `/flower`).
    #[arg(long, env = "CELERIAC_URL_PREFIX", default_value = "", value_parser = parse_url_prefix)]
    pub url_prefix: String,

    /// Forget workers offline for longer than this many seconds.
    #[arg(long, env = "CELERIAC_PURGE_OFFLINE_WORKERS", value_name = "SECONDS")]
    pub purge_offline_workers: Option<u64>,

    /// Broadcast `enable_events` to all workers periodically, as Flower does.
    #[arg(long, env = "CELERIAC_ENABLE_EVENTS", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub enable_events: bool,

    /// Seconds between two `enable_events` broadcasts.
    #[arg(long, env = "CELERIAC_ENABLE_EVENTS_INTERVAL", default_value_t = DEFAULT_ENABLE_EVENTS_INTERVAL_SECS,
          value_parser = clap::value_parser!(u64).range(1..), value_name = "SECONDS")]
    pub enable_events_interval: u64,

    /// Consume this named, durable queue bound to `celeryev`, so nothing is
    /// lost while celeriac restarts. Without it celeriac uses an exclusive,
    /// auto-deleted queue of its own.
    #[arg(long, env = "CELERIAC_EVENTS_QUEUE", value_name = "NAME")]
    pub events_queue: Option<String>,

    /// Message TTL (seconds) of the events queue. Celery's default of 5 s
    /// loses events whenever a monitor lags; see DEFAULT_EVENTS_TTL_SECS.
    #[arg(long, env = "CELERIAC_EVENTS_TTL", default_value_t = DEFAULT_EVENTS_TTL_SECS,
          value_parser = clap::value_parser!(u64).range(1..), value_name = "SECONDS")]
    pub events_ttl: u64,

    /// Most messages the events queue may hold (`x-max-length`); the oldest
    /// are dropped beyond it, and counted.
    #[arg(long, env = "CELERIAC_EVENTS_MAX_LENGTH", default_value_t = DEFAULT_EVENTS_MAX_LENGTH,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub events_max_length: u64,

    /// AMQP prefetch (unacked deliveries in flight).
    #[arg(long, env = "CELERIAC_PREFETCH", default_value_t = DEFAULT_PREFETCH,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,

    /// Event bodies larger than this are counted as malformed and skipped.
    #[arg(long, env = "CELERIAC_MAX_EVENT_BYTES", default_value_t = DEFAULT_MAX_EVENT_BYTES)]
    pub max_event_bytes: usize,

    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `celeriac=debug`.
    #[arg(long, env = "CELERIAC_LOG", default_value = "info")]
    pub log: String,

    // --- broker stats / metrics / statsd (issue 3; owned by the metrics work) ---
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
    #[arg(long, env = "CELERIAC_BROKER_STATS_INTERVAL", default_value_t = crate::broker::DEFAULT_POLL_INTERVAL_SECS,
          value_parser = clap::value_parser!(u64).range(1..), value_name = "SECONDS")]
    pub broker_stats_interval: u64,

    /// Distinct task names exported per metric; later names fold into
    /// `name="other"`.
    #[arg(long, env = "CELERIAC_MAX_TASK_NAMES", default_value_t = crate::metrics::DEFAULT_MAX_TASK_NAMES,
          value_parser = clap::value_parser!(u64).range(1..).map(|v| v as usize))]
    pub max_task_names: usize,

    /// Upper bounds (seconds, ascending) of `celery_task_runtime` (and the
    /// dashboard's and the alerts' runtime quantiles); `+Inf` is implicit.
    /// celery-exporter's flag.
    #[arg(long = "buckets", env = "CELERIAC_BUCKETS", value_name = "S,S,...",
          default_value_t = crate::metrics::Buckets::runtime_default(),
          value_parser = crate::metrics::parse_buckets)]
    pub runtime_buckets: crate::metrics::Buckets,

    /// Upper bounds (seconds, ascending) of `celery_task_queue_wait_time`
    /// and the prefetch time histogram; `+Inf` is implicit.
    #[arg(long, env = "CELERIAC_QUEUE_WAIT_BUCKETS", value_name = "S,S,...",
          default_value_t = crate::metrics::Buckets::queue_wait_default(),
          value_parser = crate::metrics::parse_buckets)]
    pub queue_wait_buckets: crate::metrics::Buckets,

    /// Also export Flower's six `flower_*` metrics.
    #[arg(long, env = "CELERIAC_FLOWER_METRICS", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub flower_metrics: bool,

    /// Send statsd metrics to this UDP address (`host:port`).
    #[arg(long, env = "CELERIAC_STATSD", value_name = "HOST:PORT")]
    pub statsd: Option<String>,

    /// Prefix of every statsd metric name.
    #[arg(long, env = "CELERIAC_STATSD_PREFIX", default_value = "celery")]
    pub statsd_prefix: String,

    /// Send labels as DogStatsD tags (`|#task:add`) instead of in the name.
    #[arg(long, env = "CELERIAC_STATSD_TAGS", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub statsd_tags: bool,
    // --- end broker stats / metrics / statsd ---

    // --- remote control and authentication (issue 5; owned by control/auth) ---
    /// Milliseconds to wait for the next worker reply to a control or
    /// inspect command (an idle timeout, as Flower's `--inspect_timeout`).
    #[arg(long, env = "CELERIAC_INSPECT_TIMEOUT", default_value_t = crate::control::DEFAULT_INSPECT_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..=60_000), value_name = "MS")]
    pub inspect_timeout: u64,

    /// Seconds between two inspect refreshes of every worker for
    /// `/api/workers` (0: only on `?refresh=1`).
    #[arg(long, env = "CELERIAC_INSPECT_INTERVAL", default_value_t = crate::control::DEFAULT_INSPECT_INTERVAL_SECS,
          value_name = "SECONDS")]
    pub inspect_interval: u64,

    /// An operator `USER:PASSWORD` (repeatable; comma-separated in the
    /// environment).
    #[arg(long, env = "CELERIAC_BASIC_AUTH", value_delimiter = ',', value_name = "USER:PASSWORD",
          value_parser = crate::auth::parse_credential)]
    pub basic_auth: Vec<crate::auth::Credential>,

    /// A read-only `USER:PASSWORD` (repeatable).
    #[arg(long, env = "CELERIAC_VIEWER", value_delimiter = ',', value_name = "USER:PASSWORD",
          value_parser = crate::auth::parse_credential)]
    pub viewer: Vec<crate::auth::Credential>,

    /// A users file: lines `user:hash[:operator|viewer]` with argon2 or
    /// bcrypt hashes.
    #[arg(long, env = "CELERIAC_USERS", value_name = "FILE", value_parser = crate::auth::parse_users_file)]
    pub users: Option<crate::auth::UsersFile>,

    /// A bearer token with operator rights, for scripts (repeatable).
    #[arg(long, env = "CELERIAC_API_TOKEN", value_delimiter = ',', value_name = "TOKEN",
          value_parser = crate::auth::parse_token)]
    pub api_token: Vec<crate::auth::Secret>,

    /// Refuse every control action, for everyone.
    #[arg(long, env = "CELERIAC_READ_ONLY", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub read_only: bool,

    /// Serve `/metrics` without credentials when users are configured.
    #[arg(long, env = "CELERIAC_OPEN_METRICS", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub open_metrics: bool,
    // --- end remote control and authentication ---

    // --- alerting (issue 6) ---
    /// Alert rules (YAML; see alerts/README.md). Off without it. An invalid
    /// file stops start-up; `celeriac check-alerts FILE` checks one.
    #[arg(long, env = "CELERIAC_ALERTS", value_name = "FILE")]
    pub alerts: Option<PathBuf>,

    /// Time between two evaluations of the alert rules: seconds, or a
    /// duration such as `500ms` or `10s`.
    #[arg(long, env = "CELERIAC_ALERTS_INTERVAL", default_value = "5s", value_name = "DURATION",
          value_parser = crate::alerting::parse_interval)]
    pub alerts_interval: f64,
    // --- end alerting ---
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

    /// The socket address to listen on.
    pub fn listen(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.address, self.port)
    }

    pub fn events_ttl(&self) -> Duration {
        Duration::from_secs(self.events_ttl)
    }

    pub fn enable_events_interval(&self) -> Duration {
        Duration::from_secs(self.enable_events_interval)
    }

    /// The broker URL with its password replaced by `********`, for logs.
    pub fn broker_masked(&self) -> String {
        mask_password(&self.broker)
    }
}

/// Replaces the password of a `scheme://user:password@host/...` URL.
pub fn mask_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:********{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

fn parse_url_prefix(s: &str) -> Result<String, String> {
    let trimmed = s.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    if trimmed.contains(|c: char| c.is_whitespace() || c == '?' || c == '#') {
        return Err(format!("{s:?} is not a URL path"));
    }
    Ok(format!("/{trimmed}"))
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
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(file_err(format!(
                    "key `{key}`: expected a string, number or boolean, got {}",
                    other.type_str()
                )))
            }
        };
        let flag = format!("--{}", id.replace('_', "-"));
        // Validate the key alone so the error names the file and the key.
        if let Err(e) = Config::command().try_get_matches_from(["celeriac", &flag, &value]) {
            let detail = e.kind().as_str().unwrap_or("invalid value").to_string();
            return Err(file_err(format!("key `{key}`: {detail}: {value:?}")));
        }
        out.push(OsString::from(flag));
        out.push(OsString::from(value));
    }
    Ok(out)
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
        assert_eq!(c.port, 5555);
        assert_eq!(c.max_tasks, 100_000);
        assert!(c.enable_events);
        assert_eq!(c.events_ttl, DEFAULT_EVENTS_TTL_SECS);
        assert_eq!(c.url_prefix, "");
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
        assert!(!load(&["--enable-events", "false"]).unwrap().enable_events);
        assert!(load(&["--enable-events"]).unwrap().enable_events);
    }

    #[test]
    fn url_prefix_is_normalised() {
        assert_eq!(
            load(&["--url-prefix", "flower/"]).unwrap().url_prefix,
            "/flower"
        );
        assert_eq!(load(&["--url-prefix", "/"]).unwrap().url_prefix, "");
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
        assert_eq!((c.port, c.max_tasks), (6000, 10));
        assert_eq!(c.events_queue.as_deref(), Some("ev"));
        let c = load(&["--config", p, "--port", "7000"]).unwrap();
        assert_eq!(c.port, 7000);

        std::fs::write(&path, "portt = 1\n").unwrap();
        let err = load(&["--config", p]).unwrap_err().to_string();
        assert!(err.contains("portt") && err.contains("c.toml"), "{err}");
        std::fs::write(&path, "port = \"x\"\n").unwrap();
        let err = load(&["--config", p]).unwrap_err().to_string();
        assert!(err.contains("key `port`"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn broker_password_is_masked() {
        assert_eq!(
            mask_password("amqp://guest:secret@host:5672/vh"),
            "amqp://guest:********@host:5672/vh"
        );
        assert_eq!(mask_password("amqp://host//"), "amqp://host//");
    }
}
