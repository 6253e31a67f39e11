//! The lock service as users run it: three real `fenced serve` processes on
//! loopback, real TCP, real fsync, real signals. Bounded in time.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::now;
use support::{grants_in_log, signal, Acked, Cluster, ELECTION_TIMEOUT};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_stay_unique_and_monotonic_while_the_leader_is_killed() {
    // Down for longer than an election timeout: a follower usually takes over.
    leader_kills_lose_no_acknowledged_grant(2, Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_restarted_at_once_keeps_every_acknowledged_grant() {
    // Back before any election: openraft would restore it as leader in its
    // old term, reusing the ids of entries it had sent but not fsynced
    // (docs/design.md, "A restarted leader wins a new election").
    leader_kills_lose_no_acknowledged_grant(10, Duration::ZERO).await;
}

/// Four lock workers; `kill -9` the leader `kills` times, evenly spread,
/// restarting it after `down`. Then S1/S2 on what the clients saw, and S5:
/// every acknowledged grant is in the log of a majority.
async fn leader_kills_lose_no_acknowledged_grant(kills: usize, down: Duration) {
    let mut cluster = Cluster::start(3);
    assert!(cluster.leader(Duration::from_secs(20)).await.is_some(), "no leader\n{}", cluster.logs());
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    const CYCLES: usize = 50;
    let mut workers = Vec::new();
    for w in 0..4 {
        let client = cluster.client();
        let acked = acked.clone();
        let done = done.clone();
        workers.push(tokio::spawn(support::lock_worker(client, w, CYCLES, Duration::from_secs(20), None, done, acked)));
    }
    // The nemesis: kill -9 the leader `kills` times, evenly spread.
    for k in 1..=kills {
        let deadline = now().plus(Duration::from_secs(60));
        while done.load(std::sync::atomic::Ordering::Relaxed) < k * 4 * CYCLES / (kills + 1) && now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let leader = cluster.leader(Duration::from_secs(20)).await.expect("leader");
        cluster.kill(leader);
        tokio::time::sleep(down).await;
        cluster.spawn(leader);
    }
    for w in workers {
        tokio::time::timeout(Duration::from_secs(120), w).await.expect("workers finish in time").expect("worker");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= 4 * CYCLES * 3 / 4, "too few grants acknowledged: {}\n{}", acked.len(), cluster.logs());

    support::assert_unique_and_monotonic(&acked);

    // Restart everything, let a leader commit, then read the logs back.
    for id in 1..=3 {
        cluster.kill(id);
    }
    for id in 1..=3 {
        cluster.spawn(id);
    }
    assert!(cluster.leader(Duration::from_secs(20)).await.is_some(), "no leader after full restart");
    let client = cluster.client();
    let lease = client.grant_lease(Duration::from_secs(5)).await.expect("lease after restart");
    client.acquire_on("after-restart", lease.lease, Duration::ZERO, "").await.expect("grant after restart");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in 1..=3 {
        cluster.kill(id);
    }
    let mut seen: BTreeMap<(String, u64), usize> = BTreeMap::new();
    let mut logs = BTreeMap::new();
    for id in 1..=3 {
        let log = cluster.dump_log(id);
        let grants = grants_in_log(&log);
        for g in grants {
            *seen.entry(g).or_default() += 1;
        }
        logs.insert(id, log);
    }
    // S5: every acknowledged grant is in the log of a majority.
    for a in &acked {
        let n = seen.get(&(a.lock.clone(), a.token)).copied().unwrap_or(0);
        if n < 2 {
            // What each replica holds around that index, to tell a lost
            // entry from one that was never committed.
            let around: String = logs
                .iter()
                .map(|(id, log)| {
                    let near: Vec<String> = log
                        .iter()
                        .filter(|e| e["index"].as_u64().is_some_and(|i| i + 3 >= a.token && i <= a.token + 3))
                        .map(|e| e.to_string())
                        .collect();
                    format!("--- replica {id} log near {}\n{}\n", a.token, near.join("\n"))
                })
                .collect();
            panic!("acknowledged grant {a:?} is in {n} of 3 logs\n{around}\n{}", cluster.logs());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_kills_its_child_within_one_ttl_when_the_cluster_is_gone() {
    let cluster = Cluster::start(3);
    assert!(cluster.leader(Duration::from_secs(20)).await.is_some(), "no leader\n{}", cluster.logs());
    let ttl = Duration::from_secs(2);
    let (mut hold, rx) = support::spawn_hold(&cluster, "2s");
    let mut child_pid = None;
    let start = now();
    while child_pid.is_none() && now().since(start) < Duration::from_secs(20) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            if let Some(p) = line.split(" as pid ").nth(1) {
                child_pid = p.trim().parse::<u32>().ok();
            }
        }
    }
    let child_pid = child_pid.expect("hold started its command");
    // Let one keepalive go through, then freeze every replica.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for id in 1..=3 {
        signal(cluster.pid(id), libc::SIGSTOP);
    }
    let frozen = now();
    // The command must be gone within one TTL. `hold` then tries to release
    // the lock for up to one more TTL before it exits (in vain here).
    let alive = || std::path::Path::new(&format!("/proc/{child_pid}")).exists();
    while alive() && now().since(frozen) < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = now().since(frozen);
    let mut status = None;
    while now().since(frozen) < Duration::from_secs(10) + ttl {
        if let Some(s) = hold.try_wait().expect("try_wait") {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in 1..=3 {
        signal(cluster.pid(id), libc::SIGCONT);
    }
    if status.is_none() {
        let _ = hold.kill();
    }
    let _ = hold.wait();
    let status = status.expect("hold exits within 10 s and one TTL of the cluster freezing");
    assert_eq!(status.code(), Some(75), "hold must exit 75 when the lock is lost");
    assert!(took <= ttl, "hold took {took:?} to end its command; the TTL is {ttl:?}");
    assert!(!std::path::Path::new(&format!("/proc/{child_pid}")).exists(), "the command (pid {child_pid}) still runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_lock_reaches_the_next_waiter_despite_ten_elections() {
    let cluster = Cluster::start(3);
    assert!(cluster.leader(Duration::from_secs(20)).await.is_some(), "no leader\n{}", cluster.logs());
    let client = cluster.client();
    let ttl = Duration::from_secs(3);
    // The holder takes the lock and then goes silent: no keepalives.
    let dead = client.grant_lease(ttl).await.expect("lease");
    let granted_at = now();
    let g = client.acquire_on("shared", dead.lease, Duration::ZERO, "").await.expect("first grant");
    let waiter_lease = client.grant_lease(Duration::from_secs(60)).await.expect("lease");
    let waiter_client = cluster.client();
    let waiter = tokio::spawn(async move {
        let r = waiter_client.acquire_on("shared", waiter_lease.lease, Duration::from_secs(30), "").await;
        (r, now())
    });
    // Ten forced elections in a row, during the TTL.
    let mut elections = 0;
    for i in 0..10u64 {
        let target = (i % 3) + 1;
        if client.transfer_leader(target).await.is_ok() {
            elections += 1;
        }
    }
    let (r, got_at) =
        tokio::time::timeout(Duration::from_secs(40), waiter).await.expect("waiter finishes").expect("task");
    let next = r.expect("the waiter got the lock");
    assert!(next.token.0 > g.token.0, "tokens must increase across the handover");
    let waited = got_at.since(granted_at);
    let bound = ttl + ELECTION_TIMEOUT * 2 + Duration::from_millis(500);
    assert!(elections >= 5, "only {elections} of 10 leadership transfers happened");
    assert!(waited <= bound, "waiter got the lock after {waited:?}; bound is TTL + one election timeout ({bound:?})");
    assert!(waited >= ttl.mul_f64(0.9), "lock handed over after {waited:?}, before the holder's TTL ran out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_lost_its_majority_grants_nothing() {
    let cluster = Cluster::start(3);
    let leader = cluster.leader(Duration::from_secs(20)).await.expect("leader");
    let followers: Vec<u64> = (1..=3).filter(|i| *i != leader).collect();
    for f in &followers {
        signal(cluster.pid(*f), libc::SIGSTOP);
    }
    let client = cluster.client();
    let alone = cluster.addrs[&leader].clone();
    // It notices within an election timeout or so, and says so.
    let start = now();
    let mut state = String::new();
    while now().since(start) < Duration::from_secs(5) {
        if let Ok(s) = client.cluster_status_of(&alone).await {
            state = s.state;
            if state == "LeaderWithoutQuorum" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And it grants nothing: a client that can reach only it gets no lease.
    let mut cfg = fenced_client::ClientConfig::new(vec![alone]);
    cfg.request_timeout = Duration::from_millis(500);
    cfg.call_timeout = Duration::from_secs(2);
    let only_leader = fenced_client::Client::new(cfg).expect("client");
    let granted = only_leader.grant_lease(Duration::from_secs(5)).await;
    for f in &followers {
        signal(cluster.pid(*f), libc::SIGCONT);
    }
    assert_eq!(state, "LeaderWithoutQuorum", "the isolated leader still claims to lead");
    assert!(granted.is_err(), "an isolated leader granted a lease: {granted:?}");
}
