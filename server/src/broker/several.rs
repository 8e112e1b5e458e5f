//! Queue statistics of a cluster spread over several brokers: each broker
//! is polled on its own (concurrently, so one slow broker does not delay
//! the others' figures by more than its own poll), and the queues are
//! merged by name. A queue of the same name on two brokers is one Celery
//! queue served from both, so its figures add up.

use parking_lot::Mutex;

use super::{QueuePoll, QueueSource, QueueStat, Source};

/// One queue statistics source per broker, each named by its masked URL.
pub struct Several<S> {
    sources: Vec<(String, S)>,
}

impl<S> Several<S> {
    pub fn new(sources: Vec<(String, S)>) -> Several<S> {
        Several { sources }
    }
}

impl<S: QueueSource + Send> QueueSource for Several<S> {
    async fn poll(&mut self, known_queues: impl FnOnce() -> Vec<String> + Send) -> QueuePoll {
        if let [(_, only)] = self.sources.as_mut_slice() {
            return only.poll(known_queues).await;
        }
        // Worked out once, by the first source that needs it.
        let known = Mutex::new((Some(known_queues), Vec::new()));
        let names = || {
            let mut k = known.lock();
            if let Some(f) = k.0.take() {
                k.1 = f();
            }
            k.1.clone()
        };
        let polls = self
            .sources
            .iter_mut()
            .map(|(name, s)| async { (name.clone(), s.poll(names).await) });
        merge(futures_util::future::join_all(polls).await)
    }

    async fn close(self) {
        for (_, s) in self.sources {
            s.close().await;
        }
    }
}

/// One poll from every broker's: queues of one name summed, each source
/// marked up if it worked anywhere and failed if it failed anywhere, the
/// errors named by broker.
pub fn merge(polls: Vec<(String, QueuePoll)>) -> QueuePoll {
    let mut out = QueuePoll::default();
    let mut errors = Vec::new();
    let mut source: Option<Source> = None;
    let mut queues: Vec<QueueStat> = Vec::new();
    for (broker, poll) in polls {
        for i in 0..Source::ALL.len() {
            out.up[i] |= poll.up[i];
            out.failed[i] |= poll.failed[i];
        }
        if let Some(e) = poll.last_error {
            errors.push(format!("{broker}: {e}"));
        }
        if let Some(n) = poll.scheduled_broker_side {
            *out.scheduled_broker_side.get_or_insert(0) += n;
        }
        if let Some((s, list)) = poll.result {
            source.get_or_insert(s);
            queues.extend(list);
        }
    }
    out.last_error = (!errors.is_empty()).then(|| errors.join("; "));
    out.result = source.map(|s| (s, sum_by_name(queues)));
    out
}

fn sum_by_name(mut queues: Vec<QueueStat>) -> Vec<QueueStat> {
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out: Vec<QueueStat> = Vec::with_capacity(queues.len());
    for q in queues {
        match out.last_mut() {
            Some(last) if last.name == q.name => add(last, q),
            _ => out.push(q),
        }
    }
    out
}

fn add(into: &mut QueueStat, q: QueueStat) {
    fn sum<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        }
    }
    into.messages = sum(into.messages, q.messages);
    into.messages_ready += q.messages_ready;
    into.messages_unacknowledged = sum(into.messages_unacknowledged, q.messages_unacknowledged);
    into.consumers = sum(into.consumers, q.consumers);
    into.publish_rate = sum(into.publish_rate, q.publish_rate);
    into.deliver_rate = sum(into.deliver_rate, q.deliver_rate);
    // Idle only where it is idle on every broker.
    if q.idle_since.is_none() {
        into.idle_since = None;
    }
    if into.queue_type.is_none() {
        into.queue_type = q.queue_type;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(name: &str, ready: u64, consumers: Option<u64>, idle: bool) -> QueueStat {
        QueueStat {
            name: name.into(),
            messages: Some(ready),
            messages_ready: ready,
            consumers,
            idle_since: idle.then(|| "2026-12-08 01:00:00".into()),
            ..QueueStat::default()
        }
    }

    fn answered(source: Source, queues: Vec<QueueStat>) -> QueuePoll {
        let mut p = QueuePoll {
            result: Some((source, queues)),
            ..QueuePoll::default()
        };
        p.up[source as usize] = true;
        p
    }

    #[test]
    fn a_queue_on_two_brokers_is_one_queue_with_both_figures() {
        let a = answered(
            Source::Management,
            vec![
                queue("celery", 3, Some(1), false),
                queue("a", 1, None, true),
            ],
        );
        let b = answered(
            Source::Amqp,
            vec![
                queue("celery", 4, Some(2), true),
                queue("b", 2, Some(0), true),
            ],
        );
        let m = merge(vec![("amqp://x/a".into(), a), ("amqp://x/b".into(), b)]);
        let (source, queues) = m.result.unwrap();
        assert_eq!(source, Source::Management);
        let names: Vec<_> = queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "celery"]);
        let celery = &queues[2];
        assert_eq!(
            (celery.messages_ready, celery.messages, celery.consumers),
            (7, Some(7), Some(3))
        );
        assert_eq!(celery.idle_since, None, "busy on one broker");
        assert!(queues[0].idle_since.is_some());
        assert_eq!(m.up, [true, true, false]);
        assert_eq!(m.last_error, None);
    }

    #[test]
    fn a_broker_that_fails_is_named_and_the_others_still_count() {
        let a = answered(Source::Management, vec![queue("celery", 3, None, false)]);
        let mut b = QueuePoll {
            last_error: Some("management API: refused".into()),
            scheduled_broker_side: None,
            ..QueuePoll::default()
        };
        b.failed[0] = true;
        let mut a = a;
        a.scheduled_broker_side = Some(2);
        let m = merge(vec![("amqp://x/a".into(), a), ("amqp://x/b".into(), b)]);
        assert_eq!(m.result.unwrap().1[0].messages_ready, 3);
        assert!(m.failed[0]);
        assert_eq!(
            m.last_error.as_deref(),
            Some("amqp://x/b: management API: refused")
        );
        assert_eq!(m.scheduled_broker_side, Some(2));
        let none = merge(vec![("b".into(), QueuePoll::default())]);
        assert!(none.result.is_none());
    }
}
