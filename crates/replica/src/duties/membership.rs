//! Membership changes while serving: add (learner first, then voter),
//! remove, replace. Every change is openraft's joint consensus
//! (`change_membership`), proposed by the leader; a follower forwards the
//! request to it.
//!
//! Safety does not depend on anything here: a membership entry is a log
//! entry like any other, so tokens (log indexes) stay unique and increasing,
//! and leases and waiters live in the replicated table, untouched by a
//! change. What this module adds is a guard for liveness: a change that would
//! leave fewer live voters than a majority of the new configuration is
//! refused unless `force` is given (then it warns), because such a cluster
//! could commit nothing, not even the change that would undo it.

use crate::http::locks::{ApiError, ApiJson};
use crate::node::{ProposeError, Replica};
use crate::storage::types::{Node, NodeId};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response as AxResponse};
use axum::Json;
use fenced_core::admin::{AddMember, Membership, RemoveMember, ReplaceMember};
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Instant as _};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

type App = Arc<Replica>;

/// How long a new learner may take to catch up (snapshot included).
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a forwarded membership request may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(90);

/// The membership this replica knows (the latest, maybe not yet committed).
pub fn view(app: &Replica) -> Membership {
    let m = app.raft.metrics().borrow_watched().clone();
    let mem = m.membership_config.membership();
    let voters: BTreeSet<NodeId> = mem.voter_ids().collect();
    let nodes: BTreeMap<NodeId, String> = mem.nodes().map(|(id, n)| (*id, n.addr.clone())).collect();
    let learners = nodes.keys().filter(|id| !voters.contains(id)).copied().collect();
    Membership {
        voters,
        learners,
        nodes,
        leader: m.current_leader,
        log_index: m.membership_config.log_id().as_ref().map(|l| l.index).unwrap_or(0),
        warnings: Vec::new(),
    }
}

/// The address of member `id`, from the replicated membership.
pub fn addr_of(app: &Replica, id: NodeId) -> Option<String> {
    view(app).nodes.get(&id).cloned()
}

/// The members that acknowledged this leader recently (itself included).
/// Empty on a follower: only the leader knows.
pub fn live_members(app: &Replica) -> BTreeSet<NodeId> {
    let window = live_window(app);
    let m = app.raft.metrics().borrow_watched().clone();
    let mut live = BTreeSet::new();
    if m.current_leader == Some(app.config.id) {
        live.insert(app.config.id);
    }
    if let Some(hb) = &m.heartbeat {
        for (id, at) in hb {
            if at.as_ref().is_some_and(|t| t.elapsed() <= window) {
                live.insert(*id);
            }
        }
    }
    live
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, code, message)
}

/// How recently a member must have acknowledged the leader to count as live.
fn live_window(app: &Replica) -> Duration {
    (app.config.election_timeout_max * 2).max(Duration::from_secs(1))
}

/// Refuse a new voter set without a live majority, unless forced. A leader
/// elected a moment ago has not heard from everyone yet: it is given one
/// liveness window to do so before it refuses.
async fn guard(app: &Replica, new_voters: &BTreeSet<NodeId>, force: bool) -> Result<Vec<String>, ApiError> {
    let majority = new_voters.len() / 2 + 1;
    let deadline = app.seams.clock.now().plus(live_window(app));
    let live_new = loop {
        let live = live_members(app);
        let live_new: BTreeSet<NodeId> = new_voters.intersection(&live).copied().collect();
        if live_new.len() >= majority {
            return Ok(Vec::new());
        }
        if app.seams.clock.now() >= deadline {
            break live_new;
        }
        tokio::time::sleep(app.config.heartbeat).await;
    };
    let message = format!(
        "after this change the voters would be {new_voters:?}, of which only {live_new:?} are live (acknowledged the \
         leader within {:?}): fewer than a majority ({majority}); the cluster could commit nothing, not even a change \
         back. Bring replicas back first, or pass --force",
        live_window(app)
    );
    if force {
        tracing::warn!("forced membership change: {message}");
        Ok(vec![format!("forced: {message}")])
    } else {
        Err(error(StatusCode::CONFLICT, "would_lose_quorum", message))
    }
}

