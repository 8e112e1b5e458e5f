//! celeriac's internal events: each occurrence that matters to an operator
//! (a source connected or lost, a body skipped, events dropped by the
//! broker, a dashboard client resynchronised) is one variant, and emitting
//! it logs, counts and updates health in one place. Label values come from
//! enums, so the series registered up front and the ones the code uses
//! cannot drift apart.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use prometheus::{IntCounter, IntGauge};

use crate::events::MalformedReason;
use crate::metrics::SelfMetrics;

/// Why the broker dropped events before celeriac read them: the closed set
/// of `celeriac_events_dropped_total{reason}` labels (RabbitMQ's dead-letter
/// reasons, and `other` for anything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Expired,
    Maxlen,
    Rejected,
    DeliveryLimit,
    Other,
}

impl DropReason {
    pub const ALL: [DropReason; 5] = [
        DropReason::Expired,
        DropReason::Maxlen,
        DropReason::Rejected,
        DropReason::DeliveryLimit,
        DropReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Expired => "expired",
            DropReason::Maxlen => "maxlen",
            DropReason::Rejected => "rejected",
            DropReason::DeliveryLimit => "delivery_limit",
            DropReason::Other => "other",
        }
    }

    /// A broker's reason text; unknown ones are `Other`, so a hostile
    /// header cannot grow the metric.
    pub fn parse(text: &str) -> DropReason {
        DropReason::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .unwrap_or(DropReason::Other)
    }
}

/// Something that happened to an event source.
#[derive(Debug)]
pub enum SourceEvent<'a> {
    /// Consuming started on a fresh connection, with `backlog` messages
    /// waiting in the events queue (published while nobody consumed it).
    Connected {
        reconnect: bool,
        queue: &'a str,
        backlog: u64,
    },
    /// A consuming session ended; the source will retry.
    Lost,
    /// A connection attempt or a session failed; the next try is in `delay`.
    /// `repeated` is true when the same reason was already reported, so a
    /// broker that stays down logs once.
    Retrying {
        reason: &'a str,
        delay: Duration,
        repeated: bool,
    },
    /// Messages taken off the broker, and string fields cut to their cap.
    Received { messages: u64, truncated: u64 },
    /// Bodies or elements skipped because they could not be decoded.
    Malformed { reason: MalformedReason, count: u64 },
    /// Events the broker dropped before celeriac could read them.
    Dropped { reason: DropReason, count: u64 },
    /// A source that cannot acknowledge is subscribed again after
    /// `seconds` without a subscription, in which events were lost.
    Gap { seconds: f64 },
}

/// One event source's health and counters. Each source has its own, so two
/// sources never overwrite each other's state; readers (`/readyz`, the
/// dashboard, alerts) look at all of them.
pub struct SourceStatus {
    /// The broker URL with its password masked.
    name: String,
    consuming: AtomicBool,
    /// Messages of the backlog found at connect not read yet.
    behind: AtomicU64,
    last_error: Mutex<Option<String>>,
    connected: IntGauge,
    reconnects: IntCounter,
    messages: IntCounter,
    truncated: IntCounter,
    malformed: [IntCounter; MalformedReason::ALL.len()],
    dropped: [IntCounter; DropReason::ALL.len()],
    /// Only for sources that cannot acknowledge: one that can never has a
    /// gap, and a series that is always 0 would say nothing.
    gap_seconds: Option<prometheus::Counter>,
}

