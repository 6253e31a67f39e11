//! The two systems under one interface, so one load generator drives both.
//!
//! etcd is driven through its JSON gRPC-gateway (`/v3/...` on the client
//! port) over the same pooled hyper client fenced uses, not the
//! `etcd-client` crate: that crate's build script runs `tonic-prost-build`,
//! which needs `protoc` (not installed here) and pulls tonic, prost and
//! their tree. The gateway costs etcd one JSON↔protobuf translation per
//! request, the same order of work as fenced's own HTTP/JSON API, so the
//! comparison stays like for like on the wire.

use crate::error::OpError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use fenced_client::{Client, ClientConfig, ClientError};
use fenced_io::clock::now;
use fenced_io::http::HttpClient;
use fenced_io::transport::TcpTransport;
use hyper::{Method, Request};
use serde_json::{json, Value};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A held lock, as either system describes it.
#[derive(Debug, Clone)]
pub struct Held {
    pub lock: String,
    pub lease: u64,
    /// fenced: the grant's log index. etcd: the revision of the response.
    pub token: u64,
    /// etcd's lock key (`name/leaseid`); empty for fenced.
    pub key: String,
}

/// What the load generator needs from a lock service. One value per
/// simulated client (each has its own connections).
pub trait LockSystem: Send + Sync + 'static {
    fn grant_lease(&self, ttl: Duration) -> impl Future<Output = Result<u64, OpError>> + Send;
    fn keepalive(&self, lease: u64) -> impl Future<Output = Result<(), OpError>> + Send;
    /// Acquire `lock` on `lease`, queueing up to `wait` if it is held.
    fn acquire(&self, lock: &str, lease: u64, wait: Duration) -> impl Future<Output = Result<Held, OpError>> + Send;
    fn release(&self, held: &Held) -> impl Future<Output = Result<(), OpError>> + Send;
}

/// Which system, and how to make a client of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Fenced,
    Etcd,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Fenced => "fenced",
            Kind::Etcd => "etcd",
        }
    }
}

fn fenced_err(e: ClientError) -> OpError {
    match e {
        ClientError::Unavailable(m) => OpError::Unavailable(m),
        other => OpError::Refused(other.to_string()),
    }
}

/// A fenced client (the real `fenced-client` crate).
pub struct Fenced {
    client: Client,
}

impl Fenced {
    pub fn new(endpoints: Vec<String>) -> Result<Self, OpError> {
        Ok(Fenced { client: Client::new(ClientConfig::new(endpoints)).map_err(fenced_err)? })
    }
}

impl LockSystem for Fenced {
    async fn grant_lease(&self, ttl: Duration) -> Result<u64, OpError> {
        self.client.grant_lease(ttl).await.map(|r| r.lease).map_err(fenced_err)
    }
    async fn keepalive(&self, lease: u64) -> Result<(), OpError> {
        self.client.keepalive(lease).await.map(|_| ()).map_err(fenced_err)
    }
    async fn acquire(&self, lock: &str, lease: u64, wait: Duration) -> Result<Held, OpError> {
        let g = self.client.acquire_on(lock, lease, wait, "").await.map_err(fenced_err)?;
        Ok(Held { lock: g.lock, lease, token: g.token.0, key: String::new() })
    }
    async fn release(&self, held: &Held) -> Result<(), OpError> {
        self.client.release(&held.lock, held.lease, held.token).await.map(|_| ()).map_err(fenced_err)
    }
}

/// An etcd v3 client over the JSON gateway, with the same failover and
/// backoff policy as `fenced-client` (20 ms doubling to 500 ms, 10 s per call).
pub struct Etcd {
    http: HttpClient,
    endpoints: Arc<Vec<String>>,
    preferred: AtomicUsize,
    request_timeout: Duration,
    call_timeout: Duration,
}

impl Etcd {
    /// `preferred` is tried first (the leader, as a fair best case for etcd).
    pub fn new(endpoints: Arc<Vec<String>>, preferred: usize) -> Self {
        Etcd {
            http: HttpClient::new(Arc::new(TcpTransport)),
            endpoints,
            preferred: AtomicUsize::new(preferred),
            request_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(10),
        }
    }

    /// Per-request and per-call timeouts (defaults 2 s and 10 s).
    pub fn with_timeouts(mut self, request: Duration, call: Duration) -> Self {
        self.request_timeout = request;
        self.call_timeout = call;
        self
    }

    /// The `create_revision` of `key` (base64, as `/v3/lock/lock` returns it),
    /// read linearizably; `None` if the key is gone (its lease expired).
    /// The create revisions of one lock's keys order its holders (each waits
    /// for every older key to go), which makes it a fencing token.
    pub async fn create_revision(&self, key_b64: &str) -> Result<Option<u64>, OpError> {
        let v = self.post("/v3/kv/range", &json!({ "key": key_b64 }), Duration::ZERO).await?;
        Ok(v.get("kvs").and_then(|k| k.get(0)).and_then(|kv| int(kv, &["create_revision"])))
    }