/// Forward `body` to the leader's `path` if this replica is not the leader.
pub async fn forward_to_leader<B: Serialize>(
    app: &Replica,
    path: &str,
    body: &B,
    timeout: Duration,
) -> Result<Option<AxResponse>, ApiError> {
    let leader = app.raft.metrics().borrow_watched().current_leader;
    if leader == Some(app.config.id) {
        return Ok(None);
    }
    let addr = leader.and_then(|l| addr_of(app, l)).ok_or(ProposeError::NoLeader)?;
    let bytes =
        serde_json::to_vec(body).map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let req = hyper::Request::builder()
        .method(hyper::Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(bytes))
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let resp = app.http.send(&addr, req, timeout).await.map_err(|_| ProposeError::Unknown)?;
    let mut out = AxResponse::new(Body::from(resp.body));
    *out.status_mut() = resp.status;
    out.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().expect("static header"));
    Ok(Some(out))
}

fn write_error(e: RaftError<crate::storage::types::TypeConfig, ClientWriteError<crate::storage::types::TypeConfig>>) -> ApiError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ProposeError::NoLeader.into(),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => error(
            StatusCode::CONFLICT,
            "membership_change_refused",
            format!("{e}; wait for the previous change to finish (fenced cluster members) and retry"),
        ),
        RaftError::APIError(e) => error(StatusCode::CONFLICT, "membership_change_refused", e.to_string()),
        RaftError::Fatal(_) => ProposeError::ShuttingDown.into(),
    }
}

/// Add `id` as a learner and wait until it has caught up.
async fn add_learner(app: &Replica, id: NodeId, addr: &str) -> Result<(), ApiError> {
    let added =
        tokio::time::timeout(CATCH_UP_TIMEOUT, app.raft.add_learner(id, Node { addr: addr.into() }, true)).await;
    match added {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(write_error(e)),
        Err(_) => Err(error(
            StatusCode::GATEWAY_TIMEOUT,
            "learner_catch_up_timeout",
            format!(
                "replica {id} at {addr} did not catch up within {CATCH_UP_TIMEOUT:?}; is `fenced serve --join --id {id} \
                 --listen {addr}` running there? It stays a learner: run the same command again to retry, or remove it"
            ),
        )),
    }
}

fn check_addr(addr: &str) -> Result<(), ApiError> {
    if addr.is_empty() || addr.len() > 255 || !addr.contains(':') {
        return Err(ApiError::bad_request(format!("address {addr:?} is not HOST:PORT")));
    }
    Ok(())
}

pub(crate) async fn members(State(app): State<App>) -> Json<Membership> {
    Json(view(&app))
}

/// `fenced cluster add ID HOST:PORT`.
pub(crate) async fn add(State(app): State<App>, ApiJson(b): ApiJson<AddMember>) -> Result<AxResponse, ApiError> {
    if b.id == 0 {
        return Err(ApiError::bad_request("id must be positive"));
    }
    check_addr(&b.addr)?;
    if let Some(r) = forward_to_leader(&app, "/v1/cluster/members/add", &b, FORWARD_TIMEOUT).await? {
        return Ok(r);
    }
    let before = view(&app);
    if let Some(at) = before.nodes.get(&b.id).filter(|a| **a != b.addr) {
        return Err(error(
            StatusCode::CONFLICT,
            "member_exists",
            format!("replica {} is already a member at {at}; remove it first, or use `fenced cluster replace`", b.id),
        ));
    }
    if before.voters.contains(&b.id) {
        return Ok(Json(before).into_response());
    }
    add_learner(&app, b.id, &b.addr).await?;
    if b.learner_only {
        return Ok(Json(view(&app)).into_response());
    }
    let mut voters = view(&app).voters;
    voters.insert(b.id);
    let warnings = guard(&app, &voters, b.force).await?;
    app.raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([b.id])), false).await.map_err(write_error)?;
    tracing::info!(id = b.id, addr = %b.addr, "added a voter");
    Ok(Json(Membership { warnings, ..view(&app) }).into_response())
}

/// Hand leadership away before a change that removes this replica, then
/// let the new leader do it.
async fn away_from_self<B: Serialize>(app: &Replica, path: &str, body: &B) -> Result<AxResponse, ApiError> {
    crate::duties::drain::hand_off(app).await?;
    forward_to_leader(app, path, body, FORWARD_TIMEOUT).await?.ok_or_else(|| ProposeError::NoLeader.into())
}

