//! The HTTP API: `/v1/...` for clients (JSON), `/raft/v1/...` for peers
//! (binary frames), and `/metrics`.
//!
//! Bad input is answered with 4xx and `{code, message}` and never reaches the
//! log. Every mutating request becomes one log entry through
//! [`Replica::propose`], which forwards to the leader when needed.

use crate::http::error::{draining, sm_error, ApiError, ApiJson};
use crate::http::HttpState;
use crate::node::ProposeError;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response as AxResponse};
use axum::{Extension, Json};
use fenced_core::api::*;
use fenced_core::machine::command::{Command, Origin, Request};
use fenced_core::machine::table::LockStatus;
use fenced_core::{ClientId, GrantKind, GrantRecord, LeaseId, Response, SmError, Token};
use fenced_io::auth::Caller;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How long a read forwarded to the leader may take before the caller is
/// told there is no leader (and its client tries another replica).
const FORWARD_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest client request body. Names and values are far smaller.
pub const CLIENT_BODY_MAX: usize = 64 << 10;
/// Largest peer message (snapshots included).
pub const PEER_BODY_MAX: usize = 256 << 20;
/// Longest wait a client may ask for in one acquire.
pub const WAIT_MAX: Duration = Duration::from_secs(300);

type App = Arc<HttpState>;

pub(crate) fn query<T: DeserializeOwned>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| ApiError::bad_request(e.body_text()))
}

/// The deduplication origin of a request. When callers are authenticated
/// the client id becomes `client@identity`: one identity can neither read
/// another's stored responses nor use its leases (`fenced_core::machine::table::owner_of`).
pub(crate) fn origin(
    caller: &Caller,
    client: Option<String>,
    request_id: Option<u64>,
) -> Result<Option<Origin>, ApiError> {
    match (client, request_id, &caller.identity) {
        (Some(c), Some(_), Some(_)) if c.contains('@') => {
            Err(ApiError::bad_request("client must not contain '@' when the cluster authenticates callers"))
        }
        (Some(c), Some(r), identity) if !c.is_empty() && c.len() <= 128 => {
            let client = match identity {
                Some(id) => format!("{c}@{id}"),
                None => c,
            };
            Ok(Some(Origin { client: ClientId(client), request_id: r }))
        }
        (Some(_), Some(_), _) => Err(ApiError::bad_request("client must be 1 to 128 bytes")),
        (None, None, None) => Ok(None),
        (None, None, Some(_)) => Err(ApiError::bad_request(
            "client and request_id are required when the cluster authenticates callers (the fenced client sends them)",
        )),
        _ => Err(ApiError::bad_request("client and request_id must be given together")),
    }
}

pub(crate) async fn submit(app: &App, origin: Option<Origin>, cmd: Command) -> Result<Response, ApiError> {
    let _slot = app.limiter.proposal_slot()?;
    let req = Request { origin, at_ms: app.seams.clock.wall_ms(), cmd };
    match app.propose(req).await?.0 {
        Response::Err(e) => {
            if matches!(e, SmError::LimitExceeded(_)) {
                app.limiter.refused.limit_exceeded.inc();
                app.limiter.report(StatusCode::TOO_MANY_REQUESTS, "limit_exceeded", e.to_string());
            }
            Err(sm_error(e))
        }
        r => Ok(r),
    }
}

/// The table answered with a response to another kind of request. The table
/// answers each command with its own kind, so this is a deduplicated answer:
/// the client reused a `(client, request_id)` pair for a different request
/// (found by schemathesis, which answered it with a 500 before).
pub(crate) fn unexpected(r: Response) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "request_id_reused",
        format!(
            "this client's request_id was already used for a different request (whose answer was {r:?}); \
             use a new request_id for every new request"
        ),
    )
}

