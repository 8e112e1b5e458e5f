//! Flower's read API (`/api/workers`, `/api/tasks`, `/api/task/info`,
//! `/api/task/types`), answering with Flower 2.2's shapes
//! (docs/celery-protocol.md §6.2, §6.3).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::ser::{Serialize, Serializer};

use super::errors::HttpError;
use super::params::{self, Params};
use crate::app::AppState;
use crate::auth::Principal;
use crate::clock;
use crate::history::reader;
use crate::query::TaskQuery;

/// Serialises `(key, value)` pairs as one JSON object, in iteration order: Flower's
/// `/api/tasks` is an object whose key order is the sort order, which a hash
/// map would lose.
struct OrderedObject<I>(I);

impl<I, K, V> Serialize for OrderedObject<I>
where
    I: Iterator<Item = (K, V)> + Clone,
    K: Serialize,
    V: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.clone())
    }
}

fn json_response<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => HttpError::internal(format!("serialising the response: {e}")).into_response(),
    }
}

/// `GET /api/workers`: `{nodename: worker}`, or `{nodename: alive}` with
/// `status=true` (every worker whatever `workername` says, as Flower).
pub async fn workers(
    State(shared): State<Arc<AppState>>,
    who: Option<Extension<Principal>>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Response, HttpError> {
    let hide = shared.hides_args(who.as_ref().map(|w| &w.0));
    let params = params::from_query(query)?;
    let refresh = params::bool_param(&params, "refresh")?;
    let status = params::bool_param(&params, "status")?;
    let workername = params::last(&params, "workername").filter(|w| !w.is_empty());
    let now = clock::now();

    if status {
        // Flower answers the status of every worker its events know, and
        // reads no other parameter for it.
        let workers = shared.state.read().workers(now);
        return Ok(json_response(&OrderedObject(
            workers.iter().map(|w| (w.hostname.as_str(), w.status)),
        )));
    }

    let workers = match workername {
        Some(name) => {
            let worker = shared.state.read().worker(name, now);
            match worker {
                Some(w) => vec![w],
                None => return Err(HttpError::not_found(format!("Unknown worker '{name}'"))),
            }
        }
        None => shared.state.read().workers(now),
    };

    // `refresh` runs Flower's inspect broadcasts
    // (with `workername`, the task lists too); the cached inspect fields are
    // merged into each worker below.
    if refresh {
        crate::control::inspect::refresh(&shared.ops, &shared.state, &shared.broker, workername)
            .await
            .map_err(|e| {
                HttpError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    format!("Failed to update workers: {e}"),
                )
            })?;
    } else {
        // Workers that came online a moment ago: their inspect fields, not
        // a first answer without them.
        crate::control::onboard::ensure(&shared.ops, &shared.broker, &workers).await;
    }

    let inspect = &shared.ops.inspect;
    let rendered: Vec<_> = workers
        .iter()
        .map(|w| {
            let mut v = inspect.merged(w);
            if hide {
                crate::control::inspect::hide_task_args(&mut v);
            }
            (w.hostname.as_str(), v)
        })
        .collect();
    Ok(json_response(&OrderedObject(
        rendered.iter().map(|(k, v)| (*k, v)),
    )))
}

/// Blanks a task's args and kwargs for someone `--hide-args` hides them from.
pub fn hide_args(task: &mut api::Task) {
    task.args = None;
    task.kwargs = None;
}

/// 403 for a search into args or kwargs by someone `--hide-args` hides them
/// from: which tasks match would tell what the arguments hold.
pub fn refuse_hidden_search(hide: bool, query: &TaskQuery) -> Result<(), HttpError> {
    if hide && query.search.as_ref().is_some_and(|s| s.reads_args()) {
        let mut e = HttpError::new(
            axum::http::StatusCode::FORBIDDEN,
            "Task arguments are hidden from you (--hide-args): search with name:, state: or \
             result: terms only (a bare term also searches args and kwargs)",
        );
        e.body.parameter = Some("search".into());
        return Err(e);
    }
    Ok(())
}

/// `GET /api/tasks`: `{uuid: task}` in the query's order.
pub async fn tasks(
    State(shared): State<Arc<AppState>>,
    who: Option<Extension<Principal>>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Response, HttpError> {
    let params = params::from_query(query)?;
    let query = TaskQuery::from_params(&params)?;
    let hide = shared.hides_args(who.as_ref().map(|w| &w.0));
    refuse_hidden_search(hide, &query)?;
    if query.limit.is_none() && query.indexable() {
        let store = shared.history.as_deref().and_then(|h| h.store());
        let beyond = shared
            .history
            .as_ref()
            .is_some_and(|h| h.reaches_beyond(&shared.state.read()));
        // With the store to merge, the answer is built whole (bounded by
        // history's `MAX_UNLIMITED`); memory alone streams.
        if store.is_none() || !beyond {
            return Ok(stream_listing(shared, query, hide));
        }
    }
    // Selecting, sorting and serialising up to every retained task is
    // CPU-bound for tens of milliseconds; keep it off the async workers.
    let history = shared.history.clone();
    let (query, memory, beyond) = {
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || {
            let state = shared.state.read();
            let beyond = history.as_ref().is_some_and(|h| h.reaches_beyond(&state));
            // With history, memory gives its best `offset + limit` and the
            // page is cut after merging.
            let mut first = query.clone();
            if beyond {
                first.offset = 0;
                first.limit = query.limit.map(|l| l.saturating_add(query.offset));
            }
            let page: Vec<api::Task> = first
                .run_state(&state)
                .into_iter()
                .map(|t| t.to_api())
                .collect();
            (query, page, beyond)
        })
        .await
        .map_err(|e| HttpError::internal(format!("task listing failed: {e}")))?
    };
    let mut page = match shared.history.as_deref().and_then(|h| h.store()) {
        Some(store) if !reader::memory_suffices(beyond, &query, memory.len()) => {
            match reader::tasks(&store, &shared.state, &query, memory.clone()).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "history unavailable; answering from memory");
                    cut(memory, &query, beyond)
                }
            }
        }
        _ => cut(memory, &query, beyond),
    };
    if hide {
        page.iter_mut().for_each(hide_args);
    }
    Ok(json_response(&OrderedObject(
        page.iter().map(|t| (t.uuid.as_str(), t)),
    )))
}

