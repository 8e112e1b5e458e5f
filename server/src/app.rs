//! What HTTP handlers read, listed: the state (written only by the state
//! owner; readers take short read locks), the event sources' health, self
//! metrics, the dashboard hub, remote control, queue statistics and the
//! alert engine, plus the few settings handlers need. Built once by
//! [`crate::start`], which also hands each long-running task only the
//! pieces it uses.

use std::sync::Arc;

use parking_lot::RwLock;

use crate::alerting::{Alerting, Watched};
use crate::auth::Sessions;
use crate::broker::BrokerStats;
use crate::control::Ops;
use crate::history::History;
use crate::insight::Insight;
use crate::metrics::{MetricsArgs, Scrape, SelfMetrics};
use crate::oidc::Oidc;
use crate::results::Backend;
use crate::series::Series;
use crate::state::State;
use crate::submit::Submitter;
use crate::telemetry::{any_consuming, first_error, LastEvent, SourceStatus};
use crate::transport::{ClusterControl, PublishClient};
use crate::ws::Hub;

pub struct AppState {
    pub state: Arc<RwLock<State>>,
    pub metrics: Arc<SelfMetrics>,
    /// One per event source.
    pub sources: Arc<[Arc<SourceStatus>]>,
    pub last_event: Arc<LastEvent>,
    pub dashboard: Arc<Hub>,
    /// Remote control over every broker of the cluster.
    pub ops: Arc<Ops<ClusterControl>>,
    /// Publishing tasks (retry, Flower's task submission).
    pub submit: Arc<Submitter<PublishClient>>,
    /// Celery's result backend, for Flower's task result API.
    pub results: Arc<Backend>,
    pub broker: Arc<BrokerStats>,
    pub alerting: Arc<Alerting>,
    /// The history store; `None` with `--db none`.
    pub history: Option<Arc<History>>,
    /// Failure groups and queue latency, kept by a feed subscriber.
    pub insight: Arc<Insight>,
    /// The charts' time series, sampled every 10 s.
    pub series: Arc<Series>,
    /// Where every route is served (`--url-prefix`).
    pub url_prefix: String,
    /// How `/metrics` renders (buckets, name cardinality, Flower's names).
    pub exporter: MetricsArgs,
    /// `--hide-args`: task args and kwargs are left out of viewers' answers.
    pub hide_args: bool,
    /// Browser sessions (signed cookies, sign-outs).
    pub sessions: Arc<Sessions>,
    /// Sign-in with OpenID Connect, when `--oidc-issuer` is set.
    pub oidc: Option<Arc<Oidc>>,
    /// `--trust-proxy-headers`: `X-Forwarded-Proto` says whether the
    /// browser used https.
    pub trust_proxy_headers: bool,
}

impl AppState {
    /// Whether `who` is to see no task args or kwargs (`--hide-args`).
    pub fn hides_args(&self, who: Option<&crate::auth::Principal>) -> bool {
        self.hide_args && who.is_none_or(|p| p.role != crate::auth::Role::Operator)
    }

    /// True while any event source is consuming.
    pub fn consuming(&self) -> bool {
        any_consuming(&self.sources)
    }

    /// Messages of the events queues' backlogs found at connect and not
    /// read yet, over every source.
    pub fn events_behind(&self) -> u64 {
        self.sources.iter().map(|s| s.behind()).sum()
    }

    /// Why a source is down, when one is.
    pub fn last_error(&self) -> Option<String> {
        first_error(&self.sources)
    }

    /// What alert rules watch.
    pub fn watched(&self) -> Watched {
        Watched {
            state: self.state.clone(),
            broker: self.broker.clone(),
            metrics: self.metrics.clone(),
            last_event: self.last_event.clone(),
            insight: self.insight.clone(),
            exporter: self.exporter.clone(),
        }
    }

    /// What a `/metrics` scrape reads.
    pub fn scrape(&self) -> Scrape<'_> {
        Scrape {
            state: &self.state,
            broker: &self.broker,
            metrics: &self.metrics,
            insight: &self.insight,
            exporter: &self.exporter,
        }
    }

    /// When the state owner last applied an event.
    pub fn last_event_at(&self) -> Option<f64> {
        self.last_event.get()
    }
}
