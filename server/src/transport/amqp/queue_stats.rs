//! Queue statistics on RabbitMQ: the management API when it answers (all
//! queues in one listing), else a passive `queue.declare` per known queue
//! on throwaway channels (docs/celery-protocol.md §5).

use super::management::ManagementApi;
use super::passive::Prober;
use super::Amqp;
use crate::broker::QueuePoll;
use crate::broker::{QueueStatsArgs, Source};

pub struct QueueStats {
    api: Option<ManagementApi>,
    prober: Prober,
    only: Vec<String>,
}

impl QueueStats {
    pub fn new(amqp: &Amqp, args: &QueueStatsArgs) -> QueueStats {
        let api = match ManagementApi::new(&amqp.url, args.broker_api.as_deref()) {
            Ok(api) => api,
            Err(e) => {
                tracing::warn!("queue statistics: {e}; using the AMQP fallback only");
                None
            }
        };
        QueueStats {
            api,
            prober: Prober::new(amqp.uri()),
            only: args.queues.clone(),
        }
    }

    pub async fn poll(&mut self, known_queues: impl FnOnce() -> Vec<String>) -> QueuePoll {
        let mut poll = QueuePoll::default();
        if let Some(api) = &self.api {
            match api.poll(&self.only).await {
                Ok(listing) => {
                    poll.up[0] = true;
                    poll.result = Some((Source::Management, listing.queues));
                    poll.scheduled_broker_side = listing.scheduled_broker_side;
                    return poll;
                }
                Err(e) => {
                    poll.failed[0] = true;
                    poll.last_error = Some(format!("management API: {e}"));
                }
            }
        }
        let names = known_queues();
        match self.prober.poll(&names).await {
            Ok(queues) => {
                poll.up[1] = true;
                poll.result = Some((Source::Amqp, queues));
            }
            Err(e) => {
                poll.failed[1] = true;
                poll.last_error = Some(format!("AMQP fallback: {e}"));
            }
        }
        poll
    }

    pub async fn close(mut self) {
        self.prober.close().await;
    }
}
