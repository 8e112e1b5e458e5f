//! Queue depth on Redis (docs/celery-protocol.md §8.2): a queue is one list
//! per priority step (`name`, then `name\x06\x16{3,6,9}`), so its depth is
//! the sum of their `LLEN`s, all asked in one pipelined round trip. Queues
//! are found in kombu's binding sets (`_kombu.binding.<exchange>`) and among
//! those the cluster is known to use.
//!
//! Messages a worker prefetched sit in kombu's `unacked` hash (delivery tag
//! → `[message, exchange, routing_key]`), not in the lists; they are
//! attributed to the queue their routing key names, as Celery's default
//! routing does, while the hash is small enough to read. `consumers` stays
//! unknown.

use std::collections::BTreeSet;

use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;

use super::keys::{Keys, SEP};
use super::Redis;
use crate::broker::{wanted, QueuePoll, QueueStat, QueueStatsArgs, Source};

/// kombu's default `priority_steps` beyond 0, each a list of its own.
const PRIORITY_STEPS: [u8; 3] = [3, 6, 9];
/// Enough for any real cluster; a runaway binding table is cut here.
const MAX_QUEUES: usize = 10_000;
/// Queues per pipelined round trip: bounded replies however many queues.
const QUEUES_PER_PIPELINE: usize = 1_000;
/// Prefetched messages are read one by one to attribute them; beyond this
/// many the unacknowledged counts are left unknown rather than read slowly.
const MAX_UNACKED_READ: u64 = 20_000;
const SOURCE: usize = 2;

pub struct QueueStats {
    redis: Redis,
    conn: Option<MultiplexedConnection>,
    only: Vec<String>,
}

impl QueueStats {
    pub fn new(redis: &Redis, args: &QueueStatsArgs) -> QueueStats {
        debug_assert_eq!(Source::ALL[SOURCE], Source::Redis);
        QueueStats {
            redis: redis.clone(),
            conn: None,
            only: args.queues.clone(),
        }
    }

    pub async fn poll(&mut self, known_queues: impl FnOnce() -> Vec<String>) -> QueuePoll {
        let mut poll = QueuePoll::default();
        match self.poll_once(known_queues).await {
            Ok(queues) => {
                poll.up[SOURCE] = true;
                poll.result = Some((Source::Redis, queues));
            }
            Err(e) => {
                self.conn = None;
                poll.failed[SOURCE] = true;
                poll.last_error = Some(format!("Redis: {e}"));
            }
        }
        poll
    }

    async fn poll_once(
        &mut self,
        known_queues: impl FnOnce() -> Vec<String>,
    ) -> redis::RedisResult<Vec<QueueStat>> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(self.redis.commands().await?),
        };
        let names: Vec<String> = if self.only.is_empty() {
            let mut names: BTreeSet<String> = bound_queues(conn, &self.redis.keys).await?;
            names.extend(known_queues());
            names
                .into_iter()
                .filter(|n| wanted(n, &[]))
                .take(MAX_QUEUES)
                .collect()
        } else {
            self.only.clone()
        };
        let mut lengths: Vec<u64> = Vec::with_capacity(names.len() * (1 + PRIORITY_STEPS.len()));
        for chunk in names.chunks(QUEUES_PER_PIPELINE) {
            let mut pipe = redis::pipe();
            for name in chunk {
                for key in priority_lists(&self.redis.keys, name) {
                    pipe.llen(key);
                }
            }
            let part: Vec<u64> = pipe.query_async(conn).await?;
            lengths.extend(part);
        }
        let unacked = unacked_by_routing_key(conn, &self.redis.keys.unacked()).await?;
        let per_queue = 1 + PRIORITY_STEPS.len();
        Ok(names
            .into_iter()
            .zip(lengths.chunks(per_queue))
            .map(|(name, lens)| {
                let ready: u64 = lens.iter().sum();
                let unacked = unacked
                    .as_ref()
                    .map(|by_key| by_key.get(name.as_str()).copied().unwrap_or(0));
                QueueStat {
                    messages: Some(ready + unacked.unwrap_or(0)),
                    messages_ready: ready,
                    messages_unacknowledged: unacked,
                    name,
                    ..QueueStat::default()
                }
            })
            .collect())
    }

    pub async fn close(self) {}
}

