//! How long acquires waited while something was going on (a membership
//! change, a restart): a measurement for reports and for assertions where
//! time is simulated, not a checker. The wait is L1's measure: from the
//! acquire's invocation, or from the last successful release of the same
//! lock before its answer if that is later, so that time spent queued
//! behind a holder that was working does not count.

use crate::history::{Event, EventType, Process};
use crate::nemesis::{Fault, NemesisEvent};

/// The `[start, stop]` times of the nemesis faults `is` picks, paired in
/// order (faults of one kind run one at a time).
pub fn fault_windows(events: &[Event], is: impl Fn(&Fault) -> bool) -> Vec<(u64, u64)> {
    let (mut starts, mut stops) = (Vec::new(), Vec::new());
    for e in events.iter().filter(|e| e.process.is_named(Process::NEMESIS)) {
        match NemesisEvent::from_event(e) {
            Ok(NemesisEvent::Start(r)) if is(&r.fault) => starts.push(e.time),
            Ok(NemesisEvent::Stop(r)) if is(&r.fault) => stops.push(e.time),
            _ => {}
        }
    }
    starts.into_iter().zip(stops).collect()
}

/// For each window, the longest wait (ns) of an acquire whose invocation
/// and answer (ok, fail or info) overlap it; 0 if none did.
pub fn longest_acquire_waits(events: &[Event], windows: &[(u64, u64)]) -> Vec<u64> {
    let client = |e: &&Event| matches!(e.process, crate::history::Process::Client(_));
    let lock_of = |e: &Event| e.value.get("lock").and_then(|l| l.as_str()).unwrap_or("").to_string();
    let releases: Vec<(String, u64)> = events
        .iter()
        .filter(client)
        .filter(|e| e.f == "release" && e.kind == EventType::Ok)
        .map(|e| (lock_of(e), e.time))
        .collect();
    let mut open: std::collections::BTreeMap<String, u64> = Default::default();
    let mut worst = vec![0; windows.len()];
    for e in events.iter().filter(client).filter(|e| e.f == "acquire") {
        let key = format!("{:?}", e.process);
        if e.kind == EventType::Invoke {
            open.insert(key, e.time);
            continue;
        }
        let Some(t0) = open.remove(&key) else { continue };
        let lock = lock_of(e);
        let from = releases.iter().filter(|(l, r)| *l == lock && *r > t0 && *r < e.time).map(|(_, r)| *r).max();
        let wait = e.time.saturating_sub(from.unwrap_or(t0));
        for (w, (a, b)) in windows.iter().enumerate() {
            if t0 <= *b && e.time >= *a {
                worst[w] = worst[w].max(wait);
            }
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Process;
    use serde_json::json;

    fn ev(kind: EventType, process: Process, f: &str, value: serde_json::Value, time: u64) -> Event {
        Event { kind, process, f: f.into(), value, time, node: None, wall: None }
    }

    #[test]
    fn waits_count_from_the_later_of_invocation_and_the_last_release() {
        let nem = || Process::Named("nemesis".into());
        let l = json!({"lock": "a"});
        let events = vec![
            ev(EventType::Info, nem(), "start", json!({"fault": "membership", "op": "remove", "node": 2}), 100),
            ev(EventType::Invoke, Process::Client(1), "acquire", l.clone(), 90),
            ev(EventType::Invoke, Process::Client(2), "acquire", l.clone(), 95),
            ev(EventType::Ok, Process::Client(1), "acquire", l.clone(), 150),
            ev(EventType::Ok, Process::Client(1), "release", l.clone(), 400),
            // Queued behind client 1 until 400: waited 500 - 400.
            ev(EventType::Ok, Process::Client(2), "acquire", l.clone(), 500),
            ev(EventType::Info, nem(), "stop", json!({"fault": "membership", "op": "remove", "node": 2}), 600),
            ev(EventType::Invoke, Process::Client(1), "acquire", l.clone(), 700),
            ev(EventType::Fail, Process::Client(1), "acquire", l, 2000),
        ];
        let windows = fault_windows(&events, |f| matches!(f, Fault::Membership { .. }));
        assert_eq!(windows, vec![(100, 600)]);
        assert_eq!(longest_acquire_waits(&events, &windows), vec![100]);
        assert_eq!(longest_acquire_waits(&events, &[(650, 800)]), vec![1300]);
        assert!(fault_windows(&events, |f| matches!(f, Fault::Crash { .. })).is_empty());
    }
}
