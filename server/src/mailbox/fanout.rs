//! Remote control for a cluster spread over several brokers. A worker
//! listens on one broker's pidbox only, so a request must reach the broker
//! each addressed worker is on. Which one that is, events do not say; the
//! replies do: every worker that answers through a broker is remembered
//! there (the inspect refresh at start-up asks everyone), and a request
//! naming only known workers goes only to their brokers, each with its own
//! part of the list, so collection still ends as soon as they answered.
//! Workers not known yet, and requests to every worker or a pattern, go to
//! every broker; the outcomes are merged.

use std::collections::{BTreeMap, HashMap};

use parking_lot::Mutex;

use super::{ControlError, Mailbox, Outcome, Request, Target};

/// More workers than any cluster has: beyond it the map starts over rather
/// than grow with every short-lived hostname.
const MAX_KNOWN_WORKERS: usize = 100_000;

/// One mailbox per broker, in `--broker` order.
pub struct Fanout<M> {
    brokers: Vec<M>,
    /// Worker nodename → the broker it last answered through.
    homes: Mutex<HashMap<String, usize>>,
}

impl<M> Fanout<M> {
    pub fn new(brokers: Vec<M>) -> Fanout<M> {
        assert!(!brokers.is_empty(), "a cluster has at least one broker");
        Fanout {
            brokers,
            homes: Mutex::default(),
        }
    }

    /// The mailbox of the first broker (single-broker callers and tests).
    pub fn first(&self) -> &M {
        &self.brokers[0]
    }

    /// Which broker `worker` answered through last, if it did.
    pub fn home_of(&self, worker: &str) -> Option<usize> {
        self.homes.lock().get(worker).copied()
    }

    fn learn(&self, broker: usize, outcome: &Outcome) {
        if outcome.replies.is_empty() {
            return;
        }
        let mut homes = self.homes.lock();
        if homes.len() + outcome.replies.len() > MAX_KNOWN_WORKERS {
            homes.clear();
        }
        for node in outcome.replies.keys() {
            homes.insert(node.clone(), broker);
        }
    }
}

/// The request each broker gets: `request` itself when nothing narrows it,
/// else with the workers named for that broker (those known there plus
/// those known nowhere). Brokers left with no worker to ask are skipped.
pub fn plan(
    request: &Request,
    brokers: usize,
    home: impl Fn(&str) -> Option<usize>,
) -> Vec<(usize, Request)> {
    let split = |names: &[String]| -> Vec<Vec<String>> {
        let mut per: Vec<Vec<String>> = vec![Vec::new(); brokers];
        for name in names {
            match home(name).filter(|&b| b < brokers) {
                Some(b) => per[b].push(name.clone()),
                None => per.iter_mut().for_each(|p| p.push(name.clone())),
            }
        }
        per
    };
    match (&request.target, &request.expect) {
        (Target::Workers(names), _) => split(names)
            .into_iter()
            .enumerate()
            .filter(|(_, names)| !names.is_empty())
            .map(|(b, names)| {
                let mut r = request.clone();
                r.target = Target::Workers(names);
                (b, r)
            })
            .collect(),
        // Every worker, or a pattern: every broker, each expecting the
        // workers it is known to have (and the unknown ones).
        (_, Some(expected)) => split(expected)
            .into_iter()
            .enumerate()
            .map(|(b, names)| {
                let mut r = request.clone();
                r.expect = Some(names);
                (b, r)
            })
            .collect(),
        (_, None) => (0..brokers).map(|b| (b, request.clone())).collect(),
    }
}

/// One outcome from every broker's: each worker's first reply, and the
/// expected workers that answered through none.
pub fn merge(request: &Request, outcomes: Vec<Outcome>) -> Outcome {
    let mut replies = BTreeMap::new();
    for outcome in outcomes {
        for (node, reply) in outcome.replies {
            replies.entry(node).or_insert(reply);
        }
    }
    let mut no_reply: Vec<String> = request
        .expected()
        .map(|exp| {
            exp.into_iter()
                .filter(|w| !replies.contains_key(w))
                .collect()
        })
        .unwrap_or_default();
    no_reply.sort();
    Outcome { replies, no_reply }
}

