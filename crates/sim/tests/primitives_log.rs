//! The extended S4 (and S1) on logs of the real lock table driven with a
//! random mix of shared and exclusive acquires, re-entrant holds, semaphore
//! permits, count changes, releases, cancels, expiries, revocations and
//! the leader's handoffs, replayed through `fenced_core::machine::audit` as the
//! simulator does. A correct table passes on every seed; the broken one
//! (a writer admitted while readers hold) is caught.
//!
//! The flag is process-wide: nextest runs each test in its own process.

use fenced_check::checkers::{s1, s4};
use fenced_check::history::{Event, History};
use fenced_check::verdict::{Options, Status};
use fenced_core::machine::command::{Command, Mode, Request};
use fenced_core::machine::table::LockTable;
use fenced_core::{LeaseId, Response, Token};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

const NAMES: [&str; 3] = ["rw0", "rw1", "sem"];

/// One random run of `steps` entries; returns the log's requests in order.
fn random_log(seed: u64, steps: u64) -> Vec<(u64, Request)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut table = LockTable::new(Default::default());
    let mut log = Vec::new();
    let mut index = 0;
    // (name, lease) -> token of the grants we know of, for releases.
    let mut held: BTreeMap<(String, u64), u64> = BTreeMap::new();
    let mut leases: Vec<u64> = Vec::new();
    let mut push = |table: &mut LockTable, cmd: Command, log: &mut Vec<(u64, Request)>| {
        index += 1;
        let req = Request { origin: None, at_ms: 0, cmd };
        let applied = table.apply(index, &req);
        log.push((index, req));
        applied
    };
    push(&mut table, Command::SetSigningKey { secret: [3; 32] }, &mut log);
    push(&mut table, Command::SemPermits { name: "sem".into(), permits: 2 }, &mut log);
    for _ in 0..steps {
        let lease = if leases.is_empty() || rng.gen_bool(0.05) {
            let a = push(&mut table, Command::LeaseGrant { ttl_ms: 1000 }, &mut log);
            if let Response::LeaseGranted { lease, .. } = a.response {
                leases.push(lease.0);
            }
            continue;
        } else {
            leases[rng.gen_range(0..leases.len())]
        };
        let name = NAMES[rng.gen_range(0..NAMES.len())].to_string();
        let sem = name == "sem";
        let cmd = match rng.gen_range(0..100) {
            0..=39 if sem => Command::SemAcquire { name: name.clone(), lease: LeaseId(lease), wait: rng.gen_bool(0.7) },
            0..=39 => Command::AcquireMode {
                lock: name.clone(),
                lease: LeaseId(lease),
                wait: rng.gen_bool(0.7),
                value: String::new(),
                mode: if rng.gen_bool(0.6) { Mode::Shared } else { Mode::Exclusive },
                reentrant: rng.gen_bool(0.3),
            },
            40..=69 => {
                let token = held.get(&(name.clone(), lease)).copied().unwrap_or(0);
                if sem {
                    Command::SemRelease { name: name.clone(), lease: LeaseId(lease), token: Token(token) }
                } else {
                    Command::Release { lock: name.clone(), lease: LeaseId(lease), token: Token(token) }
                }
            }
            70..=74 if sem => Command::SemCancelWait { name: name.clone(), lease: LeaseId(lease) },
            70..=74 => Command::CancelWait { lock: name.clone(), lease: LeaseId(lease) },
            75..=79 => Command::SemPermits { name: "sem".into(), permits: rng.gen_range(1..4) },
            80..=84 => {
                leases.retain(|l| *l != lease);
                Command::LeaseRevoke { lease: LeaseId(lease) }
            }
            85..=89 => {
                let renewed = table.lease(LeaseId(lease)).map_or(0, |l| l.renewed);
                leases.retain(|l| *l != lease);
                Command::Expire { lease: LeaseId(lease), renewed }
            }
            _ => {
                // The leader's duty: hand over what an entry left pending.
                let Some(lock) = table.pending_handoffs().next().cloned() else { continue };
                Command::Handoff { lock }
            }
        };
        push(&mut table, cmd, &mut log);
        held.clear();
        for (_, g) in table.all_holders() {
            held.insert((g.lock.clone(), g.lease.0), g.token.0);
        }
    }
    log
}

fn history_of(log: &[(u64, Request)]) -> History {
    let events = fenced_core::machine::audit::replay(log.iter().map(|(i, r)| (*i, r)))
        .into_iter()
        .map(|d| Event::from_log(d.kind, serde_json::to_value(&d).expect("a decision is JSON"), 0))
        .collect();
    History::new(events)
}

#[test]
fn the_mixed_primitives_keep_exclusion_and_permit_counts_on_every_seed() {
    let mut grants = 0;
    for seed in 0..300 {
        let h = history_of(&random_log(seed, 400));
        grants += h.events.iter().filter(|e| e.f == "grant").count();
        for v in [s4::check(&h, &Options::default()), s1::check(&h, &Options::default())] {
            assert_eq!(v.status, Status::Valid, "seed {seed}: {v:?}");
        }
    }
    let shared = |h: &History| h.events.iter().filter(|e| e.value["mode"] == "shared").count();
    let permits = |h: &History| h.events.iter().filter(|e| e.value["mode"] == "permit").count();
    let h = history_of(&random_log(1, 400));
    assert!(shared(&h) > 0 && permits(&h) > 0, "the mix exercises shared grants and permits");
    assert!(grants > 10_000, "only {grants} grants in 300 seeds");
}

#[test]
fn a_writer_admitted_while_readers_hold_is_caught() {
    fenced_core::machine::bugs::WRITER_WITH_READERS.store(true, Ordering::Relaxed);
    let caught = (0..50).find(|seed| {
        let h = history_of(&random_log(*seed, 400));
        s4::check(&h, &Options::default()).status == Status::Invalid
    });
    fenced_core::machine::bugs::WRITER_WITH_READERS.store(false, Ordering::Relaxed);
    assert!(caught.is_some(), "50 seeds of a table admitting writers next to readers found no S4 violation");
}