pub(crate) async fn lease_grant(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    ApiJson(b): ApiJson<LeaseGrantRequest>,
) -> Result<Json<LeaseResponse>, ApiError> {
    if app.drain.is_draining() {
        return Err(draining());
    }
    let min = app.config.min_ttl.as_millis() as u64;
    if b.ttl_ms < min {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            format!("ttl {} ms is below this cluster's minimum of {min} ms: a shorter lease would not outlive a leader election (fenced serve --min-ttl)", b.ttl_ms),
        ));
    }
    let max = app.config.max_ttl.as_millis() as u64;
    if b.ttl_ms > max {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            format!("ttl {} ms exceeds this cluster's maximum of {max} ms (fenced serve --max-ttl)", b.ttl_ms),
        ));
    }
    match submit(&app, origin(&caller, b.client, b.request_id)?, Command::LeaseGrant { ttl_ms: b.ttl_ms }).await? {
        Response::LeaseGranted { lease, ttl_ms } => Ok(Json(LeaseResponse { lease: lease.0, ttl_ms })),
        r => Err(unexpected(r)),
    }
}

pub(crate) async fn lease_keepalive(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    ApiJson(b): ApiJson<LeaseRequest>,
) -> Result<Json<LeaseResponse>, ApiError> {
    let cmd = Command::LeaseKeepAlive { lease: LeaseId(b.lease) };
    match submit(&app, origin(&caller, b.client, b.request_id)?, cmd).await? {
        Response::LeaseKept { lease, ttl_ms } => Ok(Json(LeaseResponse { lease: lease.0, ttl_ms })),
        r => Err(unexpected(r)),
    }
}

pub(crate) async fn lease_revoke(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    ApiJson(b): ApiJson<LeaseRequest>,
) -> Result<Json<RevokeResponse>, ApiError> {
    let cmd = Command::LeaseRevoke { lease: LeaseId(b.lease) };
    match submit(&app, origin(&caller, b.client, b.request_id)?, cmd).await? {
        Response::LeaseRevoked { lease, released } => Ok(Json(RevokeResponse { lease: lease.0, released })),
        r => Err(unexpected(r)),
    }
}

/// Acquire, waiting in the FIFO queue up to `wait_ms`, and sign the grant.
async fn acquire(app: &App, caller: &Caller, b: AcquireRequest) -> Result<fenced_core::Grant, ApiError> {
    let b = LockAcquire {
        lock: b.lock,
        lease: b.lease,
        wait_ms: b.wait_ms,
        value: b.value,
        client: b.client,
        request_id: b.request_id,
        mode: b.mode,
        reentrant: b.reentrant,
        sem: false,
    };
    let (record, kind) = acquire_record(app, caller, b).await?;
    Ok(match kind {
        Some((kind, holds)) => sign_as(app, &record, kind)?.with_kind(kind, holds),
        None => sign(app, &record)?,
    })
}

/// The signed token is computed here, by the one replica that answers.
fn sign(app: &App, record: &GrantRecord) -> Result<fenced_core::Grant, ApiError> {
    app.shared.read(|t| t.sign(record)).map_err(sm_error)
}

/// The signed token of a shared or permit grant names its kind, so that a
/// fenced store refuses it for writes.
fn sign_as(app: &App, record: &GrantRecord, kind: GrantKind) -> Result<fenced_core::Grant, ApiError> {
    app.shared.read(|t| t.sign_as(record, kind)).map_err(sm_error)
}

/// A grant record, and how it is held when the request asked for a mode,
/// re-entrance or a permit (`None`: today's exclusive lock, answered as before).
type Acquired = (GrantRecord, Option<(GrantKind, u32)>);

/// An acquire of a lock (in a mode) or of a semaphore's permit.
struct LockAcquire {
    lock: String,
    lease: u64,
    wait_ms: u64,
    value: String,
    client: Option<String>,
    request_id: Option<u64>,
    mode: Option<fenced_core::Mode>,
    reentrant: bool,
    /// `lock` names a semaphore: take a permit.
    sem: bool,
}

