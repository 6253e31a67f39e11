//! Drain: prepare a replica to stop. It refuses new client sessions (lease
//! grants answer `503 draining`, retryable, so clients move to another
//! replica), hands leadership to the most caught-up live voter, and keeps
//! handing it off if an election gives it back, until the process stops.
//! Acquires waiting in a lock's queue here are sent away (`503 draining`):
//! the client's retry, with the same request id, is answered `Queued` from
//! the table by another replica and waits there. Existing leases keep being
//! served (keepalives, releases) until the stop: they are in the replicated
//! table and survive it anyway. A replica removed from the cluster is told
//! to drain by the leader that removed it, since it stops receiving the log.
//!
//! `fenced serve` drains on SIGTERM before it stops; `fenced cluster drain
//! ID` drains a replica that keeps running (for a stop by other means).

use crate::api::ApiError;
use crate::membership::live_members;
use crate::node::{ProposeError, Replica};
use crate::types::NodeId;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use fenced_core::admin::DrainStatus;
use openraft::async_runtime::WatchReceiver;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

type App = Arc<Replica>;

/// How often a waiting acquire looks whether its replica started draining.
pub const POLL: Duration = Duration::from_millis(250);

/// Wait this long for leadership to move to one candidate.
fn move_timeout(app: &Replica) -> Duration {
    (app.config.election_timeout_max * 4).max(Duration::from_secs(2))
}

/// If this replica leads, hand leadership to another live voter, the most
/// caught-up first. Returns the leader afterwards.
pub async fn hand_off(app: &Replica) -> Result<Option<NodeId>, ApiError> {
    let me = app.config.id;
    let m = app.raft.metrics().borrow_watched().clone();
    if m.current_leader != Some(me) {
        return Ok(m.current_leader);
    }
    let live = live_members(app);
    let matched = m.replication.clone().unwrap_or_default();
    let mut candidates: Vec<(bool, u64, NodeId)> = app
        .voters()
        .into_iter()
        .filter(|id| *id != me)
        .map(|id| {
            let index = matched.get(&id).and_then(|l| l.as_ref().map(|l| l.index)).unwrap_or(0);
            (live.contains(&id), index, id)
        })
        .collect();
    candidates.sort_by(|a, b| b.cmp(a));
    for (_, _, target) in candidates {
        if app.raft.trigger().transfer_leader(target).await.is_err() {
            return Err(ProposeError::ShuttingDown.into());
        }
        let mut metrics = app.raft.metrics();
        let moved = tokio::time::timeout(move_timeout(app), async {
            loop {
                let l = metrics.borrow_watched().current_leader;
                if l.is_some() && l != Some(me) {
                    return l;
                }
                if metrics.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        if let Ok(Some(l)) = moved {
            tracing::info!(to = l, "handed off leadership");
            return Ok(Some(l));
        }
        tracing::warn!(target, "leadership did not move; trying the next voter");
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "hand_off_failed",
        "no other voter took leadership; is a majority up and caught up? (fenced cluster status)",
    ))
}

/// Start draining (idempotent) and hand leadership off. A background task
/// hands it off again if this replica is elected while it drains.
pub async fn drain(app: &Arc<Replica>) -> Result<DrainStatus, ApiError> {
    if !app.draining.swap(true, Ordering::SeqCst) {
        tracing::info!("draining: refusing new client sessions, handing off leadership");
        let weak = Arc::downgrade(app);
        let period = app.config.heartbeat * 2;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(app) = weak.upgrade() else { return };
                let leads = app.raft.metrics().borrow_watched().current_leader == Some(app.config.id);
                if leads && app.voters().len() > 1 {
                    let _ = hand_off(&app).await;
                }
            }
        });
    }
    let leader = if app.voters().len() > 1 { hand_off(app).await? } else { None };
    Ok(DrainStatus { id: app.config.id, draining: true, leader })
}

/// The error a draining replica answers a new session with.
pub fn refusal() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "draining",
        "this replica is draining before a stop; open the session on another replica",
    );
    e.set_retry(true);
    e
}

async fn drain_handler(State(app): State<App>) -> Result<Json<DrainStatus>, ApiError> {
    drain(&app).await.map(Json)
}

/// The drain route (served by the replica to drain, never forwarded).
pub fn routes() -> Router<App> {
    Router::new().route("/v1/cluster/drain", post(drain_handler))
}
