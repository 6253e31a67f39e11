//! The cluster's own endpoints: status, the signing keys, leadership
//! transfer, membership changes, drain, backup and the peers report. Each
//! route's right is declared in [`crate::http::routes::ROUTES`]; the work is
//! done by the duties, whose errors become answers here.

use crate::duties::drain::{self, DrainError, REMOVED_PATH};
use crate::duties::members;
use crate::duties::membership::{self, Change, MembershipError};
use crate::http::error::{sm_error, ApiError, ApiJson};
use crate::http::locks::{origin, submit, unexpected};
use crate::http::HttpState;
use crate::node::ProposeError;
use crate::node::Replica;
use crate::storage::backup;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response as AxResponse};
use axum::{Extension, Json};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use fenced_core::admin::{
    AddMember, DrainStatus, Membership, PeersReport, RemoveMember, ReplaceMember, SnapshotExport,
};
use fenced_core::api::*;
use fenced_core::machine::command::{Command, Origin};
use fenced_core::machine::token::encode_public_key;
use fenced_core::{Response, SmError};
use fenced_io::auth::Caller;
use openraft::async_runtime::WatchReceiver;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// A transfer forwarded to the leader waits for the leader's own transfer
/// (`TRANSFER_TIMEOUT`) and then some.
const FORWARD_TRANSFER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the leader waits to see leadership move after triggering a
/// transfer: an election or two on any configured timing.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(5);

type App = Arc<HttpState>;

pub(crate) fn cluster_status_of(app: &App) -> ClusterStatus {
    let m = app.raft.metrics().borrow_watched().clone();
    let (key, leases, locks_held) = app
        .shared
        .read(|t| (t.public_keys().last().map(encode_public_key), t.leases().count(), t.held_locks().count()));
    ClusterStatus {
        id: app.config.id,
        // A leader whose quorum acknowledgements lapsed has in effect stepped
        // down: it proposes, grants, reads and expires nothing.
        state: if m.state.is_leader() && !app.is_leader() {
            "LeaderWithoutQuorum".into()
        } else {
            format!("{:?}", m.state)
        },
        leader: m.current_leader,
        term: m.current_term,
        commit_index: m.local_committed.as_ref().map(|l| l.index).unwrap_or(0),
        applied_index: app.shared.applied_index(),
        last_log_index: m.last_log_index.unwrap_or(0),
        members: m.membership_config.membership().nodes().map(|(id, n)| (*id, n.addr.clone())).collect(),
        public_key: key,
        leases,
        locks_held,
        peers: app.vitals.peers.health(&app.voters()),
        clock: Some(app.vitals.timekeeper.health()),
        fsync: app.vitals.fsync.lock().map(|w| w.summary()).ok(),
        limp: Some(app.vitals.limp.status()),
        draining: app.drain.is_draining(),
    }
}

/// The cheapest request there is: for measuring round trips (`fenced calibrate`).
pub(crate) async fn ping(State(app): State<App>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "id": app.config.id }))
}

pub(crate) async fn cluster_status(State(app): State<App>) -> Json<ClusterStatus> {
    Json(cluster_status_of(&app))
}

pub(crate) async fn cluster_key(State(app): State<App>) -> Result<Json<KeyResponse>, ApiError> {
    let keys: Vec<String> = app.shared.read(|t| t.public_keys().iter().map(encode_public_key).collect());
    match keys.last() {
        Some(k) => Ok(Json(KeyResponse { public_key: k.clone(), public_keys: keys })),
        None => Err(sm_error(SmError::NoSigningKey)),
    }
}

/// The optional body of the key routes: `client` and `request_id` make the
/// request deduplicated, so a retry after a lost reply gets the original
/// answer rather than `400 a key rotation is already in progress`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AdminRequest {
    client: Option<String>,
    request_id: Option<u64>,
}

/// The deduplication origin of a key route's request: none for an empty
/// body or `{}` (an operator's `curl -X POST`), else as for every route.
fn admin_origin(caller: &Caller, body: Result<Bytes, BytesRejection>) -> Result<Option<Origin>, ApiError> {
    let body = body.map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", e.body_text()))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let b: AdminRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!("{e}: the body is empty or {{\"client\": ID, \"request_id\": N}}"))
    })?;
    match (b.client, b.request_id) {
        (None, None) => Ok(None),
        (client, request_id) => origin(caller, client, request_id),
    }
}

