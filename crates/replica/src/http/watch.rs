//! `GET /v1/lock/watch`: a server-sent event stream that tells a holder
//! the moment its lock is gone, with a heartbeat while it is held.

use crate::http::error::ApiError;
use crate::http::locks::query;
use crate::http::HttpState;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::Response as AxResponse;
use axum::Extension;
use fenced_core::api::WatchEvent;
use fenced_core::machine::table::{EndReason, Event};
use fenced_core::Token;
use fenced_io::auth::Caller;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How long a watch waits for this replica to apply the grant it watches;
/// a replica further behind closes the stream and the client reconnects,
/// perhaps to another replica.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a watch says "held" while nothing happens: the client's proof
/// that the stream is alive.
const HELD_EVERY: Duration = Duration::from_secs(1);

type App = Arc<HttpState>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    lock: String,
    token: u64,
}

fn sse(kind: &str, ev: &WatchEvent) -> Bytes {
    let data = serde_json::to_string(ev).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

/// A stream that tells a holder the moment its lock is gone (etcd issue 6127:
/// a holder must learn of the loss, not discover it at its next write).
pub(crate) async fn lock_watch(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<WatchQuery>, QueryRejection>,
) -> Result<AxResponse, ApiError> {
    let q = query(q)?;
    let slot = app.limiter.watch_slot(&caller)?;
    // Bounded: a reader that does not keep up makes the sender wait, and
    // the sender only ever has a heartbeat or the final event to send.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let mut events = app.shared.subscribe();
    let app2 = app.clone();
    tokio::spawn(async move {
        let app = app2;
        let _slot = slot;
        let lost = |reason: &str| WatchEvent {
            kind: "lost".into(),
            lock: q.lock.clone(),
            token: q.token,
            reason: Some(reason.into()),
            applied: app.shared.applied_index(),
        };
        // The token is the index of the granting entry: until this replica
        // has applied it, "not held" here would only mean "not yet seen".
        let mut applied = app.shared.watch_applied();
        let caught_up =
            tokio::time::timeout(CATCH_UP_TIMEOUT, async { applied.wait_for(|a| *a >= q.token).await.is_ok() }).await;
        if caught_up != Ok(true) {
            return; // The client reconnects, perhaps elsewhere.
        }
        loop {
            let held = app.shared.read(|t| t.grant_kind(&q.lock, Token(q.token)).is_some());
            if !held {
                app.metrics.watches_lost_signalled.inc();
                let _ = tx.send(sse("lost", &lost("not_held"))).await;
                return;
            }
            let beat = WatchEvent {
                kind: "held".into(),
                lock: q.lock.clone(),
                token: q.token,
                reason: None,
                applied: app.shared.applied_index(),
            };
            if tx.send(sse("held", &beat)).await.is_err() {
                return;
            }
            let deadline = tokio::time::sleep(HELD_EVERY);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    ev = events.recv() => match ev {
                        Ok(entry) => {
                            let freed = entry.events.iter().find_map(|e| match e {
                                Event::Freed { lock, token, reason, .. } if *lock == q.lock && token.0 == q.token => Some(*reason),
                                _ => None,
                            });
                            if let Some(reason) = freed {
                                let r = match reason { EndReason::Released => "released", EndReason::Expired => "expired", EndReason::Revoked => "revoked" };
                                app.metrics.watches_lost_signalled.inc();
                                let _ = tx.send(sse("lost", &lost(r))).await;
                                return;
                            }
                        }
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => return,
                    },
                }
            }
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx)) });
    let mut resp = AxResponse::new(Body::from_stream(stream));
    resp.headers_mut().insert(header::CONTENT_TYPE, "text/event-stream".parse().expect("static header"));
    resp.headers_mut().insert(header::CACHE_CONTROL, "no-cache".parse().expect("static header"));
    Ok(resp)
}
