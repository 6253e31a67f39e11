//! A held lock: keepalive, watch, local deadline, and the lost-lock signal.

use crate::client::{encode_query, Client};
use crate::error::ClientError;
use crate::sse::SseParser;
use bytes::Bytes;
use fenced_core::api::WatchEvent;
use fenced_core::toolbox::clock::Mono;
use fenced_core::Grant;
use http_body_util::BodyExt;
use hyper::Request;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The longest the local deadline watcher sleeps between two looks at the
/// clock: a lock is reported lost at most this late after its deadline.
const DEADLINE_CHECK_MAX: Duration = Duration::from_millis(50);

/// The pause before a watch stream that ended is opened again.
const WATCH_RECONNECT_DELAY: Duration = Duration::from_millis(100);

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
    /// This process was not running for longer than its margin (GC, SIGSTOP,
    /// swapping): the local deadline cannot be trusted. Fired pre-emptively;
    /// the guard then re-confirms with the cluster and, if the lock is still
    /// held with this token, clears the signal (the only reason that can be
    /// cleared). Any other outcome replaces it with a final reason.
    Paused(Duration),
}

impl LostReason {
    /// Every reason but [`LostReason::Paused`] is final.
    pub fn is_final(&self) -> bool {
        !matches!(self, LostReason::Paused(_))
    }
}

impl std::fmt::Display for LostReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LostReason::Cluster(r) => write!(f, "the cluster reports the lock {r}"),
            LostReason::LeaseGone => write!(f, "the lease no longer exists"),
            LostReason::DeadlinePassed => write!(f, "no keepalive confirmed before the local validity deadline"),
            LostReason::Released => write!(f, "released"),
            LostReason::Paused(d) => write!(f, "this process was paused for {} ms; re-confirming", d.as_millis()),
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
    /// What to take: the lock (exclusive by default), or a semaphore's permit.
    pub what: What,
}

/// What an acquire takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// The lock in `mode`; with `reentrant`, a lease that holds it already
    /// counts one more hold. `Exclusive` without re-entrance is today's lock.
    Lock { mode: fenced_core::Mode, reentrant: bool },
    /// One permit of the semaphore of that name.
    Permit,
}

impl AcquireOptions {
    pub fn new(ttl: Duration) -> Self {
        AcquireOptions {
            ttl,
            wait: Duration::ZERO,
            value: String::new(),
            what: What::Lock { mode: fenced_core::Mode::Exclusive, reentrant: false },
        }
    }

    /// Take the lock shared: with other shared holders, never with an
    /// exclusive one. A shared grant's token cannot write to a fenced store.
    pub fn shared(mut self) -> Self {
        if let What::Lock { reentrant, .. } = self.what {
            self.what = What::Lock { mode: fenced_core::Mode::Shared, reentrant };
        }
        self
    }

    /// Take a permit of the semaphore named by the acquire's name instead of a lock.
    pub fn permit(mut self) -> Self {
        self.what = What::Permit;
        self
    }

    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }
}

struct State {
    /// Until when this client may believe it holds the lock.
    deadline: Mono,
    /// Pauses longer than the margin this guard noticed.
    pauses: u64,
    /// Re-confirmations after a pause that found the lock still held.
    reconfirmed: u64,
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

/// Taking a lock as a [`Guard`]: here, beside the guard, so that the
/// client's calls know nothing of the guards built on them.
impl Client {
    /// Grant a lease, acquire `lock` on it, and start keeping both alive.
    pub async fn acquire(&self, lock: &str, opts: AcquireOptions) -> Result<Guard, ClientError> {
        Guard::acquire(self.clone(), lock, opts).await
    }

    /// [`Client::acquire`] that gives up when `cancel` resolves first, and
    /// then revokes the lease before returning `Ok(None)`: no lock is held
    /// and no queue entry is left behind. An error means the revoke (or the
    /// acquire) could not be confirmed; the lease then expires after its TTL.
    pub async fn acquire_or_cancel(
        &self,
        lock: &str,
        opts: AcquireOptions,
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<Option<Guard>, ClientError> {
        Guard::acquire_or_cancel(self.clone(), lock, opts, cancel).await
    }
}

impl Guard {
    pub(crate) async fn acquire(client: Client, lock: &str, opts: AcquireOptions) -> Result<Guard, ClientError> {
        match Self::acquire_or_cancel(client, lock, opts, std::future::pending()).await {
            Ok(Some(g)) => Ok(g),
            Ok(None) => unreachable!("a pending future never cancels"),
            Err(e) => Err(e),
        }
    }

