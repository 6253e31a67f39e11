//! Process pauses on real `fenced` processes, with SIGSTOP and SIGCONT:
//! a stopped follower is suspected by its peers' failure detectors and
//! recovers; a leader stopped past the election timeout steps down when it
//! resumes and a concurrent workload sees no stale grant. (A stopped
//! `fenced lock hold` is in `hold.rs`.)
//! Bounded in time; every process is ended by pid.

mod support;

use fenced_core::api::ClusterStatus;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{grants_in_log, now, signal, Acked, Cluster};

async fn status(cluster: &Cluster, id: u64) -> Option<ClusterStatus> {
    cluster.client().cluster_status_of(&cluster.addrs[&id]).await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_follower_is_suspected_by_the_leader_and_recovers_after_sigcont() {
    let cluster = Cluster::start(3);
    let leader = cluster.leader(Duration::from_secs(20)).await.expect("leader");
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    // Let the detectors learn the probe interval.
    tokio::time::sleep(Duration::from_secs(2)).await;
    signal(cluster.pid(follower), libc::SIGSTOP);
    let stopped = now();
    let mut worst = None;
    while now().since(stopped) < Duration::from_secs(3) {
        if let Some(s) = status(&cluster, leader).await {
            let h = s.peers[&follower].clone();
            if h.suspected {
                worst = Some(h);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal(cluster.pid(follower), libc::SIGCONT);
    let worst = worst.unwrap_or_else(|| panic!("the leader never suspected the stopped follower\n{}", cluster.logs()));
    assert!(worst.phi > worst.phi_threshold, "{worst:?}");
    assert!(worst.last_heard_ms_ago.is_some_and(|ms| ms >= 500), "{worst:?}");
    let resumed = now();
    let mut recovered = None;
    while now().since(resumed) < Duration::from_secs(10) {
        if let Some(s) = status(&cluster, leader).await {
            let h = s.peers[&follower].clone();
            if !h.suspected && h.phi < h.phi_threshold {
                recovered = Some(h);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered.is_some(), "the follower is still suspected 10 s after SIGCONT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_stopped_past_the_election_timeout_steps_down_and_no_grant_is_stale() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader(Duration::from_secs(20)).await.expect("leader");
    let old_term = status(&cluster, leader).await.expect("status").term;
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for w in 0..3 {
        let (client, acked, stop, done) = (cluster.client(), acked.clone(), stop.clone(), done.clone());
        let wait = Duration::from_secs(5);
        workers.push(tokio::spawn(support::lock_worker(client, w, 2000, wait, Some(stop), done, acked)));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Stop the leader for 3 s: ten times the longest election timeout.
    signal(cluster.pid(leader), libc::SIGSTOP);
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal(cluster.pid(leader), libc::SIGCONT);
    // It notices the pause and does not serve as leader again.
    let resumed = now();
    let mut seen: Option<ClusterStatus> = None;
    while now().since(resumed) < Duration::from_secs(10) {
        if let Some(s) = status(&cluster, leader).await {
            assert!(
                !(s.state == "Leader" && s.term == old_term),
                "the resumed leader claimed to lead its old term: {s:?}"
            );
            let c = s.clock.clone().expect("clock health");
            if c.pauses >= 1 && s.state == "Follower" && s.term > old_term {
                seen = Some(s);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen =
        seen.unwrap_or_else(|| panic!("the resumed leader did not report the pause and step down\n{}", cluster.logs()));
    let clock = seen.clock.expect("clock health");
    assert!(clock.longest_pause_ms >= 2000, "{clock:?}");
    assert!(clock.pause_stepdowns >= 1, "it stepped down as leader: {clock:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        tokio::time::timeout(Duration::from_secs(60), w).await.expect("workers finish in time").expect("worker");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(!acked.is_empty(), "the workload got no grant at all\n{}", cluster.logs());
    support::assert_unique_and_monotonic(&acked);
    // Every acknowledged grant is in a majority of logs, and no two overlap.
    for id in 1..=3 {
        cluster.kill(id);
    }
    let mut in_logs: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for id in 1..=3 {
        for g in grants_in_log(&cluster.dump_log(id)) {
            *in_logs.entry(g).or_default() += 1;
        }
    }
    for a in &acked {
        let n = in_logs.get(&(a.lock.clone(), a.token)).copied().unwrap_or(0);
        assert!(n >= 2, "acknowledged grant {a:?} is in {n} of 3 logs: a stale grant");
    }
}