impl<M: Mailbox + Send> Mailbox for Fanout<M> {
    async fn call(&self, request: &Request) -> Result<Outcome, ControlError> {
        if let [only] = self.brokers.as_slice() {
            return only.call(request).await;
        }
        let plan = {
            let homes = self.homes.lock();
            plan(request, self.brokers.len(), |w| homes.get(w).copied())
        };
        let calls = plan
            .iter()
            .map(|(b, r)| async move { (*b, self.brokers[*b].call(r).await) });
        let mut outcomes = Vec::with_capacity(plan.len());
        let mut first_error = None;
        for (broker, result) in futures_util::future::join_all(calls).await {
            match result {
                Ok(outcome) => {
                    self.learn(broker, &outcome);
                    outcomes.push(outcome);
                }
                Err(e) => {
                    tracing::warn!(broker, "remote control: {e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        // One broker down leaves the workers of the others reachable; only
        // when none could be asked is the request an error.
        match (outcomes.is_empty(), first_error) {
            (true, Some(e)) => Err(e),
            _ => Ok(merge(request, outcomes)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn homes<'a>(known: &'a [(&'a str, usize)]) -> impl Fn(&str) -> Option<usize> + 'a {
        move |w| known.iter().find(|(n, _)| *n == w).map(|(_, b)| *b)
    }

    fn targets(plan: &[(usize, Request)]) -> Vec<(usize, Target, Option<Vec<String>>)> {
        plan.iter()
            .map(|(b, r)| (*b, r.target.clone(), r.expect.clone()))
            .collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn named_workers_go_to_their_brokers_and_unknown_ones_everywhere() {
        let r = Request::new("ping", json!({}), Target::Workers(names(&["a", "b", "c"])));
        let plan = super::plan(&r, 3, homes(&[("a", 0), ("b", 2)]));
        assert_eq!(
            targets(&plan),
            vec![
                (0, Target::Workers(names(&["a", "c"])), None),
                (1, Target::Workers(names(&["c"])), None),
                (2, Target::Workers(names(&["b", "c"])), None),
            ]
        );
        // Only known workers: brokers without one are not asked at all.
        let r = Request::new("ping", json!({}), Target::Workers(names(&["b"])));
        let plan = super::plan(&r, 3, homes(&[("a", 0), ("b", 2)]));
        assert_eq!(
            targets(&plan),
            vec![(2, Target::Workers(names(&["b"])), None)]
        );
    }

    #[test]
    fn everyone_goes_to_every_broker_expecting_its_own_workers() {
        let r = Request::new("stats", json!({}), Target::All).expecting(names(&["a", "b", "new"]));
        let plan = super::plan(&r, 2, homes(&[("a", 0), ("b", 1)]));
        assert_eq!(
            targets(&plan),
            vec![
                (0, Target::All, Some(names(&["a", "new"]))),
                (1, Target::All, Some(names(&["b", "new"]))),
            ]
        );
        let r = Request::new("stats", json!({}), Target::All);
        assert_eq!(plan_len(&r), 2);
    }

    fn plan_len(r: &Request) -> usize {
        super::plan(r, 2, |_| None).len()
    }

    #[test]
    fn outcomes_merge_and_the_missing_are_named_once() {
        let r = Request::new("ping", json!({}), Target::Workers(names(&["a", "b", "c"])));
        let one = Outcome {
            replies: [("a".to_string(), json!({"ok": "pong"}))].into(),
            no_reply: names(&["b", "c"]),
        };
        let two = Outcome {
            replies: [
                ("b".to_string(), json!({"ok": "pong"})),
                ("a".to_string(), json!({"ok": "late"})),
            ]
            .into(),
            no_reply: names(&["c"]),
        };
        let merged = merge(&r, vec![one, two]);
        assert_eq!(merged.replies.len(), 2);
        assert_eq!(merged.ok_of("a").as_deref(), Some("pong"));
        assert_eq!(merged.no_reply, names(&["c"]));
    }

    /// A mailbox on which only some workers live, answering `ping`.
    struct Broker {
        workers: Vec<&'static str>,
        down: bool,
        asked: Mutex<Vec<Target>>,
    }

    impl Mailbox for Broker {
        async fn call(&self, request: &Request) -> Result<Outcome, ControlError> {
            self.asked.lock().push(request.target.clone());
            if self.down {
                return Err(ControlError::Unavailable("down".into()));
            }
            let replies = self
                .workers
                .iter()
                .filter(|w| match &request.target {
                    Target::Workers(list) => list.iter().any(|n| n == *w),
                    _ => true,
                })
                .map(|w| (w.to_string(), json!({"ok": "pong"})))
                .collect();
            Ok(Outcome {
                replies,
                no_reply: Vec::new(),
            })
        }
    }

    fn broker(workers: &[&'static str], down: bool) -> Broker {
        Broker {
            workers: workers.to_vec(),
            down,
            asked: Mutex::default(),
        }
    }

    #[tokio::test]
    async fn replies_teach_where_workers_are_and_a_dead_broker_is_not_fatal() {
        let fan = Fanout::new(vec![broker(&["a"], false), broker(&["b"], false)]);
        let all = fan
            .call(&Request::new("ping", json!({}), Target::All))
            .await
            .unwrap();
        assert_eq!(all.replies.len(), 2);
        assert_eq!((fan.home_of("a"), fan.home_of("b")), (Some(0), Some(1)));
        let one = Request::new("ping", json!({}), Target::Workers(names(&["b"])));
        assert_eq!(
            fan.call(&one).await.unwrap().ok_of("b").as_deref(),
            Some("pong")
        );
        // The second request went to b's broker only.
        assert_eq!(fan.brokers[0].asked.lock().len(), 1);
        assert_eq!(fan.brokers[1].asked.lock().len(), 2);

        let fan = Fanout::new(vec![broker(&["a"], true), broker(&["b"], false)]);
        let r = Request::new("ping", json!({}), Target::Workers(names(&["a", "b"])));
        let out = fan.call(&r).await.unwrap();
        assert_eq!(out.ok_of("b").as_deref(), Some("pong"));
        assert_eq!(out.no_reply, names(&["a"]));
        let fan = Fanout::new(vec![broker(&["a"], true), broker(&["b"], true)]);
        assert!(fan.call(&r).await.is_err());
    }
}
