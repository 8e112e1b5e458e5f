//! The connection lifecycle: connect, declare, consume; on any failure
//! (connect refused, connection or channel closed, consumer cancelled) mark
//! the monitor not ready, wait a capped, jittered, growing delay, and do it
//! all again, declarations included.
//!
//! lapin 4 can recover connections by itself (`enable_auto_recover`), but it
//! replays the old topology as it was. We need the events queue declared
//! again on each connection, the passive-first exchange checks, a wake-up heartbeat after
//! each recovery, and health and metrics updated at each transition, and a
//! consumer cancelled by a deleted queue needs all of that too; one explicit
//! loop handles every case the same way.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use tokio::task::JoinHandle;

use super::consumer::{consume, SessionEnd};
use super::dlx;
use super::pidbox::{self, Broadcaster};
use super::topology::{
    bind_queue, declare_queue, ensure_exchange, open_channel, QueueSpec, Queues, DLX_EXCHANGE,
    EVENT_EXCHANGE,
};
use super::AmqpError;
use crate::ingest::{BatchSender, IngestArgs};
use crate::mask::mask_password;
use crate::shutdown::Shutdown;
use crate::telemetry::{SourceEvent, SourceStatus};
use crate::transport::{Backoff, TransportError};

/// A TCP connect to a black-holed host can otherwise hang for minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The AMQP scheme a kombu broker URL scheme (lower case) stands for:
/// `pyamqp` and `librabbitmq` are AMQP; `None` for other transports.
pub fn amqp_scheme(scheme: &str) -> Option<&'static str> {
    match scheme {
        "amqp" | "pyamqp" | "librabbitmq" => Some("amqp"),
        "amqps" | "pyamqps" => Some("amqps"),
        _ => None,
    }
}

/// Parses a Celery broker URL the way kombu reads it: the scheme as
/// [`amqp_scheme`] maps it, the path is the vhost with `//` or an empty
/// path meaning `/`, and the host may be an IP literal.
pub fn parse_broker_url(url: &str) -> Result<AMQPUri, TransportError> {
    let bad = |reason: String| TransportError::BadUrl {
        url: mask_password(url),
        reason,
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected amqp://user:password@host:port/vhost".into()))?;
    let lower = scheme.to_ascii_lowercase();
    let Some(scheme) = amqp_scheme(&lower) else {
        return Err(bad(format!(
            "unsupported scheme `{lower}` (celeriac speaks AMQP)"
        )));
    };
    let normalised = format!("{scheme}://{rest}");
    let mut uri = AMQPUri::from_str(&normalised).map_err(bad)?;
    if uri.vhost.is_empty() {
        uri.vhost = "/".into();
    }
    // amq-protocol-uri only takes DNS names as hosts and would silently use
    // `localhost` for an IP literal.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    if !host.is_empty() {
        uri.authority.host = host.to_string();
    }
    Ok(uri)
}

