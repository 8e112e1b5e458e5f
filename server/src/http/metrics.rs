//! `GET /metrics`: Prometheus text, unauthenticated as in Flower.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::errors::HttpError;
use crate::shared::{self, Shared};

pub async fn metrics(State(shared): State<Arc<Shared>>) -> Result<Response, HttpError> {
    // Milliseconds of formatting with thousands of series: not on an async
    // worker.
    let page =
        tokio::task::spawn_blocking(move || crate::metrics::render_page(&shared, shared::now()))
            .await
            .map_err(|e| HttpError::internal(format!("rendering metrics failed: {e}")))?;
    Ok((
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        Bytes::from_owner(page),
    )
        .into_response())
}
