//! Endpoints, failover and idempotent requests.
//!
//! Each endpoint has a phi-accrual failure detector ([`fenced_core::toolbox::phi`]) fed
//! by the replies that end a call. Failover tries endpoints in the order of
//! [`rank_endpoints`]: the unsuspected ones first, starting from the one that
//! answered last, then the suspected ones, least suspected first. Suspicion
//! only reorders; no endpoint is ever skipped, so one missed reply (or many)
//! never declares a replica dead.
//!
//! A client hears from an endpoint only when it asks, so silence is evidence
//! only after an attempt to that endpoint has failed: an endpoint that has not
//! failed since it last answered is never suspected, however long the client
//! sat idle ([`EndpointHealth::suspicion`]). Without that rule any idle spell
//! longer than a few hundred milliseconds demoted the leader, and every later
//! request went through a follower's forwarding (it halved keepalive
//! throughput in `fenced bench`).

use crate::error::ClientError;
use bytes::Bytes;
use fenced_core::api::*;
use fenced_core::toolbox::clock::{Clock, Mono};
use fenced_core::toolbox::phi::{PhiConfig, PhiDetector};
use fenced_core::Grant;
use fenced_io::clock::SystemClock;
use fenced_io::envelope::ErrorBody;
use fenced_io::http::HttpClient;
use fenced_io::transport::{TcpTransport, Transport};
use hyper::{Method, Request};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request to one replica: longer than a healthy replica's slowest
/// answer (an fsync on a slow disk), short enough to fail over in time.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// One call across every replica and retry: a leader election or two.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What a guard subtracts from its lease for its own pauses and clock
/// drift (besides `rho`), before it calls the lock lost.
pub const DEFAULT_MARGIN: Duration = Duration::from_millis(200);

/// The first pause between two rounds over the replicas; it doubles.
const RETRY_BACKOFF_FIRST: Duration = Duration::from_millis(20);

/// The longest pause between two rounds: an election is noticed within it.
const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// How a client behaves.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Replica addresses (`host:port`).
    pub endpoints: Vec<String>,
    /// Deadline of one HTTP request to one replica.
    pub request_timeout: Duration,
    /// How long one call keeps trying other replicas before giving up.
    pub call_timeout: Duration,
    /// Assumed worst clock-rate error between this client and the leader
    /// (NTP slews by at most 500 ppm).
    pub rho: f64,
    /// Subtracted from every lease validity deadline: covers this process's
    /// own pauses between checking the deadline and acting on it.
    pub margin: Duration,
    /// Identity for deduplication; random by default.
    pub client_id: String,
    /// The per-endpoint failure detectors: an endpoint whose last attempt
    /// failed and whose phi exceeds `phi.threshold` is tried after the others
    /// (never skipped).
    pub phi: PhiConfig,
    /// Sent as `Authorization: Bearer ...` when the cluster authenticates
    /// callers (`fenced serve --auth`). TLS client certificates are the
    /// transport's business: pass a `fenced_io::tls::TlsTransport`.
    pub bearer_token: Option<String>,
}

impl ClientConfig {
    pub fn new(endpoints: Vec<String>) -> Self {
        ClientConfig {
            endpoints,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            rho: 500e-6,
            margin: DEFAULT_MARGIN,
            client_id: format!("c{:016x}", rand::random::<u64>()),
            phi: PhiConfig::default(),
            bearer_token: None,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) http: HttpClient,
    pub(crate) clock: Arc<dyn Clock>,
    /// Kept for [`Client::with_endpoints`]: a client of other endpoints must
    /// speak the same transport (TLS with the same certificate).
    transport: Arc<dyn Transport>,
    /// The endpoint that answered last: tried first next time, unless suspected.
    preferred: AtomicUsize,
    /// One failure detector per endpoint (same indices as `config.endpoints`),
    /// fed with `clock.now()` whenever that endpoint's reply ends a call.
    health: Mutex<Vec<EndpointHealth>>,
    next_request_id: AtomicU64,
}

/// A handle on a fenced cluster. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

/// The outcome of one attempt at one endpoint.
pub(crate) enum Attempt<T> {
    Done(Result<T, ClientError>),
    /// Try the next endpoint (unreachable, or no leader there).
    Next(String),
}

impl Client {
    /// A client over real TCP and the system clock.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        Self::with_seams(config, Arc::new(TcpTransport), Arc::new(SystemClock::new()))
    }

