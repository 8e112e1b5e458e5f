//! `GET /api/queues/length`: Flower's queue listing, from the broker stats
//! poller's latest snapshot (no broker request per call).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::broker::{QueueStat, Source};
use crate::shared::Shared;

#[derive(Serialize)]
pub struct QueuesLength {
    active_queues: Vec<QueueStat>,
    /// celeriac's addition: where the figures come from (`management`,
    /// `amqp`, or `null` before the first successful poll).
    source: Option<Source>,
}

pub async fn length(State(shared): State<Arc<Shared>>) -> Json<QueuesLength> {
    let snapshot = shared.broker.snapshot();
    Json(QueuesLength {
        active_queues: snapshot.queues.clone(),
        source: snapshot.source,
    })
}