/// Prefetched messages per routing key, from kombu's `unacked` hash; `None`
/// when it is too large to read every poll.
async fn unacked_by_routing_key(
    conn: &mut MultiplexedConnection,
    key: &str,
) -> redis::RedisResult<Option<std::collections::HashMap<String, u64>>> {
    let len: u64 = conn.hlen(key).await?;
    if len > MAX_UNACKED_READ {
        return Ok(None);
    }
    let mut by_key = std::collections::HashMap::new();
    if len > 0 {
        let values: Vec<Vec<u8>> = conn.hvals(key).await?;
        for value in values {
            if let Some(key) = unacked_routing_key(&value) {
                *by_key.entry(key).or_insert(0) += 1;
            }
        }
    }
    Ok(Some(by_key))
}

/// The routing key of an `unacked` entry, `[message, exchange, routing_key]`.
fn unacked_routing_key(value: &[u8]) -> Option<String> {
    let entry: serde_json::Value = serde_json::from_slice(value).ok()?;
    entry.get(2)?.as_str().map(str::to_string)
}

/// The lists that hold one queue's messages, priority 0 first.
fn priority_lists<'a>(keys: &'a Keys, queue: &'a str) -> impl Iterator<Item = String> + 'a {
    std::iter::once(0)
        .chain(PRIORITY_STEPS)
        .map(move |step| keys.list(queue, step))
}

/// Every queue bound to an exchange, from kombu's binding sets. The pidbox
/// exchanges' sets (one member per worker and per control call) are
/// skipped: their queues are internal anyway.
async fn bound_queues(
    conn: &mut MultiplexedConnection,
    names: &Keys,
) -> redis::RedisResult<BTreeSet<String>> {
    let keys: Vec<String> = {
        let mut iter = conn
            .scan_match::<_, String>(names.bindings_pattern())
            .await?;
        let mut keys = Vec::new();
        while let Some(key) = futures_lite::StreamExt::next(&mut iter).await {
            keys.push(key?);
        }
        keys
    };
    let mut queues = BTreeSet::new();
    for key in keys.iter().filter(|k| !k.ends_with(".pidbox")) {
        let members: Vec<String> = conn.smembers(key).await?;
        queues.extend(members.iter().filter_map(|m| binding_queue(m)));
        if queues.len() > MAX_QUEUES {
            break;
        }
    }
    Ok(queues)
}

/// The queue of a binding member `routing_key SEP pattern SEP queue`.
fn binding_queue(member: &str) -> Option<String> {
    let queue = member.splitn(3, SEP).nth(2)?;
    (!queue.is_empty()).then(|| queue.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_is_one_list_per_priority_step() {
        let keys = Keys::new("", 0);
        let lists: Vec<String> = priority_lists(&keys, "celery").collect();
        assert_eq!(
            lists,
            [
                "celery",
                "celery\x06\x163",
                "celery\x06\x166",
                "celery\x06\x169"
            ]
        );
        let keys = Keys::new("p:", 0);
        let lists: Vec<String> = priority_lists(&keys, "celery").collect();
        assert_eq!(lists[0], "p:celery");
        assert_eq!(lists[3], "p:celery\x06\x169");
    }

    #[test]
    fn an_unacked_entry_names_its_routing_key_last() {
        let entry = br#"[{"body": "W10=", "properties": {"delivery_info": {"exchange": "", "routing_key": "slowq"}}}, "", "slowq"]"#;
        assert_eq!(unacked_routing_key(entry).as_deref(), Some("slowq"));
        assert_eq!(unacked_routing_key(b"[1, 2]"), None);
        assert_eq!(unacked_routing_key(b"garbage"), None);
    }

    #[test]
    fn binding_members_name_their_queue_last() {
        assert_eq!(
            binding_queue("celery\x06\x16\x06\x16celery").as_deref(),
            Some("celery")
        );
        assert_eq!(
            binding_queue("video.#\x06\x16\x06\x16video").as_deref(),
            Some("video")
        );
        assert_eq!(binding_queue("celery"), None);
        assert_eq!(binding_queue("a\x06\x16b\x06\x16"), None);
    }
}
