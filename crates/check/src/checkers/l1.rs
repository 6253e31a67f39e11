//! L1, availability: after the last fault heals with a majority up, every
//! acquire completes within a bound (`Options::l1_bound`).
//!
//! The rule, in full (also in `docs/history.md`):
//! - The heal is the last nemesis `stop` after which no fault is active
//!   (a stop ends the faults of its `fault` kind; `heal-all` ends all). With
//!   no nemesis events at all, the whole run counts as healed. If a fault is
//!   still active at the end, or the last stop says `majority_up: false`, L1
//!   is `unknown`: liveness is only promised with a majority up and healed.
//! - Judged: acquires invoked at or after heal + `Options::l1_grace`.
//! - An ok acquire must complete within the bound, measured from its invoke,
//!   or from the latest ok release of the same lock that completed while it
//!   waited (a blocking acquire waits for the holder; that is not
//!   unavailability). A holder whose lease expired leaves no time in the
//!   history, so the bound must cover the lease TTL where that happens.
//! - A fail with `value.reason == "held"` is excused: the lock was held.
//!   Any other fail is a violation.
//! - An `info` completion, or no completion, is a violation if the client
//!   waited at least the bound (to the info, or to the end of the history);
//!   earlier than that it is inconclusive and not judged.

use super::{fmt_ns, view_or_unknown};
use crate::history::{History, Outcome};
use crate::nemesis::Fault;
use crate::verdict::{Evidence, Options, Property, Verdict};
use crate::view::Nemesis;
use std::collections::BTreeMap;

pub fn check(history: &History, opts: &Options) -> Verdict {
    let view = match view_or_unknown(history, Property::L1) {
        Ok(v) => v,
        Err(v) => return v,
    };
    let heal = match heal_time(&view.nemesis) {
        Ok(t) => t,
        Err(why) => return Verdict::unknown(Property::L1, why),
    };
    let bound = duration_ns(opts.l1_bound);
    let from = heal.saturating_add(duration_ns(opts.l1_grace));
    let end_of_history = history.end_time();

    // lock -> completion times of ok releases, sorted
    let mut releases: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for r in view.releases.iter().filter(|r| r.op.outcome().is_ok()) {
        if let Some(end) = r.op.end() {
            releases.entry(r.lock).or_default().push(end);
        }
    }
    releases.values_mut().for_each(|v| v.sort_unstable());

    let (mut judged, mut held, mut inconclusive) = (0usize, 0usize, 0usize);
    let mut evidence = Vec::new();
    for a in view.acquires.iter().filter(|a| a.op.start() >= from) {
        let start = a.op.start();
        let problem = match a.op.outcome() {
            Outcome::Ok => {
                judged += 1;
                let end = a.op.end().unwrap_or(start);
                let waited_from = releases
                    .get(a.lock)
                    .map(|ends| ends[..ends.partition_point(|&t| t < end)].last().copied())
                    .and_then(|t| t)
                    .map_or(start, |t| t.max(start));
                (end - waited_from > bound)
                    .then(|| format!("took {} after the lock was free", fmt_ns(end - waited_from)))
            }
            Outcome::Fail if a.reason == Some("held") => {
                held += 1;
                None
            }
            Outcome::Fail => {
                judged += 1;
                Some(format!(
                    "failed ({})",
                    a.op.field("reason")
                        .or_else(|| a.op.field("error"))
                        .map_or_else(|| "no reason given".to_string(), |v| v.to_string())
                ))
            }
            Outcome::Info | Outcome::Pending => {
                let last = a.op.end().unwrap_or(end_of_history);
                if last - start >= bound {
                    judged += 1;
                    Some(format!("had no answer after {}", fmt_ns(last - start)))
                } else {
                    inconclusive += 1;
                    None
                }
            }
        };
        if let Some(problem) = problem {
            evidence.push(
                Evidence::new(format!(
                    "acquire of {:?} by process {} invoked {} after the heal {problem} (bound {})",
                    a.lock,
                    a.op.process(),
                    fmt_ns(start - heal),
                    fmt_ns(bound)
                ))
                .op(&a.op),
            );
        }
    }
    if evidence.is_empty() && judged == 0 {
        return Verdict::unknown(
            Property::L1,
            format!(
                "no acquire invoked after heal + grace ({}) could be judged ({held} found the lock held, {inconclusive} ended without an answer before the bound)",
                fmt_ns(from)
            ),
        );
    }
    Verdict::from_violations(
        Property::L1,
        opts,
        evidence,
        format!(
            "{judged} acquires after heal + grace completed within {} ({held} found the lock held, {inconclusive} inconclusive)",
            fmt_ns(bound)
        ),
    )
}

