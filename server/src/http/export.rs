//! `GET /api/tasks/export`: the tasks `/api/tasks`' filters match, newest
//! first, streamed as CSV or NDJSON for post-mortems, memory and history
//! alike. Streamed page by page, so memory use does not grow with the
//! number of tasks.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::params::{self, Params};
use super::HttpError;
use crate::app::AppState;
use crate::auth::Principal;
use crate::history::export::Format;
use crate::history::reader::Export;
use crate::query::TaskQuery;

/// Pages in flight between the reader and the client.
const PAGES_IN_FLIGHT: usize = 4;

pub async fn export(
    State(shared): State<Arc<AppState>>,
    who: Option<Extension<Principal>>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Response, HttpError> {
    let hide = shared.hides_args(who.as_ref().map(|w| &w.0));
    let params = params::from_query(query)?;
    let format = Format::parse(
        params
            .iter()
            .rev()
            .find(|(k, _)| k == "format")
            .map(|(_, v)| v.as_str()),
    )
    .map_err(|e| HttpError::bad_param("format", e))?;
    let query = TaskQuery::from_params(&params)?;
    super::flower::refuse_hidden_search(hide, &query)?;
    if query.sort_by.is_some() {
        return Err(HttpError::bad_param(
            "sort_by",
            "an export is always newest first: leave out sort_by",
        ));
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(PAGES_IN_FLIGHT);
    let mut export = Export::new(shared.history.as_deref(), &shared.state, query);
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(format.header()))).await.is_err() {
            return;
        }
        loop {
            let chunk = match export.next_page(&shared.state).await {
                Ok(Some(mut page)) => {
                    if hide {
                        page.iter_mut().for_each(super::flower::hide_args);
                    }
                    Ok(Bytes::from(
                        page.iter().flat_map(|t| format.row(t)).collect::<Vec<u8>>(),
                    ))
                }
                Ok(None) => return,
                // The status line is sent already: cut the body short, so
                // the client sees an incomplete transfer, not a short file.
                Err(e) => {
                    tracing::warn!(error = %e, "export stopped: history unavailable");
                    Err(std::io::Error::other(e.to_string()))
                }
            };
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    let body = futures_lite::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let disposition = format!("attachment; filename=\"{}\"", format.file_name());
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
