//! The workloads. Every loop is bounded by a deadline and an operation cap.

use crate::error::OpError;
use crate::stats::{jain_index, percentiles, Percentiles};
use crate::system::{Held, LockSystem};
use fenced_core::toolbox::clock::Mono;
use fenced_io::clock::now;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Cap on operations per worker per workload, whatever the deadline.
pub const MAX_OPS_PER_WORKER: u64 = 5_000_000;
/// Pause after a failed operation, so a broken cluster is not hammered.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// One workload's outcome on one system.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadResult {
    pub system: String,
    pub workload: String,
    /// Successful operations (grants, handoffs, keepalives, leases).
    pub ops: u64,
    pub errors: u64,
    pub elapsed_s: f64,
    /// `ops / elapsed_s`.
    pub throughput: f64,
    pub latency: Percentiles,
    /// Workload-specific numbers (fairness, failover times, RSS).
    pub extra: BTreeMap<String, f64>,
}

#[derive(Default)]
struct WorkerOut {
    lats: Vec<Duration>,
    ok: u64,
    errors: u64,
    /// `(start, end, ok)` of each acquire (failover only).
    events: Vec<(Mono, Mono, bool)>,
    leases: Vec<u64>,
}

/// Prints progress to stderr every 2 s until dropped.
struct Progress {
    stop: Arc<AtomicBool>,
    pub count: Arc<AtomicU64>,
}