impl SourceStatus {
    /// Resolves (and so creates at 0) every series this source counts into;
    /// `acks` says whether the source acknowledges what it consumes.
    pub fn new(name: String, acks: bool, metrics: &SelfMetrics) -> SourceStatus {
        SourceStatus {
            gap_seconds: (!acks).then(|| metrics.events_gap_seconds.with_label_values(&[&name])),
            connected: metrics.broker_connected.with_label_values(&[&name]),
            reconnects: metrics.broker_reconnects.with_label_values(&[&name]),
            name,
            consuming: AtomicBool::new(false),
            behind: AtomicU64::new(0),
            last_error: Mutex::new(None),
            messages: metrics.messages_received.clone(),
            truncated: metrics.fields_truncated.clone(),
            malformed: MalformedReason::ALL
                .map(|r| metrics.events_malformed.with_label_values(&[r.as_str()])),
            dropped: DropReason::ALL
                .map(|r| metrics.events_dropped.with_label_values(&[r.as_str()])),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// True while a consumer is attached to the broker.
    pub fn is_consuming(&self) -> bool {
        self.consuming.load(Ordering::Relaxed)
    }

    /// Messages of the backlog found at the last connect that are not read
    /// yet: a restarted celeriac that reports the present while it still
    /// reads the past is behind by this much.
    pub fn behind(&self) -> u64 {
        self.behind.load(Ordering::Relaxed)
    }

    /// Why the source is down, when it is.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    /// Logs, counts and updates health for one occurrence.
    pub fn emit(&self, event: SourceEvent<'_>) {
        match event {
            SourceEvent::Connected {
                reconnect,
                queue,
                backlog,
            } => {
                self.behind.store(backlog, Ordering::Relaxed);
                if reconnect {
                    self.reconnects.inc();
                }
                *self.last_error.lock() = None;
                self.consuming.store(true, Ordering::Relaxed);
                self.connected.set(1);
                let how = if reconnect {
                    "reconnected"
                } else {
                    "connected"
                };
                tracing::info!(broker = %self.name, queue, backlog, "{how}; consuming events");
            }
            SourceEvent::Lost => {
                self.consuming.store(false, Ordering::Relaxed);
                self.connected.set(0);
            }
            SourceEvent::Retrying {
                reason,
                delay,
                repeated,
            } => {
                *self.last_error.lock() = Some(reason.to_string());
                let secs = delay.as_secs_f64();
                if repeated {
                    tracing::debug!(broker = %self.name, "{reason}; retrying in {secs:.1}s");
                } else {
                    tracing::warn!(broker = %self.name, "{reason}; retrying in {secs:.1}s (then with growing delays)");
                }
            }
            SourceEvent::Received {
                messages,
                truncated,
            } => {
                if messages > 0 {
                    self.messages.inc_by(messages);
                    // Messages arrive in queue order, so the backlog is read
                    // first; a lost race only makes this reach 0 early.
                    let _ = self
                        .behind
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                            (b > 0).then(|| b.saturating_sub(messages))
                        });
                }
                if truncated > 0 {
                    self.truncated.inc_by(truncated);
                }
            }
            // `ALL` lists each enum in declaration order, so a reason's
            // discriminant is its counter's index.
            SourceEvent::Malformed { reason, count } => {
                self.malformed[reason as usize].inc_by(count);
            }
            SourceEvent::Dropped { reason, count } => {
                self.dropped[reason as usize].inc_by(count);
            }
            SourceEvent::Gap { seconds } => {
                if let Some(gap) = &self.gap_seconds {
                    gap.inc_by(seconds.max(0.0));
                }
                tracing::warn!(
                    broker = %self.name,
                    "events published in the {seconds:.1}s without a subscription are lost"
                );
            }
        }
    }
}

/// Something that happened to the dashboard's clients.
#[derive(Debug)]
pub enum DashboardEvent {
    /// Clients were sent a fresh snapshot instead of deltas: they fell
    /// behind the broadcast, or too much changed at once to list.
    Resynced { clients: usize, why: &'static str },
}

/// Emits the dashboard's events (`celeriac_ws_resyncs_total`).
#[derive(Clone)]
pub struct DashboardTelemetry {
    resyncs: IntCounter,
}

impl DashboardTelemetry {
    pub fn new(metrics: &SelfMetrics) -> DashboardTelemetry {
        DashboardTelemetry {
            resyncs: metrics.ws_resyncs.clone(),
        }
    }

