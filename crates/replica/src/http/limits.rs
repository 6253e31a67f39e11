//! Protecting a replica from its clients: who may call (via
//! [`fenced_io::auth`]), how often (a token bucket per client), how many
//! watches a client may hold open, and how many proposals may be in flight.
//!
//! Every request passes [`guard`] first: it authenticates the caller and
//! throttles clients over their rate (429 with `Retry-After`); then
//! the router's `enforce` (`http/routes.rs`) applies the right the route declares (401,
//! 403) and leaves the [`Caller`] in the request's extensions. Limits inside the state
//! machine (names, values, leases per owner, locks per lease, waiters per
//! lock) are [`fenced_core::machine::limits::Limits`]. Every refusal is counted in
//! `/metrics`.

use crate::config::Protection;
use crate::http::error::ApiError;
use crate::http::HttpState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fenced_core::toolbox::rate::{Rate, RateLimiter};
use fenced_io::auth::{self, AuthError, Caller, Policy};
use fenced_io::http::ConnInfo;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The outcome of authenticating a request, left by [`guard`] (which
/// authenticates every request once, to throttle by identity) for the
/// router's `enforce`, which decides.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Result<Caller, AuthError>);

/// Counters of refusals, for `/metrics`.
#[derive(Debug, Default)]
pub struct RefusalCounters {
    pub unauthenticated: crate::node::metrics::Counter,
    pub forbidden: crate::node::metrics::Counter,
    pub throttled: crate::node::metrics::Counter,
    pub limit_exceeded: crate::node::metrics::Counter,
    pub watches_refused: crate::node::metrics::Counter,
    pub proposals_refused: crate::node::metrics::Counter,
    /// Shared with the server loop, which refuses connections over the limit.
    pub connections_refused: Arc<AtomicU64>,
}

/// The run-time state of [`Protection`].
pub struct Limiter {
    pub protection: Protection,
    rate: Mutex<RateLimiter>,
    watches: Arc<Mutex<BTreeMap<String, usize>>>,
    proposals: Arc<Semaphore>,
    pub refused: RefusalCounters,
    /// Refusals as they happen, for the console's event stream
    /// (`crate::http::console`). A broadcast ring: a stream that falls behind
    /// loses the oldest and is told how many.
    pub refusals: tokio::sync::broadcast::Sender<Refusal>,
    /// Console event streams open on this replica (`crate::http::console`), at
    /// most [`CONSOLE_STREAMS_MAX`] whoever the callers are.
    pub console_streams: Arc<Semaphore>,
}

/// Console event streams a replica serves at once: each browser opens one.
pub const CONSOLE_STREAMS_MAX: usize = 64;

/// One refused request, as the console shows it (to administrators only:
/// it names other callers).
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

/// Refusals kept for console streams that fall behind.
const REFUSALS_CAPACITY: usize = 256;

/// One open watch, counted against its client until dropped.
pub struct WatchSlot {
    key: String,
    watches: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        if let Ok(mut w) = self.watches.lock() {
            if let Some(n) = w.get_mut(&self.key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    w.remove(&self.key);
                }
            }
        }
    }
}

impl Limiter {
    pub fn new(protection: Protection) -> Self {
        let l = &protection.limits;
        let rate = RateLimiter::new(Rate { per_sec: l.rate_per_sec, burst: l.rate_burst }, l.rate_clients_max);
        let proposals = Arc::new(Semaphore::new(l.pending_proposals_max.max(1)));
        Limiter {
            rate: Mutex::new(rate),
            watches: Arc::default(),
            proposals,
            refused: RefusalCounters::default(),
            refusals: tokio::sync::broadcast::channel(REFUSALS_CAPACITY).0,
            console_streams: Arc::new(Semaphore::new(CONSOLE_STREAMS_MAX)),
            protection,
        }
    }

    /// Tell console streams about a refusal (nobody listening is fine).
    pub fn report(&self, status: StatusCode, code: &'static str, message: impl Into<String>) {
        if self.refusals.receiver_count() > 0 {
            let _ = self.refusals.send(Refusal { status: status.as_u16(), code, message: message.into() });
        }
    }

    pub fn policy(&self) -> Option<&Policy> {
        self.protection.policy.as_deref()
    }

