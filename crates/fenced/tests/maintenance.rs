//! Maintenance at the node level, with real `fenced serve` processes:
//! membership changes and a rolling restart under the chaos runner's lock
//! workload (its history judged by every checker), and the refusals of
//! configuration, data and peers a replica cannot use. Bounded in time.

mod support;

use fenced_core::admin::Membership;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::Duration;
use support::workload::{acquire_latency_ms, assert_all_valid, judge, Workload};
use support::{cluster_key, fenced, signal, Cluster, StoreProc, ELECTION_TIMEOUT};

const CLI: Duration = Duration::from_secs(120);

/// Wait until the workload has `n` more acknowledged grants (bounded).
async fn progress(wl: &Workload, n: usize) {
    let target = wl.grants() + n;
    let start = support::now();
    while wl.grants() < target && support::now().since(start) < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn members(cluster: &Cluster) -> Membership {
    let (code, out) = fenced(&["cluster", "members", "--json", "--endpoints", &cluster.endpoints_arg()], CLI);
    assert_eq!(code, 0, "cluster members failed: {out}");
    serde_json::from_str(out.trim()).expect("membership JSON")
}

/// Run `fenced cluster ARGS --json` and return the membership it printed.
fn change(cluster: &Cluster, args: &[&str]) -> Membership {
    let endpoints = cluster.endpoints_arg();
    let mut all = vec!["cluster"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", "--endpoints", &endpoints]);
    let (code, out) = fenced(&all, CLI);
    assert_eq!(code, 0, "fenced {all:?} failed: {out}\n{}", cluster.logs());
    serde_json::from_str(out.lines().last().unwrap_or("")).expect("membership JSON")
}

/// The leader the given members agree on (asked of each), within `within`.
async fn leader_among(cluster: &Cluster, ids: &BTreeSet<u64>, within: Duration) -> Option<u64> {
    let client = cluster.client();
    let start = support::now();
    while support::now().since(start) < within {
        let mut seen = Vec::new();
        for id in ids {
            if let Ok(s) = client.cluster_status_of(&cluster.addrs[id]).await {
                seen.extend(s.leader);
            }
        }
        if let Some(l) = seen.first().copied() {
            if seen.len() * 2 > ids.len() && seen.iter().all(|x| *x == l) && ids.contains(&l) {
                return Some(l);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Wait until replica `id` has applied what the leader had committed.
async fn caught_up(cluster: &Cluster, id: u64, leader_ep: &str, within: Duration) -> bool {
    let client = cluster.client();
    let start = support::now();
    let Ok(target) = client.cluster_status_of(leader_ep).await.map(|s| s.commit_index) else { return false };
    while support::now().since(start) < within {
        if client.cluster_status_of(&cluster.addrs[&id]).await.is_ok_and(|s| s.applied_index >= target) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn membership_grows_to_five_loses_two_and_replaces_a_killed_one_under_load() {
    let mut cluster = Cluster::start_with_spares(3, 3);
    assert!(cluster.leader(Duration::from_secs(20)).await.is_some(), "no leader\n{}", cluster.logs());
    let key = cluster_key(&cluster, Duration::from_secs(20)).await;
    let store = StoreProc::start(&cluster.dir.path().join("store"), Some(&key)).await;
    let seed = 10;
    let wl = Workload::start(&cluster.endpoints(), &store.addr, 3, Duration::from_secs(45), seed);
    let mut windows = Vec::new();
    progress(&wl, 5).await;

    // Grow: 4 and 5 start empty with --join and are added (learner, then voter).
    for id in [4u64, 5] {
        cluster.spawn_with(id, &["--join"]);
        let t0 = wl.now();
        let m = change(&cluster, &["add", &id.to_string(), &cluster.addrs[&id].clone()]);
        windows.push((t0, wl.now()));
        assert!(m.voters.contains(&id), "{id} is not a voter after add: {m:?}");
        progress(&wl, 3).await;
    }
    assert_eq!(members(&cluster).voters, BTreeSet::from([1, 2, 3, 4, 5]));

    // Shrink: remove 1 and 2 (the leader among them hands off first).
    for id in [1u64, 2] {
        let t0 = wl.now();
        let m = change(&cluster, &["remove", &id.to_string()]);
        windows.push((t0, wl.now()));
        assert!(!m.nodes.contains_key(&id), "{id} is still a member: {m:?}");
        progress(&wl, 3).await;
    }
    cluster.kill(1);
    cluster.kill(2);
    assert_eq!(members(&cluster).voters, BTreeSet::from([3, 4, 5]));

    // Replace a killed replica: 3 dies (kill -9), 6 joins in its place.
    cluster.kill(3);
    // The kill costs an election if 3 led, and requests in flight to 3 their
    // timeout: wait until the workload makes progress again, so that the
    // window below measures the replacement, not the crash.
    progress(&wl, 3).await;
    cluster.spawn_with(6, &["--join"]);
    let t0 = wl.now();
    let m = change(&cluster, &["replace", "3", "6", &cluster.addrs[&6].clone()]);
    windows.push((t0, wl.now()));
    assert_eq!(m.voters, BTreeSet::from([4, 5, 6]), "{m:?}");
    progress(&wl, 3).await;

    // A change that would leave no live majority is refused without --force.
    let voters = BTreeSet::from([4u64, 5, 6]);
    let leader = leader_among(&cluster, &voters, Duration::from_secs(20)).await.expect("a leader among 4, 5, 6");
    let others: Vec<u64> = voters.iter().copied().filter(|v| *v != leader).collect();
    signal(cluster.pid(others[0]), libc::SIGSTOP);
    tokio::time::sleep(ELECTION_TIMEOUT * 2 * 2 + Duration::from_millis(500)).await;
    let (code, out) =
        fenced(&["cluster", "remove", &others[1].to_string(), "--endpoints", &cluster.addrs[&leader].clone()], CLI);
    signal(cluster.pid(others[0]), libc::SIGCONT);
    assert_eq!(code, 1, "removing {} while {} is stopped must be refused: {out}", others[1], others[0]);
    assert!(out.contains("would_lose_quorum") && out.contains("--force"), "{out}");
    assert_eq!(members(&cluster).voters, voters, "the refused change changed the membership");

    // The removed replica 1 comes back with its old state: it grants nothing.
    cluster.spawn_with(1, &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut cfg = fenced_client::ClientConfig::new(vec![cluster.addrs[&1].clone()]);
    cfg.request_timeout = Duration::from_millis(500);
    cfg.call_timeout = Duration::from_secs(3);
    let only_removed = fenced_client::Client::new(cfg).expect("client");
    let granted = only_removed.grant_lease(Duration::from_secs(5)).await;
    assert!(granted.is_err(), "a removed replica granted a lease: {granted:?}");
    let status = cluster.client().cluster_status_of(&cluster.addrs[&1]).await.expect("replica 1 answers");
    assert_ne!(status.state, "Leader", "the removed replica leads: {status:?}");
    let leader = leader_among(&cluster, &voters, Duration::from_secs(20)).await;
    assert!(leader.is_some_and(|l| voters.contains(&l)), "leader {leader:?} is not one of {voters:?}");

    let epoch = wl.epoch;
    let events = tokio::task::spawn_blocking(move || wl.finish(Duration::from_secs(60))).await.expect("finish");
    let grants = events.iter().filter(|e| e.f == "acquire" && e.kind == fenced_check::history::EventType::Ok).count();
    assert!(grants >= 20, "too few grants to judge ({grants})\n{}", cluster.logs());
    let steps = ["add 4", "add 5", "remove 1", "remove 2", "replace 3 by 6"];
    for ((step, (a, b)), worst) in steps.iter().zip(&windows).zip(acquire_latency_ms(&events, &windows)) {
        eprintln!("{step}: took {} ms; longest acquire overlapping it {worst} ms (L1's measure)", (b - a) / 1_000_000);
    }
    eprintln!("grants {grants}");
    for id in cluster.addrs.keys().copied().collect::<Vec<_>>() {
        cluster.kill(id);
    }
    let dirs: Vec<_> = voters.iter().map(|id| (*id, cluster.data_dir(*id))).collect();
    let (_, verdicts) = judge(events, epoch, &store, &dirs, cluster.dir.path()).await;
    assert_all_valid(&verdicts, &format!("seed {seed}; history in {}", cluster.dir.path().display()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_under_load_loses_no_acknowledged_grant() {
    let mut cluster = Cluster::start(3);
    assert!(cluster.leader(Duration::from_secs(20)).await.is_some(), "no leader\n{}", cluster.logs());
    let key = cluster_key(&cluster, Duration::from_secs(20)).await;
    let store = StoreProc::start(&cluster.dir.path().join("store"), Some(&key)).await;
    let seed = 11;
    let wl = Workload::start(&cluster.endpoints(), &store.addr, 3, Duration::from_secs(35), seed);
    let mut windows = Vec::new();
    let all: BTreeSet<u64> = BTreeSet::from([1, 2, 3]);
    for id in 1..=3u64 {
        progress(&wl, 5).await;
        let t0 = wl.now();
        // SIGTERM: the replica drains (hands off leadership, refuses new
        // sessions), then stops; it comes back trusting its data directory.
        let code = cluster.terminate(id, Duration::from_secs(30));
        assert_eq!(code, Some(0), "replica {id} did not drain and exit cleanly\n{}", cluster.logs());
        cluster.spawn_with(id, &[]);
        let leader = leader_among(&cluster, &all, Duration::from_secs(20)).await.expect("leader after restart");
        let leader_ep = cluster.addrs[&leader].clone();
        assert!(caught_up(&cluster, id, &leader_ep, Duration::from_secs(30)).await, "{id} did not catch up");
        windows.push((t0, wl.now()));
    }
    progress(&wl, 5).await;
    let epoch = wl.epoch;
    let events = tokio::task::spawn_blocking(move || wl.finish(Duration::from_secs(60))).await.expect("finish");
    let grants = events.iter().filter(|e| e.f == "acquire" && e.kind == fenced_check::history::EventType::Ok).count();
    for (i, ((a, b), worst)) in windows.iter().zip(acquire_latency_ms(&events, &windows)).enumerate() {
        eprintln!(
            "restart of {}: {} ms; longest acquire overlapping it {worst} ms (L1's measure)",
            i + 1,
            (b - a) / 1_000_000
        );
    }
    eprintln!("grants {grants}");
    assert!(grants >= 20, "too few grants to judge ({grants})\n{}", cluster.logs());
    for id in 1..=3 {
        cluster.kill(id);
    }
    let dirs: Vec<_> = all.iter().map(|id| (*id, cluster.data_dir(*id))).collect();
    // S5 (every acknowledged grant is in the log), S1/S2 (tokens unique and
    // monotonic) and the rest.
    let (_, verdicts) = judge(events, epoch, &store, &dirs, cluster.dir.path()).await;
    assert_all_valid(&verdicts, &format!("seed {seed}; history in {}", cluster.dir.path().display()));
}

/// One raw HTTP/1.1 POST (the test speaks as a peer would, or would not).
fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut req =
        format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    s.write_all(body).expect("write body");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_and_data_of_unknown_versions_are_refused_and_one_version_back_is_read() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader(Duration::from_secs(20)).await.expect("leader");
    let addr = cluster.addrs[&leader].clone();
    // A peer from the future is refused with what to do.
    let (status, text) = post(&addr, "/raft/v1/vote", &[("x-fenced-protocol", "9"), ("x-fenced-from", "7")], b"x");
    assert_eq!(status, 426, "{text}");
    assert!(text.contains("peer_protocol_version") && text.contains("understands v1 to v2"), "{text}");
    // A peer of another cluster is refused.
    let other = [("x-fenced-protocol", "2"), ("x-fenced-cluster", "staging"), ("x-fenced-from", "7")];
    let (status, text) = post(&addr, "/raft/v1/vote", &other, b"x");
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("peer_other_cluster") && text.contains("\"staging\""), "{text}");
    // A version-1 peer (no handshake headers) passes the handshake: its
    // message reaches the decoder (which rejects these bytes as a frame).
    let (status, text) = post(&addr, "/raft/v1/vote", &[], b"x");
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("bad frame"), "{text}");

    // A data directory as the previous release wrote it (no fenced.meta) is
    // read, upgraded, and the replica catches up.
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    cluster.kill(follower);
    std::fs::remove_file(cluster.data_dir(follower).join("fenced.meta")).expect("remove meta");
    let client = cluster.client();
    let lease = client.grant_lease(Duration::from_secs(5)).await.expect("lease while one is down");
    client.acquire_on("upgrade", lease.lease, Duration::ZERO, "").await.expect("grant while one is down");
    cluster.spawn(follower);
    assert!(caught_up(&cluster, follower, &addr, Duration::from_secs(30)).await, "v1 replica did not catch up");
    assert!(cluster.data_dir(follower).join("fenced.meta").exists(), "the v1 directory was not upgraded");
    assert!(cluster.logs().contains("upgraded the data directory from format v1"), "{}", cluster.logs());

    // A data directory from a newer fenced is refused with what to do.
    cluster.kill(follower);
    let meta = cluster.data_dir(follower).join("fenced.meta");
    let bytes = std::fs::read(&meta).expect("meta");
    // Rewrite the outer frame with format 3 (the body stays v2's).
    let mut future = Vec::new();
    let body = &bytes[8..];
    let mut payload = body.to_vec();
    assert_eq!(payload[0], 2, "format v2 expected");
    payload[0] = 3;
    future.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    future.extend_from_slice(&crc32c_of(&payload).to_le_bytes());
    future.extend_from_slice(&payload);
    std::fs::write(&meta, future).expect("write");
    let peers: Vec<String> = cluster.addrs.iter().map(|(i, a)| format!("{i}={a}")).collect();
    let dir = cluster.data_dir(follower);
    let (code, out) = fenced(
        &[
            "serve",
            "--id",
            &follower.to_string(),
            "--listen",
            &cluster.addrs[&follower],
            "--peers",
            &peers.join(","),
            "--data-dir",
            &dir.to_string_lossy(),
            "--heartbeat",
            "50ms",
            "--election-timeout",
            "300ms",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("newer fenced (data format v3)") && out.contains("one version older"), "{out}");
}

/// CRC32C (Castagnoli), bitwise: the frame checksum, for forging a frame.
fn crc32c_of(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_data_dir_and_an_impossible_ttl_are_refused_with_the_fix() {
    // An impossible TTL: 1 s cannot outlive a failover with 1–2 s election timeouts.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("d");
    let base = ["serve", "--id", "1", "--listen", "127.0.0.1:1", "--peers", "1=127.0.0.1:1"];
    let mut args = base.to_vec();
    let d = dir.to_string_lossy().to_string();
    args.extend_from_slice(&["--data-dir", &d, "--election-timeout", "1s", "--min-ttl", "1s"]);
    let (code, out) = fenced(&args, Duration::from_secs(30));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("min-ttl: 1000ms is below what the election timeout allows"), "{out}");
    assert!(out.contains("Raise min-ttl to at least 3000ms"), "{out}");
    // An election timeout below three heartbeats.
    let mut args = base.to_vec();
    args.extend_from_slice(&["--data-dir", &d, "--heartbeat", "200ms", "--election-timeout", "500ms"]);
    let (code, out) = fenced(&args, Duration::from_secs(30));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("election-timeout: 500ms is below 3 × heartbeat (200ms) = 600ms"), "{out}");

    // Cluster A runs, then stops; cluster B (same name, same addresses,
    // fresh directories) runs in its place.
    let mut a = Cluster::start(3);
    a.leader(Duration::from_secs(20)).await.expect("leader of A");
    cluster_key(&a, Duration::from_secs(20)).await;
    for id in 1..=3 {
        a.kill(id);
    }
    let mut b = Cluster {
        dir: tempfile::tempdir().expect("tempdir"),
        addrs: a.addrs.clone(),
        bootstrap: a.addrs.clone(),
        procs: Default::default(),
    };
    for id in 1..=3 {
        b.spawn(id);
    }
    let leader = b.leader(Duration::from_secs(20)).await.expect("leader of B");
    let key_b = cluster_key(&b, Duration::from_secs(20)).await;
    let victim = (1..=3).find(|i| *i != leader).expect("a follower");

    // Refused at start: A's directory, configured for another cluster name.
    let a_dir = a.data_dir(victim).to_string_lossy().to_string();
    let peers: Vec<String> = b.addrs.iter().map(|(i, x)| format!("{i}={x}")).collect();
    let peers = peers.join(",");
    let (code, out) = fenced(
        &[
            "serve",
            "--id",
            &victim.to_string(),
            "--listen",
            "127.0.0.1:1",
            "--peers",
            &peers,
            "--data-dir",
            &a_dir,
            "--cluster-name",
            "b",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("belongs to cluster \"fenced\"") && out.contains("Point --data-dir"), "{out}");
    // `fenced config check` says the same, offline.
    let file = tmp.path().join("replica.toml");
    std::fs::write(
        &file,
        format!("id = {victim}\nlisten = \"127.0.0.1:1\"\ndata_dir = {a_dir:?}\ncluster_name = \"b\"\njoin = true\n"),
    )
    .expect("write config");
    let (code, out) = fenced(&["config", "check", &file.to_string_lossy()], Duration::from_secs(30));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("data-dir: the data directory belongs to cluster \"fenced\""), "{out}");

    // Same name, same addresses: B's follower is given A's directory. The
    // membership agrees, so it starts, but every peer message carries the
    // cluster key, and B refuses the foreign replica (and it refuses B).
    b.kill(victim);
    let b_dir = b.data_dir(victim);
    std::fs::remove_dir_all(&b_dir).expect("remove B's dir");
    std::fs::rename(a.data_dir(victim), &b_dir).expect("move A's dir in");
    b.spawn(victim);
    let start = support::now();
    while support::now().since(start) < Duration::from_secs(15) && !b.logs().contains("holds data of another cluster") {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = b.logs();
    assert!(logs.contains("holds data of another cluster"), "no refusal logged\n{logs}");
    assert!(logs.contains("give it an empty one"), "{logs}");
    // B still serves, with its own key.
    let client = b.client();
    let lease = client.grant_lease(Duration::from_secs(5)).await.expect("B grants");
    client.acquire_on("after", lease.lease, Duration::ZERO, "").await.expect("B grants a lock");
    assert_eq!(cluster_key(&b, Duration::from_secs(5)).await, key_b);
}