/// `fenced cluster remove ID`.
pub(crate) async fn remove(State(app): State<App>, ApiJson(b): ApiJson<RemoveMember>) -> Result<AxResponse, ApiError> {
    if let Some(r) = forward_to_leader(&app, "/v1/cluster/members/remove", &b, FORWARD_TIMEOUT).await? {
        return Ok(r);
    }
    let before = view(&app);
    if !before.nodes.contains_key(&b.id) {
        return Ok(Json(before).into_response());
    }
    if !before.voters.contains(&b.id) {
        let change = ChangeMembers::RemoveNodes(BTreeSet::from([b.id]));
        app.raft.change_membership(change, false).await.map_err(write_error)?;
        let after = view(&app);
        drain_removed(&app, before.nodes.get(&b.id).cloned(), after.log_index);
        return Ok(Json(after).into_response());
    }
    let mut voters = before.voters.clone();
    voters.remove(&b.id);
    if voters.is_empty() {
        return Err(ApiError::bad_request(format!("replica {} is the last voter; a cluster needs one", b.id)));
    }
    let warnings = guard(&app, &voters, b.force).await?;
    if b.id == app.config.id {
        return away_from_self(&app, "/v1/cluster/members/remove", &b).await;
    }
    app.raft
        .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([b.id])), false)
        .await
        .map_err(write_error)?;
    tracing::info!(id = b.id, "removed a voter");
    let after = view(&app);
    drain_removed(&app, before.nodes.get(&b.id).cloned(), after.log_index);
    Ok(Json(Membership { warnings, ..after }).into_response())
}

/// `fenced cluster replace OLD NEW HOST:PORT`.
pub(crate) async fn replace(
    State(app): State<App>,
    ApiJson(b): ApiJson<ReplaceMember>,
) -> Result<AxResponse, ApiError> {
    if b.new == 0 || b.new == b.old {
        return Err(ApiError::bad_request("the new id must be positive and differ from the old one"));
    }
    check_addr(&b.addr)?;
    if let Some(r) = forward_to_leader(&app, "/v1/cluster/members/replace", &b, FORWARD_TIMEOUT).await? {
        return Ok(r);
    }
    let before = view(&app);
    if before.voters.contains(&b.new) && !before.voters.contains(&b.old) {
        return Ok(Json(before).into_response()); // Done already.
    }
    if !before.voters.contains(&b.old) {
        return Err(error(StatusCode::NOT_FOUND, "not_a_voter", format!("replica {} is not a voter", b.old)));
    }
    if before.voters.contains(&b.new) {
        return Err(error(StatusCode::CONFLICT, "member_exists", format!("replica {} is already a voter", b.new)));
    }
    if b.old == app.config.id {
        return away_from_self(&app, "/v1/cluster/members/replace", &b).await;
    }
    if before.nodes.get(&b.new).is_some_and(|a| *a != b.addr) {
        return Err(error(
            StatusCode::CONFLICT,
            "member_exists",
            format!("replica {} is already a learner at another address; remove it first", b.new),
        ));
    }
    add_learner(&app, b.new, &b.addr).await?;
    let mut voters = view(&app).voters;
    voters.remove(&b.old);
    voters.insert(b.new);
    let warnings = guard(&app, &voters, b.force).await?;
    app.raft.change_membership(ChangeMembers::ReplaceAllVoters(voters), false).await.map_err(write_error)?;
    tracing::info!(old = b.old, new = b.new, addr = %b.addr, "replaced a voter");
    let after = view(&app);
    drain_removed(&app, before.nodes.get(&b.old).cloned(), after.log_index);
    Ok(Json(Membership { warnings, ..after }).into_response())
}

/// Tell a replica that was just removed (by the membership at log index
/// `removed_at`) to drain, best effort, in the background: it no longer
/// receives the log, so acquires waiting there would never see their grant;
/// drained, it sends them elsewhere. It stops draining by itself once it is
/// added back ([`crate::duties::drain::drain_removed`]).
fn drain_removed(app: &Replica, addr: Option<String>, removed_at: u64) {
    let Some(addr) = addr else { return };
    let http = app.http.clone();
    let handshake = app.handshake.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::duties::drain::tell_removed(&http, &handshake, &addr, removed_at).await {
            tracing::debug!(%addr, error = %e, "could not tell a removed replica to drain");
        }
    });
}
