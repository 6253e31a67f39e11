//! Generated histories of a correct fenced system, for tests, benchmarks and
//! report demos: valid for every property by construction.
//!
//! A tiny model runs clients against a lock service and a fenced store. Each
//! operation takes effect at its invoke step (its linearization point) and
//! completes at a later step, so concurrent operations overlap in real time.
//! Leases expire at random, so old holders go on writing with stale tokens
//! and the store rejects them; some completions are lost (`info`). At the end
//! the log is read back and every key read once more, as a real run does.
//!
//! The mutations in the tests turn these into histories that must fail.

use crate::history::{Event, EventType, History, Process};
use crate::nemesis::{Fault, FaultRecord, NemesisEvent, PartitionKind};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub seed: u64,
    pub clients: u64,
    pub locks: usize,
    /// Number of client operations (about).
    pub ops: usize,
    /// Emit partition faults during the run and heal them before its last
    /// quarter.
    pub nemesis: bool,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions { seed: 1, clients: 5, locks: 2, ops: 200, nemesis: true }
    }
}

/// A small deterministic PRNG (xorshift64*), so that the crate needs no `rand`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What a client is doing: the completion it will report.
struct Pending {
    f: &'static str,
    kind: EventType,
    value: Value,
}

#[derive(Default)]
struct Model {
    index: u64,
    /// lock -> (token, holder)
    held: BTreeMap<String, (u64, u64)>,
    /// key -> (token, value)
    store: BTreeMap<String, (u64, Value)>,
    log: Vec<(&'static str, String, u64, u64)>,
}

impl Model {
    fn append(&mut self, f: &'static str, lock: &str, token: u64) {
        self.index += 1;
        self.log.push((f, lock.to_string(), token, self.index));
    }
}

/// Generates a valid history.
pub fn generate(opts: &GenOptions) -> History {
    let mut rng = Rng(opts.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut events = Vec::new();
    let mut m = Model::default();
    let mut time = 0u64;
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    // client -> (lock, token) it believes it holds
    let mut holds: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    let mut partitioned = false;
    let heal_at = opts.ops * 3 / 4;
    let mut invoked = 0usize;
    let client = |p: u64| Process::Client(p);
    while invoked < opts.ops || !pending.is_empty() {
        time += 1 + rng.below(1_000_000);
        if opts.nemesis && rng.chance(2) && invoked < heal_at {
            let f = if partitioned { "stop" } else { "start" };
            partitioned = !partitioned;
            let record = FaultRecord::new(Fault::Partition { kind: PartitionKind::IsolateLeader })
                .with("targets", json!(["n1"]));
            let e = if f == "stop" { NemesisEvent::Stop(record) } else { NemesisEvent::Start(record) };
            events.push(e.to_event(time));
            continue;
        }
        if opts.nemesis && partitioned && invoked >= heal_at {
            partitioned = false;
            let mut heal = FaultRecord::new(Fault::HealAll);
            heal.majority_up = Some(true);
            events.push(NemesisEvent::Stop(heal).to_event(time));
            continue;
        }
        if rng.chance(5) {
            // The leader expires a lease.
            if let Some(lock) = m.held.keys().nth(rng.below(opts.locks as u64) as usize).cloned() {
                let (token, _) = m.held.remove(&lock).unwrap_or_default();
                m.append("expire", &lock, token);
            }
            continue;
        }
        let p = rng.below(opts.clients);
        if let Some(done) = pending.remove(&p) {
            events.push(ev(done.kind, client(p), done.f, done.value, time));
            continue;
        }
        if invoked >= opts.ops {
            continue;
        }
        invoked += 1;
        let (f, value, mut done) = match holds.get(&p).cloned() {
            Some((lock, token)) if rng.chance(70) => {
                let v = json!(rng.below(1000));
                let inv = json!({"key": lock, "token": token, "value": v});
                let current = m.store.get(&lock).map_or(0, |s| s.0);
                let done = if token >= current {
                    m.store.insert(lock.clone(), (token, v));
                    Pending { f: "write", kind: EventType::Ok, value: inv.clone() }
                } else {
                    let mut fail = inv.clone();
                    fail["code"] = json!("stale_token");
                    fail["current"] = json!(current);
                    Pending { f: "write", kind: EventType::Fail, value: fail }
                };
                ("write", inv, done)
            }
            Some((lock, token)) => {
                holds.remove(&p);
                let inv = json!({"lock": lock, "token": token});
                let done = if m.held.get(&lock).is_some_and(|h| h.0 == token) {
                    m.held.remove(&lock);
                    m.append("release", &lock, token);
                    Pending { f: "release", kind: EventType::Ok, value: inv.clone() }
                } else {
                    Pending {
                        f: "release",
                        kind: EventType::Fail,
                        value: json!({"lock": lock, "token": token, "reason": "not_holder"}),
                    }
                };
                ("release", inv, done)
            }
            None => {
                let lock = format!("lock-{}", rng.below(opts.locks as u64));
                let inv = json!({"lock": lock});
                let done = if m.held.contains_key(&lock) {
                    Pending { f: "acquire", kind: EventType::Fail, value: json!({"lock": lock, "reason": "held"}) }
                } else {
                    let token = m.index + 1;
                    m.append("grant", &lock, token);
                    m.held.insert(lock.clone(), (token, p));
                    holds.insert(p, (lock.clone(), token));
                    Pending {
                        f: "acquire",
                        kind: EventType::Ok,
                        value: json!({"lock": lock, "token": token, "lease": token}),
                    }
                };
                ("acquire", inv, done)
            }
        };
        // Some replies are lost: the effect stands, the outcome is unknown.
        if done.kind == EventType::Ok && rng.chance(3) {
            done = Pending { f: done.f, kind: EventType::Info, value: Value::Null };
            holds.remove(&p);
        }
        events.push(ev(EventType::Invoke, client(p), f, value, time));
        pending.insert(p, done);
    }
    time += 1;
    for (f, lock, token, index) in &m.log {
        let v = json!({"lock": lock, "token": token, "lease": token, "index": index});
        events.push(ev(EventType::Ok, Process::Named("log".into()), f, v, time));
    }
    for (key, (token, value)) in &m.store {
        let v = json!({"key": key, "value": value, "token": token, "version": token});
        events.push(ev(EventType::Ok, Process::Named("final".into()), "read", v, time));
    }
    History { events }
}

fn ev(kind: EventType, process: Process, f: &str, value: Value, time: u64) -> Event {
    Event { kind, process, f: f.to_string(), value, time, node: None, wall: None }
}
