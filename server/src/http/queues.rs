//! `GET /api/queues/length`: Flower's queue listing, from the broker stats
//! poller's latest snapshot (no broker request per call).

use std::sync::Arc;

use api::queues::{QueueSource, QueueStat, QueuesLength};
use axum::extract::State;
use axum::Json;

use crate::app::AppState;
use crate::broker::{self, Source};

pub async fn length(State(shared): State<Arc<AppState>>) -> Json<QueuesLength> {
    let snapshot = shared.broker.snapshot();
    Json(QueuesLength {
        active_queues: snapshot.queues.iter().map(wire_stat).collect(),
        source: snapshot.source.map(wire_source),
        scheduled_broker_side: snapshot.scheduled_broker_side,
    })
}

pub(super) fn wire_source(source: Source) -> QueueSource {
    match source {
        Source::Management => QueueSource::Management,
        Source::Amqp => QueueSource::Amqp,
        Source::Redis => QueueSource::Redis,
    }
}

fn wire_stat(q: &broker::QueueStat) -> QueueStat {
    QueueStat {
        name: q.name.clone(),
        messages: q.messages,
        messages_ready: q.messages_ready,
        messages_unacknowledged: q.messages_unacknowledged,
        consumers: q.consumers,
        publish_rate: q.publish_rate,
        deliver_rate: q.deliver_rate,
        idle_since: q.idle_since.clone(),
        queue_type: q.queue_type.clone(),
        management: q.management.as_deref().cloned().unwrap_or_default(),
    }
}