/// Runs until shutdown (or until the state owner is gone), reconnecting
/// forever: celeriac keeps serving its API while the broker is away.
pub async fn run(
    status: Arc<SourceStatus>,
    uri: AMQPUri,
    args: IngestArgs,
    mut sender: BatchSender,
    mut shutdown: Shutdown,
) {
    let broker = status.name().to_string();
    // Names the per-process queues for the life of this process, not of one
    // connection: after a connection drop celeriac consumes the same queue
    // again, with what was published meanwhile.
    let instance = uuid::Uuid::new_v4().to_string();
    let mut backoff = Backoff::new();
    let mut ever_connected = false;
    // The last failure logged, so a broker that stays down logs once.
    let mut reported: Option<String> = None;
    loop {
        if shutdown.is_fired() {
            return;
        }
        let attempt = tokio::select! {
            _ = shutdown.fired() => return,
            s = Session::open(&status, &args, &uri, &broker, &instance) => s,
        };
        let reason = match attempt {
            Ok(mut session) => {
                reported = None;
                status.emit(SourceEvent::Connected {
                    reconnect: ever_connected,
                    queue: &session.queue,
                    backlog: u64::from(session.backlog),
                });
                ever_connected = true;

                let started = Instant::now();
                let end = consume(
                    &status,
                    &args,
                    &session.channel,
                    &mut session.consumer,
                    &mut sender,
                    &mut shutdown,
                )
                .await;
                status.emit(SourceEvent::Lost);
                if started.elapsed() >= Backoff::HEALTHY_SESSION {
                    backoff.reset();
                }
                match end {
                    SessionEnd::Shutdown => {
                        session.close_for_good(&args).await;
                        return;
                    }
                    SessionEnd::OwnerGone => {
                        session.close_for_good(&args).await;
                        tracing::debug!("state owner gone; ingest stops");
                        return;
                    }
                    SessionEnd::Lost(reason) => {
                        session.close().await;
                        format!("connection lost: {reason}")
                    }
                }
            }
            Err(e) => e.to_string(),
        };
        let delay = backoff.next_delay();
        status.emit(SourceEvent::Retrying {
            reason: &reason,
            delay,
            repeated: reported.as_deref() == Some(reason.as_str()),
        });
        reported = Some(reason);
        tokio::select! {
            _ = shutdown.fired() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One connection with its consumers and side tasks.
struct Session {
    connection: Connection,
    channel: lapin::Channel,
    consumer: lapin::Consumer,
    queue: String,
    /// Messages in the events queue when consuming started.
    backlog: u32,
    side_tasks: SideTasks,
}

/// Tasks that live as long as one connection. Aborted when dropped, so a
/// session that fails half-way through opening leaves nothing behind that
/// would keep its connection alive.
#[derive(Default)]
struct SideTasks(Vec<JoinHandle<()>>);

impl SideTasks {
    fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(task));
    }
}

impl Drop for SideTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Session {
    async fn open(
        status: &Arc<SourceStatus>,
        args: &IngestArgs,
        uri: &AMQPUri,
        broker: &str,
        instance: &str,
    ) -> Result<Session, AmqpError> {
        let properties = ConnectionProperties::default().with_connection_name("celeriac".into());
        let connection = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect_uri(uri.clone(), properties),
        )
        .await
        .map_err(|_| AmqpError::ConnectTimeout {
            broker: broker.to_string(),
            secs: CONNECT_TIMEOUT.as_secs(),
        })?
        .map_err(AmqpError::amqp(format!("connecting to {broker}")))?;
        match Self::set_up(status, args, &connection, instance).await {
            Ok((channel, consumer, queue, backlog, side_tasks)) => Ok(Session {
                backlog,
                connection,
                channel,
                consumer,
                queue,
                side_tasks,
            }),
            Err(e) => {
                // Dropping the handle alone leaves the connection open while
                // anything lapin still holds refers to it; retries would pile
                // connections up on the broker.
                close_quietly(&connection).await;
                Err(e)
            }
        }
    }

    /// Declares everything and starts consuming on a fresh connection.
    async fn set_up(
        status: &Arc<SourceStatus>,
        args: &IngestArgs,
        connection: &Connection,
        instance: &str,
    ) -> Result<(lapin::Channel, lapin::Consumer, String, u32, SideTasks), AmqpError> {
        ensure_exchange(connection, EVENT_EXCHANGE, ExchangeKind::Topic, true).await?;
        let queues = Queues::new(args, instance);
        let mut side_tasks = SideTasks::default();

        // Drop counting first, so the events queue's dead letters have
        // somewhere to go from its first message. Counting is best effort:
        // without it celeriac still ingests.
        match open_drop_counter(connection, &queues).await {
            Ok(consumer) => {
                side_tasks.spawn(dlx::run(consumer, status.clone()));
            }
            Err(e) => tracing::warn!(error = %e, "cannot count dropped events"),
        }

        let (channel, backlog) =
            declare_events_queue(connection, &queues.events, args.prefetch).await?;
        bind_queue(&channel, &queues.events.name, EVENT_EXCHANGE, "#").await?;
        let consumer = channel
            .basic_consume(
                queues.events.name.as_str().into(),
                format!("celeriac.{instance}").into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(AmqpError::amqp(format!(
                "consuming queue `{}`",
                queues.events.name
            )))?;

        // Only now that we listen do we ask workers to speak up.
        match Broadcaster::open(connection).await {
            Ok(pidbox) => {
                let enable = args.enable_events.then(|| args.enable_events_interval());
                side_tasks.spawn(pidbox::run_broadcasts(pidbox, enable));
            }
            Err(e) => tracing::warn!(error = %e, "cannot broadcast to workers over the pidbox"),
        }
        Ok((channel, consumer, queues.events.name, backlog, side_tasks))
    }

    /// [`Session::close`] when celeriac stops: its per-process queues go too
    /// (they would otherwise linger until they expire); a named queue stays
    /// to collect events until celeriac is back.
    async fn close_for_good(self, args: &IngestArgs) {
        if args.events_queue.is_none() {
            let dropped = format!("{}.dropped", self.queue);
            for queue in [self.queue.as_str(), dropped.as_str()] {
                let delete = self
                    .channel
                    .queue_delete(queue.into(), QueueDeleteOptions::default());
                match tokio::time::timeout(Duration::from_secs(2), delete).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::debug!(queue, error = %e, "deleting on exit"),
                    Err(_) => tracing::debug!(queue, "deleting on exit timed out"),
                }
            }
        }
        self.close().await;
    }

    async fn close(self) {
        drop(self.side_tasks);
        close_quietly(&self.connection).await;
    }
}

