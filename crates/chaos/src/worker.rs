//! The client process (`fenced chaos client …`): the simulator's honest
//! workload on the real network. It loops acquire → read → think → write
//! with the token → release and prints every event as one JSON line on
//! stdout; the driver collects the lines into the history. The same loop
//! runs against every target; only the lock calls differ ([`Backend`]).
//!
//! Clients are separate processes, not tasks in the driver, so that the
//! nemesis can SIGSTOP a client that holds a lock: the pause of Figure 8-4,
//! with real signals rather than a simulated one. Times are CLOCK_MONOTONIC
//! nanoseconds minus the driver's start, which is one clock for every process
//! on the machine, so the events of all clients interleave correctly.

use crate::redlock::{self, Redlock, RedlockError};
use crate::target::Target;
use fenced_bench::error::OpError;
use fenced_bench::system::{Etcd, LockSystem};
use fenced_check::history::{Event, EventType, Process};
use fenced_client::{AcquireOptions, Client, ClientConfig, ClientError, Guard};
use fenced_io::http::HttpClient;
use fenced_io::transport::TcpTransport;
use fenced_store_client::{Fence, Idem, StoreClient, StoreError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// Most operations one client makes, whatever the duration.
const MAX_OPS: u64 = 200_000;

pub use crate::host_clock::{mono_ns, wall_now};

/// What one client process does.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// This client's process number in the history.
    #[arg(long)]
    pub process: u64,
    /// Replica addresses, comma-separated.
    #[arg(long)]
    pub endpoints: String,
    /// The fenced store's address.
    #[arg(long)]
    pub store: String,
    /// The driver's CLOCK_MONOTONIC at the start of the run, in ns.
    #[arg(long)]
    pub epoch_ns: u64,
    /// Stop invoking at this many ns after the epoch.
    #[arg(long)]
    pub until_ns: u64,
    #[arg(long, default_value_t = 3)]
    pub locks: usize,
    #[arg(long, default_value_t = 3000)]
    pub ttl_ms: u64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The lock service the endpoints belong to.
    #[arg(long, value_enum, default_value = "fenced")]
    pub target: Target,
}

struct Out {
    epoch: u64,
    process: Process,
}