    /// A client over the given transport and clock (the simulator's seams).
    pub fn with_seams(
        config: ClientConfig,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ClientError> {
        if config.endpoints.is_empty() {
            return Err(ClientError::Invalid("no endpoints given".into()));
        }
        if !(0.0..0.5).contains(&config.rho) {
            return Err(ClientError::Invalid(format!("rho {} must be in [0, 0.5)", config.rho)));
        }
        let health = Mutex::new(vec![EndpointHealth::new(config.phi); config.endpoints.len()]);
        let mut http = HttpClient::new(transport.clone());
        if let Some(t) = &config.bearer_token {
            let v = fenced_io::auth::bearer_header(t)
                .ok_or_else(|| ClientError::Invalid("the bearer token must be printable ASCII".into()))?;
            http = http.with_header(hyper::header::AUTHORIZATION, v);
        }
        Ok(Client {
            inner: Arc::new(Inner {
                health,
                config,
                http,
                clock,
                transport,
                preferred: AtomicUsize::new(0),
                next_request_id: AtomicU64::new(1),
            }),
        })
    }

    /// A client of `endpoints` with this one's configuration, credentials,
    /// transport and clock (for a request that must go to one replica).
    pub fn with_endpoints(&self, endpoints: Vec<String>) -> Result<Client, ClientError> {
        let mut config = self.inner.config.clone();
        config.endpoints = endpoints;
        Client::with_seams(config, self.inner.transport.clone(), self.inner.clock.clone())
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Each endpoint's current phi (time since its last answer, judged by
    /// its answers' usual spacing), in `config.endpoints` order.
    pub fn endpoint_phis(&self) -> Vec<f64> {
        let now = self.inner.clock.now();
        self.health().iter().map(|h| h.detector.phi(now)).collect()
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Vec<EndpointHealth>> {
        // Plain data; a panic elsewhere cannot leave it torn.
        self.inner.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The order in which to try the endpoints now.
    fn endpoint_order(&self) -> Vec<usize> {
        let n = self.inner.config.endpoints.len();
        let preferred = self.inner.preferred.load(Ordering::Relaxed) % n;
        let now = self.inner.clock.now();
        let suspicion: Vec<f64> = self.health().iter().map(|h| h.suspicion(now)).collect();
        rank_endpoints(&suspicion, self.inner.config.phi.threshold, preferred)
    }

    /// Endpoint `i` answered: evidence that it is alive.
    fn heard_from(&self, i: usize) {
        let now = self.inner.clock.now();
        if let Some(h) = self.health().get_mut(i) {
            h.answered(now);
        }
        self.inner.preferred.store(i, Ordering::Relaxed);
    }

    /// An attempt to endpoint `i` got no answer.
    fn failed(&self, i: usize) {
        if let Some(h) = self.health().get_mut(i) {
            h.failed();
        }
    }

    /// A fresh `(client, request_id)`.
    pub(crate) fn idem(&self) -> (Option<String>, Option<u64>) {
        let id = self.inner.next_request_id.fetch_add(1, Ordering::Relaxed);
        (Some(self.inner.config.client_id.clone()), Some(id))
    }

    pub(crate) async fn attempt<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        method: &Method,
        path: &str,
        body: &Bytes,
        extra: Duration,
    ) -> Attempt<T> {
        let req = match Request::builder()
            .method(method.clone())
            .uri(path)
            .header("content-type", "application/json")
            .body(body.clone())
        {
            Ok(r) => r,
            Err(e) => return Attempt::Done(Err(ClientError::Invalid(e.to_string()))),
        };
        let resp = match self.inner.http.send(endpoint, req, self.inner.config.request_timeout + extra).await {
            Ok(r) => r,
            Err(e) => return Attempt::Next(e.to_string()),
        };
        if resp.status.is_success() {
            return Attempt::Done(serde_json::from_slice(&resp.body).map_err(|e| ClientError::Protocol {
                endpoint: endpoint.to_string(),
                message: format!("bad JSON: {e}"),
            }));
        }
        match serde_json::from_slice::<ErrorBody>(&resp.body) {
            // 503 with retry: no leader there, or outcome unknown: the same
            // request id makes trying again (anywhere) safe.
            Ok(body) if resp.status.as_u16() == 503 && body.retry => {
                Attempt::Next(format!("{endpoint}: {}: {}", body.code, body.message))
            }
            Ok(body) => Attempt::Done(Err(ClientError::Api { status: resp.status.as_u16(), body: Box::new(body) })),
            Err(_) => Attempt::Next(format!("{endpoint}: HTTP {}", resp.status)),
        }
    }

    /// Send one request, failing over between endpoints (the body, with its
    /// request id, is identical on every attempt) until `call_timeout`.
    pub(crate) async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call_waiting(method, path, body, Duration::ZERO).await
    }

    /// Like [`Client::call`], for a request the server may hold for up to
    /// `wait` (a queued acquire): each attempt's deadline grows by `wait`.
    pub(crate) async fn call_waiting<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        wait: Duration,
    ) -> Result<T, ClientError> {
        let body = Bytes::from(serde_json::to_vec(body).map_err(|e| ClientError::Invalid(e.to_string()))?);
        self.call_raw(method, path, body, wait).await
    }

    async fn call_raw<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        wait: Duration,
    ) -> Result<T, ClientError> {
        let start = self.inner.clock.now();
        let mut backoff = RETRY_BACKOFF_FIRST;
        let mut last_err = String::new();
        loop {
            // Re-ranked every round: suspicion changes as time passes.
            for i in self.endpoint_order() {
                let endpoint = &self.inner.config.endpoints[i];
                match self.attempt(endpoint, &method, path, &body, wait).await {
                    Attempt::Done(r) => {
                        // `Invalid` is raised before anything is sent: no news.
                        if !matches!(r, Err(ClientError::Invalid(_))) {
                            self.heard_from(i);
                        }
                        return r;
                    }
                    Attempt::Next(e) => {
                        tracing::debug!(endpoint, error = %e, "trying next endpoint");
                        self.failed(i);
                        last_err = e;
                    }
                }
            }
            if self.inner.clock.now().since(start) + backoff > self.inner.config.call_timeout + wait {
                return Err(ClientError::Unavailable(last_err));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
    }

    pub async fn grant_lease(&self, ttl: Duration) -> Result<LeaseResponse, ClientError> {
        let (client, request_id) = self.idem();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.call(Method::POST, "/v1/lease/grant", &LeaseGrantRequest { ttl_ms, client, request_id }).await
    }

    pub async fn keepalive(&self, lease: u64) -> Result<LeaseResponse, ClientError> {
        let (client, request_id) = self.idem();
        self.call(Method::POST, "/v1/lease/keepalive", &LeaseRequest { lease, client, request_id }).await
    }

    pub async fn revoke(&self, lease: u64) -> Result<RevokeResponse, ClientError> {
        let (client, request_id) = self.idem();
        self.call(Method::POST, "/v1/lease/revoke", &LeaseRequest { lease, client, request_id }).await
    }

    /// Acquire `lock` on an existing lease. Retries inside this call reuse the
    /// request id, so a lost reply cannot produce a second grant.
    pub async fn acquire_on(&self, lock: &str, lease: u64, wait: Duration, value: &str) -> Result<Grant, ClientError> {
        let (client, request_id) = self.idem();
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let body = AcquireRequest {
            lock: lock.into(),
            lease,
            wait_ms,
            value: value.into(),
            client,
            request_id,
            mode: None,
            reentrant: false,
        };
        self.call_waiting(Method::POST, "/v1/lock/acquire", &body, wait).await
    }

    /// Acquire `lock` on an existing lease in `mode`, re-entrantly if asked
    /// (see docs/primitives.md). Retries reuse the request id.
    pub async fn acquire_mode_on(
        &self,
        lock: &str,
        lease: u64,
        wait: Duration,
        mode: fenced_core::Mode,
        reentrant: bool,
        value: &str,
    ) -> Result<Grant, ClientError> {
        let (client, request_id) = self.idem();
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let body = AcquireRequest {
            lock: lock.into(),
            lease,
            wait_ms,
            value: value.into(),
            client,
            request_id,
            mode: Some(mode),
            reentrant,
        };
        self.call_waiting(Method::POST, "/v1/lock/acquire", &body, wait).await
    }

    /// Take a permit of semaphore `name` on an existing lease. Return it
    /// with [`Client::release`] (its grant's token), like a lock.
    pub async fn sem_acquire_on(&self, name: &str, lease: u64, wait: Duration) -> Result<Grant, ClientError> {
        let (client, request_id) = self.idem();
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let body = SemAcquireRequest { name: name.into(), lease, wait_ms, client, request_id };
        self.call_waiting(Method::POST, "/v1/sem/acquire", &body, wait).await
    }

    /// Create semaphore `name` with `permits` permits, or change its count
    /// (a log entry; holders above a lowered count keep their permits).
    pub async fn sem_permits(&self, name: &str, permits: u32) -> Result<SemPermitsResponse, ClientError> {
        let (client, request_id) = self.idem();
        let body = SemPermitsRequest { name: name.into(), permits, client, request_id };
        self.call(Method::POST, "/v1/sem/permits", &body).await
    }

    pub async fn release(&self, lock: &str, lease: u64, token: u64) -> Result<ReleaseResponse, ClientError> {
        let (client, request_id) = self.idem();
        let body = ReleaseRequest { lock: lock.into(), lease, token, client, request_id };
        self.call(Method::POST, "/v1/lock/release", &body).await
    }

    /// Linearizable status of a lock.
    pub async fn status(&self, lock: &str) -> Result<LockStatusResponse, ClientError> {
        let path = format!("/v1/lock/status?lock={}", encode_query(lock));
        self.call_raw(Method::GET, &path, Bytes::new(), Duration::ZERO).await
    }

    /// Create-if-absent of `name`.
    pub async fn claim(&self, name: &str, owner: &str, lease: Option<u64>) -> Result<ClaimResponse, ClientError> {
        let (client, request_id) = self.idem();
        let body = ClaimRequest { name: name.into(), owner: owner.into(), lease, client, request_id };
        self.call(Method::POST, "/v1/claim", &body).await
    }

    /// Remove the claim on `name`. Only the identity that made it, or an
    /// administrator, may (`403 not_claim_owner` otherwise). With `owner`,
    /// only a claim whose owner is that (`409 claim_owner_mismatch`
    /// otherwise), so that a retry cannot remove a later claim on the name.
    pub async fn release_claim(&self, name: &str, owner: Option<&str>) -> Result<ClaimReleaseResponse, ClientError> {
        let (client, request_id) = self.idem();
        let body = ClaimReleaseRequest { name: name.into(), owner: owner.map(String::from), client, request_id };
        self.call(Method::POST, "/v1/claim/release", &body).await
    }

    /// Status of the replica at `endpoint` (not failed over: you asked for that one).
    pub async fn cluster_status_of(&self, endpoint: &str) -> Result<ClusterStatus, ClientError> {
        match self.attempt(endpoint, &Method::GET, "/v1/cluster/status", &Bytes::new(), Duration::ZERO).await {
            Attempt::Done(r) => r,
            Attempt::Next(e) => Err(ClientError::Unavailable(e)),
        }
    }

    /// Ask the cluster to make `to` the leader; returns the new view.
    pub async fn transfer_leader(&self, to: u64) -> Result<ClusterStatus, ClientError> {
        self.call(Method::POST, "/v1/cluster/transfer-leader", &serde_json::json!({ "to": to })).await
    }

    /// Rotate the cluster's signing key (administrators only): a new key
    /// signs from now on, and the old one stays published until
    /// [`Client::retire_keys`]. Deduplicated, so a retry never rotates twice.
    pub async fn rotate_key(&self) -> Result<KeyResponse, ClientError> {
        let (client, request_id) = self.idem();
        let body = serde_json::json!({ "client": client, "request_id": request_id });
        self.call(Method::POST, "/v1/cluster/rotate-key", &body).await
    }

    /// End a key rotation's overlap: only the newest key stays published.
    pub async fn retire_keys(&self) -> Result<KeyResponse, ClientError> {
        let (client, request_id) = self.idem();
        let body = serde_json::json!({ "client": client, "request_id": request_id });
        self.call(Method::POST, "/v1/cluster/retire-keys", &body).await
    }

    /// The cluster's public signing keys.
    pub async fn cluster_key(&self) -> Result<KeyResponse, ClientError> {
        self.call_raw(Method::GET, "/v1/cluster/key", Bytes::new(), Duration::ZERO).await
    }

    /// A consistent backup of the cluster's state, taken by the leader
    /// (administrators only; `fenced cluster snapshot save`). Followers
    /// answer 503, so this fails over until it reaches the leader.
    pub async fn snapshot(&self) -> Result<fenced_core::admin::SnapshotExport, ClientError> {
        self.call_raw(Method::GET, "/v1/cluster/snapshot", Bytes::new(), Duration::ZERO).await
    }
}

/// What a client knows of one endpoint's health.
#[derive(Debug, Clone)]
pub(crate) struct EndpointHealth {
    /// Fed with the time of every answer.
    detector: PhiDetector,
    /// An attempt failed and no answer came after it.
    failed_since_answer: bool,
}

impl EndpointHealth {
    fn new(config: PhiConfig) -> Self {
        EndpointHealth { detector: PhiDetector::new(config), failed_since_answer: false }
    }

    fn answered(&mut self, now: Mono) {
        self.detector.heartbeat(now);
        self.failed_since_answer = false;
    }

    fn failed(&mut self) {
        self.failed_since_answer = true;
    }

    /// The phi used for ranking: the detector's phi once an attempt has
    /// failed since the last answer, else 0. The client hears only when it
    /// asks, so time it spent not asking is no evidence against anyone.
    fn suspicion(&self, now: Mono) -> f64 {
        if self.failed_since_answer {
            self.detector.phi(now)
        } else {
            0.0
        }
    }
}

/// The order in which to try `phis.len()` endpoints: those with
/// `phi <= threshold` first, in rotation order starting at `preferred` (the one
/// that answered last); then the suspected ones, least suspected first (ties in
/// rotation order). Every index appears exactly once: suspicion demotes an
/// endpoint, it never removes it.
pub(crate) fn rank_endpoints(phis: &[f64], threshold: f64, preferred: usize) -> Vec<usize> {
    let n = phis.len();
    if n == 0 {
        return Vec::new();
    }
    let rotation = (0..n).map(|k| (preferred % n + k) % n);
    let (mut ok, mut suspected): (Vec<usize>, Vec<usize>) = rotation.partition(|&i| phis[i] <= threshold);
    // Stable: equal phis keep their rotation order.
    suspected.sort_by(|&a, &b| phis[a].total_cmp(&phis[b]));
    ok.append(&mut suspected);
    ok
}

/// Percent-encode a query value.
pub(crate) fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{rank_endpoints, EndpointHealth};
    use fenced_core::toolbox::clock::Mono;
    use fenced_core::toolbox::phi::PhiConfig;

    #[test]
    fn nothing_suspected_rotates_from_the_preferred() {
        assert_eq!(rank_endpoints(&[0.0, 0.5, 1.0], 8.0, 0), vec![0, 1, 2]);
        assert_eq!(rank_endpoints(&[0.0, 0.5, 1.0], 8.0, 2), vec![2, 0, 1]);
        assert_eq!(rank_endpoints(&[0.0, 0.0, 0.0], 8.0, 4), vec![1, 2, 0]);
    }

    #[test]
    fn suspected_endpoints_go_last_least_suspected_first() {
        // The preferred endpoint (1) is suspected: tried after 2 and 0.
        assert_eq!(rank_endpoints(&[0.1, 9.0, 3.0], 8.0, 1), vec![2, 0, 1]);
        assert_eq!(rank_endpoints(&[20.0, 9.0, 0.0, 30.0], 8.0, 0), vec![2, 1, 0, 3]);
        // Equal suspicion keeps rotation order.
        assert_eq!(rank_endpoints(&[9.0, 9.0, 9.0], 8.0, 1), vec![1, 2, 0]);
        // At exactly the threshold: not suspected.
        assert_eq!(rank_endpoints(&[8.0, 8.5], 8.0, 1), vec![0, 1]);
    }

    /// The bench regression: a leader that answered every 10 ms, then a
    /// client idle for 5 s. Idleness alone must not demote the leader; a
    /// failed attempt after it does, and the next answer clears it.
    #[test]
    fn an_idle_client_does_not_suspect_the_endpoint_it_did_not_ask() {
        let config = PhiConfig::default();
        let mut leader = EndpointHealth::new(config);
        let follower = EndpointHealth::new(config);
        let ms = |m: u64| Mono::from_nanos(m * 1_000_000);
        for t in 0..50 {
            leader.answered(ms(t * 10));
        }
        let later = ms(490 + 5_000);
        assert!(leader.detector.phi(later) > config.threshold, "the raw phi is high after the idle spell");
        assert_eq!(leader.suspicion(later), 0.0);
        let order = rank_endpoints(&[leader.suspicion(later), follower.suspicion(later)], config.threshold, 0);
        assert_eq!(order, vec![0, 1], "the leader stays first");

        leader.failed();
        assert!(leader.suspicion(later) > config.threshold);
        let order = rank_endpoints(&[leader.suspicion(later), follower.suspicion(later)], config.threshold, 0);
        assert_eq!(order, vec![1, 0], "after a failed attempt the silent leader goes last");

        leader.answered(later);
        assert_eq!(leader.suspicion(later), 0.0);
    }

    #[test]
    fn no_endpoint_is_ever_skipped() {
        for n in 0..6usize {
            for preferred in 0..8 {
                let phis: Vec<f64> = (0..n).map(|i| (i * 37 % 11) as f64 * 2.0).collect();
                let mut order = rank_endpoints(&phis, 8.0, preferred);
                order.sort_unstable();
                assert_eq!(order, (0..n).collect::<Vec<_>>());
            }
        }
        assert_eq!(rank_endpoints(&[f64::INFINITY, f64::MAX], 8.0, 0), vec![1, 0]);
    }
}
