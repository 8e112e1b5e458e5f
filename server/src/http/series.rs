//! `GET /api/series?metric=M[&name=N][&range=1h|24h]`: a chart's points as
//! the server kept them (`series/`), so a page draws its charts full at
//! once. Without `name`, every queue, task name or worker of the metric.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};

use api::series::SeriesAnswer;

use super::errors::HttpError;
use super::params::{from_query, last, Params};
use crate::app::AppState;
use crate::clock;
use crate::series::{Metric, Range};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/series", get(series))
}

async fn series(
    State(shared): State<Arc<AppState>>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Json<SeriesAnswer>, HttpError> {
    let params = from_query(q)?;
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
    let metric = match last(&params, "metric") {
        Some(m) => Metric::parse(m).ok_or_else(|| {
            HttpError::bad_param(
                "metric",
                format!("metric must be one of {}, not {m:?}", names.join(", ")),
            )
        })?,
        None => {
            return Err(HttpError::bad_param(
                "metric",
                format!("metric is required: one of {}", names.join(", ")),
            ))
        }
    };
    let (range, range_text) = match last(&params, "range") {
        None | Some("") => (Range::Hour, "1h"),
        Some(r) => (
            Range::parse(r).ok_or_else(|| {
                HttpError::bad_param("range", format!("range must be 1h or 24h, not {r:?}"))
            })?,
            r,
        ),
    };
    let name = last(&params, "name").filter(|n| !n.is_empty());
    let (series, dropped) = shared.series.read(metric, name, range, clock::now());
    Ok(Json(SeriesAnswer {
        metric: metric.as_str().to_owned(),
        range: range_text.to_owned(),
        step: range.step(),
        series,
        dropped,
    }))
}
