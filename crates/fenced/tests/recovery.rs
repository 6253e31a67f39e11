//! Disaster recovery on real processes: 3 replicas hold locks and write to
//! fenced stores; 2 are killed for good (`kill -9`); the cluster is
//! recovered from the survivor (`fenced cluster recover`) and, separately,
//! restored from a backup (`fenced cluster snapshot save`, `fenced snapshot
//! restore`) into a new cluster. In both, the next tokens exceed every token
//! issued before the loss, the stores accept the new holders' writes and
//! refuse the old holders', and S1/S2 hold over the acknowledged grants of
//! the old and the new cluster together; the new log holds no entry at or
//! below the floor.

mod support;

use fenced_client::{AcquireOptions, Client, ClientConfig, StoreError};
use std::time::Duration;
use support::{assert_unique_and_monotonic, cluster_key, fenced, now, Acked, Cluster, StoreProc};

const LOCKS: usize = 3;
const WITHIN: Duration = Duration::from_secs(30);

/// A held lock of the old cluster: its token and signed token.
struct Old {
    lock: String,
    token: u64,
    signed: String,
}

fn client_of(endpoints: Vec<String>) -> Client {
    let mut cfg = ClientConfig::new(endpoints);
    cfg.request_timeout = Duration::from_secs(1);
    cfg.call_timeout = Duration::from_secs(15);
    Client::new(cfg).expect("client")
}

