//! Celery's result backend, read (and, for `abort`, written) the way
//! Flower's task API uses it: `--result-backend` names it as Celery's
//! `result_backend` does. Redis (`redis://`, `rediss://`: the
//! `celery-task-meta-<id>` keys) and PostgreSQL through Celery's database
//! backend (`db+postgresql://`: the `celery_taskmeta` table, over sqlx) are
//! spoken; any other scheme is known by name only and answered as
//! unsupported. `meta.rs` holds the stored format and Flower's answers
//! (pure).

pub mod args;
pub mod meta;

use std::time::Duration;

pub use args::ResultsArgs;
pub use meta::{Meta, MetaError, Ordered};

use crate::mask::mask_password;

/// How long one backend command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("no result backend is configured (--result-backend)")]
    NotConfigured,
    #[error(
        "result backend scheme `{0}` is not supported (celeriac reads redis:// and rediss://)"
    )]
    Unsupported(String),
    #[error("the result backend is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// The configured backend.
pub enum Backend {
    None,
    Redis(Box<Redis>),
    Database(Box<Database>),
    /// A scheme celeriac does not speak (`db+postgresql`, `rpc`, ...).
    Unsupported(String),
}

impl Backend {
    /// From `--result-backend`; a Redis URL the client cannot parse stops
    /// start-up.
    pub fn from_args(args: &ResultsArgs) -> Result<Backend, String> {
        let Some(url) = args.result_backend.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(Backend::None);
        };
        let scheme = url
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase())
            .unwrap_or_else(|| url.to_string());
        match scheme.as_str() {
            "redis" | "rediss" => Redis::new(url).map(|r| Backend::Redis(Box::new(r))),
            s if s.starts_with("db+postgres") => {
                Database::new(url).map(|d| Backend::Database(Box::new(d)))
            }
            _ => Ok(Backend::Unsupported(scheme)),
        }
    }

    pub fn configured(&self) -> bool {
        !matches!(self, Backend::None)
    }

    /// The stored meta of `task_id`; None while the backend has none
    /// (Celery's PENDING).
    pub async fn get(&self, task_id: &str) -> Result<Option<Meta>, BackendError> {
        match self {
            Backend::Redis(r) => r.get(task_id).await,
            Backend::Database(d) => d.get(task_id).await,
            other => Err(other.unusable()),
        }
    }

    /// Marks `task_id` ABORTED as `AbortableAsyncResult.abort()` does (a
    /// SUCCESS already stored is left alone, as Celery's backends do).
    pub async fn abort(&self, task_id: &str) -> Result<(), BackendError> {
        match self {
            Backend::Redis(r) => r.abort(task_id).await,
            Backend::Database(d) => d.abort(task_id).await,
            other => Err(other.unusable()),
        }
    }

    fn unusable(&self) -> BackendError {
        match self {
            Backend::Unsupported(s) => BackendError::Unsupported(s.clone()),
            _ => BackendError::NotConfigured,
        }
    }
}

/// Celery's Redis result backend.
pub struct Redis {
    client: redis::Client,
    url: String,
    connection: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
}

impl Redis {
    fn new(url: &str) -> Result<Redis, String> {
        let client = redis::Client::open(client_url(url))
            .map_err(|e| format!("invalid --result-backend `{}`: {e}", mask_password(url)))?;
        Ok(Redis {
            client,
            url: mask_password(url),
            connection: tokio::sync::Mutex::new(None),
        })
    }

    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, BackendError> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(
            COMMAND_TIMEOUT,
            self.client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| BackendError::Unavailable(format!("connecting to {} timed out", self.url)))?
        .map_err(|e| BackendError::Unavailable(format!("{}: {e}", self.url)))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, BackendError> {
        let mut c = self.connection().await?;
        let result = tokio::time::timeout(COMMAND_TIMEOUT, cmd.query_async::<T>(&mut c)).await;
        let error = match result {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => format!("{}: {e}", self.url),
            Err(_) => format!("{}: no answer in {}s", self.url, COMMAND_TIMEOUT.as_secs()),
        };
        // Connect afresh next time.
        *self.connection.lock().await = None;
        Err(BackendError::Unavailable(error))
    }

    async fn get(&self, task_id: &str) -> Result<Option<Meta>, BackendError> {
        let stored: Option<Vec<u8>> = self.run(redis::cmd("GET").arg(meta::key(task_id))).await?;
        match stored {
            None => Ok(None),
            Some(bytes) => Ok(Some(Meta::parse(task_id, &bytes)?)),
        }
    }

    async fn abort(&self, task_id: &str) -> Result<(), BackendError> {
        if self
            .get(task_id)
            .await?
            .is_some_and(|m| m.status == "SUCCESS")
        {
            return Ok(());
        }
        let key = meta::key(task_id);
        let value = meta::aborted(task_id);
        let _: () = self
            .run(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .arg("EX")
                    .arg(meta::RESULT_EXPIRES_SECS),
            )
            .await?;
        // Celery's backend also announces the new state to result waiters.
        let _: i64 = self
            .run(redis::cmd("PUBLISH").arg(&key).arg(&value))
            .await?;
        Ok(())
    }
}

