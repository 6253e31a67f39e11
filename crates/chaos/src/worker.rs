//! The client process (`fenced chaos client …`): the simulator's honest
//! workload on the real network. It loops acquire → read → write with the
//! token → release and prints every event as one JSON line on stdout; the
//! driver collects the lines into the history.
//!
//! Clients are separate processes, not tasks in the driver, so that the
//! nemesis can SIGSTOP a client that holds a lock: the pause of Figure 8-4,
//! with real signals rather than a simulated one. Times are CLOCK_MONOTONIC
//! nanoseconds minus the driver's start, which is one clock for every process
//! on the machine, so the events of all clients interleave correctly.

use fenced_check::history::{Event, EventType, Process};
use fenced_client::{AcquireOptions, Client, ClientConfig, ClientError};
use fenced_io::http::HttpClient;
use fenced_io::transport::TcpTransport;
use fenced_store::client::{Idem, StoreClient, StoreError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// Most operations one client makes, whatever the duration.
const MAX_OPS: u64 = 200_000;

/// CLOCK_MONOTONIC in nanoseconds (shared by every process on the host).
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

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
        Some(code) => (EventType::Fail, json!(code)),
        None => (EventType::Info, json!(e.to_string())),
    }
}

fn store_failure(e: &StoreError) -> (EventType, Value) {
    match e {
        StoreError::StaleToken { current, .. } => (EventType::Fail, json!({"code": "stale_token", "current": current})),
        e if e.is_rejection() => (EventType::Fail, json!({"code": e.code()})),
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

/// Run the workload until `until_ns`; returns the number of operations.
pub async fn run(a: WorkerArgs) -> u64 {
    let out = Out { epoch: a.epoch_ns, process: Process::Client(a.process) };
    let endpoints: Vec<String> = a.endpoints.split(',').filter(|s| !s.is_empty()).map(String::from).collect();
    let mut cfg = ClientConfig::new(endpoints);
    cfg.client_id = format!("chaos-{}-{}", a.process, a.seed);
    cfg.request_timeout = Duration::from_secs(1);
    cfg.call_timeout = Duration::from_secs(5);
    let client = match Client::new(cfg) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("client {}: {e}", a.process);
            return 0;
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
        let guard = match client.acquire(&lock, AcquireOptions::new(ttl).wait(ttl * 2)).await {
            Ok(g) => {
                let v = json!({"lock": lock, "token": g.token(), "lease": g.lease(), "signed": g.signed_token()});
                out.emit(EventType::Ok, "acquire", v);
                g
            }
            Err(e) => {
                let (kind, reason) = acquire_failure(&e);
                out.emit(kind, "acquire", json!({"lock": lock, "reason": reason}));
                tokio::time::sleep(Duration::from_millis(rng.gen_range(10..200))).await;
                continue;
            }
        };
        if guard.is_valid() {
            out.emit(EventType::Invoke, "read", json!({"key": lock}));
            match store.get(&lock).await {
                Ok(obj) => {
                    let v = obj.as_ref().map(|o| String::from_utf8_lossy(&o.value).to_string());
                    let (version, token) = obj.map(|o| (o.version, o.token)).unwrap_or((0, 0));
                    out.emit(
                        EventType::Ok,
                        "read",
                        json!({"key": lock, "value": v, "version": version, "token": token}),
                    );
                }
                Err(e) => out.emit(EventType::Info, "read", json!({"key": lock, "error": e.to_string()})),
            }
            writes += 1;
            let value = format!("p{}-t{}-w{}", a.process, guard.token(), writes);
            let idem = Idem { client: format!("chaos-{}-{}", a.process, a.seed), request_id: writes };
            let w = json!({"key": lock, "token": guard.token(), "value": value, "lock": lock});
            out.emit(EventType::Invoke, "write", w.clone());
            match store.put(&lock, value.clone().into_bytes(), guard.token(), guard.signed_token(), Some(&idem)).await {
                Ok(_) => out.emit(EventType::Ok, "write", w),
                Err(e) => {
                    let (kind, extra) = store_failure(&e);
                    out.emit(kind, "write", merge(extra, &w));
                }
            }
        }
        let token = guard.token();
        out.emit(EventType::Invoke, "release", json!({"lock": lock, "token": token}));
        match guard.release().await {
            Ok(()) => out.emit(EventType::Ok, "release", json!({"lock": lock, "token": token})),
            Err(e) => {
                out.emit(EventType::Info, "release", json!({"lock": lock, "token": token, "error": e.to_string()}))
            }
        }
    }
    ops
}
