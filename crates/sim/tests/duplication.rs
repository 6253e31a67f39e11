//! Duplicated requests: with every new connection duplicated for the whole
//! fault window, each request on it reaches its server a second time, with
//! its own latency (Raft messages, acquires, keepalives, releases, store
//! writes). Retries must be answered, not executed again; every checker
//! judges each run.

use fenced_check::verdict::Status;
use fenced_sim::config::SimConfig;
use fenced_sim::nemesis::{Fault, Planned};
use fenced_sim::run::run_seed;
use std::time::Duration;

#[test]
fn requests_delivered_twice_change_nothing_that_any_checker_can_see() {
    for seed in 1..=4 {
        let mut cfg = SimConfig::new(seed);
        cfg.duration = Duration::from_secs(20);
        cfg.script =
            Some(vec![Planned { start: Duration::ZERO, end: cfg.gst(), fault: Fault::Duplicate { rate: 1.0 } }]);
        let out = run_seed(&cfg).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let bad: Vec<String> =
            out.verdicts.iter().filter(|v| v.status != Status::Valid).map(|v| format!("{v:?}")).collect();
        assert!(bad.is_empty(), "seed {seed} (a script: run this test to replay)\n{bad:#?}");
        assert!(
            out.duplicated_connections >= 10,
            "seed {seed}: only {} connections were duplicated",
            out.duplicated_connections
        );
    }
}
