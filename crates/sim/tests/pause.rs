//! A paused replica is a process that does not run: its links are held and
//! its clock reads the instant the pause began, so when it wakes its
//! timekeeper sees the whole pause at once, as the seed's GC-paused node
//! would, and every checker still holds.

use fenced_check::history::Process;
use fenced_check::verdict::Status;
use fenced_sim::config::SimConfig;
use fenced_sim::nemesis::{Fault, Planned};
use fenced_sim::run::run_seed;
use std::time::Duration;

#[test]
fn a_paused_replica_notices_its_pause_when_it_wakes() {
    for node in 1..=3 {
        let mut cfg = SimConfig::new(1);
        cfg.duration = Duration::from_secs(15);
        cfg.script = Some(vec![Planned {
            start: Duration::from_secs(4),
            end: Duration::from_secs(9),
            fault: Fault::Pause { node },
        }]);
        let out = run_seed(&cfg).unwrap_or_else(|e| panic!("node {node}: {e}"));
        let bad: Vec<String> =
            out.verdicts.iter().filter(|v| v.status != Status::Valid).map(|v| format!("{v:?}")).collect();
        assert!(bad.is_empty(), "pause of node {node}\n{bad:#?}");
        let noticed: Vec<u64> = out
            .history
            .events
            .iter()
            .filter(|e| e.process.is_named(Process::CLOCK) && e.f == "pauses")
            .filter_map(|e| e.value["node"].as_u64())
            .collect();
        assert_eq!(noticed, vec![node], "only the paused replica {node} noticed a pause");
    }
}

/// A scripted fault the simulator cannot make (the chaos runner's
/// libfaketime offset) fails the seed with an error naming it.
#[test]
fn a_fault_the_simulator_cannot_make_is_an_error() {
    let mut cfg = SimConfig::new(1);
    cfg.duration = Duration::from_secs(5);
    cfg.script = Some(vec![Planned {
        start: Duration::from_secs(1),
        end: Duration::from_secs(2),
        fault: Fault::Clock { node: 1, offset_s: 60 },
    }]);
    match run_seed(&cfg) {
        Ok(_) => panic!("a clock offset was accepted"),
        Err(e) => assert!(e.to_string().contains("cannot make the fault `clock`"), "{e}"),
    }
}