    /// Revoke `lease`, deleting the keys attached to it.
    pub async fn revoke(&self, lease: u64) -> Result<(), OpError> {
        self.post("/v3/lease/revoke", &json!({ "ID": lease.to_string() }), Duration::ZERO).await.map(|_| ())
    }

    /// `(member id, leader id)` as this one endpoint reports them.
    pub async fn member_status(endpoint: &str, timeout: Duration) -> Option<(u64, u64)> {
        let one = Etcd::new(Arc::new(vec![endpoint.to_string()]), 0).with_timeouts(timeout, timeout);
        let v = one.post("/v3/maintenance/status", &json!({}), Duration::ZERO).await.ok()?;
        Some((int(&v, &["header", "member_id"])?, int(&v, &["leader"])?))
    }

    /// POST `body` to `path`, failing over on transport errors and 5xx.
    pub async fn post(&self, path: &str, body: &Value, extra: Duration) -> Result<Value, OpError> {
        let bytes = Bytes::from(body.to_string());
        let n = self.endpoints.len().max(1);
        let start = now();
        let mut backoff = Duration::from_millis(20);
        let mut i = self.preferred.load(Ordering::Relaxed) % n;
        let mut last = String::from("no endpoints");
        loop {
            for _ in 0..n {
                let Some(ep) = self.endpoints.get(i) else { break };
                let req = Request::builder()
                    .method(Method::POST)
                    .uri(path)
                    .header("content-type", "application/json")
                    .body(bytes.clone())
                    .map_err(|e| OpError::Refused(e.to_string()))?;
                match self.http.send(ep, req, self.request_timeout + extra).await {
                    Ok(r) if r.status.is_success() => {
                        self.preferred.store(i, Ordering::Relaxed);
                        return serde_json::from_slice(&r.body)
                            .map_err(|e| OpError::Refused(format!("{ep}: bad JSON: {e}")));
                    }
                    Ok(r) if r.status.is_server_error() => {
                        last = format!("{ep}: HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body));
                    }
                    Ok(r) => {
                        return Err(OpError::Refused(format!(
                            "{ep}: HTTP {}: {}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        )))
                    }
                    Err(e) => last = e.to_string(),
                }
                i = (i + 1) % n;
            }
            if now().since(start) + backoff > self.call_timeout + extra {
                return Err(OpError::Unavailable(last));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }
}

/// etcd's int64s travel as JSON strings.
pub fn int(v: &Value, path: &[&str]) -> Option<u64> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

impl LockSystem for Etcd {
    async fn grant_lease(&self, ttl: Duration) -> Result<u64, OpError> {
        let v = self.post("/v3/lease/grant", &json!({ "TTL": ttl.as_secs().max(1) }), Duration::ZERO).await?;
        int(&v, &["ID"]).ok_or_else(|| OpError::Refused(format!("lease grant without ID: {v}")))
    }
    async fn keepalive(&self, lease: u64) -> Result<(), OpError> {
        // A one-message stream: the gateway answers `{"result": {...}}` and closes.
        let v = self.post("/v3/lease/keepalive", &json!({ "ID": lease.to_string() }), Duration::ZERO).await?;
        match int(&v, &["result", "TTL"]) {
            Some(ttl) if ttl > 0 => Ok(()),
            _ => Err(OpError::Refused(format!("lease {lease} not kept alive: {v}"))),
        }
    }
    async fn acquire(&self, lock: &str, lease: u64, wait: Duration) -> Result<Held, OpError> {
        // etcd's lock service (v3lock, what `etcdctl lock` and the
        // concurrency.Mutex recipe do): a key `lock/<lease>` under the lease;
        // it waits until every older key under `lock/` is gone.
        let body = json!({ "name": B64.encode(lock), "lease": lease.to_string() });
        let v = self.post("/v3/lock/lock", &body, wait).await?;
        let key = v.get("key").and_then(Value::as_str).unwrap_or_default().to_string();
        let token = int(&v, &["header", "revision"]).unwrap_or(0);
        Ok(Held { lock: lock.to_string(), lease, token, key })
    }
    async fn release(&self, held: &Held) -> Result<(), OpError> {
        self.post("/v3/lock/unlock", &json!({ "key": held.key }), Duration::ZERO).await.map(|_| ())
    }
}

/// The endpoint of the current leader, asked of every live endpoint.
pub async fn leader_endpoint(kind: Kind, endpoints: &[String]) -> Option<String> {
    match kind {
        Kind::Fenced => {
            let client = Client::new(ClientConfig::new(endpoints.to_vec())).ok()?;
            for ep in endpoints {
                if let Ok(s) = client.cluster_status_of(ep).await {
                    if s.leader == Some(s.id) && s.state.eq_ignore_ascii_case("leader") {
                        return Some(ep.clone());
                    }
                }
            }
            None
        }
        Kind::Etcd => {
            for ep in endpoints {
                if let Some((me, leader)) = Etcd::member_status(ep, Duration::from_millis(500)).await {
                    if leader != 0 && me == leader {
                        return Some(ep.clone());
                    }
                }
            }
            None
        }
    }
}
