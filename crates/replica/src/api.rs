//! The HTTP API: `/v1/...` for clients (JSON), `/raft/v1/...` for peers
//! (binary frames), and `/metrics`.
//!
//! Bad input is answered with 4xx and `{code, message}` and never reaches the
//! log. Every mutating request becomes one log entry through
//! [`Replica::propose`], which forwards to the leader when needed.

use crate::network::SnapshotRequest;
use crate::node::{ProposeError, Replica};
use crate::state_machine::decode_snapshot_data;
use crate::types::Snapshot;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{FromRequest, Query, Request as AxRequest, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response as AxResponse};
use axum::{Extension, Json};
use fenced_core::api::*;
use fenced_core::command::{Command, Origin, Request};
use fenced_core::table::{EndReason, Event, LockStatus};
use fenced_core::token::encode_public_key;
use fenced_core::{ClientId, GrantKind, GrantRecord, LeaseId, Response, SmError, Token};
use fenced_io::auth::Caller;
use fenced_io::frame;
use openraft::async_runtime::WatchReceiver;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Largest client request body. Names and values are far smaller.
pub const CLIENT_BODY_MAX: usize = 64 << 10;
/// Largest peer message (snapshots included).
pub const PEER_BODY_MAX: usize = 256 << 20;
/// Longest wait a client may ask for in one acquire.
pub const WAIT_MAX: Duration = Duration::from_secs(300);

type App = Arc<Replica>;

/// An API error: status plus body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    /// `code` must be one of [`crate::error_codes::ERROR_CODES`] (checked in
    /// debug builds, so every test run catches a code the contract lacks).
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        debug_assert!(
            crate::error_codes::is_known(code),
            "error code {code:?} is not in error_codes::ERROR_CODES (and so not in docs/openapi.yaml)"
        );
        ApiError {
            status,
            body: ErrorBody { code: code.into(), message: message.into(), holder: None, token: None, retry: false },
        }
    }

    /// Mark as safe to retry with the same request id.
    pub(crate) fn retryable(mut self) -> Self {
        self.body.retry = true;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// Mark the error as safe to retry (elsewhere).
    pub fn set_retry(&mut self, retry: bool) {
        self.body.retry = retry;
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> AxResponse {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<ProposeError> for ApiError {
    fn from(e: ProposeError) -> Self {
        let status = match e {
            ProposeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut err = ApiError::new(status, e.code(), e.to_string());
        err.body.retry = !matches!(e, ProposeError::Internal(_));
        err
    }
}

impl From<SmError> for ApiError {
    fn from(e: SmError) -> Self {
        let status = match &e {
            SmError::NoSuchLease(_) => StatusCode::NOT_FOUND,
            SmError::NotHolder { .. } => StatusCode::CONFLICT,
            SmError::LimitExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
            SmError::Invalid(_) => StatusCode::BAD_REQUEST,
            SmError::RequestTooOld { .. } => StatusCode::GONE,
            SmError::NoSigningKey => StatusCode::SERVICE_UNAVAILABLE,
            SmError::NotOwner { .. } | SmError::NotClaimOwner { .. } => StatusCode::FORBIDDEN,
            SmError::NoSuchClaim { .. } => StatusCode::NOT_FOUND,
            SmError::ClaimOwnerMismatch { .. } => StatusCode::CONFLICT,
        };
        // Every SmError comes from an applied entry whose response is stored
        // for deduplication: retrying with the same request id would get the
        // same answer, so none is marked retryable here.
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// `Json` that answers malformed bodies in our error format.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: AxRequest, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::BytesRejection(e)) => {
                Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", e.body_text()))
            }
            Err(e) => Err(ApiError::bad_request(format!("{}; see the API in README.md", e.body_text()))),
        }
    }
}

fn query<T: DeserializeOwned>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| ApiError::bad_request(e.body_text()))
}