async fn until_ready(client: &Client, logs: impl Fn() -> String) {
    let start = now();
    while client.cluster_key().await.is_err() {
        assert!(now().since(start) < WITHIN, "no leader within {WITHIN:?}\n{}", logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Acquire `lock`, write to every store, and return the grant.
async fn acquire_and_write(client: &Client, lock: &str, stores: &[&StoreProc], acked: &mut Vec<Acked>) -> Old {
    let invoked = now();
    let guard = client.acquire(lock, AcquireOptions::new(Duration::from_secs(60))).await.expect("acquire");
    acked.push(Acked { lock: lock.into(), token: guard.token(), invoked, completed: now() });
    for s in stores {
        guard.put(&s.client(), lock, format!("by {}", guard.token())).await.expect("a current holder's write");
    }
    let old = Old { lock: lock.into(), token: guard.token(), signed: guard.signed_token().to_string() };
    // Keep the lease alive no longer: the guard's keepalive stops with it.
    std::mem::forget(guard);
    old
}

/// Every old holder's write is refused as stale by `store`.
async fn old_holders_refused(store: &StoreProc, old: &[Old]) {
    for o in old {
        match store.client().put(&o.lock, "zombie", o.token, &o.signed, None).await {
            Err(StoreError::StaleToken { presented, current }) => {
                assert_eq!(presented, o.token);
                assert!(current > o.token);
            }
            other => panic!("{}: the old holder's token {} was not refused: {other:?}", o.lock, o.token),
        }
    }
}

fn json_of(args: &[&str]) -> serde_json::Value {
    let (code, out) = fenced(args, WITHIN);
    assert_eq!(code, 0, "fenced {args:?} failed: {out}");
    serde_json::from_str(out.lines().find(|l| l.starts_with('{')).map_or(out.as_str(), |_| &out))
        .unwrap_or_else(|e| panic!("fenced {args:?}: not JSON ({e}): {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_killed_down_to_one_replica_is_recovered_and_restored_without_reissuing_a_token() {
    let mut cluster = Cluster::start_with_spares(3, 1);
    assert!(cluster.leader(WITHIN).await.is_some(), "no leader\n{}", cluster.logs());
    let key = cluster_key(&cluster, WITHIN).await;
    let store_a = StoreProc::start(&cluster.dir.path().join("store-a"), Some(&key)).await;
    let store_b = StoreProc::start(&cluster.dir.path().join("store-b"), Some(&key)).await;
    let client = cluster.client();
    let mut acked = Vec::new();
    let mut old = Vec::new();
    for i in 0..LOCKS {
        old.push(acquire_and_write(&client, &format!("k{i}"), &[&store_a, &store_b], &mut acked).await);
    }
    // A backup, then grants the backup does not know of.
    let backup = cluster.dir.path().join("backup.fenced");
    let backup_arg = backup.to_string_lossy().to_string();
    let eps = cluster.endpoints()[..3].join(",");
    let saved = json_of(&["cluster", "snapshot", "save", &backup_arg, "--endpoints", &eps, "--json"]);
    assert_eq!(saved["locks"].as_array().map(Vec::len), Some(LOCKS), "{saved}");
    let inspected = json_of(&["snapshot", "inspect", &backup_arg, "--json"]);
    assert_eq!(inspected["index"], saved["index"]);
    assert_eq!(inspected["members"].as_object().map(|m| m.len()), Some(3), "{inspected}");
    for i in 0..LOCKS {
        old.push(acquire_and_write(&client, &format!("late{i}"), &[&store_a, &store_b], &mut acked).await);
    }
    let highest = acked.iter().map(|a| a.token).max().expect("grants");
    assert!(highest > saved["highest_token"].as_u64().expect("highest"));

    // The majority is lost for good; the survivor is stopped for recovery.
    for id in [2, 3, 1] {
        cluster.kill(id);
    }

    // Recovery from the survivor, then one member added back.
    let r1 = cluster.data_dir(1).to_string_lossy().to_string();
    let rec = json_of(&["cluster", "recover", "--data-dir", &r1, "--id", "1", "--json"]);
    let floor = rec["floor"].as_u64().expect("floor");
    assert!(floor > highest, "floor {floor} is not above token {highest}: {rec}");
    let a1 = cluster.addrs[&1].clone();
    cluster.spawn_with(1, &["--peers", &format!("1={a1}")]);
    let recovered = client_of(vec![a1.clone()]);
    until_ready(&recovered, || cluster.logs()).await;
    let mut after = acked.clone();
    let mut new_tokens = Vec::new();
    for i in 0..LOCKS {
        let o = acquire_and_write(&recovered, &format!("late{i}"), &[&store_a], &mut after).await;
        assert!(o.token > floor && o.token > highest, "token {} after {highest}", o.token);
        new_tokens.push(o.token);
    }
    old_holders_refused(&store_a, &old[LOCKS..]).await;
    assert_unique_and_monotonic(&after);
    cluster.spawn_with(4, &["--join"]);
    let added = json_of(&["cluster", "add", "4", &cluster.addrs[&4], "--endpoints", &a1, "--json"]);
    assert!(added["voters"].as_array().is_some_and(|v| v.len() == 2), "{added}");
    let o = acquire_and_write(&recovered, "k0", &[&store_a], &mut after).await;
    assert!(o.token > *new_tokens.iter().max().expect("tokens"));
    cluster.kill(4);
    cluster.kill(1);
    // The recovered log starts above the floor: no entry, so no token, at or below it.
    let log = cluster.dump_log(1);
    let indexes: Vec<u64> = log.iter().filter_map(|e| e["index"].as_u64()).collect();
    assert!(indexes.len() > LOCKS, "{log:?}");
    assert!(indexes.iter().all(|i| *i > floor), "an entry at or below the floor {floor}: {indexes:?}");

    // Separately: a new cluster restored from the backup (the old cluster,
    // and the recovered one, are gone), against the other store.
    let mut fresh = Cluster::start_with_spares(0, 3);
    let peers = fresh.addrs.iter().map(|(i, a)| format!("{i}={a}")).collect::<Vec<_>>().join(",");
    for id in 1..=3u64 {
        let dir = fresh.data_dir(id).to_string_lossy().to_string();
        let r = json_of(&[
            "snapshot",
            "restore",
            &backup_arg,
            "--data-dir",
            &dir,
            "--id",
            &id.to_string(),
            "--peers",
            &peers,
            "--cluster-name",
            "restored",
            "--json",
        ]);
        assert_eq!(r["locks_freed"].as_u64(), Some(LOCKS as u64), "{r}");
    }
    for id in 1..=3u64 {
        fresh.spawn_with(id, &["--peers", &peers, "--cluster-name", "restored"]);
    }
    let restored = fresh.client();
    until_ready(&restored, || fresh.logs()).await;
    let mut after = acked.clone();
    for i in 0..LOCKS {
        let o = acquire_and_write(&restored, &format!("k{i}"), &[&store_b], &mut after).await;
        assert!(o.token > highest, "restored token {} is not above {highest}", o.token);
    }
    for i in 0..LOCKS {
        acquire_and_write(&restored, &format!("late{i}"), &[&store_b], &mut after).await;
    }
    old_holders_refused(&store_b, &old).await;
    assert_unique_and_monotonic(&after);
}
