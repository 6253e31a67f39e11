//! `kill -9` of random replicas and of the fenced store, at random points
//! under the chaos workload's write load (acquire, read, write with the
//! token, release), judged by every checker: S1/S2 (no token reused, tokens
//! increase), S5 (no acknowledged write lost, read back from the store and
//! every acknowledged grant in the replicated log), S3/S4/S6/S7.
//!
//! A short round here (`FENCED_KILLS`, default 4); `scripts/kills` runs
//! rounds of this test until 1,000 kills, resuming where it stopped. The
//! round's numbers are printed as one `KILLS {json}` line on stderr.

mod support;

use rand::{Rng, SeedableRng};
use std::time::Duration;
use support::workload::{assert_all_valid, judge, Workload};
use support::{cluster_key, Cluster, StoreProc};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_kill_9s_of_replicas_and_the_store_lose_no_acknowledged_write() {
    let kills = env_u64("FENCED_KILLS", 4).max(1);
    let seed = env_u64("FENCED_KILLS_SEED", 1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut cluster = Cluster::start(3);
    assert!(cluster.leader(Duration::from_secs(20)).await.is_some(), "no leader\n{}", cluster.logs());
    let key = cluster_key(&cluster, Duration::from_secs(20)).await;
    let mut store = StoreProc::start(&cluster.dir.path().join("store"), Some(&key)).await;
    // One kill every 0.5-3 s; the workload outlasts the last by 10 s.
    let gaps: Vec<Duration> = (0..kills).map(|_| Duration::from_millis(rng.gen_range(500..3000))).collect();
    let total = gaps.iter().sum::<Duration>() + Duration::from_secs(12);
    let wl = Workload::start(&cluster.endpoints(), &store.addr, 3, total, seed);
    let (mut replica_kills, mut store_kills) = (0u64, 0u64);
    for gap in gaps {
        tokio::time::sleep(gap).await;
        // Down for 0-1.5 s: back at once (before any election) or after one.
        let down = Duration::from_millis(rng.gen_range(0..1500));
        if rng.gen_bool(0.25) {
            store.kill9();
            store_kills += 1;
            tokio::time::sleep(down).await;
            store.spawn();
            store.wait_ready(Duration::from_secs(20)).await;
        } else {
            let id = rng.gen_range(1..=3u64);
            cluster.kill(id);
            replica_kills += 1;
            tokio::time::sleep(down).await;
            cluster.spawn(id);
        }
    }
    assert!(cluster.leader(Duration::from_secs(30)).await.is_some(), "no leader after the kills\n{}", cluster.logs());
    let epoch = wl.epoch;
    let events = tokio::task::spawn_blocking(move || wl.finish(Duration::from_secs(60))).await.expect("finish");
    let ok = |f: &str| events.iter().filter(|e| e.f == f && e.kind == fenced_check::history::EventType::Ok).count();
    let (grants, writes) = (ok("acquire"), ok("write"));
    assert!(grants >= 5, "too few grants to judge ({grants})\n{}", cluster.logs());
    for id in 1..=3 {
        cluster.kill(id);
    }
    let dirs: Vec<_> = (1..=3).map(|id| (id, cluster.data_dir(id))).collect();
    let (_, verdicts) = judge(events, epoch, &store, &dirs, cluster.dir.path()).await;
    let violations: u64 = verdicts.iter().map(|v| v.violations as u64).sum();
    eprintln!(
        "KILLS {}",
        serde_json::json!({
            "seed": seed, "kills": replica_kills + store_kills, "replica_kills": replica_kills,
            "store_kills": store_kills, "acknowledged_grants": grants, "acknowledged_writes": writes,
            "violations": violations,
            "verdicts": verdicts.iter().map(|v| (v.property.to_string(), format!("{:?}", v.status))).collect::<std::collections::BTreeMap<_, _>>(),
        })
    );
    assert_all_valid(&verdicts, &format!("seed {seed}; history in {}", cluster.dir.path().display()));
}
