//! `GET /readyz`: whether celeriac hears events, and how its queue
//! statistics fare.

use serde::{Deserialize, Serialize};

use crate::queues::QueueSource;

/// The body of `/readyz` (200 when ready, else 503).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    pub consuming: bool,
    /// Messages of the events queue's backlog at connect not read yet
    /// (published while celeriac was away); ready waits until it is small.
    #[serde(default)]
    pub events_behind: u64,
    pub last_event_at: Option<f64>,
    pub last_error: Option<String>,
    /// Each broker's event source, in `--broker` order: with several, one
    /// that is down leaves the others flowing, and this says which.
    #[serde(default)]
    pub brokers: Vec<BrokerDetail>,
    /// Queue statistics: detail only, they never make celeriac unready
    /// (events still flow without them).
    pub broker_stats: BrokerStatsDetail,
    /// The history store; null with `--db none`. Ready waits for it to be
    /// loaded back into memory, not for it to be up: a store that goes down
    /// later only delays writes.
    #[serde(default)]
    pub history: Option<HistoryDetail>,
    /// Why tasks may be missing or unmeasured: detail only, it never makes
    /// celeriac unready (the workers and producers are at fault, not it).
    #[serde(default)]
    pub diagnosis: crate::insight::EventsDiagnosis,
}

/// One broker's event source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerDetail {
    /// The broker URL without its password.
    pub broker: String,
    pub consuming: bool,
    pub events_behind: u64,
    pub last_error: Option<String>,
}

/// The history store's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryDetail {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The file, or the server without its password.
    pub location: String,
    /// The last attempt to reach the store worked.
    pub up: bool,
    /// Its tasks were loaded back into memory at start-up (or when it
    /// first came up).
    pub loaded: bool,
    /// Changed tasks (the batch being written included) and audit entries
    /// waiting to be written.
    pub backlog: u64,
    /// Changes dropped because the backlog was full, since start.
    pub dropped: u64,
    /// Epoch seconds of the last successful write.
    pub last_write_at: Option<f64>,
    /// The last failure, and when (kept after recovery).
    pub last_error: Option<String>,
    pub last_error_at: Option<f64>,
}

/// Where queue depths come from and whether that works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerStatsDetail {
    /// `management` (the RabbitMQ management API), `amqp` (the passive
    /// `queue.declare` fallback), or null: not polled yet, or every source
    /// failed on the last poll.
    pub source: Option<QueueSource>,
    /// The last poll got fresh figures.
    pub working: bool,
    /// Whether the last attempt of each source worked; a source not tried
    /// (the fallback while the management API answers) is false.
    pub up: Ups,
    /// Epoch seconds of the last poll with fresh figures.
    pub last_success_at: Option<f64>,
    /// The last failure of a source, and when (kept after recovery).
    pub last_error: Option<String>,
    pub last_error_at: Option<f64>,
    /// Failed polls per source since start.
    pub errors: Ups<u64>,
}

/// One value per queue statistics source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ups<T = bool> {
    pub management: T,
    pub amqp: T,
    /// Absent in answers of celeriac before it spoke Redis.
    #[serde(default)]
    pub redis: T,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_round_trips_with_nulls_kept() {
        let r = Readiness {
            ready: false,
            consuming: false,
            events_behind: 0,
            last_event_at: None,
            last_error: Some("connection refused".into()),
            brokers: vec![BrokerDetail {
                broker: "amqp://guest:****@h//".into(),
                consuming: false,
                events_behind: 0,
                last_error: Some("connection refused".into()),
            }],
            broker_stats: BrokerStatsDetail {
                source: Some(QueueSource::Amqp),
                working: true,
                up: Ups {
                    management: false,
                    amqp: true,
                    redis: false,
                },
                last_success_at: Some(1.5),
                last_error: None,
                last_error_at: None,
                errors: Ups {
                    management: 2,
                    amqp: 0,
                    redis: 0,
                },
            },
            history: None,
            diagnosis: Default::default(),
        };
        let text = r#"{"ready":false,"consuming":false,"events_behind":0,"last_event_at":null,"last_error":"connection refused","brokers":[{"broker":"amqp://guest:****@h//","consuming":false,"events_behind":0,"last_error":"connection refused"}],"broker_stats":{"source":"amqp","working":true,"up":{"management":false,"amqp":true,"redis":false},"last_success_at":1.5,"last_error":null,"last_error_at":null,"errors":{"management":2,"amqp":0,"redis":0}},"history":null,"diagnosis":{"workers_without_task_events":[],"queues_without_sent_events":[]}}"#;
        assert_eq!(serde_json::to_string(&r).unwrap(), text);
        assert_eq!(serde_json::from_str::<Readiness>(text).unwrap(), r);
        // An answer of a celeriac before Redis, the backlog wait and the
        // brokers list reads too.
        let older = r#"{"ready":false,"consuming":false,"last_event_at":null,"last_error":"connection refused","broker_stats":{"source":"amqp","working":true,"up":{"management":false,"amqp":true},"last_success_at":1.5,"last_error":null,"last_error_at":null,"errors":{"management":2,"amqp":0}},"history":null}"#;
        let one_broker_unlisted = Readiness {
            brokers: Vec::new(),
            ..r
        };
        assert_eq!(
            serde_json::from_str::<Readiness>(older).unwrap(),
            one_broker_unlisted
        );
    }
}
