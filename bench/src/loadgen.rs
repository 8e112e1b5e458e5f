//! Load generator: Celery events of the real wire shapes (docs/celery-protocol.md §1.4,
//! §1.5, §3), published to the `celeryev` topic exchange.
//!
//! Per task, as a prefork worker and a client with `task_send_sent_event`
//! produce them: one `task.sent` object from the client (`gen<pid>@bench`) and
//! one `task.multi` array `[task-received, task-started, task-succeeded]` from
//! a worker `w<N>@bench` (about 5% end in `task-failed` with a traceback).
//! Each worker also sends a `worker.heartbeat` every 2 s. A task is therefore
//! 4 events in 2 messages.

use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use lapin::{Confirmation, PublisherConfirm};

pub const EXCHANGE: &str = "celeryev";
pub const WORKERS: usize = 4;
pub const EVENTS_PER_TASK: u64 = 4;
pub const MESSAGES_PER_TASK: u64 = 2;
/// Celery's default `--heartbeat-interval` (docs/celery-protocol.md §1.6).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// Share of tasks that end in `task-failed`.
pub const FAILURE_RATIO: f64 = 0.05;
/// Unconfirmed publishes in flight per channel: deep enough that the broker's
/// confirm round trip never idles the channel, shallow enough to bound memory.
pub const DEFAULT_CONFIRM_WINDOW: usize = 2_000;
pub const DEFAULT_CHANNELS: usize = 4;

/// Declares `celeryev` with exactly Celery's flags (docs/celery-protocol.md §1.1);
/// any other flags make the broker refuse the declare with 406.
pub async fn declare_exchange(channel: &Channel) -> Result<()> {
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                auto_delete: false,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .context("declaring exchange celeryev")
}

/// Arguments of a durable events queue exactly as celeriac declares it for
/// `--events-queue NAME` (server/src/ingest/topology.rs: TTL, max length, and
/// dead-lettering to `celeriac.dlx` with key `NAME.dropped`), so that the
/// bench's preload and celeriac agree: a mismatch is a 406, and a queue
/// without the dead-letter arguments would run celeriac without its drop
/// counter, which is not the configuration under test.
pub fn events_queue_args(name: &str, ttl_secs: u64, max_length: u64) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-message-ttl".into(),
        amqp_int(ttl_secs.saturating_mul(1000)),
    );
    args.insert("x-max-length".into(), amqp_int(max_length));
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("celeriac.dlx".into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(format!("{name}.dropped").as_str().into()),
    );
    args
}

/// An integer encoded as celeriac and py-amqp encode it (32-bit when it
/// fits), so that declares compare equal.
fn amqp_int(v: u64) -> AMQPValue {
    match i32::try_from(v) {
        Ok(v) => AMQPValue::LongInt(v),
        Err(_) => AMQPValue::LongLongInt(i64::try_from(v).unwrap_or(i64::MAX)),
    }
}

/// Declares a durable queue bound to `celeryev` with `#` and returns its
/// current message count.
pub async fn declare_bound_queue(channel: &Channel, name: &str, args: FieldTable) -> Result<u32> {
    declare_exchange(channel).await?;
    let queue = channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .with_context(|| format!("declaring queue {name}"))?;
    channel
        .queue_bind(
            name.into(),
            EXCHANGE.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("binding queue {name} to {EXCHANGE}"))?;
    Ok(queue.message_count())
}

/// Ready messages in a queue, by passive declare: exact and immediate, where
/// the management API's figure lags by up to its 5 s statistics interval.
pub async fn queue_depth(channel: &Channel, name: &str) -> Result<u32> {
    let queue = channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("passive declare of queue {name}"))?;
    Ok(queue.message_count())
}

/// What to publish.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Stop after this many tasks (split across channels).
    pub tasks: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Task events per second to aim at (heartbeats excluded); `None` is as
    /// fast as the broker takes them.
    pub rate: Option<f64>,
    pub heartbeats: bool,
    pub channels: usize,
    /// Publisher confirms: an event counts once the broker acked it. Without
    /// them (the default: they cost the broker ~40% of its publish rate on
    /// this machine kind) an event counts once lapin wrote it, and each
    /// channel ends with a synchronous round trip, which the broker answers
    /// only after it routed every publish before it; unroutable events are
    /// avoided by waiting for the consumer's binding before publishing.
    pub confirms: bool,
    pub confirm_window: usize,
    /// Task names: `None` is the four names of a small app; `Some(n)`
    /// names task `i` (counted across channels) `tasks.generated.t{i % n}`,
    /// so `n` at least the task count gives every task a name of its own
    /// (the flood of the names scenario).
    pub names: Option<u64>,
}

