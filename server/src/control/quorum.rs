//! What a pool command cannot do on quorum queues. Celery (≥ 5.5) turns
//! global QoS off when a worker consumes a RabbitMQ quorum queue, which
//! supports none, so the worker's prefetch count stays what it was at
//! start: `autoscale`, `pool_grow` and `pool_shrink` change the pool, but
//! not how many messages the worker takes ahead. The worker acknowledges
//! the command all the same, so the answer says it (docs/celery-protocol.md
//! §9).

use std::collections::BTreeMap;

use api::control::Command;

use crate::broker::{Snapshot, WorkerQueues};

/// The quorum queues `worker` consumes, when `command` is one whose effect
/// they blunt; empty otherwise (or when nothing says so: queue types come
/// from the management API, the queues a worker consumes from inspect).
pub fn blunted_by(
    command: Command,
    worker: &str,
    workers: &BTreeMap<String, WorkerQueues>,
    snapshot: &Snapshot,
) -> Vec<String> {
    if !matches!(
        command,
        Command::Autoscale | Command::PoolGrow | Command::PoolShrink
    ) {
        return Vec::new();
    }
    let Some(consumed) = workers.get(worker) else {
        return Vec::new();
    };
    consumed
        .queues
        .iter()
        .filter(|q| {
            snapshot
                .queues
                .iter()
                .any(|s| &s.name == *q && s.queue_type.as_deref() == Some("quorum"))
        })
        .cloned()
        .collect()
}

/// The note for an answer, naming the queues.
pub fn note(queues: &[String]) -> String {
    format!(
        "this worker consumes quorum queues ({}): RabbitMQ quorum queues have no global QoS, \
         so Celery keeps the worker's prefetch count at its start-up value; the pool changes, \
         but the worker does not take more (or fewer) tasks ahead",
        queues.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::QueueStat;

    fn stat(name: &str, kind: &str) -> QueueStat {
        QueueStat {
            name: name.into(),
            queue_type: Some(kind.into()),
            ..QueueStat::default()
        }
    }

    #[test]
    fn pool_commands_on_a_quorum_consumer_are_noted_and_others_not() {
        let snapshot = Snapshot {
            queues: vec![stat("celery", "quorum"), stat("bulk", "classic")],
            ..Snapshot::default()
        };
        let workers = BTreeMap::from([
            (
                "q@h".to_string(),
                WorkerQueues {
                    queues: vec!["celery".into(), "bulk".into()],
                    ..WorkerQueues::default()
                },
            ),
            (
                "c@h".to_string(),
                WorkerQueues {
                    queues: vec!["bulk".into()],
                    ..WorkerQueues::default()
                },
            ),
        ]);
        for command in [Command::Autoscale, Command::PoolGrow, Command::PoolShrink] {
            assert_eq!(blunted_by(command, "q@h", &workers, &snapshot), ["celery"]);
            assert!(blunted_by(command, "c@h", &workers, &snapshot).is_empty());
        }
        assert!(blunted_by(Command::PoolRestart, "q@h", &workers, &snapshot).is_empty());
        assert!(blunted_by(Command::Autoscale, "new@h", &workers, &snapshot).is_empty());
        assert!(note(&["celery".into()]).contains("quorum queues (celery)"));
    }
}
