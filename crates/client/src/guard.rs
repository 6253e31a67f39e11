//! A held lock: keepalive, watch, local deadline, and the lost-lock signal.

use crate::client::{encode_query, Client};
use crate::error::ClientError;
use crate::sse::SseParser;
use bytes::Bytes;
use fenced_core::api::WatchEvent;
use fenced_core::clock::Mono;
use fenced_core::Grant;
use http_body_util::BodyExt;
use hyper::Request;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why a guard considers its lock lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostReason {
    /// The cluster says the lock is no longer held with this token
    /// (`released`, `expired`, `revoked`, `not_held`).
    Cluster(String),
    /// The lease is gone (a keepalive was answered "no such lease").
    LeaseGone,
    /// No keepalive was confirmed before the local validity deadline: the
    /// cluster may already have expired the lease. Assume the worst.
    DeadlinePassed,
    /// [`Guard::release`] was called.
    Released,
}

impl std::fmt::Display for LostReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LostReason::Cluster(r) => write!(f, "the cluster reports the lock {r}"),
            LostReason::LeaseGone => write!(f, "the lease no longer exists"),
            LostReason::DeadlinePassed => write!(f, "no keepalive confirmed before the local validity deadline"),
            LostReason::Released => write!(f, "released"),
        }
    }
}

/// How to acquire.
#[derive(Debug, Clone)]
pub struct AcquireOptions {
    /// The lease's TTL.
    pub ttl: Duration,
    /// How long to queue for the lock; zero tries once.
    pub wait: Duration,
    /// A value attached to the grant.
    pub value: String,
}

impl AcquireOptions {
    pub fn new(ttl: Duration) -> Self {
        AcquireOptions { ttl, wait: Duration::ZERO, value: String::new() }
    }

    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }
}

struct State {
    /// Until when this client may believe it holds the lock.
    deadline: Mono,
}

/// A held lock. Dropping it stops the background tasks but does not release
/// the lock (the lease expires on its own); call [`Guard::release`].
pub struct Guard {
    client: Client,
    grant: Grant,
    ttl: Duration,
    state: Arc<Mutex<State>>,
    lost_tx: watch::Sender<Option<LostReason>>,
    tasks: Vec<JoinHandle<()>>,
}

/// `t_send + ttl·(1−ρ) − margin`: the latest instant at which the cluster
/// certainly still considers a lease renewed at `t_send` alive, from this
/// client's point of view. `t_send` is taken *before* the request is sent,
/// because the cluster's timer starts no earlier than that.
fn validity_deadline(client: &Client, t_send: Mono, ttl: Duration) -> Mono {
    let cfg = client.config();
    let usable = ttl.mul_f64(1.0 - cfg.rho).saturating_sub(cfg.margin);
    t_send.plus(usable)
}

impl Guard {
    pub(crate) async fn acquire(client: Client, lock: &str, opts: AcquireOptions) -> Result<Guard, ClientError> {
        let t_send = client.clock().now();
        let lease = client.grant_lease(opts.ttl).await?;
        let state = Arc::new(Mutex::new(State { deadline: validity_deadline(&client, t_send, opts.ttl) }));
        let (lost_tx, _) = watch::channel(None);
        // Keep the lease alive while queued, too: a wait may outlast the TTL.
        let keepalive =
            tokio::spawn(keepalive_loop(client.clone(), lease.lease, opts.ttl, state.clone(), lost_tx.clone()));
        let grant = match client.acquire_on(lock, lease.lease, opts.wait, &opts.value).await {
            Ok(g) => g,
            Err(e) => {
                keepalive.abort();
                // Do not leave the lease (and maybe a queue entry) behind.
                let _ = client.revoke(lease.lease).await;
                return Err(e);
            }
        };
        let mut guard = Guard { client, grant, ttl: opts.ttl, state, lost_tx, tasks: vec![keepalive] };
        guard.tasks.push(tokio::spawn(watch_loop(guard.client.clone(), guard.grant.clone(), guard.lost_tx.clone())));
        guard.tasks.push(tokio::spawn(deadline_loop(guard.client.clone(), guard.state.clone(), guard.lost_tx.clone())));
        Ok(guard)
    }

    pub fn lock(&self) -> &str {
        &self.grant.lock
    }

    /// The fencing token: attach it to every write to the protected resource.
    pub fn token(&self) -> u64 {
        self.grant.token.0
    }

    /// The signed token, verifiable with the cluster's public key.
    pub fn signed_token(&self) -> &str {
        &self.grant.signed
    }

    pub fn lease(&self) -> u64 {
        self.grant.lease.0
    }