    /// A slot for one more proposal in flight, or 503 `overloaded`.
    pub fn proposal_slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.proposals.clone().try_acquire_owned().map_err(|_| {
            self.refused.proposals_refused.inc();
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!(
                    "{} proposals are in flight on this replica; retry shortly (same request id)",
                    self.protection.limits.pending_proposals_max
                ),
            )
            .retryable()
        })
    }

    /// Do per-client limits apply to `caller`?
    fn limited(&self, caller: &Caller) -> bool {
        caller.identity.is_some() || self.protection.limits.limit_by_address
    }

    /// A slot for one more watch by `caller`, or 429 `limit_exceeded`.
    pub fn watch_slot(&self, caller: &Caller) -> Result<Option<WatchSlot>, ApiError> {
        if !self.limited(caller) {
            return Ok(None);
        }
        let max = self.protection.limits.watches_per_client_max;
        let mut w = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        let n = w.entry(caller.key.clone()).or_default();
        if *n >= max {
            drop(w);
            self.refused.watches_refused.inc();
            let message = format!("{} already has {max} watches open; close some first", caller.key);
            self.report(StatusCode::TOO_MANY_REQUESTS, "limit_exceeded", message.clone());
            return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "limit_exceeded", message));
        }
        *n += 1;
        Ok(Some(WatchSlot { key: caller.key.clone(), watches: self.watches.clone() }))
    }

    fn throttle(&self, key: &str, now_ms: u64) -> Result<(), u64> {
        let mut r = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        r.check(key, now_ms).map_err(|t| t.retry_after_ms)
    }

    /// The guard's decision for an authenticated caller at `now_ms`: pass,
    /// or throttled. Replicas are never throttled: they forward for their
    /// clients, who were counted where they arrived. Callers without an
    /// identity are counted by address only when the protection says so.
    pub fn admit_rate(&self, caller: &Caller, now_ms: u64) -> Result<(), Throttled> {
        let policy = self.policy();
        let is_peer = policy.is_some_and(|p| caller.identity.as_ref().is_some_and(|i| p.peers.contains(i)));
        if is_peer || !self.limited(caller) {
            return Ok(());
        }
        self.throttle(&caller.key, now_ms).map_err(|retry_ms| Throttled {
            retry_after_s: retry_ms.div_ceil(1000).max(1),
            message: format!(
                "{} is over its rate of {} requests/s; retry after {retry_ms} ms",
                caller.key, self.protection.limits.rate_per_sec
            ),
        })
    }
}

/// A caller over its rate: `429 rate_limited` with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    /// Whole seconds, at least 1 (`Retry-After` has no finer unit).
    pub retry_after_s: u64,
    pub message: String,
}

/// The API error for an authentication or authorization failure, counted.
pub fn refuse(app: &HttpState, e: auth::AuthError) -> ApiError {
    if e.status() == StatusCode::UNAUTHORIZED {
        app.limiter.refused.unauthenticated.inc();
    } else {
        app.limiter.refused.forbidden.inc();
    }
    app.limiter.report(e.status(), e.code(), e.to_string());
    ApiError::new(e.status(), e.code(), e.to_string())
}

/// Authenticate and throttle; leave the outcome of authenticating for
/// the router's `enforce` (`http/routes.rs`), which applies the route's declared right.
/// A request that fails to authenticate is not refused here: `/v1/ping`
/// needs no credentials, and every other route refuses it with `401`.
pub async fn guard(State(app): State<Arc<HttpState>>, mut req: Request, next: Next) -> Response {
    let policy = app.limiter.policy();
    let conn = req.extensions().get::<ConnInfo>();
    let authenticated = auth::authenticate(policy, req.headers(), conn);
    if let Ok(caller) = &authenticated {
        let now_ms = app.seams.clock.now().as_millis();
        if let Err(t) = app.limiter.admit_rate(caller, now_ms) {
            app.limiter.refused.throttled.inc();
            app.limiter.report(StatusCode::TOO_MANY_REQUESTS, "rate_limited", t.message.clone());
            let mut resp =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", t.message).retryable().into_response();
            if let Ok(v) = HeaderValue::from_str(&t.retry_after_s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
    }
    req.extensions_mut().insert(Authenticated(authenticated));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientLimits;

    fn limiter(policy: Option<Policy>, limit_by_address: bool) -> Limiter {
        let limits = ClientLimits { rate_per_sec: 1.0, rate_burst: 2.0, limit_by_address, ..ClientLimits::default() };
        Limiter::new(Protection { policy: policy.map(Arc::new), limits })
    }

    fn caller(identity: Option<&str>, key: &str) -> Caller {
        Caller { identity: identity.map(String::from), key: key.into() }
    }

    #[test]
    fn a_client_over_its_rate_is_throttled_with_a_retry_after_of_at_least_a_second() {
        let l = limiter(Some(Policy::default()), false);
        let alice = caller(Some("alice"), "alice");
        assert_eq!(l.admit_rate(&alice, 0), Ok(()));
        assert_eq!(l.admit_rate(&alice, 0), Ok(()), "the burst");
        let t = l.admit_rate(&alice, 0).expect_err("over the burst");
        assert!(t.retry_after_s >= 1, "{t:?}");
        assert!(t.message.starts_with("alice is over its rate of 1 requests/s; retry after"), "{}", t.message);
        assert_eq!(l.admit_rate(&caller(Some("bob"), "bob"), 0), Ok(()), "each client has its own bucket");
        assert_eq!(l.admit_rate(&alice, 2_000), Ok(()), "the bucket refills with time");
    }

    #[test]
    fn replicas_are_never_throttled_and_anonymous_callers_only_when_asked() {
        let policy = Policy { peers: ["replica-2".to_string()].into(), ..Policy::default() };
        let l = limiter(Some(policy), false);
        let peer = caller(Some("replica-2"), "replica-2");
        let anon = caller(None, "127.0.0.1");
        for _ in 0..100 {
            assert_eq!(l.admit_rate(&peer, 0), Ok(()));
            assert_eq!(l.admit_rate(&anon, 0), Ok(()));
        }
        let by_address = limiter(None, true);
        let refused = (0..10).filter(|_| by_address.admit_rate(&anon, 0).is_err()).count();
        assert_eq!(refused, 8, "with limit_by_address an address has a bucket of 2");
    }
}