/// Start a signing-key rotation: a new key signs from now on, and both are
/// published (`/v1/cluster/key`) until `retire-keys`, so stores that were
/// given both accept tokens signed by either during the overlap.
pub(crate) async fn rotate_key(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<KeyResponse>, ApiError> {
    let origin = admin_origin(&caller, body)?;
    let secret = fenced_core::machine::token::rotated_secret(&app.seams.key_entropy, app.shared.applied_index());
    match submit(&app, origin, Command::RotateSigningKey { secret }).await? {
        Response::Done => cluster_key(State(app)).await,
        r => Err(unexpected(r)),
    }
}

/// End a rotation's overlap: only the newest key stays published.
pub(crate) async fn retire_keys(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<KeyResponse>, ApiError> {
    let origin = admin_origin(&caller, body)?;
    match submit(&app, origin, Command::RetireSigningKeys).await? {
        Response::Done => cluster_key(State(app)).await,
        r => Err(unexpected(r)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    to: u64,
}

/// Hand leadership to `to` (rolling restarts; also how tests force elections).
pub(crate) async fn transfer_leader(
    State(app): State<App>,
    ApiJson(b): ApiJson<TransferRequest>,
) -> Result<Json<ClusterStatus>, ApiError> {
    if !app.voters().contains(&b.to) {
        return Err(ApiError::bad_request(format!("{} is not a voter of this cluster", b.to)));
    }
    let leader = app.raft.metrics().borrow_watched().current_leader;
    if leader != Some(app.config.id) {
        let addr = leader.and_then(|l| crate::duties::members::addr_of(&app, l)).ok_or(ProposeError::NoLeader)?;
        let body = serde_json::to_vec(&serde_json::json!({"to": b.to})).unwrap_or_default();
        let req = hyper::Request::builder()
            .method(hyper::Method::POST)
            .uri("/v1/cluster/transfer-leader")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Bytes::from(body))
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
        let resp = app.http.send(&addr, req, FORWARD_TRANSFER_TIMEOUT).await.map_err(|_| ProposeError::NoLeader)?;
        return serde_json::from_slice::<ClusterStatus>(&resp.body).map(Json).map_err(|_| {
            ApiError::new(StatusCode::BAD_GATEWAY, "forward_failed", String::from_utf8_lossy(&resp.body))
        });
    }
    if b.to != app.config.id {
        app.raft.trigger().transfer_leader(b.to).await.map_err(|_| ProposeError::ShuttingDown)?;
        let mut m = app.raft.metrics();
        let moved = tokio::time::timeout(TRANSFER_TIMEOUT, async {
            loop {
                let l = m.borrow_watched().current_leader;
                if l.is_some() && l != Some(app.config.id) {
                    return;
                }
                if m.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        if moved.is_err() {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "transfer_timeout",
                "leadership did not move within 5 s; is the target up and caught up?",
            ));
        }
    }
    Ok(Json(cluster_status_of(&app)))
}

impl From<DrainError> for ApiError {
    fn from(e: DrainError) -> Self {
        match e {
            DrainError::ShuttingDown => ProposeError::ShuttingDown.into(),
            DrainError::HandOffFailed => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "hand_off_failed", e.to_string())
            }
        }
    }
}

impl From<MembershipError> for ApiError {
    fn from(e: MembershipError) -> Self {
        let (status, code) = match &e {
            MembershipError::Invalid(m) => return ApiError::bad_request(m.clone()),
            MembershipError::Propose(_) | MembershipError::HandOff(_) => {
                return match e {
                    MembershipError::Propose(e) => e.into(),
                    MembershipError::HandOff(e) => e.into(),
                    _ => unreachable!("matched above"),
                }
            }
            MembershipError::MemberExists(_) => (StatusCode::CONFLICT, "member_exists"),
            MembershipError::NotAVoter(_) => (StatusCode::NOT_FOUND, "not_a_voter"),
            MembershipError::WouldLoseQuorum(_) => (StatusCode::CONFLICT, "would_lose_quorum"),
            MembershipError::Refused(_) => (StatusCode::CONFLICT, "membership_change_refused"),
            MembershipError::CatchUpTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "learner_catch_up_timeout"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// How long a forwarded membership request may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(90);

/// Forward `body` to the leader's `path` if this replica is not the leader.
pub async fn forward_to_leader<B: serde::Serialize>(
    app: &Replica,
    path: &str,
    body: &B,
    timeout: Duration,
) -> Result<Option<AxResponse>, ApiError> {
    let leader = app.raft.metrics().borrow_watched().current_leader;
    if leader == Some(app.config.id) {
        return Ok(None);
    }
    let addr = leader.and_then(|l| members::addr_of(app, l)).ok_or(ProposeError::NoLeader)?;
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let req = hyper::Request::builder()
        .method(hyper::Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(bytes))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let resp = app.http.send(&addr, req, timeout).await.map_err(|_| ProposeError::Unknown)?;
    let mut out = AxResponse::new(Body::from(resp.body));
    *out.status_mut() = resp.status;
    out.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().expect("static header"));
    Ok(Some(out))
}

/// Forward a change that removes this replica to the leader it handed over to.
async fn forward_after_hand_off<B: serde::Serialize>(
    app: &Replica,
    path: &str,
    body: &B,
) -> Result<AxResponse, ApiError> {
    forward_to_leader(app, path, body, FORWARD_TIMEOUT).await?.ok_or_else(|| ProposeError::NoLeader.into())
}

pub(crate) async fn members(State(app): State<App>) -> Json<Membership> {
    Json(members::view(&app))
}

/// `fenced cluster add ID HOST:PORT`.
pub(crate) async fn add(State(app): State<App>, ApiJson(b): ApiJson<AddMember>) -> Result<AxResponse, ApiError> {
    membership::check_add(&b)?;
    if let Some(r) = forward_to_leader(&app, "/v1/cluster/members/add", &b, FORWARD_TIMEOUT).await? {
        return Ok(r);
    }
    Ok(Json(membership::add(&app, &b).await?).into_response())
}

/// `fenced cluster remove ID`.
pub(crate) async fn remove(State(app): State<App>, ApiJson(b): ApiJson<RemoveMember>) -> Result<AxResponse, ApiError> {
    const PATH: &str = "/v1/cluster/members/remove";
    if let Some(r) = forward_to_leader(&app, PATH, &b, FORWARD_TIMEOUT).await? {
        return Ok(r);
    }
    match membership::remove(&app, &b).await? {
        Change::Done(m) => Ok(Json(m).into_response()),
        Change::Forward => forward_after_hand_off(&app, PATH, &b).await,
    }
}

/// `fenced cluster replace OLD NEW HOST:PORT`.
pub(crate) async fn replace(
    State(app): State<App>,
    ApiJson(b): ApiJson<ReplaceMember>,
) -> Result<AxResponse, ApiError> {
    const PATH: &str = "/v1/cluster/members/replace";
    membership::check_replace(&b)?;
    if let Some(r) = forward_to_leader(&app, PATH, &b, FORWARD_TIMEOUT).await? {
        return Ok(r);
    }
    match membership::replace(&app, &b).await? {
        Change::Done(m) => Ok(Json(m).into_response()),
        Change::Forward => forward_after_hand_off(&app, PATH, &b).await,
    }
}

/// An operator's drain takes no body (`curl -X POST …/drain`): empty,
/// `null` or `{}`. Telling a removed replica to drain is a peer message
/// ([`REMOVED_PATH`]), so `removed_at` is refused here.
fn drain_body(body: &[u8]) -> Result<(), ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct OperatorDrain {}
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    serde_json::from_slice::<Option<OperatorDrain>>(body).map(|_| ()).map_err(|e| {
        ApiError::bad_request(format!(
            "{e}: the body is empty, null or {{}} (the leader tells a removed replica to drain with a peer message, \
             {REMOVED_PATH})"
        ))
    })
}

/// `POST /v1/cluster/drain` (admin): drain this replica before a stop.
pub(crate) async fn drain_handler(
    State(app): State<App>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<DrainStatus>, ApiError> {
    let body = body.map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", e.body_text()))?;
    drain_body(&body)?;
    Ok(Json(drain::drain(&app.replica).await?))
}

/// `GET /v1/cluster/snapshot`: a consistent backup, taken by the leader.
/// A follower answers 503 (retryable), so a client moves on to the leader.
/// Its right (admin) is declared and applied in [`crate::http::routes`].
pub(crate) async fn save(State(app): State<App>) -> Result<Json<SnapshotExport>, ApiError> {
    match app.linearizable().await {
        Ok(()) => {}
        Err(Ok(leader)) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_leader",
                format!("replica {} is not the leader; a backup is taken by the leader, at {leader}", app.config.id),
            )
            .retryable())
        }
        Err(Err(e)) => return Err(e.into()),
    }
    let internal = |e: String| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e);
    let (meta, data) = app.shared.export().map_err(|e| internal(e.to_string()))?;
    let index = meta.last_log_id.as_ref().map_or(0, |l| l.index);
    let body = backup::BackupV1 {
        cluster: app.config.cluster_name.clone(),
        taken_by: app.config.id,
        taken_at_ms: app.seams.clock.wall_ms(),
        meta,
        data,
    };
    let file = backup::encode(&body).map_err(|e| internal(e.to_string()))?;
    Ok(Json(SnapshotExport { format: backup::BACKUP_FORMAT, index, file: B64.encode(file) }))
}

/// `GET /v1/cluster/peers`: what this replica saw at its peer handshakes.
pub(crate) async fn peers_report(State(app): State<App>) -> Json<PeersReport> {
    let hs = &app.handshake;
    Json(PeersReport {
        id: app.config.id,
        protocol: crate::peer::handshake::PROTOCOL_VERSION,
        data_format: crate::storage::data_dir::FORMAT_VERSION,
        cluster: app.config.cluster_name.clone(),
        cluster_key: hs.cluster_key().map(String::from),
        timing: hs.timing().to_string(),
        draining: app.drain.is_draining(),
        peers: hs.peers(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drain_body_is_optional_and_strict() {
        for ok in [&b""[..], b" \n", b"null", b"{}"] {
            assert!(drain_body(ok).is_ok(), "{}", String::from_utf8_lossy(ok));
        }
        assert!(drain_body(br#"{"removed_at": 7}"#).is_err(), "the removed replica's drain is a peer message");
        assert!(drain_body(br#"{"removed": 7}"#).is_err(), "unknown fields are refused");
        assert!(drain_body(b"{").is_err());
    }
}
