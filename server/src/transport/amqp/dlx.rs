//! Counting what the broker drops from our events queue. The queue
//! dead-letters expired and overflowed messages to `celeriac.dlx`; this
//! consumer reads them back only to count them by `x-death` reason into
//! `events_dropped{reason}`, so a monitor that falls behind says so.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::types::{AMQPValue, FieldTable};
use lapin::Consumer;

use crate::telemetry::{DropReason, SourceEvent, SourceStatus};

/// Warn about drops at most this often: a monitor that cannot keep up
/// would otherwise log on every dropped message.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Consumes the dropped-events queue (no ack: each message only bumps a
/// counter) until the consumer ends with its connection.
pub(crate) async fn run(mut consumer: Consumer, status: Arc<SourceStatus>) {
    let mut since_warn: u64 = 0;
    let mut last_warn: Option<Instant> = None;
    while let Some(delivery) = consumer.next().await {
        let delivery = match delivery {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "dropped-events consumer ended");
                return;
            }
        };
        let reason = death_reason(delivery.properties.headers().as_ref());
        let events = count_events(&delivery.data);
        status.emit(SourceEvent::Dropped {
            reason,
            count: events,
        });
        since_warn += events;
        if last_warn.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            tracing::warn!(
                events = since_warn,
                reason = reason.as_str(),
                "the broker dropped events before celeriac could read them \
                 (expired: raise --events-ttl; maxlen: raise --events-max-length; or celeriac cannot keep up)"
            );
            since_warn = 0;
            last_warn = Some(Instant::now());
        }
    }
}

/// The reason RabbitMQ dead-lettered a message: `x-first-death-reason`, or
/// the newest `x-death` entry's `reason` on brokers without the former.
pub(crate) fn death_reason(headers: Option<&FieldTable>) -> DropReason {
    let Some(headers) = headers else {
        return DropReason::Other;
    };
    let headers = headers.inner();
    let text = |v: &AMQPValue| match v {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok().map(str::to_owned),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    };
    let reason = headers
        .get("x-first-death-reason")
        .and_then(text)
        .or_else(|| match headers.get("x-death") {
            Some(AMQPValue::FieldArray(deaths)) => match deaths.as_slice().first() {
                Some(AMQPValue::FieldTable(death)) => death.inner().get("reason").and_then(text),
                _ => None,
            },
            _ => None,
        });
    reason
        .as_deref()
        .map_or(DropReason::Other, DropReason::parse)
}

/// Events in a body without decoding it: the top-level elements of a
/// `task.multi` array, else one. Strings are skipped so commas inside
/// them do not count.
pub(crate) fn count_events(body: &[u8]) -> u64 {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    if start.map(|i| body[i]) != Some(b'[') {
        return 1;
    }
    let mut depth = 0u32;
    let mut in_string = false;
    let mut escaped = false;
    let mut commas = 0u64;
    let mut any = false;
    for &b in &body[start.unwrap_or(0)..] {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                any = true;
            }
            b'[' | b'{' => {
                if depth >= 1 {
                    any = true;
                }
                depth += 1;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 => commas += 1,
            b if !b.is_ascii_whitespace() && depth >= 1 => any = true,
            _ => {}
        }
    }
    if any {
        commas + 1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::FieldArray;

    #[test]
    fn events_are_counted_without_decoding() {
        assert_eq!(
            count_events(br#"{"type": "task-sent", "args": "(1, 2)"}"#),
            1
        );
        assert_eq!(count_events(b"[]"), 0);
        assert_eq!(count_events(b" [ ] "), 0);
        assert_eq!(count_events(br#"[{"a": "x, y", "b": [1, 2]}]"#), 1);
        assert_eq!(
            count_events(br#"[{"a": "q\"],[", "b": {"c": 1}}, {"a": 2}, {}]"#),
            3
        );
        assert_eq!(count_events(b"garbage"), 1);
    }

    fn death(reason: &str) -> FieldTable {
        let mut d = FieldTable::default();
        d.insert("reason".into(), AMQPValue::LongString(reason.into()));
        d.insert("count".into(), AMQPValue::LongLongInt(1));
        d
    }

    #[test]
    fn the_reason_comes_from_the_death_headers() {
        let mut h = FieldTable::default();
        h.insert(
            "x-first-death-reason".into(),
            AMQPValue::LongString("maxlen".into()),
        );
        assert_eq!(death_reason(Some(&h)).as_str(), "maxlen");

        let mut h = FieldTable::default();
        let mut deaths = FieldArray::default();
        deaths.push(AMQPValue::FieldTable(death("expired")));
        h.insert("x-death".into(), AMQPValue::FieldArray(deaths));
        assert_eq!(death_reason(Some(&h)).as_str(), "expired");

        let mut h = FieldTable::default();
        h.insert(
            "x-first-death-reason".into(),
            AMQPValue::LongString("something-new".into()),
        );
        assert_eq!(death_reason(Some(&h)).as_str(), "other");
        assert_eq!(death_reason(None).as_str(), "other");
    }
}
