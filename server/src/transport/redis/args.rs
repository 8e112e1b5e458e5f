//! The Redis transport's settings: what kombu takes from Celery's
//! `broker_transport_options` rather than from the broker URL. A URL's own
//! query (`?master_name=`, `?global_keyprefix=`) overrides them for that
//! broker.

use crate::auth::Secret;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct RedisArgs {
    /// The Sentinel master name for `sentinel://` brokers (Celery's
    /// `broker_transport_options={'master_name': ...}`).
    #[arg(long, env = "CELERIAC_REDIS_MASTER_NAME", value_name = "NAME")]
    pub redis_master_name: Option<String>,

    /// The password of the Sentinel nodes themselves (kombu's
    /// `sentinel_kwargs={'password': ...}`); the URL's password is the
    /// master's. Prefer the environment: a flag shows in `ps`.
    #[arg(long, env = "CELERIAC_REDIS_SENTINEL_PASSWORD", value_name = "PASSWORD",
          value_parser = |s: &str| Ok::<_, String>(Secret::new(s)), hide_env_values = true)]
    pub redis_sentinel_password: Option<Secret>,

    /// kombu's `global_keyprefix` transport option: prepended to every Redis
    /// key and channel the cluster uses (queues, bindings, events, pidbox).
    #[arg(long, env = "CELERIAC_REDIS_GLOBAL_KEYPREFIX", value_name = "PREFIX")]
    pub redis_global_keyprefix: Option<String>,
}
