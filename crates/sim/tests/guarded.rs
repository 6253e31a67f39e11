//! The guarded workload (`SimConfig::guarded`, `fenced sim --guarded`): each
//! lock guards a prefix of store keys and clients write several keys under
//! it. Against the real store every checker must pass, and the workload must
//! really put writes of different keys under one lock in front of S3.

use fenced_check::history::EventType;
use fenced_check::verdict::Status;
use fenced_sim::config::SimConfig;
use fenced_sim::run::run_seed;
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn the_guarded_workload_is_valid_and_writes_several_keys_per_lock() {
    for seed in 1..=3 {
        let mut cfg = SimConfig::new(seed);
        cfg.guarded = true;
        let out = run_seed(&cfg).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        for v in &out.verdicts {
            assert_ne!(v.status, Status::Invalid, "seed {seed}: {} {}", v.property, v.message);
        }
        let mut keys_per_lock: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for e in out.history.events.iter().filter(|e| e.f == "write" && e.kind == EventType::Invoke) {
            let (Some(lock), Some(key)) = (e.value["lock"].as_str(), e.value["key"].as_str()) else { continue };
            if e.value.get("byzantine").is_none() {
                assert!(key.starts_with(&format!("{lock}/")), "seed {seed}: {key} is not under {lock}/");
                keys_per_lock.entry(lock.into()).or_default().insert(key.into());
            }
        }
        assert!(keys_per_lock.values().any(|k| k.len() > 1), "seed {seed}: {keys_per_lock:?}");
        assert!(out.config.replay_command().contains("--guarded"));
    }
}
