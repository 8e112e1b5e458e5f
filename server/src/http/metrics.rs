//! `GET /metrics`: Prometheus text, unauthenticated as in Flower.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};

use super::errors::HttpError;
use crate::app::AppState;
use crate::clock;

pub async fn metrics(State(shared): State<Arc<AppState>>) -> Result<Response, HttpError> {
    // Milliseconds of formatting with thousands of series: not on an async
    // worker.
    let page = tokio::task::spawn_blocking(move || {
        crate::metrics::render_page(shared.scrape(), clock::now())
    })
    .await
    .map_err(|e| HttpError::internal(format!("rendering metrics failed: {e}")))?;
    Ok((
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        Body::new(PageBody::new(page)),
    )
        .into_response())
}

/// The page's chunks as the response body, with its exact length (so a
/// `Content-Length`, not chunked encoding).
struct PageBody {
    chunks: std::vec::IntoIter<Bytes>,
    remaining: u64,
}

impl PageBody {
    fn new(page: crate::metrics::Page) -> PageBody {
        PageBody {
            remaining: page.len() as u64,
            chunks: page.into_chunks().into_iter(),
        }
    }
}

impl http_body::Body for PageBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let next = self.chunks.find(|c| !c.is_empty());
        if let Some(c) = &next {
            self.remaining -= c.len() as u64;
        }
        Poll::Ready(next.map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
