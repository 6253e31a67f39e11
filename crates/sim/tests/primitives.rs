//! The primitives workload (`SimConfig::primitives`, `fenced sim
//! --primitives`): clients mix shared holds, re-entrant exclusive holds and
//! semaphore permits (changing the count) into today's loop, under the
//! default faults, through the real client, replicas and store. Every
//! checker must pass, and the extended S4 must see grants of every kind in
//! the log. `PRIMITIVE_SEEDS` (default 4) sets how many seeds run.
//!
//! The broken variant's flag is process-wide: nextest runs each test in its
//! own process.

use fenced_check::verdict::{Property, Status};
use fenced_sim::config::SimConfig;
use fenced_sim::run::run_seed;
use std::sync::atomic::Ordering;

fn seeds() -> u64 {
    std::env::var("PRIMITIVE_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(4)
}

#[test]
fn the_primitives_workload_is_valid_under_faults() {
    let (mut shared, mut permits, mut reentrant, mut counts) = (0, 0, 0, 0);
    let mut violations = Vec::new();
    for seed in 1..=seeds() {
        let mut cfg = SimConfig::new(seed);
        cfg.primitives = true;
        let out = run_seed(&cfg).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        for v in out.verdicts.iter().filter(|v| v.status == Status::Invalid) {
            violations.push(format!("seed {seed}: {} {}", v.property, v.message));
        }
        println!("seed {seed}: {} events, {} invalid verdicts", out.history.events.len(), violations.len());
        let log = |f: &str, mode: &str| {
            out.history
                .events
                .iter()
                .filter(|e| e.f == f && e.value["mode"] == mode && e.process.is_named("log"))
                .count()
        };
        shared += log("grant", "shared");
        permits += log("grant", "permit");
        counts += out.history.events.iter().filter(|e| e.f == "permits" && e.process.is_named("log")).count();
        reentrant += out.history.events.iter().filter(|e| e.f == "reacquire" && e.value["holds"] == 2).count();
        assert!(out.config.replay_command().contains("--primitives"));
    }
    println!(
        "{} seeds: {} violations; log grants: {shared} shared, {permits} permits; {counts} count changes; \
         {reentrant} re-entrant holds",
        seeds(),
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(shared > 0 && permits > 0 && counts > 0 && reentrant > 0, "the mix exercised every primitive");
}

#[test]
fn a_writer_admitted_while_readers_hold_is_caught_in_the_simulator() {
    fenced_core::machine::bugs::WRITER_WITH_READERS.store(true, Ordering::Relaxed);
    let found = (1..=40).find(|seed| {
        let mut cfg = SimConfig::new(*seed);
        cfg.primitives = true;
        let out = run_seed(&cfg).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        out.verdicts.iter().any(|v| v.property == Property::S4 && v.status == Status::Invalid)
    });
    fenced_core::machine::bugs::WRITER_WITH_READERS.store(false, Ordering::Relaxed);
    assert!(found.is_some(), "40 seeds of a table admitting writers next to readers found no S4 violation");
    println!("caught on seed {found:?}");
}