impl Out {
    fn emit(&self, kind: EventType, f: &str, value: Value) {
        let e = Event {
            kind,
            process: self.process.clone(),
            f: f.into(),
            value,
            time: mono_ns().saturating_sub(self.epoch),
            node: None,
            wall: Some(wall_now()),
        };
        if let Ok(line) = serde_json::to_string(&e) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

fn acquire_failure(e: &ClientError) -> (EventType, Value) {
    match e.code() {
        Some("busy" | "wait_timeout") => (EventType::Fail, json!("held")),
        // The cluster's explanation with its code (`invalid_argument: ttl
        // 2000ms is outside 3000ms..=3600000ms`): a reader of the history or
        // of L1's evidence learns why, not only that.
        Some(_) => (EventType::Fail, json!(e.reason())),
        None => (EventType::Info, json!(e.to_string())),
    }
}

fn store_failure(e: &StoreError) -> (EventType, Value) {
    match e {
        StoreError::StaleToken { current, .. } => (EventType::Fail, json!({"code": "stale_token", "current": current})),
        // The code for the checkers, the store's explanation for the reader.
        e if e.is_rejection() => (EventType::Fail, json!({"code": e.code(), "message": e.to_string()})),
        e => (EventType::Info, json!({"error": e.to_string()})),
    }
}

fn merge(mut a: Value, b: &Value) -> Value {
    if let (Some(o), Some(x)) = (a.as_object_mut(), b.as_object()) {
        for (k, v) in x {
            o.insert(k.clone(), v.clone());
        }
    }
    a
}

/// A lock service client, one per target.
enum Backend {
    Fenced(Client),
    Etcd(Etcd),
    Redlock(Redlock),
}

/// A lock this client holds.
enum Holding {
    Fenced(Guard),
    Etcd { lock: String, lease: u64, key: String, token: u64, valid_until_ns: u64 },
    Redlock { held: redlock::Held, token: u64 },
}

impl Holding {
    fn token(&self) -> u64 {
        match self {
            Holding::Fenced(g) => g.token(),
            Holding::Etcd { token, .. } | Holding::Redlock { token, .. } => *token,
        }
    }

    fn is_valid(&self) -> bool {
        match self {
            Holding::Fenced(g) => g.is_valid(),
            Holding::Etcd { valid_until_ns, .. } => mono_ns() < *valid_until_ns,
            Holding::Redlock { held, .. } => held.is_valid(),
        }
    }

    /// The `ok` value of the acquire.
    fn acquired(&self, lock: &str) -> Value {
        match self {
            Holding::Fenced(g) => {
                json!({"lock": lock, "token": g.token(), "lease": g.lease(), "signed": g.signed_token()})
            }
            Holding::Etcd { lease, key, token, .. } => {
                json!({"lock": lock, "token": token, "lease": lease, "key": key})
            }
            Holding::Redlock { held, token } => json!({"lock": lock, "token": token, "lease": 0, "value": held.value}),
        }
    }
}

/// How a failed acquire goes into the history: `fail` only when it
/// certainly took no effect.
type Failed = (EventType, Value);

fn etcd_failure(e: &OpError) -> Failed {
    match e {
        OpError::Refused(m) => (EventType::Fail, json!(m)),
        OpError::Unavailable(m) => (EventType::Info, json!(m)),
    }
}

impl Backend {
    async fn acquire(
        &self,
        lock: &str,
        ttl: Duration,
        process: u64,
        epoch: u64,
        rng: &mut ChaCha8Rng,
    ) -> Result<Holding, Failed> {
        match self {
            Backend::Fenced(c) => c
                .acquire(lock, AcquireOptions::new(ttl).wait(ttl * 2))
                .await
                .map(Holding::Fenced)
                .map_err(|e| acquire_failure(&e)),
            Backend::Etcd(etcd) => {
                // A lease, then etcd's lock API (what `etcdctl lock` and the
                // concurrency.Mutex recipe do). The local deadline counts
                // from before the grant, like fenced's Guard.
                let start = mono_ns();
                let lease = etcd.grant_lease(ttl).await.map_err(|e| match e {
                    // No lease, no lock: certainly no effect.
                    OpError::Refused(m) | OpError::Unavailable(m) => (EventType::Fail, json!(format!("lease: {m}"))),
                })?;
                let held = match etcd.acquire(lock, lease, ttl * 2).await {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = etcd.revoke(lease).await;
                        return Err(etcd_failure(&e));
                    }
                };
                match etcd.create_revision(&held.key).await {
                    Ok(Some(token)) => Ok(Holding::Etcd {
                        lock: lock.to_string(),
                        lease,
                        key: held.key,
                        token,
                        valid_until_ns: start.saturating_add(ttl.as_nanos() as u64),
                    }),
                    Ok(None) => {
                        let _ = etcd.revoke(lease).await;
                        Err((EventType::Info, json!("lock key gone before its revision was read (lease expired)")))
                    }
                    Err(e) => {
                        let _ = etcd.revoke(lease).await;
                        Err((EventType::Info, json!(format!("reading the lock key's revision: {e}"))))
                    }
                }
            }
            Backend::Redlock(r) => match r.acquire(lock, ttl, ttl * 2, rng).await {
                Ok(held) => {
                    // No token exists; an order for the checkers only.
                    let token = mono_ns().saturating_sub(epoch).saturating_mul(64).saturating_add(process % 64);
                    Ok(Holding::Redlock { held, token })
                }
                Err(RedlockError::Held) => Err((EventType::Fail, json!("held"))),
                Err(e @ RedlockError::Unavailable(_)) => Err((EventType::Info, json!(e.to_string()))),
            },
        }
    }

    async fn release(&self, h: Holding) -> Result<(), String> {
        match (self, h) {
            (_, Holding::Fenced(g)) => g.release().await.map_err(|e| e.to_string()),
            (Backend::Etcd(etcd), Holding::Etcd { lock, lease, key, token, .. }) => {
                let held = fenced_bench::system::Held { lock, lease, token, key };
                let r = etcd.release(&held).await.map_err(|e| e.to_string());
                // The lease is per acquisition; revoking it frees etcd's memory.
                let _ = etcd.revoke(lease).await;
                r
            }
            (Backend::Redlock(r), Holding::Redlock { held, .. }) => {
                r.release(&held).await.map(|_| ()).map_err(|e| e.to_string())
            }
            _ => Err("holding of another target".into()),
        }
    }
}

/// Run the workload until `until_ns`; returns the number of operations.
pub async fn run(a: WorkerArgs) -> u64 {
    let out = Out { epoch: a.epoch_ns, process: Process::Client(a.process) };
    let endpoints: Vec<String> = a.endpoints.split(',').filter(|s| !s.is_empty()).map(String::from).collect();
    let backend = match a.target {
        Target::Fenced => {
            let mut cfg = ClientConfig::new(endpoints);
            cfg.client_id = format!("chaos-{}-{}", a.process, a.seed);
            cfg.request_timeout = Duration::from_secs(1);
            cfg.call_timeout = Duration::from_secs(5);
            match Client::new(cfg) {
                Ok(c) => Backend::Fenced(c),
                Err(e) => {
                    eprintln!("client {}: {e}", a.process);
                    return 0;
                }
            }
        }
        Target::Etcd | Target::EtcdNoToken => Backend::Etcd(
            Etcd::new(Arc::new(endpoints), a.process as usize)
                .with_timeouts(Duration::from_secs(1), Duration::from_secs(5)),
        ),
        // Per-node timeouts small against the TTL, as Redlock asks.
        Target::Redlock => {
            Backend::Redlock(Redlock::new(Arc::new(TcpTransport), &endpoints, Duration::from_millis(100)))
        }
    };
    let store =
        StoreClient::new(HttpClient::new(Arc::new(TcpTransport)), a.store.clone()).with_timeout(Duration::from_secs(2));
    let ttl = Duration::from_millis(a.ttl_ms);
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed.wrapping_mul(7919).wrapping_add(a.process));
    let now = || mono_ns().saturating_sub(a.epoch_ns);
    let mut ops = 0u64;
    let mut writes = 0u64;
    while now() < a.until_ns && ops < MAX_OPS {
        ops += 1;
        let lock = format!("k{}", rng.gen_range(0..a.locks.max(1)));
        out.emit(EventType::Invoke, "acquire", json!({"lock": lock}));
        let held = match backend.acquire(&lock, ttl, a.process, a.epoch_ns, &mut rng).await {
            Ok(h) => {
                out.emit(EventType::Ok, "acquire", h.acquired(&lock));
                h
            }
            Err((kind, reason)) => {
                out.emit(kind, "acquire", json!({"lock": lock, "reason": reason}));
                tokio::time::sleep(Duration::from_millis(rng.gen_range(10..200))).await;
                continue;
            }
        };
        // The lock is checked once, before the work, as clients do; the
        // work (read, compute, write) can then outlive it: Figure 8-4.
        if held.is_valid() {
            out.emit(EventType::Invoke, "read", json!({"key": lock}));
            match store.get(&lock).await {
                Ok(obj) => {
                    let found = obj.as_ref().map(|o| (&o.value[..], o.version, o.token));
                    out.emit(EventType::Ok, "read", fenced_check::final_read::read_value(&lock, found));
                }
                Err(e) => out.emit(EventType::Info, "read", json!({"key": lock, "error": e.to_string()})),
            }
            // Computing the new value.
            tokio::time::sleep(Duration::from_millis(rng.gen_range(5..50))).await;
            writes += 1;
            let token = held.token();
            let value = format!("p{}-t{token}-w{writes}", a.process);
            let idem = Idem { client: format!("chaos-{}-{}", a.process, a.seed), request_id: writes };
            let w = json!({"key": lock, "token": token, "value": value, "lock": lock});
            out.emit(EventType::Invoke, "write", w.clone());
            // fenced sends its signed token. The others send the bare number:
            // the store checks it for `etcd` (trust-unsigned mode) and only
            // records it, unchecked, for `etcd-no-token` and `redlock`
            // (unfenced mode), where it labels the data for the checkers
            // (S5 compares the final read's token with acknowledged writes)
            // and changes nothing about which writes are accepted.
            let signed = match &held {
                Holding::Fenced(g) => g.signed_token().to_string(),
                _ => String::new(),
            };
            let fence = Fence { token, signed };
            match store.write(&lock, Some(value.clone().into_bytes().into()), Some(&fence), Some(&idem), None).await {
                Ok(_) => out.emit(EventType::Ok, "write", w),
                Err(e) => {
                    let (kind, extra) = store_failure(&e);
                    out.emit(kind, "write", merge(extra, &w));
                }
            }
        }
        let token = held.token();
        out.emit(EventType::Invoke, "release", json!({"lock": lock, "token": token}));
        match backend.release(held).await {
            Ok(()) => out.emit(EventType::Ok, "release", json!({"lock": lock, "token": token})),
            Err(e) => out.emit(EventType::Info, "release", json!({"lock": lock, "token": token, "error": e})),
        }
    }
    ops
}