/// Best effort: the connection may already be gone, and a broker that does
/// not answer must not hold up a reconnect or a shutdown.
async fn close_quietly(connection: &Connection) {
    let close = connection.close(200, "celeriac closing".into());
    let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
}

/// Declares the events queue on a fresh channel with the consumer's
/// prefetch. A named queue that exists without our dead-letter arguments
/// (declared by an older celeriac, by a benchmark, or by an operator) is
/// still consumed, only without drop counting; any other difference is an
/// error that names the argument.
async fn declare_events_queue(
    connection: &Connection,
    spec: &QueueSpec,
    prefetch: u16,
) -> Result<(lapin::Channel, u32), AmqpError> {
    let open = || async {
        let channel = open_channel(connection).await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(AmqpError::amqp("setting prefetch"))?;
        Ok::<_, AmqpError>(channel)
    };
    let channel = open().await?;
    match declare_queue(&channel, spec).await {
        Ok(backlog) => Ok((channel, backlog)),
        Err(AmqpError::QueueMismatch { argument, .. }) if argument.starts_with("x-dead-letter") => {
            tracing::warn!(
                queue = %spec.name,
                "the events queue exists without celeriac's dead-letter arguments, so events \
                 the broker drops from it cannot be counted; delete the queue once to enable counting"
            );
            // The refusal closed that channel.
            let channel = open().await?;
            let backlog = declare_queue(&channel, &spec.without_dead_lettering()).await?;
            Ok((channel, backlog))
        }
        Err(e) => Err(e),
    }
}

async fn open_drop_counter(
    connection: &Connection,
    queues: &Queues,
) -> Result<lapin::Consumer, AmqpError> {
    ensure_exchange(connection, DLX_EXCHANGE, ExchangeKind::Direct, true).await?;
    let channel = open_channel(connection).await?;
    declare_queue(&channel, &queues.dropped).await?;
    bind_queue(
        &channel,
        &queues.dropped.name,
        DLX_EXCHANGE,
        &queues.dropped.name,
    )
    .await?;
    let options = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    channel
        .basic_consume(
            queues.dropped.name.as_str().into(),
            "".into(),
            options,
            FieldTable::default(),
        )
        .await
        .map_err(AmqpError::amqp(format!(
            "consuming queue `{}`",
            queues.dropped.name
        )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_are_read_as_kombu_reads_them() {
        let u = parse_broker_url("amqp://guest:guest@localhost:5672//").unwrap();
        assert_eq!(u.vhost, "/");
        assert_eq!(u.authority.host, "localhost");
        assert_eq!(u.authority.port, 5672);
        assert_eq!(u.authority.userinfo.username, "guest");

        let u = parse_broker_url("pyamqp://u:p%40ss@10.1.2.3:5673/prod").unwrap();
        assert_eq!(u.vhost, "prod");
        assert_eq!(u.authority.host, "10.1.2.3");
        assert_eq!(u.authority.port, 5673);
        assert_eq!(u.authority.userinfo.password, "p@ss");

        assert_eq!(parse_broker_url("amqp://h/").unwrap().vhost, "/");
        assert_eq!(parse_broker_url("amqp://h").unwrap().vhost, "/");
        assert_eq!(parse_broker_url("amqp://h/%2F").unwrap().vhost, "/");
        assert_eq!(parse_broker_url("amqp://h/a%2Fb").unwrap().vhost, "a/b");
        assert_eq!(
            parse_broker_url("amqp://[::1]:5672/")
                .unwrap()
                .authority
                .host,
            "::1"
        );

        let err = parse_broker_url("redis://:secret@localhost:6379/0").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("redis") && !text.contains("secret"), "{text}");
        assert!(parse_broker_url("localhost").is_err());
    }
}