/// Celery's database result backend on PostgreSQL: the `celery_taskmeta`
/// table its workers create, `result` holding the json-encoded result.
pub struct Database {
    pool: sqlx::PgPool,
    url: String,
}

/// What PostgreSQL answers for a table that does not exist yet (Celery
/// creates it on its first write).
const UNDEFINED_TABLE: &str = "42P01";

impl Database {
    fn new(url: &str) -> Result<Database, String> {
        let pg = postgres_url(url);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(COMMAND_TIMEOUT)
            .connect_lazy(&pg)
            .map_err(|e| format!("invalid --result-backend `{}`: {e}", mask_password(url)))?;
        Ok(Database {
            pool,
            url: mask_password(url),
        })
    }

    fn unavailable(&self, e: sqlx::Error) -> BackendError {
        BackendError::Unavailable(format!("{}: {e}", self.url))
    }

    async fn get(&self, task_id: &str) -> Result<Option<Meta>, BackendError> {
        let row = sqlx::query_as::<_, (Option<String>, Option<Vec<u8>>, Option<String>)>(
            "SELECT status, result, traceback FROM celery_taskmeta WHERE task_id = $1",
        )
        .bind(task_id)
        .fetch_optional(&self.pool);
        let row = match tokio::time::timeout(COMMAND_TIMEOUT, row).await {
            Err(_) => {
                return Err(BackendError::Unavailable(format!(
                    "{}: no answer",
                    self.url
                )))
            }
            Ok(Err(sqlx::Error::Database(e))) if e.code().as_deref() == Some(UNDEFINED_TABLE) => {
                return Ok(None)
            }
            Ok(r) => r.map_err(|e| self.unavailable(e))?,
        };
        let Some((status, result, traceback)) = row else {
            return Ok(None);
        };
        let result = match result {
            None => serde_json::Value::Null,
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| MetaError {
                task_id: task_id.to_string(),
                reason: format!("{e} (is result_serializer json?)"),
            })?,
        };
        Ok(Some(Meta {
            status: status.unwrap_or_else(|| "PENDING".into()),
            result,
            traceback,
        }))
    }

    /// As Celery's `_store_result`: insert or update the row, unless it
    /// already holds a SUCCESS.
    async fn abort(&self, task_id: &str) -> Result<(), BackendError> {
        let write = sqlx::query(
            "INSERT INTO celery_taskmeta (id, task_id, status, result, date_done, traceback) \
             VALUES (nextval('task_id_sequence'), $1, $2, $3, NULL, NULL) \
             ON CONFLICT (task_id) DO UPDATE SET status = EXCLUDED.status, \
             result = EXCLUDED.result, date_done = NULL, traceback = NULL \
             WHERE celery_taskmeta.status IS DISTINCT FROM 'SUCCESS'",
        )
        .bind(task_id)
        .bind(meta::ABORTED)
        .bind(b"null".to_vec())
        .execute(&self.pool);
        match tokio::time::timeout(COMMAND_TIMEOUT, write).await {
            Err(_) => Err(BackendError::Unavailable(format!(
                "{}: no answer",
                self.url
            ))),
            Ok(r) => r.map(drop).map_err(|e| self.unavailable(e)),
        }
    }
}

/// SQLAlchemy's `db+postgresql[+driver]://…` as a plain `postgres://…`.
fn postgres_url(url: &str) -> String {
    match url.split_once("://") {
        Some((_, rest)) => format!("postgres://{rest}"),
        None => url.to_string(),
    }
}

/// Celery's `rediss://…?ssl_cert_reqs=CERT_NONE` as the redis crate spells
/// it (`#insecure`); other query options are Celery's, not the client's.
fn client_url(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let insecure = query.split('&').any(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        k == "ssl_cert_reqs" && matches!(v.to_ascii_lowercase().as_str(), "none" | "cert_none")
    });
    if insecure {
        format!("{base}#insecure")
    } else {
        base.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(url: &str) -> Result<Backend, String> {
        Backend::from_args(&ResultsArgs {
            result_backend: Some(url.into()),
        })
    }

    // The database pool is built inside a runtime, as at start-up.
    #[tokio::test]
    async fn the_scheme_picks_the_backend() {
        assert!(matches!(
            backend("redis://localhost:6379/3"),
            Ok(Backend::Redis(_))
        ));
        assert!(matches!(
            backend("rediss://:pw@h:6380/0?ssl_cert_reqs=CERT_NONE"),
            Ok(Backend::Redis(_))
        ));
        assert!(matches!(
            backend("db+postgresql+psycopg2://u:pw@h/db"),
            Ok(Backend::Database(_))
        ));
        assert!(matches!(
            backend("db+mysql://u@h/db"),
            Ok(Backend::Unsupported(s)) if s == "db+mysql"
        ));
        assert_eq!(
            postgres_url("db+postgresql+psycopg2://u:pw@h:5432/db"),
            "postgres://u:pw@h:5432/db"
        );
        assert!(!Backend::from_args(&ResultsArgs {
            result_backend: None
        })
        .unwrap()
        .configured());
        assert_eq!(
            client_url("rediss://h/0?ssl_cert_reqs=none"),
            "rediss://h/0#insecure"
        );
        assert_eq!(client_url("redis://h/0?x=1"), "redis://h/0");
    }
}
