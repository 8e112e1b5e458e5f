//! `celeriac_alerts_firing{rule}`, `celeriac_alert_notifications_total
//! {notifier,outcome}` (read from the engine and the dispatcher at scrape
//! time) and `celeriac_alert_evaluation_seconds`.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts};

use super::Inner;

/// Evaluation takes well under a millisecond for hundreds of rules.
const EVAL_BUCKETS: [f64; 10] = [
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
];

pub struct Metrics {
    pub evaluation: Histogram,
    live: Live,
}

impl Metrics {
    pub fn new(inner: Arc<Inner>) -> Metrics {
        Metrics {
            evaluation: Histogram::with_opts(
                HistogramOpts::new(
                    "celeriac_alert_evaluation_seconds",
                    "Time to evaluate every alert rule once.",
                )
                .buckets(EVAL_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
            live: Live {
                inner,
                descs: Live::descs(),
            },
        }
    }

    pub fn register(&self, registry: &prometheus::Registry) -> anyhow::Result<()> {
        registry.register(Box::new(self.evaluation.clone()))?;
        registry.register(Box::new(self.live.clone()))?;
        Ok(())
    }
}

#[derive(Clone)]
struct Live {
    inner: Arc<Inner>,
    descs: Vec<Desc>,
}

fn firing_vec() -> IntGaugeVec {
    IntGaugeVec::new(
        Opts::new("celeriac_alerts_firing", "Firing alert instances per rule."),
        &["rule"],
    )
    .expect("valid metric")
}

fn notifications_vec() -> IntCounterVec {
    IntCounterVec::new(
        Opts::new(
            "celeriac_alert_notifications_total",
            "Alert notifications per notifier: sent, failed (after retries) or dropped (queue full).",
        ),
        &["notifier", "outcome"],
    )
    .expect("valid metric")
}

impl Live {
    fn descs() -> Vec<Desc> {
        firing_vec()
            .desc()
            .into_iter()
            .chain(notifications_vec().desc())
            .cloned()
            .collect()
    }
}

impl Collector for Live {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let firing = firing_vec();
        let sent = notifications_vec();
        if let Some(l) = self.inner.loaded.lock().as_ref() {
            for (rule, n) in l.engine.firing_counts() {
                firing.with_label_values(&[&rule]).set(n as i64);
            }
            for s in l.dispatcher.stats() {
                for (outcome, n) in [
                    ("sent", s.sent),
                    ("failed", s.failed),
                    ("dropped", s.dropped),
                ] {
                    sent.with_label_values(&[&s.name, outcome]).inc_by(n);
                }
            }
        }
        let mut out = firing.collect();
        out.extend(sent.collect());
        out
    }
}