async fn acquire_record(app: &App, caller: &Caller, b: LockAcquire) -> Result<Acquired, ApiError> {
    let wait = Duration::from_millis(b.wait_ms);
    if wait > WAIT_MAX {
        return Err(ApiError::bad_request(format!(
            "wait_ms {} exceeds the maximum {}",
            b.wait_ms,
            WAIT_MAX.as_millis()
        )));
    }
    if !b.sem {
        if let Some((sem, slot)) = fenced_core::machine::token::slot_of(&b.lock) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                format!(
                    "lock name {:?} ends in \"#{slot}\": that is the name of slot {slot} of semaphore {sem:?} in a \
                     fenced store (--guard PREFIX={}), and a lock of that name could write that slot's keys; \
                     choose a name that does not end in # and digits",
                    b.lock, b.lock
                ),
            ));
        }
    }
    let lease = LeaseId(b.lease);
    if app.shared.read(|t| t.public_keys().is_empty()) {
        // Refuse before proposing: nothing is stored under this request id,
        // so the same request may be retried as soon as the key is in.
        let mut e = sm_error(SmError::NoSigningKey);
        e.body.retry = true;
        return Err(e);
    }
    // Subscribe before proposing, so a grant applied right after the queueing
    // entry cannot be missed.
    let mut events = app.shared.subscribe();
    let typed = b.mode.is_some() || b.reentrant || b.sem;
    let cmd = if b.sem {
        Command::SemAcquire { name: b.lock.clone(), lease, wait: b.wait_ms > 0 }
    } else if typed {
        let mode = b.mode.unwrap_or_default();
        Command::AcquireMode {
            lock: b.lock.clone(),
            lease,
            wait: b.wait_ms > 0,
            value: b.value,
            mode,
            reentrant: b.reentrant,
        }
    } else {
        Command::Acquire { lock: b.lock.clone(), lease, wait: b.wait_ms > 0, value: b.value }
    };
    let started = app.seams.clock.now();
    match submit(app, origin(caller, b.client, b.request_id)?, cmd).await? {
        Response::Granted(g) => return Ok((g, None)),
        Response::GrantedAs { grant, kind, holds } => return Ok((grant, Some((kind, holds)))),
        Response::Busy { holder, token, .. } => {
            let mut e = ApiError::new(
                StatusCode::CONFLICT,
                "busy",
                format!("lock {:?} is held by lease {holder} (token {token}); pass wait_ms to queue", b.lock),
            );
            e.body.holder = Some(holder.0);
            e.body.token = Some(token.0);
            return Err(e);
        }
        Response::Queued { .. } => {}
        r => return Err(unexpected(r)),
    }
    let held_by_us = |app: &App| {
        app.shared.read(|t| t.held_by(&b.lock, lease)).map(|(g, kind, holds)| (g, typed.then_some((kind, holds))))
    };
    loop {
        if let Some(g) = held_by_us(app) {
            return Ok(g);
        }
        if app.shared.read(|t| t.lease(lease).is_none()) {
            return Err(sm_error(SmError::NoSuchLease(lease)));
        }
        let left = wait.saturating_sub(app.seams.clock.now().since(started));
        if left.is_zero() {
            break;
        }
        if app.drain.is_draining() {
            // Send the waiter elsewhere: its retry (same request id) is
            // answered `Queued` from the table and waits on another replica.
            return Err(draining());
        }
        match tokio::time::timeout(left.min(crate::node::drain::poll(app.config.heartbeat)), events.recv()).await {
            Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) | Err(_) => continue,
            Ok(Err(RecvError::Closed)) => break,
        }
    }
    // Give up: leave the queue. If the grant won the race, report it.
    let cmd = if b.sem {
        Command::SemCancelWait { name: b.lock.clone(), lease }
    } else {
        Command::CancelWait { lock: b.lock.clone(), lease }
    };
    match submit(app, None, cmd).await? {
        Response::Granted(g) => Ok((g, None)),
        Response::GrantedAs { grant, kind, holds } => Ok((grant, typed.then_some((kind, holds)))),
        _ => Err(ApiError::new(
            StatusCode::CONFLICT,
            "wait_timeout",
            format!("lock {:?} was not granted within {} ms; the request left the queue", b.lock, b.wait_ms),
        )),
    }
}

pub(crate) async fn lock_acquire(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    ApiJson(b): ApiJson<AcquireRequest>,
) -> Result<Json<fenced_core::Grant>, ApiError> {
    let g = acquire(&app, &caller, b).await?;
    app.metrics.grants.inc();
    Ok(Json(g))
}

pub(crate) async fn lock_release(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    ApiJson(b): ApiJson<ReleaseRequest>,
) -> Result<Json<ReleaseResponse>, ApiError> {
    let cmd = Command::Release { lock: b.lock, lease: LeaseId(b.lease), token: Token(b.token) };
    match submit(&app, origin(&caller, b.client, b.request_id)?, cmd).await? {
        Response::Released { lock, token } => Ok(Json(ReleaseResponse { lock, token: token.0, holds: None })),
        Response::HoldReleased { lock, token, holds } => {
            Ok(Json(ReleaseResponse { lock, token: token.0, holds: Some(holds) }))
        }
        r => Err(unexpected(r)),
    }
}