/// Matches per chunk of a streamed listing (more when a run of equal
/// timestamps straddles the cut).
const STREAM_CHUNK: usize = 1_000;
/// Chunks rendered ahead of the client.
const CHUNKS_IN_FLIGHT: usize = 4;

/// A full newest-first listing as a chunked body, read from the state's
/// index a chunk at a time under short read locks: memory stays that of a
/// few chunks, whatever is retained, and ingest waits at most one chunk.
/// Not one snapshot: a task that changes while the listing is being sent
/// moves above the part already read and is left out (never sent twice);
/// tasks created meanwhile are not in it.
fn stream_listing(shared: Arc<AppState>, query: TaskQuery, hide: bool) -> Response {
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut below = None;
        let mut skip = query.offset;
        let mut opened = false;
        loop {
            let (tasks, next) = {
                let state = shared.state.read();
                let Some(stretch) = query.stretch(&state, below, STREAM_CHUNK) else {
                    return;
                };
                let tasks: Vec<api::Task> = stretch
                    .tasks
                    .iter()
                    .skip(skip)
                    .map(|t| t.to_api())
                    .collect();
                skip = skip.saturating_sub(stretch.tasks.len());
                (tasks, stretch.next)
            };
            let mut buf = Vec::with_capacity(tasks.len() * 1_024);
            for mut t in tasks {
                if hide {
                    hide_args(&mut t);
                }
                buf.push(if opened { b',' } else { b'{' });
                opened = true;
                // Strings and a derived Serialize: writing to a Vec cannot fail.
                let _ = serde_json::to_writer(&mut buf, &t.uuid);
                buf.push(b':');
                let _ = serde_json::to_writer(&mut buf, &t);
            }
            if !buf.is_empty() && tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return; // the client went away
            }
            match next {
                Some(n) => below = Some(n),
                None => break,
            }
        }
        let end: &'static [u8] = if opened { b"}" } else { b"{}" };
        let _ = tx.blocking_send(Ok(Bytes::from_static(end)));
    });
    let body = futures_lite::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response()
}

/// Memory's answer as the page: already cut unless it was fetched from
/// offset 0 to be merged with history.
fn cut(memory: Vec<api::Task>, query: &TaskQuery, from_zero: bool) -> Vec<api::Task> {
    if from_zero {
        memory.into_iter().skip(query.offset).collect()
    } else {
        memory
    }
}

/// `GET /api/task/info/{uuid}`.
pub async fn task_info(
    State(shared): State<Arc<AppState>>,
    who: Option<Extension<Principal>>,
    Path(uuid): Path<String>,
) -> Result<Response, HttpError> {
    let task = reader::task(shared.history.as_deref(), &shared.state, &uuid)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "history unavailable; answering from memory");
            None
        });
    let Some(mut task) = task else {
        return Err(HttpError::not_found(format!("Unknown task '{uuid}'")));
    };
    if shared.hides_args(who.as_ref().map(|w| &w.0)) {
        hide_args(&mut task);
    }
    // Beyond Flower: the re-runs celeriac published, both ways.
    let links = &shared.submit.links;
    let (retry_of, reruns) = (links.retry_of(&uuid), links.reruns(&uuid));
    if retry_of.is_none() && reruns.is_empty() {
        return Ok(json_response(&task));
    }
    // Appended after Flower's fields, which keep their order.
    let mut extra = serde_json::Map::new();
    if let Some(old) = retry_of {
        extra.insert("retry_of".into(), old.into());
    }
    if !reruns.is_empty() {
        extra.insert("reruns".into(), reruns.into());
    }
    let (Ok(mut bytes), Ok(more)) = (serde_json::to_vec(&task), serde_json::to_vec(&extra)) else {
        return Err(HttpError::internal("serialising the task"));
    };
    bytes.pop(); // `}`
    bytes.push(b',');
    bytes.extend_from_slice(&more[1..]);
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// `GET /api/task/types`: every task name seen, sorted, up to
/// `--max-task-names` (`folded` counts the names beyond).
pub async fn task_types(State(shared): State<Arc<AppState>>) -> Response {
    let (task_types, folded) = {
        let state = shared.state.read();
        (state.task_types(), state.task_names_folded())
    };
    json_response(&api::TaskTypes { task_types, folded })
}