    /// The lease's TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// The local validity deadline (monotonic).
    pub fn deadline(&self) -> Mono {
        self.state.lock().map(|s| s.deadline).unwrap_or_default()
    }

    /// True while no loss is known and the local deadline has not passed.
    /// Even `true` is only a belief: the resource must check the token.
    pub fn is_valid(&self) -> bool {
        self.lost_tx.borrow().is_none() && self.client.clock().now() < self.deadline()
    }

    /// A receiver that becomes `Some(reason)` when the lock is lost.
    pub fn lost_signal(&self) -> watch::Receiver<Option<LostReason>> {
        self.lost_tx.subscribe()
    }

    /// Resolves when the lock is lost.
    pub async fn lost(&self) -> LostReason {
        let mut rx = self.lost_signal();
        let reason = match rx.wait_for(|r| r.is_some()).await {
            Ok(r) => r.clone(),
            Err(_) => None,
        };
        reason.unwrap_or(LostReason::DeadlinePassed)
    }

    /// Release the lock and revoke its lease.
    pub async fn release(mut self) -> Result<(), ClientError> {
        self.stop();
        self.lost_tx.send_replace(Some(LostReason::Released));
        let r = self.client.release(&self.grant.lock, self.grant.lease.0, self.grant.token.0).await;
        let _ = self.client.revoke(self.grant.lease.0).await;
        match r {
            Ok(_) => Ok(()),
            // Already gone is what we wanted.
            Err(e) if matches!(e.code(), Some("not_holder" | "no_such_lease")) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(lost: &watch::Sender<Option<LostReason>>, reason: LostReason) {
    lost.send_if_modified(|r| {
        if r.is_none() {
            *r = Some(reason);
            true
        } else {
            false
        }
    });
}

/// Renew the lease every ttl/3; each confirmed renewal moves the deadline.
async fn keepalive_loop(
    client: Client,
    lease: u64,
    ttl: Duration,
    state: Arc<Mutex<State>>,
    lost: watch::Sender<Option<LostReason>>,
) {
    let period = ttl / 3;
    loop {
        tokio::time::sleep(period).await;
        if lost.borrow().is_some() {
            return;
        }
        let t_send = client.clock().now();
        match client.keepalive(lease).await {
            Ok(_) => {
                if let Ok(mut s) = state.lock() {
                    s.deadline = s.deadline.max(validity_deadline(&client, t_send, ttl));
                }
            }
            Err(e) if e.code() == Some("no_such_lease") => {
                signal(&lost, LostReason::LeaseGone);
                return;
            }
            Err(e) => tracing::warn!(lease, error = %e, "keepalive failed; will retry until the deadline"),
        }
    }
}

/// Fire the signal when the local deadline passes. Checked often, so that a
/// process resumed after a long pause notices at once.
async fn deadline_loop(client: Client, state: Arc<Mutex<State>>, lost: watch::Sender<Option<LostReason>>) {
    loop {
        let deadline = state.lock().map(|s| s.deadline).unwrap_or_default();
        let now = client.clock().now();
        if now >= deadline {
            signal(&lost, LostReason::DeadlinePassed);
            return;
        }
        tokio::time::sleep(deadline.since(now).min(Duration::from_millis(50))).await;
    }
}

/// Follow the lock's watch stream on any replica; reconnect on failure.
async fn watch_loop(client: Client, grant: Grant, lost: watch::Sender<Option<LostReason>>) {
    let path = format!("/v1/lock/watch?lock={}&token={}", encode_query(&grant.lock), grant.token.0);
    let endpoints = client.config().endpoints.clone();
    let mut i = 0usize;
    loop {
        if lost.borrow().is_some() {
            return;
        }
        let endpoint = &endpoints[i % endpoints.len()];
        i += 1;
        let Ok(req) = Request::builder().uri(&path).body(Bytes::new()) else { return };
        let timeout = client.config().request_timeout;
        if let Ok(resp) = client.inner.http.send_streaming(endpoint, req, timeout).await {
            if resp.status().is_success() {
                let mut body = resp.into_body();
                let mut parser = SseParser::default();
                // A healthy stream beats every second; silence means trouble.
                while let Ok(Some(Ok(frame))) = tokio::time::timeout(timeout, body.frame()).await {
                    let Ok(data) = frame.into_data() else { continue };
                    let Some(msgs) = parser.feed(&data) else { break };
                    for (event, data) in msgs {
                        if event == "lost" {
                            let reason = serde_json::from_str::<WatchEvent>(&data)
                                .ok()
                                .and_then(|e| e.reason)
                                .unwrap_or_else(|| "lost".into());
                            signal(&lost, LostReason::Cluster(reason));
                            return;
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