/// `POST /v1/sem/permits`: create a semaphore or change its permit count.
pub(crate) async fn sem_permits(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    ApiJson(b): ApiJson<SemPermitsRequest>,
) -> Result<Json<SemPermitsResponse>, ApiError> {
    let cmd = Command::SemPermits { name: b.name, permits: b.permits };
    match submit(&app, origin(&caller, b.client, b.request_id)?, cmd).await? {
        Response::PermitsSet { name, permits, held } => Ok(Json(SemPermitsResponse { name, permits, held })),
        r => Err(unexpected(r)),
    }
}

/// `POST /v1/sem/acquire`: take a permit, waiting up to `wait_ms`. The
/// permit is released through `POST /v1/lock/release`, like any grant.
pub(crate) async fn sem_acquire(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    ApiJson(b): ApiJson<SemAcquireRequest>,
) -> Result<Json<fenced_core::Grant>, ApiError> {
    let req = LockAcquire {
        lock: b.name,
        lease: b.lease,
        wait_ms: b.wait_ms,
        value: String::new(),
        client: b.client,
        request_id: b.request_id,
        mode: None,
        reentrant: false,
        sem: true,
    };
    let (record, kind) = acquire_record(&app, &caller, req).await?;
    let (kind, holds) = kind.unwrap_or((GrantKind::Permit { slot: 0 }, 1));
    app.metrics.grants.inc();
    Ok(Json(sign_as(&app, &record, kind)?.with_kind(kind, holds)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockQuery {
    lock: String,
}

/// Serve a linearizable read here, or forward the whole request to the leader.
async fn linearizable(app: &App, path_and_query: &str) -> Result<Option<AxResponse>, ApiError> {
    match app.linearizable().await {
        Ok(()) => Ok(None),
        Err(Ok(leader)) => {
            let req = hyper::Request::builder()
                .uri(path_and_query)
                .body(Bytes::new())
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
            let resp = app
                .http
                .send(&leader, req, FORWARD_READ_TIMEOUT)
                .await
                .map_err(|_| ApiError::from(ProposeError::NoLeader))?;
            let mut out = AxResponse::new(Body::from(resp.body));
            *out.status_mut() = resp.status;
            out.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().expect("static header"));
            Ok(Some(out))
        }
        Err(Err(e)) => Err(e.into()),
    }
}

pub(crate) async fn lock_status(
    State(app): State<App>,
    q: Result<Query<LockQuery>, QueryRejection>,
    uri: axum::http::Uri,
) -> Result<AxResponse, ApiError> {
    let q = query(q)?;
    if let Some(forwarded) = linearizable(&app, uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")).await? {
        return Ok(forwarded);
    }
    let (s, others, permits) = app.shared.read(|t| {
        let (others, permits) = t.other_holders(&q.lock);
        (t.lock_status(&q.lock), others, permits)
    });
    let mut resp = status_body(s);
    resp.holders = others.iter().map(Holder::from).collect();
    resp.permits = permits;
    Ok(Json(resp).into_response())
}

/// A lock's status as any caller with the watch right sees it: the holder's
/// token number, never its signed token, which is the holder's write
/// credential and goes only to the holder, in the answer to its own acquire
/// or campaign ([`acquire`]; docs/security.md, "Who sees a signed token").
fn status_response(s: LockStatus) -> AxResponse {
    Json(status_body(s)).into_response()
}

fn status_body(s: LockStatus) -> LockStatusResponse {
    let holder = s.holder.as_ref().map(Holder::from);
    LockStatusResponse {
        lock: s.lock,
        holder,
        waiters: s.waiters.iter().map(|l| l.0).collect(),
        holders: Vec::new(),
        permits: None,
    }
}

pub(crate) async fn claim(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    ApiJson(b): ApiJson<ClaimRequest>,
) -> Result<Json<ClaimResponse>, ApiError> {
    let cmd = Command::Claim { name: b.name, owner: b.owner, lease: b.lease.map(LeaseId) };
    match submit(&app, origin(&caller, b.client, b.request_id)?, cmd).await? {
        Response::Claimed { name, token, owner } => Ok(Json(ClaimResponse { name, token: token.0, owner, won: true })),
        Response::AlreadyClaimed { name, token, owner } => {
            Ok(Json(ClaimResponse { name, token: token.0, owner, won: false }))
        }
        r => Err(unexpected(r)),
    }
}

/// Remove a claim. Who made a claim is the owner its client id names
/// (`fenced_core::machine::table::owner_of`: the authenticated identity), recorded in
/// the claim when it was applied; the table lets only that owner release it,
/// or an administrator, whose right is checked here because the table knows
/// no policy. A non-admin also needs the `release` or the `acquire` right on
/// the name (the right a claim was made with is enough to undo it: an
/// identity must be able to get under its claim cap again). A refusal is a
/// deterministic answer of the table, or an ACL refusal before proposing:
/// either way nothing changes.
pub(crate) async fn claim_release(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    ApiJson(b): ApiJson<ClaimReleaseRequest>,
) -> Result<Json<ClaimReleaseResponse>, ApiError> {
    // The router has checked the right to claim this name
    // (`crate::http::routes`); whose claim it is, the state machine decides.
    let admin = fenced_io::auth::authorize_admin(app.limiter.policy(), &caller).is_ok();
    let cmd = Command::ReleaseClaim { name: b.name, owner: b.owner, admin };
    match submit(&app, origin(&caller, b.client, b.request_id)?, cmd).await? {
        Response::ClaimReleased { name, token, owner } => {
            Ok(Json(ClaimReleaseResponse { name, token: token.0, owner }))
        }
        r => Err(unexpected(r)),
    }
}

/// Elections are locks named `election:<name>`: campaigning is acquiring with
/// a wait, the leader's proclamation is the grant's value, resigning is
/// releasing, observing is reading the holder.
fn election_lock(name: &str) -> String {
    format!("{ELECTION_PREFIX}{name}")
}

/// What an election's name is prefixed with to name its lock; its rights
/// are the lock's (`crate::http::routes`).
pub const ELECTION_PREFIX: &str = "election:";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignRequest {
    election: String,
    lease: u64,
    #[serde(default)]
    value: String,
    #[serde(default)]
    wait_ms: u64,
    client: Option<String>,
    request_id: Option<u64>,
}

pub(crate) async fn campaign(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    ApiJson(b): ApiJson<CampaignRequest>,
) -> Result<Json<fenced_core::Grant>, ApiError> {
    let req = AcquireRequest {
        lock: election_lock(&b.election),
        lease: b.lease,
        wait_ms: b.wait_ms,
        value: b.value,
        client: b.client,
        request_id: b.request_id,
        mode: None,
        reentrant: false,
    };
    Ok(Json(acquire(&app, &caller, req).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResignRequest {
    election: String,
    lease: u64,
    token: u64,
    client: Option<String>,
    request_id: Option<u64>,
}

pub(crate) async fn resign(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    ApiJson(b): ApiJson<ResignRequest>,
) -> Result<Json<ReleaseResponse>, ApiError> {
    let cmd = Command::Release { lock: election_lock(&b.election), lease: LeaseId(b.lease), token: Token(b.token) };
    match submit(&app, origin(&caller, b.client, b.request_id)?, cmd).await? {
        Response::Released { lock, token } => Ok(Json(ReleaseResponse { lock, token: token.0, holds: None })),
        Response::HoldReleased { lock, token, holds } => {
            Ok(Json(ReleaseResponse { lock, token: token.0, holds: Some(holds) }))
        }
        r => Err(unexpected(r)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElectionQuery {
    election: String,
}

pub(crate) async fn observe(
    State(app): State<App>,
    q: Result<Query<ElectionQuery>, QueryRejection>,
    uri: axum::http::Uri,
) -> Result<AxResponse, ApiError> {
    let q = query(q)?;
    if let Some(forwarded) = linearizable(&app, uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")).await? {
        return Ok(forwarded);
    }
    let s = app.shared.read(|t| t.lock_status(&election_lock(&q.election)));
    Ok(status_response(s))
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; the API is listed in README.md")
}
