//! Endpoints, failover and idempotent requests.

use crate::error::ClientError;
use crate::guard::{AcquireOptions, Guard};
use bytes::Bytes;
use fenced_core::api::*;
use fenced_core::clock::Clock;
use fenced_core::Grant;
use fenced_io::clock::SystemClock;
use fenced_io::http::HttpClient;
use fenced_io::transport::{TcpTransport, Transport};
use hyper::{Method, Request};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
}

impl ClientConfig {
    pub fn new(endpoints: Vec<String>) -> Self {
        ClientConfig {
            endpoints,
            request_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(10),
            rho: 500e-6,
            margin: Duration::from_millis(200),
            client_id: format!("c{:016x}", rand::random::<u64>()),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) http: HttpClient,
    pub(crate) clock: Arc<dyn Clock>,
    /// The endpoint that answered last: tried first next time.
    preferred: AtomicUsize,
    next_request_id: AtomicU64,
}

/// A handle on a fenced cluster. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

/// The outcome of one attempt at one endpoint.
enum Attempt<T> {
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
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                http: HttpClient::new(transport),
                clock,
                preferred: AtomicUsize::new(0),
                next_request_id: AtomicU64::new(1),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// A fresh `(client, request_id)`.
    pub(crate) fn idem(&self) -> (Option<String>, Option<u64>) {
        let id = self.inner.next_request_id.fetch_add(1, Ordering::Relaxed);
        (Some(self.inner.config.client_id.clone()), Some(id))
    }

    async fn attempt<T: DeserializeOwned>(
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
        let n = self.inner.config.endpoints.len();
        let start = self.inner.clock.now();
        let mut backoff = Duration::from_millis(20);
        let mut last_err = String::new();
        let mut i = self.inner.preferred.load(Ordering::Relaxed) % n;
        loop {
            for _ in 0..n {
                let endpoint = &self.inner.config.endpoints[i];
                match self.attempt(endpoint, &method, path, &body, wait).await {
                    Attempt::Done(r) => {
                        self.inner.preferred.store(i, Ordering::Relaxed);
                        return r;
                    }
                    Attempt::Next(e) => {
                        tracing::debug!(endpoint, error = %e, "trying next endpoint");
                        last_err = e;
                        i = (i + 1) % n;
                    }
                }
            }
            if self.inner.clock.now().since(start) + backoff > self.inner.config.call_timeout + wait {
                return Err(ClientError::Unavailable(last_err));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
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
        let body = AcquireRequest { lock: lock.into(), lease, wait_ms, value: value.into(), client, request_id };
        self.call_waiting(Method::POST, "/v1/lock/acquire", &body, wait).await
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

    /// The cluster's public signing keys.
    pub async fn cluster_key(&self) -> Result<KeyResponse, ClientError> {
        self.call_raw(Method::GET, "/v1/cluster/key", Bytes::new(), Duration::ZERO).await
    }

    /// Grant a lease, acquire `lock` on it, and start keeping both alive.
    pub async fn acquire(&self, lock: &str, opts: AcquireOptions) -> Result<Guard, ClientError> {
        Guard::acquire(self.clone(), lock, opts).await
    }
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
