//! `kill -9` of a real `fenced store` process during 500 concurrent fenced
//! writes (8 writers × 63, tokens from real lock grants). After a restart on
//! the same data directory, every acknowledged write is readable (its value,
//! or a later write of the same writer with a token at least as high), and
//! no key's `max_token` went backwards. Bounded in count and time.

mod support;

use fenced_client::{AcquireOptions, Guard, StoreError};
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::now;
use support::{cluster_key, Cluster, StoreProc};

const WRITERS: usize = 8;
const WRITES_PER_WRITER: usize = 63;

/// The last write a writer saw acknowledged.
#[derive(Debug, Clone, Copy, Default)]
struct Acked {
    seq: usize,
    token: u64,
}

/// `w{writer}-{seq}`, so a read tells which write it is.
fn value(writer: usize, seq: usize) -> String {
    format!("w{writer}-{seq}")
}

fn seq_of(v: &[u8]) -> Option<usize> {
    std::str::from_utf8(v).ok()?.split_once('-')?.1.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_concurrent_writes_loses_no_acknowledged_write() {
    let cluster = Cluster::start(3);
    assert!(cluster.leader(Duration::from_secs(20)).await.is_some(), "no leader\n{}", cluster.logs());
    let key = cluster_key(&cluster, Duration::from_secs(20)).await;
    let mut store = StoreProc::start(&cluster.dir.path().join("store"), Some(&key)).await;

    // Each writer owns key `k{w}`, guarded by the lock of the same name. It
    // takes the lock twice (release and re-acquire halfway), so tokens rise
    // during the run.
    let client = cluster.client();
    let opts = || AcquireOptions::new(Duration::from_secs(30)).wait(Duration::from_secs(10));
    let total = WRITERS * WRITES_PER_WRITER;
    let kill_after = rand::thread_rng().gen_range(total / 10..total * 9 / 10);
    let acked_count = Arc::new(AtomicUsize::new(0));
    let acked: Arc<Mutex<BTreeMap<usize, Acked>>> = Arc::default();
    let first_tokens: Arc<Mutex<BTreeMap<usize, (u64, String)>>> = Arc::default();
    let deadline = now().plus(Duration::from_secs(60));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (client, sc) = (client.clone(), store.client());
        let (acked, acked_count, first_tokens) = (acked.clone(), acked_count.clone(), first_tokens.clone());
        tasks.push(tokio::spawn(async move {
            let name = format!("k{w}");
            let mut guard: Guard = client.acquire(&name, opts()).await.expect("acquire");
            first_tokens.lock().expect("lock").insert(w, (guard.token(), guard.signed_token().to_string()));
            for seq in 0..WRITES_PER_WRITER {
                if now() > deadline {
                    break;
                }
                if seq == WRITES_PER_WRITER / 2 {
                    guard.release().await.expect("release");
                    guard = client.acquire(&name, opts()).await.expect("re-acquire");
                }
                match guard.put(&sc, &name, value(w, seq)).await {
                    Ok(ok) => {
                        assert_eq!(ok.token, guard.token());
                        acked.lock().expect("lock").insert(w, Acked { seq, token: ok.token });
                        acked_count.fetch_add(1, Ordering::SeqCst);
                    }
                    // The store was killed: this write's outcome is unknown.
                    Err(StoreError::Unreachable(_) | StoreError::Unavailable { .. }) => break,
                    Err(e) => panic!("writer {w} write {seq} refused: {e}"),
                }
            }
            let _ = guard.release().await;
        }));
    }
    // Kill at a random point of the load (bounded wait).
    while acked_count.load(Ordering::SeqCst) < kill_after && now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    store.kill9();
    let killed_at = acked_count.load(Ordering::SeqCst);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t).await.expect("writer ends").expect("writer ok");
    }
    assert!(killed_at >= kill_after, "the load never reached {kill_after} acknowledged writes");
    assert!(killed_at < total, "the kill came after the load ended");

    store.spawn();
    store.wait_ready(Duration::from_secs(30)).await;
    let sc = store.client();
    let acked = acked.lock().expect("lock").clone();
    for (w, a) in &acked {
        let name = format!("k{w}");
        let obj = sc.get(&name).await.expect("get").unwrap_or_else(|| panic!("{name} lost\n{}", store.log()));
        let seq = seq_of(&obj.value).unwrap_or_else(|| panic!("{name}: unexpected value {:?}", obj.value));
        // The acknowledged write, or the one in flight at the kill (at most one later).
        assert!(seq == a.seq || seq == a.seq + 1, "{name}: acknowledged write {} lost, read {seq}", a.seq);
        assert!(obj.token >= a.token, "{name}: token went back from {} to {}", a.token, obj.token);
        let max = sc.max_token(&name).await.expect("max_token");
        assert!(max >= a.token, "{name}: max_token went back from {} to {max}", a.token);
    }
    // And the store still fences: a writer's first token is stale now for
    // every writer that re-acquired before the kill.
    let first_tokens = first_tokens.lock().expect("lock").clone();
    for (w, a) in &acked {
        let (t0, s0) = &first_tokens[w];
        if a.token > *t0 {
            match sc.put(&format!("k{w}"), "stale", *t0, s0, None).await {
                Err(StoreError::StaleToken { presented, current }) => assert_eq!((presented, current), (*t0, a.token)),
                other => panic!("k{w}: an older token after restart: {other:?}"),
            }
        }
    }
}
