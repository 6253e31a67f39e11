//! Disaster recovery in the simulator: the whole cluster (restore) or a
//! majority's disks (recover) are lost mid-run and brought back through the
//! real `fenced_replica::storage::backup` code; the workload goes on, and every
//! checker judges the history across the disaster. A restore with too small
//! a token floor must be caught by the ordinary checkers, not only by the
//! restore's own verdict.

use fenced_check::verdict::{Property, Status};
use fenced_replica::storage::backup::DEFAULT_BUMP;
use fenced_sim::config::{Disaster, DisasterKind, SimConfig};
use fenced_sim::run::{run_seed, SeedOutcome};

fn run(seed: u64, kind: DisasterKind, bump: u64) -> SeedOutcome {
    let mut cfg = SimConfig::new(seed);
    cfg.duration = std::time::Duration::from_secs(20);
    cfg.disaster = Some(Disaster { kind, bump });
    run_seed(&cfg).unwrap_or_else(|e| panic!("seed {seed}: {e}\nreplay: {}", cfg.replay_command()))
}

fn invalid(o: &SeedOutcome) -> Vec<String> {
    o.verdicts
        .iter()
        .filter(|v| v.status == Status::Invalid)
        .map(|v| format!("{}: {}", v.property, v.message))
        .collect()
}

fn clean_across_the_disaster(kind: DisasterKind, seeds: std::ops::RangeInclusive<u64>) {
    let (mut lost, mut new_grants, mut old_grants, mut added_back) = (0, 0, 0, 0);
    for seed in seeds {
        let o = run(seed, kind, DEFAULT_BUMP);
        let d = o.disaster.as_ref().expect("the disaster happened");
        assert!(d.ok(), "seed {seed}: {}\nreplay: {}", d.message(), o.config.replay_command());
        assert!(invalid(&o).is_empty(), "seed {seed}: {:?}\nreplay: {}", invalid(&o), o.config.replay_command());
        // S4 and S5 judged the logs of both clusters (not unknown).
        for p in [Property::S1, Property::S4, Property::S5] {
            let v = o.verdicts.iter().find(|v| v.property == p).expect("verdict");
            assert_eq!(v.status, Status::Valid, "seed {seed}: {p}: {}", v.message);
        }
        assert!(d.lost_grants.iter().all(|(_, t)| *t < d.floor), "seed {seed}: {}", d.message());
        lost += d.lost_grants.len();
        new_grants += d.new_grants;
        old_grants += d.old_grants;
        added_back += o.history.events.iter().filter(|e| e.f == "added-back").count();
    }
    assert!(new_grants > 0 && old_grants > 0, "no grants on one side of the disaster");
    // Restore loses the grants after the backup: some seeds must show it, or
    // the check of what is lost was never exercised.
    if kind == DisasterKind::Restore {
        assert!(lost > 0, "no seed granted a lock between the backup and the loss");
    }
    // Recovery: the lost replicas come back empty and are added to the
    // survivor's cluster while the workload runs.
    if kind == DisasterKind::Recover {
        assert!(added_back > 0, "no lost replica was added back to a recovered cluster");
    }
}

#[test]
fn a_cluster_restored_from_a_backup_keeps_every_promise_across_the_disaster() {
    clean_across_the_disaster(DisasterKind::Restore, 1..=12);
}

#[test]
fn a_cluster_recovered_from_one_survivor_keeps_every_promise_across_the_disaster() {
    clean_across_the_disaster(DisasterKind::Recover, 1..=12);
}

#[test]
fn a_restore_whose_floor_is_not_above_the_lost_grants_reissues_tokens_and_is_caught() {
    // `--bump 1`: the floor is the backup's index + 1, below the grants the
    // old cluster made after the backup. The new cluster hands their tokens
    // out again; the history's own checkers must see it.
    let mut caught_by_s1_s2 = 0;
    let mut with_lost = 0;
    for seed in 1..=12 {
        let o = run(seed, DisasterKind::Restore, 1);
        let d = o.disaster.as_ref().expect("the disaster happened");
        if d.lost_grants.is_empty() {
            continue;
        }
        with_lost += 1;
        assert!(!d.ok(), "seed {seed}: the restore's verdict missed a floor below lost grants: {}", d.message());
        let bad = invalid(&o);
        if bad.iter().any(|v| v.starts_with("S1") || v.starts_with("S2")) {
            caught_by_s1_s2 += 1;
        }
    }
    assert!(with_lost > 0, "no seed granted a lock between the backup and the loss");
    assert!(caught_by_s1_s2 > 0, "a restore that reissues tokens was never caught by S1 or S2 in {with_lost} seeds");
}
