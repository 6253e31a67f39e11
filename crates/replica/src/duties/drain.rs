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

use crate::duties::members::live_members;
use crate::node::drain::AfterRemoval;
use crate::node::Replica;
use crate::peer::handshake::Handshake;
use crate::storage::types::NodeId;
use bytes::Bytes;
use fenced_core::admin::{DrainRequest, DrainStatus};
use fenced_io::http::HttpClient;
use hyper::StatusCode;
use openraft::async_runtime::WatchReceiver;
use std::sync::Arc;
use std::time::Duration;

/// The least time a leadership hand-off is given, however short the
/// election timeouts: a candidate must still catch up and win a vote.
const MOVE_TIMEOUT_MIN: Duration = Duration::from_secs(2);

/// How long telling a removed replica that it was removed may take; a live
/// replica answers in milliseconds, and one that does not is unreachable.
const REMOVED_NOTICE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why leadership could not be handed off.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error("this replica is shutting down")]
    ShuttingDown,
    #[error("no other voter took leadership; is a majority up and caught up? (fenced cluster status)")]
    HandOffFailed,
}

/// Wait this long for leadership to move to one candidate.
fn move_timeout(app: &Replica) -> Duration {
    (app.config.election_timeout_max * 4).max(MOVE_TIMEOUT_MIN)
}

/// If this replica leads, hand leadership to another live voter, the most
/// caught-up first. Returns the leader afterwards.
pub async fn hand_off(app: &Replica) -> Result<Option<NodeId>, DrainError> {
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
            return Err(DrainError::ShuttingDown);
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
    Err(DrainError::HandOffFailed)
}

/// Start draining (idempotent) and hand leadership off. A background task
/// hands it off again if this replica is elected while it drains. An
/// operator's drain never ends (the process is about to stop).
pub async fn drain(app: &Arc<Replica>) -> Result<DrainStatus, DrainError> {
    app.drain.request();
    start_draining(app);
    let leader = if app.voters().len() > 1 { hand_off(app).await? } else { None };
    Ok(DrainStatus { id: app.config.id, draining: true, leader })
}

/// Set the draining flag; the first time, start the task that keeps handing
/// leadership away while the flag stays set.
fn start_draining(app: &Arc<Replica>) {
    if !app.drain.start() {
        return;
    }
    tracing::info!("draining: refusing new client sessions, handing off leadership");
    let weak = Arc::downgrade(app);
    let period = app.config.heartbeat * 2;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let Some(app) = weak.upgrade() else { return };
            if !app.drain.is_draining() {
                return;
            }
            let leads = app.raft.metrics().borrow_watched().current_leader == Some(app.config.id);
            if leads && app.voters().len() > 1 {
                let _ = hand_off(&app).await;
            }
        }
    });
}

/// Has this replica seen a membership later than `removed_at` that includes
/// it (it was added back)?
fn readded(app: &Replica, removed_at: u64) -> bool {
    let view = crate::duties::members::view(app);
    view.log_index > removed_at && view.nodes.contains_key(&app.config.id)
}

/// Drain because the leader removed this replica from the membership at log
/// index `removed_at`: it no longer receives the log, so waiting acquires
/// and proposals must go elsewhere at once. Ends by itself when the replica
/// is added back (a later membership includes it), unless an operator
/// drained it as well.
pub fn drain_removed(app: &Arc<Replica>, removed_at: u64) -> DrainStatus {
    let status = |app: &Replica| DrainStatus {
        id: app.config.id,
        draining: app.drain.is_draining(),
        leader: app.raft.metrics().borrow_watched().current_leader,
    };
    if readded(app, removed_at) || app.drain.is_draining() {
        return status(app); // A late message, or draining already.
    }
    tracing::info!(removed_at, "removed from the cluster: draining until added back");
    start_draining(app);
    let weak = Arc::downgrade(app);
    let period = crate::node::drain::poll(app.config.heartbeat);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let Some(app) = weak.upgrade() else { return };
            match app.drain.after_removal(|| readded(&app, removed_at)) {
                AfterRemoval::Watch => {}
                AfterRemoval::Over => return,
                AfterRemoval::Undrained => {
                    tracing::info!("added back to the cluster: no longer draining");
                    return;
                }
            }
        }
    });
    status(app)
}

/// The peer message by which the leader that removed a replica tells it to
/// drain ([`drain_removed`]). Under the peer prefix: only a replica may send
/// it, since a drain that waits to be re-added refuses clients for good.
pub const REMOVED_PATH: &str = "/raft/v1/drain-removed";

/// Send the [`REMOVED_PATH`] message to the replica at `addr`, as a peer:
/// over the replicas' transport (TLS with the replica's certificate when the
/// cluster has one) and with the handshake headers.
pub async fn tell_removed(
    http: &HttpClient,
    handshake: &Handshake,
    addr: &str,
    removed_at: u64,
) -> Result<DrainStatus, String> {
    let body = fenced_io::frame::encode(&DrainRequest { removed_at }).map_err(|e| e.to_string())?;
    let mut req = hyper::Request::builder()
        .method(hyper::Method::POST)
        .uri(REMOVED_PATH)
        .header(hyper::header::CONTENT_TYPE, "application/x-fenced-frame")
        .body(Bytes::from(body))
        .map_err(|e| e.to_string())?;
    handshake.stamp(req.headers_mut());
    let resp = http.send(addr, req, REMOVED_NOTICE_TIMEOUT).await.map_err(|e| e.to_string())?;
    if resp.status != StatusCode::OK {
        return Err(format!("{} answered {}: {}", addr, resp.status, String::from_utf8_lossy(&resp.body)));
    }
    fenced_io::frame::decode_exact(&resp.body).map_err(|e| e.to_string())
}
