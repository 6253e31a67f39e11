//! Real chaos runs against the peer targets, with the one fault that tells
//! them apart: a client paused while it holds a lock, for longer than the
//! lock's TTL (DDIA Figure 8-4).
//!
//! - etcd with the lock key's revision as a token the store checks: no
//!   stale write lands (S3 valid).
//! - Redlock, which has no token: the woken client's write lands after a
//!   newer holder's (S3 invalid).
//!
//! They need root, `ip netns`, `nft`, and `etcd` / `redis-server`; without
//! them they fail under `CI` (which installs all of it) and are skipped with
//! a printed reason elsewhere. The `fenced` binary is taken from next to
//! this test executable: build it first with `cargo build -p fenced`.

mod common;

use fenced_chaos::nemesis::{self, Fault, Kind};
use fenced_chaos::run::{self, Config, Outcome};
use fenced_chaos::target::Target;
use fenced_check::verdict::{Property, Status};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(1);
const DURATION: Duration = Duration::from_secs(30);

fn pause_only() -> BTreeSet<Kind> {
    [Kind::Pause].into_iter().collect()
}

/// Seeds whose schedule pauses clients at least three times, each for at
/// least three TTLs (etcd's leases last at least 2 s whatever is asked). The
/// schedule is a pure function of the seed, so this is deterministic; it
/// only spares the test magic numbers.
fn seeds_with_client_pauses(nodes: u64) -> impl Iterator<Item = u64> {
    (0..10_000u64).filter(move |s| {
        nemesis::schedule(*s, nodes, &pause_only(), run::FAULTS_FROM, run::heal_at(DURATION))
            .iter()
            .filter(|p| matches!(p.fault, Fault::ClientPause { .. }) && p.end - p.start >= TTL * 3)
            .count()
            >= 3
    })
}

/// Runs whose schedule pauses clients are tried until one pauses a client
/// while it holds a lock: whether a pause lands while the client holds its
/// lock depends on real timing (seed 14 missed once, in a full test run on a
/// loaded 2-core machine, and passed when run again), and a run without such
/// a pause tests nothing.
const RUNS_MAX: usize = 3;

async fn run_target(target: Target, nodes: u64) -> (Outcome, PathBuf) {
    let mut tried = Vec::new();
    for seed in seeds_with_client_pauses(nodes).take(RUNS_MAX) {
        let (o, out) = run_seed(target, nodes, seed).await;
        let paused_holders = o
            .history
            .events
            .iter()
            .filter(|e| e.process.is_named("nemesis") && e.f == "start" && e.value["holding"] == true)
            .count();
        if paused_holders > 0 {
            return (o, out);
        }
        eprintln!("{}: seed {seed} never paused a client that held a lock; trying the next", target.name());
        let _ = std::fs::remove_dir_all(&out);
        tried.push(seed);
    }
    panic!("the nemesis never paused a client that held a lock (seeds {tried:?})");
}

async fn run_seed(target: Target, nodes: u64, seed: u64) -> (Outcome, PathBuf) {
    let out = std::env::temp_dir().join(format!("fenced-chaos-{}-{}-{seed}", target.name(), std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    eprintln!("{}: seed {seed}, output in {}", target.name(), out.display());
    let cfg = Config {
        bin: common::fenced_bin(),
        target,
        nodes,
        clients: 3,
        duration: DURATION,
        kinds: pause_only(),
        seed,
        out: out.clone(),
        locks: 2,
        ttl: TTL,
        progress: true,
    };
    let o = run::run(cfg).await.expect("the chaos run completes");
    for v in &o.verdicts {
        eprintln!("{} {:?} {}", v.property, v.status, v.message);
    }
    eprintln!("metrics: {:?}", o.metrics);
    assert!(o.leftovers_after.is_empty(), "namespaces left behind: {:?}", o.leftovers_after);
    (o, out)
}

fn status(o: &Outcome, p: Property) -> Status {
    o.verdicts.iter().find(|v| v.property == p).map(|v| v.status).expect("verdict present")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_with_revision_tokens_lets_no_stale_write_land() {
    if !common::can_run(&["etcd"]) {
        return;
    }
    let (o, out) = run_target(Target::Etcd, 3).await;
    for p in [Property::S1, Property::S2, Property::S3] {
        assert_eq!(status(&o, p), Status::Valid, "{p} against etcd with tokens; see {}", out.display());
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redlock_client_paused_past_its_ttl_writes_stale_data() {
    if !common::can_run(&["redis-server"]) {
        return;
    }
    let (o, out) = run_target(Target::Redlock, 5).await;
    assert_eq!(
        status(&o, Property::S3),
        Status::Invalid,
        "a Redlock client paused past its TTL should have overwritten a newer holder's write; see {}",
        out.display()
    );
    let _ = std::fs::remove_dir_all(&out);
}