impl Plan {
    pub fn tasks(tasks: u64) -> Plan {
        Plan {
            tasks: Some(tasks),
            duration: None,
            rate: None,
            heartbeats: true,
            channels: DEFAULT_CHANNELS,
            confirms: false,
            confirm_window: DEFAULT_CONFIRM_WINDOW,
            names: None,
        }
    }

    pub fn timed(duration: Duration) -> Plan {
        Plan {
            tasks: None,
            duration: Some(duration),
            ..Plan::tasks(0)
        }
    }
}

/// What the broker took.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Published {
    pub tasks: u64,
    pub messages: u64,
    pub events: u64,
    /// Messages the broker refused (nack) or could not route (returned); not
    /// counted in `messages`/`events`.
    pub refused: u64,
    pub elapsed: Duration,
}

impl Published {
    pub fn events_per_sec(&self) -> f64 {
        per_sec(self.events, self.elapsed)
    }

    fn add(&mut self, other: &Published) {
        self.tasks += other.tasks;
        self.messages += other.messages;
        self.events += other.events;
        self.refused += other.refused;
    }
}

pub fn per_sec(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// Publishes per `plan` on a fresh connection to `url` (an AMQP URL including
/// the vhost) and returns what the broker took.
pub async fn run(url: &str, plan: &Plan) -> Result<Published> {
    if plan.tasks.is_none() && plan.duration.is_none() {
        bail!("a publish plan needs a task count or a duration");
    }
    let channels = plan.channels.max(1);
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?;
    let setup = connection
        .create_channel()
        .await
        .context("opening a channel")?;
    declare_exchange(&setup).await?;

    let start = Instant::now();
    let deadline = plan.duration.map(|d| start + d);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let heartbeat = if plan.heartbeats {
        let channel = open_channel(&connection, plan.confirms).await?;
        let confirms = plan.confirms;
        Some(tokio::spawn(async move {
            publish_heartbeats(channel, stopped, confirms).await
        }))
    } else {
        None
    };

    let mut publishers = Vec::with_capacity(channels);
    for index in 0..channels {
        let channel = open_channel(&connection, plan.confirms).await?;
        let quota = plan.tasks.map(|n| {
            let c = channels as u64;
            n / c + u64::from((index as u64) < n % c)
        });
        let rate = plan.rate.map(|r| r / channels as f64);
        let window = plan.confirm_window.max(1);
        let confirms = plan.confirms;
        let seed = fastrand::u64(..) ^ index as u64;
        let names = plan.names.map(|n| Names {
            count: n.max(1),
            next: index as u64,
            stride: channels as u64,
        });
        publishers.push(tokio::spawn(async move {
            let mut generator = Generator::new(seed);
            generator.names = names;
            publish_tasks(channel, generator, quota, deadline, rate, window, confirms).await
        }));
    }

    let mut total = Published::default();
    let mut failure = None;
    for publisher in publishers {
        match publisher.await.context("publisher task panicked") {
            Ok(Ok(p)) => total.add(&p),
            Ok(Err(e)) | Err(e) => failure = failure.or(Some(e)),
        }
    }
    total.elapsed = start.elapsed();
    let _ = stop.send(true);
    if let Some(heartbeat) = heartbeat {
        match heartbeat.await.context("heartbeat task panicked") {
            Ok(Ok(p)) => total.add(&p),
            Ok(Err(e)) | Err(e) => failure = failure.or(Some(e)),
        }
    }
    // A clean close flushes what lapin still buffers before the socket goes.
    let _ = connection.close(200, "bench done".into()).await;
    match failure {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

async fn open_channel(connection: &Connection, confirms: bool) -> Result<Channel> {
    let channel = connection
        .create_channel()
        .await
        .context("opening a channel")?;
    if confirms {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("enabling publisher confirms")?;
    }
    Ok(channel)
}

/// Publishes in flight, settled oldest first so the window stays bounded.
struct InFlight {
    pending: std::collections::VecDeque<(PublisherConfirm, u64, u64)>,
    window: usize,
    done: Published,
}

impl InFlight {
    fn new(window: usize) -> InFlight {
        InFlight {
            pending: std::collections::VecDeque::with_capacity(window + 2),
            window,
            done: Published::default(),
        }
    }

    async fn push(&mut self, confirm: PublisherConfirm, events: u64, tasks: u64) -> Result<()> {
        self.pending.push_back((confirm, events, tasks));
        while self.pending.len() > self.window {
            self.settle_one().await?;
        }
        Ok(())
    }

    async fn settle_one(&mut self) -> Result<()> {
        let Some((confirm, events, tasks)) = self.pending.pop_front() else {
            return Ok(());
        };
        match confirm.await.context("waiting for a publisher confirm")? {
            Confirmation::Ack(None) | Confirmation::NotRequested => {
                self.done.messages += 1;
                self.done.events += events;
                self.done.tasks += tasks;
            }
            Confirmation::Ack(Some(_)) | Confirmation::Nack(_) => self.done.refused += 1,
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<Published> {
        while !self.pending.is_empty() {
            self.settle_one().await?;
        }
        Ok(self.done)
    }
}

fn publish_options(confirms: bool) -> BasicPublishOptions {
    // mandatory: with confirms, an event no queue takes comes back and is not
    // counted. Without confirms nobody would collect the returns, so lapin
    // would pile them up.
    BasicPublishOptions {
        mandatory: confirms,
        ..BasicPublishOptions::default()
    }
}

async fn publish_tasks(
    channel: Channel,
    mut generator: Generator,
    quota: Option<u64>,
    deadline: Option<Instant>,
    rate: Option<f64>,
    window: usize,
    confirms: bool,
) -> Result<Published> {
    let client_props = properties(&generator.client);
    let worker_props: Vec<BasicProperties> =
        (0..WORKERS).map(|w| properties(&worker_name(w))).collect();
    let mut in_flight = InFlight::new(window);
    let mut sent = String::with_capacity(1024);
    let mut multi = String::with_capacity(4096);
    let start = Instant::now();
    let mut issued: u64 = 0;
    loop {
        if quota.is_some_and(|q| issued >= q) {
            break;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if let Some(rate) = rate.filter(|r| *r > 0.0) {
            let due = start + Duration::from_secs_f64((issued * EVENTS_PER_TASK) as f64 / rate);
            // Sleeping for less than a timer tick only adds jitter.
            if due > now + Duration::from_millis(2) {
                let until = deadline.map_or(due, |d| due.min(d));
                tokio::time::sleep_until(until.into()).await;
                continue;
            }
        }
        let worker = generator.next_task(&mut sent, &mut multi);
        let confirm = channel
            .basic_publish(
                EXCHANGE.into(),
                "task.sent".into(),
                publish_options(confirms),
                sent.as_bytes(),
                client_props.clone(),
            )
            .await
            .context("publishing task.sent")?;
        in_flight.push(confirm, 1, 0).await?;
        let confirm = channel
            .basic_publish(
                EXCHANGE.into(),
                "task.multi".into(),
                publish_options(confirms),
                multi.as_bytes(),
                worker_props[worker].clone(),
            )
            .await
            .context("publishing task.multi")?;
        in_flight.push(confirm, EVENTS_PER_TASK - 1, 1).await?;
        issued += 1;
    }
    let done = in_flight.finish().await?;
    sync(&channel).await?;
    Ok(done)
}

/// A synchronous method on `channel`: the broker's channel process answers it
/// after handling every publish sent before it on that channel.
async fn sync(channel: &Channel) -> Result<()> {
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                passive: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .context("synchronising with the broker after publishing")
}

async fn publish_heartbeats(
    channel: Channel,
    mut stop: tokio::sync::watch::Receiver<bool>,
    confirms: bool,
) -> Result<Published> {
    let props: Vec<BasicProperties> = (0..WORKERS).map(|w| properties(&worker_name(w))).collect();
    let mut beats = Heartbeats::default();
    let mut in_flight = InFlight::new(DEFAULT_CONFIRM_WINDOW);
    let mut body = String::with_capacity(512);
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            // A dropped sender means the run is over as well.
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
        for (worker, props) in props.iter().enumerate() {
            beats.next(worker, &mut body);
            let confirm = channel
                .basic_publish(
                    EXCHANGE.into(),
                    "worker.heartbeat".into(),
                    publish_options(confirms),
                    body.as_bytes(),
                    props.clone(),
                )
                .await
                .context("publishing worker.heartbeat")?;
            in_flight.push(confirm, 1, 0).await?;
        }
    }
    let mut done = in_flight.finish().await?;
    sync(&channel).await?;
    // Heartbeats are events, not tasks.
    done.tasks = 0;
    Ok(done)
}

/// Properties exactly as kombu sets them on an event (docs/celery-protocol.md §1.4).
pub fn properties(hostname: &str) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "hostname".into(),
        AMQPValue::LongString(LongString::from(hostname)),
    );
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(1)
        .with_priority(0)
        .with_headers(headers)
}

pub fn worker_name(index: usize) -> String {
    format!("w{}@bench", index + 1)
}

fn worker_pid(index: usize) -> u32 {
    31_000 + index as u32
}

#[allow(clippy::disallowed_methods)] // the load generator stamps events as a real worker would
fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A formatted Python traceback, as a failing task's `task-failed` carries it
/// (docs/celery-protocol.md §3.2), pre-escaped as a JSON string.
fn traceback_json() -> &'static str {
    static TRACEBACK: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TRACEBACK.get_or_init(|| {
        let text = "Traceback (most recent call last):\n  File \"/srv/app/venv/lib/python3.11/site-packages/celery/app/trace.py\", line 564, in trace_task\n    R = retval = fun(*args, **kwargs)\n                 ^^^^^^^^^^^^^^^^^^^^\n  File \"/srv/app/venv/lib/python3.11/site-packages/celery/app/trace.py\", line 883, in __protected_call__\n    return self.run(*args, **kwargs)\n           ^^^^^^^^^^^^^^^^^^^^^^^^^\n  File \"/srv/app/orders/tasks.py\", line 88, in process_order\n    raise ValueError(f'order {order_id} has no items')\nValueError: order has no items\n";
        serde_json::Value::String(text.to_owned()).to_string()
    })
}

/// Generated task names: this generator's tasks are `next`, `next +
/// stride`, ... of all tasks, named by their number modulo `count`.
#[derive(Clone, Copy, Debug)]
pub struct Names {
    pub count: u64,
    pub next: u64,
    pub stride: u64,
}

/// Builds the two messages of each task. Every string it writes is a Python
/// repr without `"` or `\`, so it needs no JSON escaping.
pub struct Generator {
    /// Generated names instead of the four of the small app.
    pub names: Option<Names>,
    rng: fastrand::Rng,
    pub client: String,
    pid: u32,
    client_clock: u64,
    worker_clocks: [u64; WORKERS],
    seq: u64,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        let pid = std::process::id();
        Generator {
            rng: fastrand::Rng::with_seed(seed),
            client: format!("gen{pid}@bench"),
            pid,
            client_clock: 0,
            worker_clocks: [0; WORKERS],
            seq: 0,
            names: None,
        }
    }

    fn uuid(&mut self) -> uuid::Uuid {
        uuid::Builder::from_random_bytes(self.rng.u128(..).to_le_bytes()).into_uuid()
    }

    /// Writes the `task.sent` body into `sent` and the `task.multi` body into
    /// `multi`; returns the index of the worker that "ran" the task.
    pub fn next_task(&mut self, sent: &mut String, multi: &mut String) -> usize {
        sent.clear();
        multi.clear();
        self.seq += 1;
        let worker = (self.seq % WORKERS as u64) as usize;
        let id = self.uuid();
        let n = self.rng.u32(1..100_000);
        let (name, args, kwargs, result) = match self.seq % 4 {
            0 => (
                "tasks.add",
                format!("({}, {})", n, n % 97),
                "{}".to_owned(),
                format!("{}", n + n % 97),
            ),
            1 => (
                "orders.tasks.process_order",
                format!("({n},)"),
                "{'priority': 'high', 'notify': True}".to_owned(),
                format!(
                    "{{'order_id': {n}, 'status': 'shipped', 'items': {}}}",
                    n % 7 + 1
                ),
            ),
            2 => (
                "mail.tasks.send_welcome_email",
                format!("('user{n}@example.com',)"),
                "{'template': 'welcome', 'locale': 'en_US'}".to_owned(),
                "None".to_owned(),
            ),
            _ => (
                "reports.tasks.generate_daily",
                format!("('2026-11-23', 'eu-west-{}')", n % 3 + 1),
                "{'format': 'pdf', 'recipients': ['ops@example.com']}".to_owned(),
                format!("'s3://reports/2026-11-23/eu-west-{}.pdf'", n % 3 + 1),
            ),
        };
        let generated;
        let name = match &mut self.names {
            Some(g) => {
                generated = format!("tasks.generated.t{:06}", g.next % g.count);
                g.next += g.stride;
                generated.as_str()
            }
            None => name,
        };
        let ts = now_secs();
        self.client_clock += 1;
        // Writing to a String cannot fail; the results are ignored for that
        // reason alone.
        let _ = write!(
            sent,
            r#"{{"hostname": "{client}", "utcoffset": 0.0, "pid": {pid}, "clock": {clock}, "uuid": "{id}", "root_id": "{id}", "parent_id": null, "name": "{name}", "args": "{args}", "kwargs": "{kwargs}", "retries": 0, "eta": null, "expires": null, "queue": "celery", "exchange": "", "routing_key": "celery", "timestamp": {ts}, "type": "task-sent"}}"#,
            client = self.client,
            pid = self.pid,
            clock = self.client_clock,
        );
        let host = worker_name(worker);
        let wpid = worker_pid(worker);
        let clock = &mut self.worker_clocks[worker];
        let runtime = 0.001 + self.rng.f64() * 0.05;
        let _ = write!(
            multi,
            r#"[{{"hostname": "{host}", "utcoffset": 0.0, "pid": {wpid}, "clock": {c1}, "uuid": "{id}", "name": "{name}", "args": "{args}", "kwargs": "{kwargs}", "root_id": "{id}", "parent_id": null, "retries": 0, "eta": null, "expires": null, "timestamp": {t1}, "type": "task-received"}}, {{"hostname": "{host}", "utcoffset": 0.0, "pid": {wpid}, "clock": {c2}, "uuid": "{id}", "timestamp": {t2}, "type": "task-started"}}, "#,
            c1 = *clock + 1,
            c2 = *clock + 2,
            t1 = ts + 0.0011,
            t2 = ts + 0.0023,
        );
        let t3 = ts + 0.0023 + runtime;
        if self.rng.f64() < FAILURE_RATIO {
            let _ = write!(
                multi,
                r#"{{"hostname": "{host}", "utcoffset": 0.0, "pid": {wpid}, "clock": {c3}, "uuid": "{id}", "exception": "ValueError('order has no items')", "traceback": {tb}, "timestamp": {t3}, "type": "task-failed"}}]"#,
                c3 = *clock + 3,
                tb = traceback_json(),
            );
        } else {
            let _ = write!(
                multi,
                r#"{{"hostname": "{host}", "utcoffset": 0.0, "pid": {wpid}, "clock": {c3}, "uuid": "{id}", "result": "{result}", "runtime": {runtime}, "timestamp": {t3}, "type": "task-succeeded"}}]"#,
                c3 = *clock + 3,
            );
        }
        *clock += 3;
        worker
    }
}

/// Worker heartbeat bodies (docs/celery-protocol.md §3.8, timer form).
#[derive(Default)]
pub struct Heartbeats {
    clocks: [u64; WORKERS],
    beats: u64,
}

impl Heartbeats {
    pub fn next(&mut self, worker: usize, body: &mut String) {
        body.clear();
        self.beats += 1;
        let clock = &mut self.clocks[worker % WORKERS];
        *clock += 2;
        let _ = write!(
            body,
            r#"{{"hostname": "{host}", "utcoffset": 0.0, "pid": {pid}, "clock": {clock}, "freq": 2.0, "active": {active}, "processed": {processed}, "loadavg": [1.25, 0.98, 0.71], "sw_ident": "py-celery", "sw_ver": "5.7.0", "sw_sys": "Linux", "timestamp": {ts}, "type": "worker-heartbeat"}}"#,
            host = worker_name(worker),
            pid = worker_pid(worker),
            active = self.beats % 3,
            processed = self.beats * 40,
            ts = now_secs(),
        );
    }
}

/// An AMQP URL with its password hidden, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_interleave_across_channels() {
        let name = |g: &mut Generator| {
            let (mut sent, mut multi) = (String::new(), String::new());
            g.next_task(&mut sent, &mut multi);
            let v: serde_json::Value = serde_json::from_str(&sent).unwrap();
            let m: serde_json::Value = serde_json::from_str(&multi).unwrap();
            assert_eq!(v["name"], m[0]["name"]);
            v["name"].as_str().unwrap().to_owned()
        };
        let mut a = Generator::new(1);
        let mut b = Generator::new(2);
        a.names = Some(Names {
            count: 1_000_000,
            next: 0,
            stride: 2,
        });
        b.names = Some(Names {
            count: 1_000_000,
            next: 1,
            stride: 2,
        });
        let got = [name(&mut a), name(&mut b), name(&mut a), name(&mut b)];
        assert_eq!(
            got,
            [
                "tasks.generated.t000000",
                "tasks.generated.t000001",
                "tasks.generated.t000002",
                "tasks.generated.t000003"
            ]
        );
        let mut c = Generator::new(3);
        c.names = Some(Names {
            count: 2,
            next: 0,
            stride: 1,
        });
        let got = [name(&mut c), name(&mut c), name(&mut c)];
        assert_eq!(
            got,
            [
                "tasks.generated.t000000",
                "tasks.generated.t000001",
                "tasks.generated.t000000"
            ]
        );
    }

    #[test]
    fn bodies_are_the_real_shapes() {
        let mut g = Generator::new(7);
        let (mut sent, mut multi) = (String::new(), String::new());
        let mut failed = 0;
        for _ in 0..2_000 {
            g.next_task(&mut sent, &mut multi);
            let s: serde_json::Value = serde_json::from_str(&sent).expect("sent is JSON");
            assert_eq!(s["type"], "task-sent");
            assert_eq!(s["hostname"], g.client.as_str());
            let m: serde_json::Value = serde_json::from_str(&multi).expect("multi is JSON");
            let events = m.as_array().expect("multi is an array");
            assert_eq!(events.len(), 3);
            assert_eq!(events[0]["type"], "task-received");
            assert_eq!(events[1]["type"], "task-started");
            for e in events {
                assert_eq!(e["uuid"], s["uuid"]);
                assert!(e["timestamp"].as_f64().is_some());
            }
            match events[2]["type"].as_str() {
                Some("task-succeeded") => assert!(events[2]["result"].is_string()),
                Some("task-failed") => {
                    failed += 1;
                    assert!(events[2]["traceback"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("Traceback")));
                }
                other => panic!("unexpected final event {other:?}"),
            }
        }
        // 5% of 2,000 with a generous margin for the seed.
        assert!((40..=180).contains(&failed), "failed = {failed}");
    }

    #[test]
    fn uuids_are_unique_v4() {
        let mut g = Generator::new(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = g.uuid();
            assert_eq!(id.get_version_num(), 4);
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn heartbeat_is_json() {
        let mut h = Heartbeats::default();
        let mut body = String::new();
        h.next(2, &mut body);
        let v: serde_json::Value = serde_json::from_str(&body).expect("heartbeat is JSON");
        assert_eq!(v["hostname"], "w3@bench");
        assert_eq!(v["type"], "worker-heartbeat");
    }

    #[test]
    fn redacts_password() {
        assert_eq!(
            redact("amqp://guest:secret@127.0.0.1:5672/vh"),
            "amqp://guest:***@127.0.0.1:5672/vh"
        );
        assert_eq!(redact("amqp://127.0.0.1"), "amqp://127.0.0.1");
    }
}
