//! The alerts page and the overview badge, the pure part: what an answer of
//! `GET /api/alerts` means for the page.

use api::alerts::{AlertState, AlertsResponse};

/// What the alerts page shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum AlertsView {
    #[default]
    Loading,
    /// The server has no alert engine, or runs without `--alerts`.
    NotConfigured,
    /// The request or the answer went wrong; says what.
    Failed(String),
    Ready(AlertsResponse),
}

impl AlertsView {
    /// Reads an HTTP answer (status and body).
    pub fn from_answer(status: u16, body: &str) -> AlertsView {
        match status {
            // A server without the alerting routes (404) is "not configured".
            404 => AlertsView::NotConfigured,
            200..=299 => match serde_json::from_str::<AlertsResponse>(body) {
                Ok(r) if !r.enabled => AlertsView::NotConfigured,
                Ok(r) => AlertsView::Ready(r),
                Err(e) => AlertsView::Failed(format!("unreadable /api/alerts answer: {e}")),
            },
            _ => {
                let why = serde_json::from_str::<api::ApiError>(body)
                    .map(|e| e.error)
                    .unwrap_or_else(|_| body.chars().take(200).collect());
                AlertsView::Failed(format!("/api/alerts answered {status}: {why}"))
            }
        }
    }

    /// Alerts firing now (the overview badge), 0 unless loaded.
    pub fn firing(&self) -> usize {
        match self {
            AlertsView::Ready(r) => r.firing(),
            _ => 0,
        }
    }

    /// Instances pending (condition holds, `for` not yet elapsed).
    pub fn pending(&self) -> usize {
        match self {
            AlertsView::Ready(r) => r
                .rules
                .iter()
                .flat_map(|r| &r.instances)
                .filter(|i| i.state == AlertState::Pending)
                .count(),
            _ => 0,
        }
    }
}

pub fn state_name(s: AlertState) -> &'static str {
    match s {
        AlertState::Inactive => "inactive",
        AlertState::Pending => "pending",
        AlertState::Firing => "firing",
    }
}

/// A watched value, short: integers without decimals.
pub fn value(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRING: &str = r#"{"enabled":true,"file":"alerts.yml","loaded_at":1.0,"evaluated_at":2.0,
      "eval_interval_secs":5.0,"reload_error":null,
      "rules":[{"name":"backlog","kind":"queue_length","severity":"page","state":"firing",
        "condition":"queue_length{queue=\"default\"} > 10 for 1m","threshold":10.0,"for_secs":60.0,
        "notify":["hook"],"labels":{},"annotations":{},
        "instances":[{"labels":{"queue":"default"},"state":"firing","value":42.0,"active_since":1.0,"firing_since":61.0},
                     {"labels":{"queue":"other"},"state":"pending","value":11.5,"active_since":30.0,"firing_since":null}]}],
      "notifiers":[{"name":"hook","kind":"webhook","sent":3,"failed":1,"dropped":0,"last_error":"503","last_success_at":2.0}]}"#;

    #[test]
    fn a_missing_route_or_disabled_engine_means_not_configured() {
        assert_eq!(
            AlertsView::from_answer(404, "{}"),
            AlertsView::NotConfigured
        );
        let off = r#"{"enabled":false,"file":null,"loaded_at":null,"evaluated_at":null,
            "eval_interval_secs":0,"reload_error":null,"rules":[],"notifiers":[]}"#;
        assert_eq!(AlertsView::from_answer(200, off), AlertsView::NotConfigured);
    }

    #[test]
    fn firing_and_pending_instances_are_counted() {
        let v = AlertsView::from_answer(200, FIRING);
        assert_eq!((v.firing(), v.pending()), (1, 1));
        assert_eq!(AlertsView::Loading.firing(), 0);
    }

    #[test]
    fn errors_say_what_the_server_said() {
        let v = AlertsView::from_answer(401, r#"{"error":"Authentication required"}"#);
        assert_eq!(
            v,
            AlertsView::Failed("/api/alerts answered 401: Authentication required".into())
        );
        assert!(
            matches!(AlertsView::from_answer(200, "not json"), AlertsView::Failed(e) if e.contains("unreadable"))
        );
    }

    #[test]
    fn values_are_short() {
        assert_eq!(value(Some(42.0)), "42");
        assert_eq!(value(Some(0.25)), "0.250");
        assert_eq!(value(None), "–");
    }
}
