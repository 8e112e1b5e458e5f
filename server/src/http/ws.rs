//! `/ws`: the dashboard's live feed, served from the [`Hub`].

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State as AxumState;
use axum::response::Response;
use tokio::sync::broadcast;

use crate::app::AppState;
use crate::feed::StateReader;

/// `GET /ws`: upgrades, then streams snapshot and deltas until the client
/// leaves.
pub async fn handler(ws: WebSocketUpgrade, AxumState(app): AxumState<Arc<AppState>>) -> Response {
    ws.on_upgrade(move |socket| serve(socket, app))
}

async fn serve(mut socket: WebSocket, app: Arc<AppState>) {
    // Subscribe before the snapshot so no delta falls between the two;
    // deltas are upserts, so an overlap is harmless.
    let mut rx = app.dashboard.subscribe();
    let snapshot = app.dashboard.snapshot(&StateReader::new(&app.state));
    if socket.send(Message::Text(snapshot)).await.is_err() {
        return;
    }
    loop {
        let out = tokio::select! {
            m = rx.recv() => match m {
                Ok(text) => text,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    rx = rx.resubscribe();
                    app.dashboard.client_lagged();
                    app.dashboard.snapshot(&StateReader::new(&app.state))
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            },
        };
        if socket.send(Message::Text(out)).await.is_err() {
            return;
        }
    }
}
