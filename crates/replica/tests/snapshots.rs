//! Snapshots and log compaction, in-process over real TCP and real files:
//! the log is purged after a snapshot, a restarted replica recovers from its
//! snapshot plus the log tail, and a replica that missed purged entries
//! catches up by snapshot install.

use fenced_client::{Client, ClientConfig};
use fenced_io::clock::now;
use fenced_io::clock::SystemClock;
use fenced_io::disk::FsDisk;
use fenced_io::transport::TcpTransport;
use fenced_replica::config::ReplicaConfig;
use fenced_replica::node::Seams;
use fenced_replica::server::{self, Running};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

async fn start(id: u64, peers: &BTreeMap<u64, String>, dir: &Path) -> Running {
    let mut config = ReplicaConfig::new(id, peers[&id].clone(), peers.clone());
    config.snapshot_every_entries = 40;
    config.log_kept_after_snapshot = 5;
    config.heartbeat = Duration::from_millis(50);
    config.election_timeout_min = Duration::from_millis(300);
    config.election_timeout_max = Duration::from_millis(600);
    let seams = Seams {
        transport: Arc::new(TcpTransport),
        disk: Arc::new(FsDisk::open(dir.join(id.to_string())).expect("disk")),
        clock: Arc::new(SystemClock::new()),
        seed: id,
        key_entropy: [7; 32],
    };
    server::start(config, seams).await.expect("replica starts")
}

async fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = now();
    while !f() {
        assert!(now().since(start) < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_purge_the_log_and_restore_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let peers: BTreeMap<u64, String> = (1..=3).map(|i| (i, format!("127.0.0.1:{}", free_port()))).collect();
    let mut running = BTreeMap::new();
    for id in 1..=3 {
        running.insert(id, start(id, &peers, dir.path()).await);
    }
    let client = Client::new(ClientConfig::new(peers.values().cloned().collect())).expect("client");
    let start_wait = now();
    while client.cluster_key().await.is_err() {
        assert!(now().since(start_wait) < Duration::from_secs(20), "no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Take replica 3 down, so it misses entries that will be purged.
    running.remove(&3).expect("r3").stop().await;
    let lease = client.grant_lease(Duration::from_secs(60)).await.expect("lease").lease;
    let mut last = None;
    for i in 0..60 {
        let g = client.acquire_on(&format!("lock-{}", i % 7), lease, Duration::ZERO, "").await.expect("grant");
        client.release(&g.lock, lease, g.token.0).await.expect("release");
        last = Some(g);
    }
    let held = client.acquire_on("kept", lease, Duration::ZERO, "").await.expect("grant kept");
    let leader = running.values().find(|r| r.replica.is_leader()).expect("a leader");
    let log = leader.replica.log.clone();
    wait_until("a snapshot to purge the log", Duration::from_secs(20), || {
        log.entries().map(|e| e.first().is_some_and(|f| f.log_id.index > 1)).unwrap_or(false)
    })
    .await;
    assert!(dir.path().join("1/snapshot").exists() || dir.path().join("2/snapshot").exists());

    // Replica 3 comes back and must catch up by snapshot install.
    running.insert(3, start(3, &peers, dir.path()).await);
    let r3 = running[&3].replica.clone();
    wait_until("replica 3 to catch up", Duration::from_secs(20), || {
        r3.shared.read(|t| t.lock_status("kept").holder.is_some_and(|h| h.token == held.token))
    })
    .await;

    // Restart everything from disk: the table is intact and tokens go on increasing.
    for (_, r) in std::mem::take(&mut running) {
        r.stop().await;
    }
    for id in 1..=3 {
        running.insert(id, start(id, &peers, dir.path()).await);
    }
    let status = client.status("kept").await.expect("status after restart");
    assert_eq!(status.holder.map(|h| h.token), Some(held.token));
    let next = client.acquire_on("after", lease, Duration::ZERO, "").await.expect("grant after restart");
    assert!(next.token > held.token && held.token > last.expect("grants").token);
    for (_, r) in running {
        r.stop().await;
    }
}
