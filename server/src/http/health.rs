//! Liveness and readiness, for orchestrators and for Flower's `/healthcheck`.

use std::sync::Arc;

use api::health::{BrokerDetail, BrokerStatsDetail, Readiness, Ups};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;

use crate::app::AppState;

/// The process is up and serving; says nothing about the broker, so a
/// broker outage never gets celeriac restarted in a loop.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Flower's health endpoint, kept so existing probes keep working.
pub async fn healthcheck() -> &'static str {
    "OK"
}

fn broker_stats(shared: &AppState) -> BrokerStatsDetail {
    let snap = shared.broker.snapshot();
    BrokerStatsDetail {
        source: snap.source.map(super::queues::wire_source),
        working: snap.source.is_some(),
        up: Ups {
            management: snap.up[0],
            amqp: snap.up[1],
            redis: snap.up[2],
        },
        last_success_at: snap.last_success_at,
        last_error: snap.last_error.clone(),
        last_error_at: snap.last_error_at,
        errors: Ups {
            management: snap.errors[0],
            amqp: snap.errors[1],
            redis: snap.errors[2],
        },
    }
}

/// A backlog this small is read within a tick or two: waiting for the last
/// message would keep a busy cluster's monitor unready for nothing.
pub const CAUGHT_UP: u64 = 1_000;

/// Ready while events are being consumed, the backlog the events queue held
/// at connect is read (down to [`CAUGHT_UP`]), and history (when kept) is
/// back in memory: a monitor that hears nothing, or still replays the past,
/// serves stale data, and load balancers should prefer a replica that hears
/// and remembers.
pub async fn readyz(State(shared): State<Arc<AppState>>) -> impl IntoResponse {
    let consuming = shared.consuming();
    let history = shared.history.as_ref().map(|h| h.detail());
    let events_behind = shared.events_behind();
    let ready =
        consuming && events_behind <= CAUGHT_UP && history.as_ref().is_none_or(|h| h.loaded);
    let body = Readiness {
        ready,
        consuming,
        events_behind,
        last_event_at: shared.last_event_at(),
        last_error: shared.last_error(),
        brokers: shared
            .sources
            .iter()
            .map(|s| BrokerDetail {
                broker: s.name().to_string(),
                consuming: s.is_consuming(),
                events_behind: s.behind(),
                last_error: s.last_error(),
            })
            .collect(),
        broker_stats: broker_stats(&shared),
        history,
        diagnosis: shared
            .insight
            .diagnosis(&shared.broker, crate::clock::now()),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