    /// [`Guard::acquire`], abandoned when `cancel` resolves first: the lease
    /// (and with it any queue entry) is then revoked *before* this returns
    /// `Ok(None)`, so an interrupted wait leaves no waiter that could be
    /// granted the lock later. Dropping an acquire future cannot do that (a
    /// destructor cannot await the revoke), which is why callers that must
    /// be interruptible (Ctrl-C, asyncio cancellation in the Python package)
    /// cancel through here instead. The lease grant itself is not cancelled
    /// midway (it is short and bounded by `call_timeout`): without its id
    /// there would be nothing to revoke.
    pub(crate) async fn acquire_or_cancel(
        client: Client,
        lock: &str,
        opts: AcquireOptions,
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<Option<Guard>, ClientError> {
        let t_send = client.clock().now();
        let lease = client.grant_lease(opts.ttl).await?;
        let deadline = validity_deadline(&client, t_send, opts.ttl);
        let state = Arc::new(Mutex::new(State { deadline, pauses: 0, reconfirmed: 0 }));
        let (lost_tx, _) = watch::channel(None);
        // Keep the lease alive while queued, too: a wait may outlast the TTL.
        let keepalive =
            tokio::spawn(keepalive_loop(client.clone(), lease.lease, opts.ttl, state.clone(), lost_tx.clone()));
        // `biased`: no random branch choice, so the simulator's runs stay
        // reproducible (the default `Guard::acquire` passes a never-ready
        // `cancel`).
        let acquired = tokio::select! {
            biased;
            r = async {
                match opts.what {
                    What::Lock { mode: fenced_core::Mode::Exclusive, reentrant: false } => {
                        client.acquire_on(lock, lease.lease, opts.wait, &opts.value).await
                    }
                    What::Lock { mode, reentrant } => {
                        client.acquire_mode_on(lock, lease.lease, opts.wait, mode, reentrant, &opts.value).await
                    }
                    What::Permit => client.sem_acquire_on(lock, lease.lease, opts.wait).await,
                }
            } => Some(r),
            () = cancel => None,
        };
        let grant = match acquired {
            Some(Ok(g)) => g,
            Some(Err(e)) => {
                keepalive.abort();
                // Do not leave the lease (and maybe a queue entry) behind.
                let _ = client.revoke(lease.lease).await;
                return Err(e);
            }
            None => {
                keepalive.abort();
                // Revoking frees the lock too if the grant raced the cancel.
                client.revoke(lease.lease).await?;
                return Ok(None);
            }
        };
        let mut guard = Guard { client, grant, ttl: opts.ttl, state, lost_tx, tasks: vec![keepalive] };
        guard.tasks.push(tokio::spawn(watch_loop(guard.client.clone(), guard.grant.clone(), guard.lost_tx.clone())));
        guard.tasks.push(tokio::spawn(deadline_loop(
            guard.client.clone(),
            guard.grant.clone(),
            guard.ttl,
            guard.state.clone(),
            guard.lost_tx.clone(),
            guard.client.clock().now(),
        )));
        Ok(Some(guard))
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

    /// Pauses longer than the margin this guard noticed, and how many of them
    /// were followed by a successful re-confirmation.
    pub fn pauses(&self) -> (u64, u64) {
        self.state.lock().map(|s| (s.pauses, s.reconfirmed)).unwrap_or_default()
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

    /// Resolves when the lock is lost for good: a [`LostReason::Paused`]
    /// that the guard re-confirms does not resolve it. For callers that act
    /// on a loss in a way that cannot be undone (killing a command), where
    /// [`Guard::lost`] would also fire on a pause the lock survived.
    pub async fn final_loss(&self) -> LostReason {
        let mut rx = self.lost_signal();
        let reason = match rx.wait_for(|r| r.as_ref().is_some_and(LostReason::is_final)).await {
            Ok(r) => r.clone(),
            Err(_) => None,
        };
        reason.unwrap_or(LostReason::DeadlinePassed)
    }

    /// Release the lock and revoke its lease.
    /// Take one more hold of this guard's lock on the same lease, in the
    /// same mode (re-entrance): the cluster answers the same grant and the
    /// hold count, which this returns. Give it back with
    /// [`Guard::release_hold`]; [`Guard::release`] ends every hold.
    pub async fn reacquire(&self) -> Result<u32, ClientError> {
        let mode = match self.grant.mode.as_deref() {
            Some("shared") => fenced_core::Mode::Shared,
            Some("permit") => {
                return Err(ClientError::Invalid("a semaphore permit is not re-entrant: one per lease".into()))
            }
            _ => fenced_core::Mode::Exclusive,
        };
        let g = self
            .client
            .acquire_mode_on(&self.grant.lock, self.grant.lease.0, Duration::ZERO, mode, true, &self.grant.value)
            .await?;
        Ok(g.holds.unwrap_or(1))
    }

    /// Give back one re-entrant hold; returns the holds left (0: the lock
    /// was released, and this guard no longer holds it).
    pub async fn release_hold(&self) -> Result<u32, ClientError> {
        let r = self.client.release(&self.grant.lock, self.grant.lease.0, self.grant.token.0).await?;
        Ok(r.holds.unwrap_or(0))
    }

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

/// Record `reason` unless a final reason is already recorded (a final reason
/// replaces a pending [`LostReason::Paused`]).
fn signal(lost: &watch::Sender<Option<LostReason>>, reason: LostReason) {
    lost.send_if_modified(|r| {
        if r.as_ref().is_none_or(|old| !old.is_final() && reason.is_final()) {
            *r = Some(reason);
            true
        } else {
            false
        }
    });
}

/// Has the lock been lost for good?
fn lost_for_good(lost: &watch::Sender<Option<LostReason>>) -> bool {
    lost.borrow().as_ref().is_some_and(LostReason::is_final)
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
        if lost_for_good(&lost) {
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

/// Fire the signal when the local deadline passes. Checked every 50 ms at
/// most, which also measures this process's scheduling lateness: a wake-up
/// later than the margin means the process was paused, and the local deadline
/// (computed before the pause) is no longer trusted.
async fn deadline_loop(
    client: Client,
    grant: Grant,
    ttl: Duration,
    state: Arc<Mutex<State>>,
    lost: watch::Sender<Option<LostReason>>,
    created: Mono,
) {
    let margin = client.config().margin;
    // The previous wake-up and the nap asked for since: the baseline is the
    // moment the guard was created, so a pause right after acquiring counts.
    let (mut prev, mut nap) = (created, Duration::ZERO);
    loop {
        let now = client.clock().now();
        let late = now.since(prev).saturating_sub(nap);
        if late > margin && !lost_for_good(&lost) {
            tracing::warn!(
                lock = %grant.lock,
                paused_ms = late.as_millis() as u64,
                margin_ms = margin.as_millis() as u64,
                "this process was paused longer than its margin; lock presumed lost until re-confirmed"
            );
            if let Ok(mut s) = state.lock() {
                s.pauses += 1;
            }
            signal(&lost, LostReason::Paused(late));
            reconfirm(&client, &grant, ttl, &state, &lost).await;
        }
        let deadline = state.lock().map(|s| s.deadline).unwrap_or_default();
        let now = client.clock().now();
        if now >= deadline {
            signal(&lost, LostReason::DeadlinePassed);
            return;
        }
        nap = deadline.since(now).min(DEADLINE_CHECK_MAX);
        prev = now;
        tokio::time::sleep(nap).await;
    }
}

/// After a pause: renew the lease and read the lock linearizably. If it is
/// still held with this token, move the deadline from this renewal and clear
/// the pause signal; if it is not, record why (final).
async fn reconfirm(
    client: &Client,
    grant: &Grant,
    ttl: Duration,
    state: &Arc<Mutex<State>>,
    lost: &watch::Sender<Option<LostReason>>,
) {
    let t_send = client.clock().now();
    match client.keepalive(grant.lease.0).await {
        Ok(_) => {}
        Err(e) if e.code() == Some("no_such_lease") => return signal(lost, LostReason::LeaseGone),
        Err(e) => {
            tracing::warn!(error = %e, "cannot re-confirm after a pause; the lock stays presumed lost");
            return;
        }
    }
    match client.status(&grant.lock).await {
        Ok(s) if s.holder.iter().chain(&s.holders).any(|h| h.token == grant.token) => {
            if let Ok(mut st) = state.lock() {
                st.deadline = st.deadline.max(validity_deadline(client, t_send, ttl));
                st.reconfirmed += 1;
            }
            lost.send_if_modified(|r| {
                if matches!(r, Some(LostReason::Paused(_))) {
                    *r = None;
                    true
                } else {
                    false
                }
            });
            tracing::info!(lock = %grant.lock, "re-confirmed after a pause: the lock is still held");
        }
        Ok(_) => signal(lost, LostReason::Cluster("not_held".into())),
        Err(e) => tracing::warn!(error = %e, "cannot re-confirm after a pause; the lock stays presumed lost"),
    }
}

/// Follow the lock's watch stream on any replica; reconnect on failure.
async fn watch_loop(client: Client, grant: Grant, lost: watch::Sender<Option<LostReason>>) {
    let path = format!("/v1/lock/watch?lock={}&token={}", encode_query(&grant.lock), grant.token.0);
    let endpoints = client.config().endpoints.clone();
    let mut i = 0usize;
    loop {
        if lost_for_good(&lost) {
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
        tokio::time::sleep(WATCH_RECONNECT_DELAY).await;
    }
}