/// The time of the final heal, or why there is none.
fn heal_time(nemesis: &[Nemesis<'_>]) -> Result<u64, String> {
    // Each active fault kind and how many of it are running.
    let mut active: Vec<(&Fault, usize)> = Vec::new();
    let mut last_stop: Option<&Nemesis<'_>> = None;
    for n in nemesis {
        let i = active.iter().position(|(f, _)| f.same_kind(&n.fault));
        if n.start {
            match i {
                Some(i) => active[i].1 += 1,
                None => active.push((&n.fault, 1)),
            }
            continue;
        }
        if n.fault == Fault::HealAll {
            active.clear();
        } else if let Some(i) = i {
            active[i].1 -= 1;
            if active[i].1 == 0 {
                active.remove(i);
            }
        }
        last_stop = Some(n);
    }
    if !active.is_empty() {
        let mut faults: Vec<&str> = active.iter().map(|(f, _)| f.name()).collect();
        faults.sort_unstable();
        return Err(format!(
            "fault(s) {faults:?} still active at the end of the history: availability is only promised after the heal"
        ));
    }
    match last_stop {
        None if nemesis.is_empty() => Ok(0),
        None => Err("the nemesis never stopped a fault".to_string()),
        Some(n) if n.majority_up == Some(false) => {
            Err(format!("the last heal (at {}) left no majority up: availability is not promised", fmt_ns(n.time)))
        }
        Some(n) => Ok(n.time),
    }
}

fn duration_ns(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Event, EventType, Process};
    use crate::nemesis::{FaultRecord, NemesisEvent, PartitionKind};
    use crate::view::View;
    use serde_json::json;

    fn heal(events: Vec<Event>) -> Result<u64, String> {
        let h = History::new(events);
        let view = View::build(&h).map_err(|e| e.to_string())?;
        heal_time(&view.nemesis)
    }

    fn start(f: Fault, t: u64) -> Event {
        NemesisEvent::Start(FaultRecord::new(f)).to_event(t)
    }

    fn stop(f: Fault, up: Option<bool>, t: u64) -> Event {
        NemesisEvent::Stop(FaultRecord { majority_up: up, ..FaultRecord::new(f) }).to_event(t)
    }

    #[test]
    fn a_stop_ends_a_start_of_the_same_kind_only() {
        let crash = |node| Fault::Crash { node };
        assert_eq!(heal(vec![start(crash(1), 10), stop(crash(1), None, 50)]), Ok(50));
        // Two crashes of one kind: the heal is the second stop.
        let two = vec![start(crash(1), 10), start(crash(2), 20), stop(crash(1), None, 50), stop(crash(2), None, 70)];
        assert_eq!(heal(two), Ok(70));
        // A pause's stop does not end a crash.
        let other = heal(vec![start(crash(1), 10), stop(Fault::Pause { node: 1 }, None, 50)]);
        assert!(other.is_err_and(|e| e.contains("crash")), "a pause's stop ended a crash");
    }

    #[test]
    fn heal_all_ends_every_fault_and_says_whether_a_majority_is_up() {
        let partition = Fault::Partition { kind: PartitionKind::Bridge };
        let events =
            vec![start(partition, 10), start(Fault::Pause { node: 2 }, 20), stop(Fault::HealAll, Some(true), 90)];
        assert_eq!(heal(events), Ok(90));
        let down = heal(vec![start(Fault::Crash { node: 1 }, 10), stop(Fault::HealAll, Some(false), 90)]);
        assert!(down.is_err_and(|e| e.contains("no majority")));
    }

    #[test]
    fn foreign_fault_kinds_pair_by_name() {
        let ev = |f: &str, v: serde_json::Value, t| Event {
            kind: EventType::Info,
            process: Process::Named("nemesis".into()),
            f: f.into(),
            value: v,
            time: t,
            node: None,
            wall: None,
        };
        // A hand-written history's `kill` (no `node`) and a Jepsen nemesis.
        let kill = vec![
            ev("start", json!({"fault": "kill", "targets": ["n1"]}), 10),
            ev("stop", json!({"fault": "kill"}), 40),
            ev("start-partition", json!(null), 50),
            ev("stop-partition", json!(null), 80),
        ];
        assert_eq!(heal(kill), Ok(80));
        let unpaired = vec![ev("start", json!({"fault": "kill"}), 10), ev("stop", json!({"fault": "gremlins"}), 40)];
        assert!(heal(unpaired).is_err());
    }
}