    pub fn emit(&self, event: DashboardEvent) {
        match event {
            DashboardEvent::Resynced { clients, why } => {
                self.resyncs.inc_by(clients as u64);
                tracing::debug!(clients, "dashboard resynchronised: {why}");
            }
        }
    }
}

/// When the state owner last applied an event, from any source.
#[derive(Default)]
pub struct LastEvent(AtomicU64);

impl LastEvent {
    pub fn set(&self, t: f64) {
        self.0.store(t.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<f64> {
        let t = f64::from_bits(self.0.load(Ordering::Relaxed));
        (t > 0.0).then_some(t)
    }
}

/// What every source says together: consuming while any is, and the first
/// error of one that is down.
pub fn any_consuming(sources: &[std::sync::Arc<SourceStatus>]) -> bool {
    sources.iter().any(|s| s.is_consuming())
}

/// Why a source is down, when one is; with several brokers the message
/// names the broker, since the others may be fine.
pub fn first_error(sources: &[std::sync::Arc<SourceStatus>]) -> Option<String> {
    let error = sources
        .iter()
        .find_map(|s| Some((s.name(), s.last_error()?)))?;
    Some(match sources {
        [_] => error.1,
        _ => format!("{}: {}", error.0, error.1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_event_counts_and_updates_health_together() {
        let metrics = SelfMetrics::new();
        let s = SourceStatus::new("amqp://h//".into(), true, &metrics);
        s.emit(SourceEvent::Retrying {
            reason: "refused",
            delay: Duration::from_millis(500),
            repeated: false,
        });
        assert_eq!(s.last_error().as_deref(), Some("refused"));
        assert!(!s.is_consuming());
        s.emit(SourceEvent::Connected {
            reconnect: true,
            queue: "q",
            backlog: 5,
        });
        assert!(s.is_consuming() && s.last_error().is_none());
        assert_eq!(s.behind(), 5);
        s.emit(SourceEvent::Received {
            messages: 3,
            truncated: 0,
        });
        assert_eq!(s.behind(), 2);
        s.emit(SourceEvent::Received {
            messages: 3,
            truncated: 0,
        });
        assert_eq!(s.behind(), 0);
        let connected = metrics.broker_connected.with_label_values(&["amqp://h//"]);
        assert_eq!(connected.get(), 1);
        let reconnects = metrics.broker_reconnects.with_label_values(&["amqp://h//"]);
        assert_eq!(reconnects.get(), 1);
        s.emit(SourceEvent::Malformed {
            reason: MalformedReason::TooLarge,
            count: 2,
        });
        s.emit(SourceEvent::Dropped {
            reason: DropReason::parse("maxlen"),
            count: 3,
        });
        let malformed = metrics.events_malformed.with_label_values(&["too_large"]);
        assert_eq!(malformed.get(), 2);
        assert_eq!(
            metrics.events_dropped.with_label_values(&["maxlen"]).get(),
            3
        );
        s.emit(SourceEvent::Lost);
        assert_eq!(connected.get(), 0);
    }

    #[test]
    fn only_a_source_that_cannot_acknowledge_counts_gaps() {
        let metrics = SelfMetrics::new();
        let redis = SourceStatus::new("redis://h/0".into(), false, &metrics);
        let amqp = SourceStatus::new("amqp://h//".into(), true, &metrics);
        let gap = |source: &str| {
            metrics
                .events_gap_seconds
                .with_label_values(&[source])
                .get()
        };
        assert_eq!(gap("redis://h/0"), 0.0);
        redis.emit(SourceEvent::Gap { seconds: 1.5 });
        redis.emit(SourceEvent::Gap { seconds: -1.0 });
        assert_eq!(gap("redis://h/0"), 1.5);
        amqp.emit(SourceEvent::Gap { seconds: 2.0 });
        let families = metrics.registry.gather();
        let series = families
            .iter()
            .find(|f| f.name() == "celeriac_events_gap_seconds_total")
            .map_or(0, |f| f.get_metric().len());
        assert_eq!(series, 1, "no series for the acknowledging source");
    }

    #[test]
    fn each_reason_sits_at_its_discriminant_in_all() {
        for (i, r) in MalformedReason::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i, "{r:?}");
        }
        for (i, r) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i, "{r:?}");
        }
    }

    #[test]
    fn every_label_exists_before_anything_happens() {
        let metrics = SelfMetrics::new();
        let _s = SourceStatus::new("x".into(), true, &metrics);
        let text = {
            let mut out = Vec::new();
            let encoder = prometheus::TextEncoder::new();
            prometheus::Encoder::encode(&encoder, &metrics.registry.gather(), &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        for r in MalformedReason::ALL {
            assert!(
                text.contains(&format!("reason=\"{}\"", r.as_str())),
                "{r:?}"
            );
        }
        for r in DropReason::ALL {
            assert!(
                text.contains(&format!("reason=\"{}\"", r.as_str())),
                "{r:?}"
            );
        }
        assert_eq!(DropReason::parse("evil"), DropReason::Other);
    }
}
