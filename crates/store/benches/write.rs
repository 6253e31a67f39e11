//! Write throughput of the store with token checks against
//! `--unsafe-no-fencing`, in the same run (not a timed test).
//!
//! `cargo bench -p fenced-store --bench write [-- CLIENTS WRITES SECONDS]`
//!
//! Each round starts a store over real TCP on a fresh temporary directory
//! (real fsync), runs CLIENTS concurrent writers (each holding its own lock
//! and so its own key and signed token, as a lock holder would) until
//! WRITES writes or SECONDS have passed, and reports writes per second.
//! Fenced and unfenced rounds alternate, so drift in the machine's disk
//! affects both; the ratio is of the medians.

use ed25519_dalek::SigningKey;
use fenced_core::machine::token::{sign, TokenClaims};
use fenced_io::clock::now;
use fenced_io::clock::SystemClock;
use fenced_io::disk::FsDisk;
use fenced_io::http::HttpClient;
use fenced_io::transport::TcpTransport;
use fenced_store::{StoreClient, StoreConfig, StoreSeams};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ROUNDS: usize = 3;

async fn round(unsafe_no_fencing: bool, clients: u64, writes: u64, seconds: u64) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::from_bytes(&[1; 32]);
    let mut config = StoreConfig::new("127.0.0.1:0", vec![key.verifying_key()]);
    config.unsafe_no_fencing = unsafe_no_fencing;
    let seams = StoreSeams {
        transport: Arc::new(TcpTransport),
        disk: Arc::new(FsDisk::open(dir.path()).expect("disk")),
        clock: Arc::new(SystemClock::new()),
    };
    let store = fenced_store::start(config, seams).await.expect("store starts");
    let done = Arc::new(AtomicU64::new(0));
    let deadline = now().plus(Duration::from_secs(seconds));
    let started = now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let lock = format!("bench-{c}");
        let token = 1000 + c;
        let signed = sign(&key, TokenClaims { key_id: 0, lock: lock.clone(), token, lease: c, issued_at_ms: 0 });
        let client = StoreClient::new(HttpClient::new(Arc::new(TcpTransport)), store.addr.clone());
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let value = vec![b'x'; 128];
            while now() < deadline && done.fetch_add(1, Ordering::Relaxed) < writes {
                client.put(&lock, value.clone(), token, &signed, None).await.expect("write accepted");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let elapsed = now().since(started).as_secs_f64();
    let n = done.load(Ordering::Relaxed).min(writes) as f64;
    store.stop().await;
    n / elapsed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; take only numeric arguments.
    let nums: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let clients = nums.first().copied().unwrap_or(32);
    let writes = nums.get(1).copied().unwrap_or(20_000);
    let seconds = nums.get(2).copied().unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let (mut fenced, mut unfenced) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        let f = rt.block_on(round(false, clients, writes, seconds));
        let u = rt.block_on(round(true, clients, writes, seconds));
        println!("round {r}: fenced {f:.0} writes/s, unfenced {u:.0} writes/s");
        fenced.push(f);
        unfenced.push(u);
    }
    let (f, u) = (median(fenced), median(unfenced));
    println!(
        "store write throughput ({clients} clients, <= {writes} writes or {seconds} s per round, median of {ROUNDS}): \
         fenced {f:.0}/s, unfenced {u:.0}/s, ratio fenced/unfenced {:.3} (overhead {:.1} %)",
        f / u,
        (1.0 - f / u) * 100.0
    );
}