/// The deduplication origin of a request. When callers are authenticated
/// the client id becomes `client@identity`: one identity can neither read
/// another's stored responses nor use its leases (`fenced_core::table::owner_of`).
fn origin(caller: &Caller, client: Option<String>, request_id: Option<u64>) -> Result<Option<Origin>, ApiError> {
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

async fn submit(app: &App, origin: Option<Origin>, cmd: Command) -> Result<Response, ApiError> {
    let _slot = app.limiter.proposal_slot()?;
    let req = Request { origin, at_ms: app.seams.clock.wall_ms(), cmd };
    match app.propose(req).await?.0 {
        Response::Err(e) => {
            if matches!(e, SmError::LimitExceeded(_)) {
                app.limiter.refused.limit_exceeded.inc();
                app.limiter.report(StatusCode::TOO_MANY_REQUESTS, "limit_exceeded", e.to_string());
            }
            Err(e.into())
        }
        r => Ok(r),
    }
}

/// The table answered with a response to another kind of request. The table
/// answers each command with its own kind, so this is a deduplicated answer:
/// the client reused a `(client, request_id)` pair for a different request
/// (found by schemathesis, which answered it with a 500 before).
fn unexpected(r: Response) -> ApiError {
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
    if app.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(crate::drain::refusal());
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
    Ok(app.shared.read(|t| t.sign(record))?)
}

/// The signed token of a shared or permit grant names its kind, so that a
/// fenced store refuses it for writes.
fn sign_as(app: &App, record: &GrantRecord, kind: GrantKind) -> Result<fenced_core::Grant, ApiError> {
    Ok(app.shared.read(|t| t.sign_as(record, kind))?)
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
        if let Some((sem, slot)) = fenced_core::token::slot_of(&b.lock) {
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
        let mut e = ApiError::from(SmError::NoSigningKey);
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
            return Err(SmError::NoSuchLease(lease).into());
        }
        let left = wait.saturating_sub(app.seams.clock.now().since(started));
        if left.is_zero() {
            break;
        }
        if app.draining.load(std::sync::atomic::Ordering::SeqCst) {
            // Send the waiter elsewhere: its retry (same request id) is
            // answered `Queued` from the table and waits on another replica.
            return Err(crate::drain::refusal());
        }
        match tokio::time::timeout(left.min(crate::drain::poll(app)), events.recv()).await {
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
                .send(&leader, req, Duration::from_secs(5))
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
            tokio::time::timeout(Duration::from_secs(5), async { applied.wait_for(|a| *a >= q.token).await.is_ok() })
                .await;
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
            let deadline = tokio::time::sleep(Duration::from_secs(1));
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
/// (`fenced_core::table::owner_of`: the authenticated identity), recorded in
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
    // (`crate::routes`); whose claim it is, the state machine decides.
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
/// are the lock's (`crate::routes`).
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

fn cluster_status_of(app: &App) -> ClusterStatus {
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
        draining: app.draining.load(std::sync::atomic::Ordering::SeqCst),
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
        None => Err(SmError::NoSigningKey.into()),
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
    let secret = fenced_core::token::rotated_secret(&app.seams.key_entropy, app.shared.applied_index());
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
        let addr = leader.and_then(|l| crate::membership::addr_of(&app, l)).ok_or(ProposeError::NoLeader)?;
        let body = serde_json::to_vec(&serde_json::json!({"to": b.to})).unwrap_or_default();
        let req = hyper::Request::builder()
            .method(hyper::Method::POST)
            .uri("/v1/cluster/transfer-leader")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Bytes::from(body))
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
        let resp = app.http.send(&addr, req, Duration::from_secs(10)).await.map_err(|_| ProposeError::NoLeader)?;
        return serde_json::from_slice::<ClusterStatus>(&resp.body).map(Json).map_err(|_| {
            ApiError::new(StatusCode::BAD_GATEWAY, "forward_failed", String::from_utf8_lossy(&resp.body))
        });
    }
    if b.to != app.config.id {
        app.raft.trigger().transfer_leader(b.to).await.map_err(|_| ProposeError::ShuttingDown)?;
        let mut m = app.raft.metrics();
        let moved = tokio::time::timeout(Duration::from_secs(5), async {
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

pub(crate) async fn metrics(State(app): State<App>) -> AxResponse {
    let s = cluster_status_of(&app);
    let m = &app.metrics;
    let is_leader = u64::from(s.leader == Some(s.id));
    let lines = [
        ("fenced_raft_term", "gauge", "Current Raft term.", s.term),
        ("fenced_raft_commit_index", "gauge", "Highest committed log index.", s.commit_index),
        ("fenced_raft_applied_index", "gauge", "Highest applied log index.", s.applied_index),
        ("fenced_raft_is_leader", "gauge", "1 if this replica is the leader.", is_leader),
        ("fenced_leases", "gauge", "Live leases.", s.leases as u64),
        ("fenced_locks_held", "gauge", "Locks with a holder.", s.locks_held as u64),
        ("fenced_proposals_total", "counter", "Proposals submitted here.", m.proposals.get()),
        ("fenced_forwards_total", "counter", "Proposals forwarded to the leader.", m.forwards.get()),
        ("fenced_grants_total", "counter", "Lock grants answered here.", m.grants.get()),
        (
            "fenced_expiries_proposed_total",
            "counter",
            "Lease expiries proposed by this leader.",
            m.expiries_proposed.get(),
        ),
        (
            "fenced_handoffs_proposed_total",
            "counter",
            "Lock handoffs proposed by this leader.",
            m.handoffs_proposed.get(),
        ),
        (
            "fenced_leader_duty_panics_total",
            "counter",
            "Panics of the leader's duties (lease expiry), each followed by a restart.",
            m.leader_duty_panics.get(),
        ),
        ("fenced_checkpoints_proposed_total", "counter", "TTL checkpoints proposed.", m.checkpoints_proposed.get()),
        ("fenced_watch_lost_total", "counter", "Lost-lock signals sent to watchers.", m.watches_lost_signalled.get()),
        (
            "fenced_peer_frames_rejected_total",
            "counter",
            "Peer messages rejected as malformed (bad checksum, truncated, undecodable).",
            m.peer_frames_rejected.get(),
        ),
        (
            "fenced_raft_log_torn_bytes",
            "gauge",
            "Bytes of torn Raft log tail cut off when this replica started.",
            app.log.torn_bytes(),
        ),
    ];
    let r = &app.limiter.refused;
    // Reasons, as documented in docs/security.md: 401, 403, 429 (rate,
    // state-machine limits, watches), 503 (proposals, connections).
    let refusals = [
        ("unauthenticated", r.unauthenticated.get()),
        ("forbidden", r.forbidden.get()),
        ("rate_limited", r.throttled.get()),
        ("limit_exceeded", r.limit_exceeded.get()),
        ("watches", r.watches_refused.get()),
        ("overloaded", r.proposals_refused.get()),
        ("connections", r.connections_refused.load(std::sync::atomic::Ordering::Relaxed)),
    ];
    let mut out = String::new();
    for (name, kind, help, v) in lines {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{replica=\"{}\"}} {v}\n", s.id));
    }
    out.push_str("# HELP fenced_refused_total Requests refused before doing anything, by reason.\n");
    out.push_str("# TYPE fenced_refused_total counter\n");
    for (reason, v) in refusals {
        out.push_str(&format!("fenced_refused_total{{replica=\"{}\",reason=\"{reason}\"}} {v}\n", s.id));
    }
    out.push_str(&app.vitals.prometheus(s.id, &app.voters()));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Decode a peer frame, or answer 400; a rejected frame is counted and logged.
pub(crate) fn peer_decode<T: DeserializeOwned>(app: &App, what: &str, body: &[u8]) -> Result<T, Box<AxResponse>> {
    frame::decode_exact(body).map_err(|e| Box::new(reject_peer_frame(app, what, e)))
}

fn reject_peer_frame(app: &App, what: &str, e: impl std::fmt::Display) -> AxResponse {
    app.metrics.peer_frames_rejected.inc();
    tracing::warn!(rpc = what, error = %e, "rejected a malformed peer message");
    (StatusCode::BAD_REQUEST, format!("bad frame: {e}")).into_response()
}

pub(crate) fn peer_reply<T: serde::Serialize, E: std::fmt::Display>(r: Result<T, E>) -> AxResponse {
    match r {
        Ok(v) => match frame::encode(&v) {
            Ok(b) => (StatusCode::OK, b).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

pub(crate) async fn raft_append(State(app): State<App>, body: Bytes) -> AxResponse {
    match peer_decode(&app, "append", &body) {
        Ok(rpc) => peer_reply(app.raft.append_entries(rpc).await),
        Err(r) => *r,
    }
}

pub(crate) async fn raft_vote(State(app): State<App>, body: Bytes) -> AxResponse {
    match peer_decode(&app, "vote", &body) {
        Ok(rpc) => peer_reply(app.raft.vote(rpc).await),
        Err(r) => *r,
    }
}

pub(crate) async fn raft_pre_vote(State(app): State<App>, body: Bytes) -> AxResponse {
    match peer_decode(&app, "pre-vote", &body) {
        Ok(rpc) => peer_reply(app.raft.pre_vote(rpc).await),
        Err(r) => *r,
    }
}

pub(crate) async fn raft_snapshot(State(app): State<App>, body: Bytes) -> AxResponse {
    let req = match peer_decode::<SnapshotRequest>(&app, "snapshot", &body) {
        Ok(req) => req,
        Err(r) => return *r,
    };
    // The table inside has its own checksum; check it here, where a bad one is
    // the sender's fault, rather than in openraft's storage call, where an
    // error would stop this replica.
    if let Err(e) = decode_snapshot_data(&req.data) {
        return reject_peer_frame(&app, "snapshot", format!("snapshot data: {e}"));
    }
    let snap = Snapshot { meta: req.meta, snapshot: std::io::Cursor::new(req.data) };
    peer_reply(app.raft.install_full_snapshot(req.vote, snap).await)
}

pub(crate) async fn raft_transfer_leader(State(app): State<App>, body: Bytes) -> AxResponse {
    match peer_decode(&app, "transfer-leader", &body) {
        Ok(req) => peer_reply(app.raft.handle_transfer_leader(req).await),
        Err(r) => *r,
    }
}

/// A peer's probe ([`crate::peers`]): answer with this replica's vital signs.
pub(crate) async fn raft_probe(State(app): State<App>, body: Bytes) -> AxResponse {
    match peer_decode::<crate::peers::ProbeRequest>(&app, "probe", &body) {
        Ok(req) => {
            app.vitals.peers.heard(req.from);
            let fsync = app.vitals.fsync.lock().ok().and_then(|w| w.recent_median(64));
            peer_reply(Ok::<_, String>(app.vitals.peers.reply(fsync)))
        }
        Err(r) => *r,
    }
}

/// A peer's bandwidth probe ([`crate::peers::probe_bandwidth`]): its padding
/// has been received by now; answer with this replica's own link rate.
pub(crate) async fn raft_bandwidth(State(app): State<App>, body: Bytes) -> AxResponse {
    match peer_decode::<crate::peers::BandwidthRequest>(&app, "bandwidth", &body) {
        Ok(req) => {
            app.vitals.peers.heard(req.from);
            peer_reply(Ok::<_, String>(app.vitals.peers.bandwidth_reply()))
        }
        Err(r) => *r,
    }
}

/// A proposal forwarded by a follower. Proposed here only, never forwarded on.
pub(crate) async fn raft_propose(State(app): State<App>, body: Bytes) -> AxResponse {
    match peer_decode::<Request>(&app, "propose", &body) {
        // 503 means "refused before proposing" to the forwarding replica,
        // which may then try again elsewhere; any other failure may have
        // proposed, so it must not look like a refusal.
        Ok(req) => propose_reply(app.propose_local(req).await),
        Err(r) => *r,
    }
}

/// The answer of `/raft/v1/propose`: 503 only when nothing was proposed.
fn propose_reply(r: Result<(fenced_core::Response, u64), ProposeError>) -> AxResponse {
    match r {
        Err(e @ ProposeError::NoLeader) => peer_reply::<(), _>(Err(e)),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        ok => peer_reply(ok),
    }
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; the API is listed in README.md")
}

#[cfg(test)]
mod propose_reply_tests {
    use super::*;

    #[test]
    fn only_no_leader_is_answered_503_to_a_forwarding_replica() {
        assert_eq!(propose_reply(Err(ProposeError::NoLeader)).status(), StatusCode::SERVICE_UNAVAILABLE);
        for e in [ProposeError::Unknown, ProposeError::ShuttingDown, ProposeError::Internal("disk".into())] {
            let code = e.code();
            assert_eq!(
                propose_reply(Err(e)).status(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "{code} may have proposed, so it must not read as a refusal"
            );
        }
    }
}