impl Progress {
    fn start(label: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let (s, c) = (stop.clone(), count.clone());
        tokio::spawn(async move {
            let t0 = now();
            // Bounded: at most an hour of ticks.
            for _ in 0..1800 {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let n = c.load(Ordering::Relaxed);
                eprintln!("  [{label}] {:>5.1}s  {n} ops", now().since(t0).as_secs_f64());
            }
        });
        Progress { stop, count }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn result(system: &str, workload: &str, outs: &mut [WorkerOut], elapsed: Duration) -> WorkloadResult {
    let mut lats: Vec<Duration> = outs.iter_mut().flat_map(|o| std::mem::take(&mut o.lats)).collect();
    let ops: u64 = outs.iter().map(|o| o.ok).sum();
    let errors: u64 = outs.iter().map(|o| o.errors).sum();
    let secs = elapsed.as_secs_f64().max(1e-9);
    WorkloadResult {
        system: system.into(),
        workload: workload.into(),
        ops,
        errors,
        elapsed_s: secs,
        throughput: ops as f64 / secs,
        latency: percentiles(&mut lats),
        extra: BTreeMap::new(),
    }
}

async fn join(handles: Vec<tokio::task::JoinHandle<WorkerOut>>) -> Vec<WorkerOut> {
    let mut outs = Vec::with_capacity(handles.len());
    for h in handles {
        outs.push(h.await.unwrap_or_else(|_| WorkerOut { errors: 1, ..WorkerOut::default() }));
    }
    outs
}

/// Grant one lease, retrying a few times (the cluster may still be settling).
async fn lease<S: LockSystem>(sys: &S, ttl: Duration) -> Result<u64, OpError> {
    let mut last = None;
    for _ in 0..5 {
        match sys.grant_lease(ttl).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(ERROR_PAUSE * 10).await;
    }
    Err(last.unwrap_or_else(|| OpError::Unavailable("no attempt".into())))
}

/// K clients, each acquiring and releasing its own lock in a loop. Latency
/// is the acquire's; throughput is grants per second. With `events`, every
/// acquire's `(start, end, ok)` is kept (failover).
async fn acquire_release_loop<S: LockSystem>(
    sys: Arc<S>,
    w: usize,
    ttl: Duration,
    deadline: Mono,
    count: Arc<AtomicU64>,
    events: bool,
) -> WorkerOut {
    let mut out = WorkerOut::default();
    let Ok(lease) = lease(sys.as_ref(), ttl).await else {
        out.errors += 1;
        return out;
    };
    let mut gen = 0u64;
    let mut n = 0;
    while now() < deadline && n < MAX_OPS_PER_WORKER {
        n += 1;
        let lock = format!("u-{w}-{gen}");
        let t0 = now();
        let r = sys.acquire(&lock, lease, Duration::ZERO).await;
        let t1 = now();
        if events {
            out.events.push((t0, t1, r.is_ok()));
        }
        match r {
            Ok(held) => {
                out.lats.push(t1.since(t0));
                out.ok += 1;
                count.fetch_add(1, Ordering::Relaxed);
                if sys.release(&held).await.is_err() {
                    // The lock may still be held: use a fresh name from now on.
                    out.errors += 1;
                    gen += 1;
                }
            }
            Err(_) => {
                out.errors += 1;
                gen += 1;
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    out
}

fn long_ttl(run: Duration) -> Duration {
    (run + Duration::from_secs(120)).min(Duration::from_secs(3600))
}

pub async fn uncontended<S: LockSystem>(system: &str, clients: &[Arc<S>], duration: Duration) -> WorkloadResult {
    let p = Progress::start(format!("{system} uncontended"));
    let t0 = now();
    let deadline = t0.plus(duration);
    let handles = clients
        .iter()
        .enumerate()
        .map(|(w, c)| {
            tokio::spawn(acquire_release_loop(c.clone(), w, long_ttl(duration), deadline, p.count.clone(), false))
        })
        .collect();
    let mut outs = join(handles).await;
    result(system, "uncontended", &mut outs, now().since(t0))
}

/// 16 (or `clients.len()`) clients compete for one lock, queueing up to
/// `wait`; each releases as soon as it is granted. Latency is the wait for
/// the grant; throughput is handoffs per second; fairness is Jain's index
/// over per-client grant counts.
pub async fn contended<S: LockSystem>(system: &str, clients: &[Arc<S>], duration: Duration) -> WorkloadResult {
    let p = Progress::start(format!("{system} contended"));
    let t0 = now();
    let deadline = t0.plus(duration);
    let wait = Duration::from_secs(5);
    let handles = clients
        .iter()
        .map(|c| {
            let (sys, count) = (c.clone(), p.count.clone());
            tokio::spawn(async move {
                let mut out = WorkerOut::default();
                let Ok(lease) = lease(sys.as_ref(), long_ttl(duration)).await else {
                    out.errors += 1;
                    return out;
                };
                let mut n = 0;
                while now() < deadline && n < MAX_OPS_PER_WORKER {
                    n += 1;
                    let t = now();
                    match sys.acquire("contended", lease, wait).await {
                        Ok(held) => {
                            out.lats.push(now().since(t));
                            out.ok += 1;
                            count.fetch_add(1, Ordering::Relaxed);
                            if sys.release(&held).await.is_err() {
                                out.errors += 1;
                            }
                        }
                        Err(_) => {
                            out.errors += 1;
                            tokio::time::sleep(ERROR_PAUSE).await;
                        }
                    }
                }
                out
            })
        })
        .collect();
    let mut outs = join(handles).await;
    let counts: Vec<u64> = outs.iter().map(|o| o.ok).collect();
    let mut r = result(system, "contended", &mut outs, now().since(t0));
    r.extra.insert("jain_fairness".into(), jain_index(&counts).unwrap_or(0.0));
    r.extra.insert("min_grants_per_client".into(), counts.iter().copied().min().unwrap_or(0) as f64);
    r.extra.insert("max_grants_per_client".into(), counts.iter().copied().max().unwrap_or(0) as f64);
    r
}

/// Grant `n` leases with all clients, then renew them round-robin as fast
/// as the clients can for `duration`. Returns (lease-grant, keepalive).
pub async fn keepalive<S: LockSystem>(
    system: &str,
    clients: &[Arc<S>],
    n: usize,
    duration: Duration,
) -> (WorkloadResult, WorkloadResult) {
    let k = clients.len().max(1);
    let ttl = Duration::from_secs(60) + duration;
    let p = Progress::start(format!("{system} lease grant"));
    let t0 = now();
    let grant_deadline = t0.plus(Duration::from_secs(120));
    let handles = clients
        .iter()
        .enumerate()
        .map(|(w, c)| {
            let (sys, count) = (c.clone(), p.count.clone());
            let mine = n / k + usize::from(w < n % k);
            tokio::spawn(async move {
                let mut out = WorkerOut::default();
                for _ in 0..mine {
                    if now() >= grant_deadline {
                        break;
                    }
                    let t = now();
                    match sys.grant_lease(ttl).await {
                        Ok(l) => {
                            out.lats.push(now().since(t));
                            out.ok += 1;
                            out.leases.push(l);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => out.errors += 1,
                    }
                }
                out
            })
        })
        .collect();
    let mut outs = join(handles).await;
    drop(p);
    let leases: Vec<Vec<u64>> = outs.iter_mut().map(|o| std::mem::take(&mut o.leases)).collect();
    let grant = result(system, "lease-grant", &mut outs, now().since(t0));

    let p = Progress::start(format!("{system} keepalive ({} leases)", grant.ops));
    let t0 = now();
    let deadline = t0.plus(duration);
    let handles = clients
        .iter()
        .zip(leases)
        .map(|(c, mine)| {
            let (sys, count) = (c.clone(), p.count.clone());
            tokio::spawn(async move {
                let mut out = WorkerOut::default();
                if mine.is_empty() {
                    return out;
                }
                let mut n = 0u64;
                while now() < deadline && n < MAX_OPS_PER_WORKER {
                    let lease = mine[(n as usize) % mine.len()];
                    n += 1;
                    let t = now();
                    match sys.keepalive(lease).await {
                        Ok(()) => {
                            out.lats.push(now().since(t));
                            out.ok += 1;
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            out.errors += 1;
                            tokio::time::sleep(ERROR_PAUSE).await;
                        }
                    }
                }
                out
            })
        })
        .collect();
    let mut outs = join(handles).await;
    let mut ka = result(system, "keepalive", &mut outs, now().since(t0));
    ka.extra.insert("leases".into(), grant.ops as f64);
    (grant, ka)
}

/// Hold `n` locks, each on its own lease, using all clients, within
/// `limit`. Returns the number held and the elapsed time.
pub async fn hold_many<S: LockSystem>(system: &str, clients: &[Arc<S>], n: usize, limit: Duration) -> WorkloadResult {
    let k = clients.len().max(1);
    let p = Progress::start(format!("{system} memory: holding {n} locks"));
    let t0 = now();
    let deadline = t0.plus(limit);
    let handles = clients
        .iter()
        .enumerate()
        .map(|(w, c)| {
            let (sys, count) = (c.clone(), p.count.clone());
            let mine = n / k + usize::from(w < n % k);
            tokio::spawn(async move {
                let mut out = WorkerOut::default();
                for i in 0..mine {
                    if now() >= deadline {
                        break;
                    }
                    let t = now();
                    let r: Result<Held, OpError> = async {
                        let l = sys.grant_lease(Duration::from_secs(3600)).await?;
                        sys.acquire(&format!("m-{w}-{i}"), l, Duration::ZERO).await
                    }
                    .await;
                    match r {
                        Ok(_) => {
                            out.lats.push(now().since(t));
                            out.ok += 1;
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => out.errors += 1,
                    }
                }
                out
            })
        })
        .collect();
    let mut outs = join(handles).await;
    result(system, "memory", &mut outs, now().since(t0))
}

/// Uncontended load on all clients; after `warmup`, `kill` is called (it
/// SIGKILLs the leader and returns whether it did); the load goes on for
/// `after`. Reports the time from the kill to the first grant of a request
/// sent after it, the longest gap between grants, and the error rate in the
/// 5 s after the kill.
pub async fn failover<S: LockSystem, K>(
    system: &str,
    clients: &[Arc<S>],
    warmup: Duration,
    after: Duration,
    kill: K,
) -> WorkloadResult
where
    K: std::future::Future<Output = bool>,
{
    let p = Progress::start(format!("{system} failover"));
    let t0 = now();
    let deadline = t0.plus(warmup + after);
    let handles = clients
        .iter()
        .enumerate()
        .map(|(w, c)| {
            tokio::spawn(acquire_release_loop(c.clone(), w, long_ttl(warmup + after), deadline, p.count.clone(), true))
        })
        .collect();
    tokio::time::sleep(warmup).await;
    // The clock starts once the SIGKILL was sent: finding the leader takes
    // a system-dependent time (etcd's status calls are slower than fenced's),
    // and requests sent meanwhile still reach the old leader and succeed.
    let killed = kill.await;
    let t_kill = now();
    eprintln!("  [{system} failover] leader SIGKILLed: {killed}");
    let mut outs = join(handles).await;
    let mut events: Vec<(Mono, Mono, bool)> = outs.iter_mut().flat_map(|o| std::mem::take(&mut o.events)).collect();
    let mut r = result(system, "failover", &mut outs, now().since(t0));
    let first = events.iter().filter(|e| e.2 && e.0 >= t_kill).map(|e| e.1.since(t_kill)).min();
    r.extra.insert("time_to_first_grant_ms".into(), first.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3));
    events.sort_by_key(|e| e.1);
    let ends: Vec<Mono> = events.iter().filter(|e| e.2).map(|e| e.1).collect();
    let gap = ends.windows(2).map(|w| w[1].since(w[0])).max().unwrap_or_default();
    r.extra.insert("max_grant_gap_ms".into(), gap.as_secs_f64() * 1e3);
    let window: Vec<_> = events.iter().filter(|e| e.0 >= t_kill && e.0 < t_kill.plus(Duration::from_secs(5))).collect();
    let errs = window.iter().filter(|e| !e.2).count();
    r.extra.insert(
        "error_rate_5s_after_kill".into(),
        if window.is_empty() { 0.0 } else { errs as f64 / window.len() as f64 },
    );
    r.extra.insert("killed".into(), f64::from(u8::from(killed)));
    r
}
