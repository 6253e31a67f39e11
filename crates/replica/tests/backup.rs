//! Backup, restore and recovery, in-process over real TCP and real files:
//! a cluster killed down to one replica is recovered from it, and a new
//! cluster is restored from a backup; in both, the next token exceeds every
//! token issued before, by the token floor.

use fenced_client::{Client, ClientConfig};
use fenced_io::clock::now;
use fenced_io::clock::SystemClock;
use fenced_io::disk::{Disk, FsDisk};
use fenced_io::transport::TcpTransport;
use fenced_replica::config::ReplicaConfig;
use fenced_replica::node::Seams;
use fenced_replica::server::{self, Running};
use fenced_replica::storage::backup::{self, DEFAULT_BUMP};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn disk(dir: &Path, id: u64) -> Arc<FsDisk> {
    Arc::new(FsDisk::open(dir.join(id.to_string())).expect("disk"))
}

async fn start(id: u64, peers: &BTreeMap<u64, String>, dir: &Path, cluster: &str) -> Running {
    let mut config = ReplicaConfig::new(id, peers[&id].clone(), peers.clone());
    config.cluster_name = cluster.into();
    let seams = Seams {
        transport: Arc::new(TcpTransport),
        disk: disk(dir, id),
        clock: Arc::new(SystemClock::new()),
        seed: id,
        key_entropy: [7; 32],
    };
    server::start(config, seams).await.expect("replica starts")
}

fn client(peers: &BTreeMap<u64, String>) -> Client {
    Client::new(ClientConfig::new(peers.values().cloned().collect())).expect("client")
}

async fn until_leader(client: &Client) {
    let start = now();
    while client.cluster_key().await.is_err() {
        assert!(now().since(start) < Duration::from_secs(20), "no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Grant `n` locks on one lease; returns the highest token.
async fn hold_locks(client: &Client, prefix: &str, n: usize) -> u64 {
    let lease = client.grant_lease(Duration::from_secs(60)).await.expect("lease").lease;
    let mut highest = 0;
    for i in 0..n {
        let g = client.acquire_on(&format!("{prefix}-{i}"), lease, Duration::ZERO, "").await.expect("grant");
        highest = highest.max(g.token.0);
    }
    highest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_and_restore_start_above_every_token_issued_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let peers: BTreeMap<u64, String> = (1..=3).map(|i| (i, format!("127.0.0.1:{}", free_port()))).collect();
    let mut running = BTreeMap::new();
    for id in 1..=3 {
        running.insert(id, start(id, &peers, dir.path(), "prod").await);
    }
    let old = client(&peers);
    until_leader(&old).await;
    hold_locks(&old, "before", 3).await;
    let export = old.snapshot().await.expect("backup through the leader");
    let file = backup::decode_export(&export).expect("base64");
    let saved = backup::decode(&file).expect("a valid backup");
    assert_eq!(saved.summary().locks.len(), 3, "{:?}", saved.summary());
    assert_eq!(saved.index(), export.index);
    // Grants after the backup: a restore must start above them too, which
    // only the bump guarantees (the backup does not know them).
    let highest = hold_locks(&old, "after", 5).await;
    assert!(highest > saved.summary().highest_token);

    // The majority is lost for good: 2 and 3 die, and 1 is stopped.
    for (_, r) in std::mem::take(&mut running) {
        r.stop().await;
    }

    // Recovery from the survivor: a one-member cluster above the floor.
    let report = backup::recover(disk(dir.path(), 1), 1, None, DEFAULT_BUMP).expect("recover");
    assert!(report.floor >= highest + DEFAULT_BUMP, "{report:?}");
    assert!(report.locks_freed >= 8, "{report:?}");
    let alone = BTreeMap::from([(1, peers[&1].clone())]);
    let r1 = start(1, &alone, dir.path(), "prod").await;
    let recovered = client(&alone);
    until_leader(&recovered).await;
    let next = hold_locks(&recovered, "before", 1).await;
    assert!(next > report.floor, "token {next} must exceed the floor {}", report.floor);
    r1.stop().await;

    // Restore from the backup, into new directories, as a new cluster.
    let restored_dir = tempfile::tempdir().expect("tempdir");
    let new_peers: BTreeMap<u64, String> = (1..=3).map(|i| (i, format!("127.0.0.1:{}", free_port()))).collect();
    for id in 1..=3 {
        let d = disk(restored_dir.path(), id);
        let r = backup::restore(&*d, &saved, "prod-restored", id, &new_peers, DEFAULT_BUMP).expect("restore");
        assert_eq!(r.floor, saved.index() + DEFAULT_BUMP);
    }
    let d1 = disk(restored_dir.path(), 1);
    let again = backup::restore(&*d1, &saved, "prod-restored", 1, &new_peers, DEFAULT_BUMP);
    assert!(matches!(again, Err(backup::BackupError::NotEmpty(_))), "a restore never overwrites");
    assert!(d1.read("snapshot").expect("read").is_some());
    for id in 1..=3 {
        running.insert(id, start(id, &new_peers, restored_dir.path(), "prod-restored").await);
    }
    let restored = client(&new_peers);
    until_leader(&restored).await;
    let status = restored.status("before-0").await.expect("status");
    assert!(status.holder.is_none(), "every lease ended at the restore");
    let next = hold_locks(&restored, "before", 2).await;
    assert!(next > highest && next > saved.index() + DEFAULT_BUMP, "token {next} after {highest}");
    for (_, r) in running {
        r.stop().await;
    }
}

#[test]
fn a_damaged_or_foreign_backup_file_is_refused() {
    assert!(matches!(backup::decode(b"not a backup at all"), Err(backup::BackupError::Damaged(_))));
    let mut file = Vec::new();
    fenced_io::frame::encode_into(&("hello", 3u32), &mut file).expect("encode");
    assert!(backup::decode(&file).is_err());
}
