//! A checker that never fails proves nothing. These sweeps run deliberately
//! broken variants of the real code and require the checkers to catch them.
//! The flags are process-wide: nextest (the README's test command) runs each
//! test in its own process; under `cargo test`, pass `--test-threads 1`.

use fenced_check::verdict::{Property, Status};
use fenced_sim::config::SimConfig;
use fenced_sim::run::run_seed;
use std::sync::atomic::Ordering;

/// Run seeds until one violates `property`; return the seed.
fn sweep_until(property: Property, seeds: u64, configure: impl Fn(&mut SimConfig)) -> Option<u64> {
    for seed in 1..=seeds {
        let mut cfg = SimConfig::new(seed);
        configure(&mut cfg);
        let out = run_seed(&cfg).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        if out.verdicts.iter().any(|v| v.property == property && v.status == Status::Invalid) {
            return Some(seed);
        }
    }
    None
}

#[test]
fn a_state_machine_that_reuses_tokens_is_caught() {
    fenced_core::machine::bugs::REUSE_TOKENS.store(true, Ordering::Relaxed);
    let found = sweep_until(Property::S1, 200, |_| {});
    fenced_core::machine::bugs::REUSE_TOKENS.store(false, Ordering::Relaxed);
    assert!(found.is_some(), "200 seeds of a token-reusing state machine found no S1 violation");
}

#[test]
fn a_store_that_accepts_stale_tokens_is_caught() {
    fenced_store::bugs::ACCEPT_STALE.store(true, Ordering::Relaxed);
    let found = sweep_until(Property::S3, 200, |_| {});
    fenced_store::bugs::ACCEPT_STALE.store(false, Ordering::Relaxed);
    assert!(found.is_some(), "200 seeds of a store without the token check found no S3 violation");
}

#[test]
fn a_leader_restored_in_its_old_term_is_caught() {
    // openraft's default: a restarted leader resumes its term without an
    // election. After `kill -9` it has lost entries it had sent but not yet
    // fsynced, reassigns their (term, index) ids, and the replicas' committed
    // logs diverge, which S5 judges.
    fenced_replica::bugs::LEADER_RESTORE.store(true, Ordering::Relaxed);
    let found = sweep_until(Property::S5, 200, |_| {});
    fenced_replica::bugs::LEADER_RESTORE.store(false, Ordering::Relaxed);
    assert!(found.is_some(), "200 seeds of leaders restored in their old term found no S5 violation");
}

#[test]
fn a_guard_that_fences_per_key_is_caught() {
    // Issue 17, finding 4: under `--guard k0/=k0` a stale holder wrote a key
    // under the prefix that the new holder had not written yet. The guarded
    // workload writes several keys per lock, and S3 judges per lock.
    fenced_store::bugs::FENCE_PER_KEY.store(true, Ordering::Relaxed);
    let found = sweep_until(Property::S3, 200, |c| c.guarded = true);
    fenced_store::bugs::FENCE_PER_KEY.store(false, Ordering::Relaxed);
    assert!(found.is_some(), "200 seeds of a guard fencing per key found no S3 violation");
}
