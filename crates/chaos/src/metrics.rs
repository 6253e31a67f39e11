//! What a run's history says about availability and latency, for the
//! per-target report and the `--compare` table. Pure.
//!
//! Availability here is the share of acquires that succeeded, among those
//! invoked while a fault was active and among the others. It counts a
//! lock that was legitimately busy against the system too, so it is a
//! comparison between targets on the same schedule, not an SLA figure.

use fenced_bench::stats::{percentiles, Percentiles};
use fenced_check::history::{EventType, History, Outcome, Process};
use serde::Serialize;
use std::time::Duration;

/// Acquires in one class of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Availability {
    pub acquires: usize,
    pub ok: usize,
}

impl Availability {
    /// `ok / acquires`, if any were made.
    pub fn ratio(&self) -> Option<f64> {
        (self.acquires > 0).then(|| self.ok as f64 / self.acquires as f64)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Client operations that completed `ok`.
    pub ops_ok: usize,
    pub during_faults: Availability,
    pub outside_faults: Availability,
    /// Latency of ok acquires, invoke to completion.
    pub acquire_latency: Percentiles,
    /// Latency of ok writes.
    pub write_latency: Percentiles,
    /// Writes the store refused as stale (a fence at work).
    pub writes_refused_stale: usize,
}

/// `[start, end)` of every fault that took effect (skipped ones excluded),
/// in ns; a fault still active at the end runs to `u64::MAX`.
pub fn fault_windows(h: &History) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut open: Option<u64> = None;
    for e in h.events.iter().filter(|e| e.process.is_named("nemesis") && e.kind == EventType::Info) {
        match e.f.as_str() {
            "start" if e.value.get("skipped").is_none() => open = Some(e.time),
            "stop" => {
                if let Some(s) = open.take() {
                    out.push((s, e.time));
                }
            }
            _ => {}
        }
    }
    if let Some(s) = open {
        out.push((s, u64::MAX));
    }
    out
}

pub fn measure(h: &History) -> Metrics {
    let windows = fault_windows(h);
    let in_fault = |t: u64| windows.iter().any(|(s, e)| *s <= t && t < *e);
    let mut m = Metrics::default();
    let mut acq = Vec::new();
    let mut wr = Vec::new();
    let Ok(ops) = h.operations() else { return m };
    for op in ops.iter().filter(|o| matches!(o.process(), Process::Client(_)) && o.invoke.is_some()) {
        let ok = op.outcome() == Outcome::Ok;
        let latency = op.end().map(|e| Duration::from_nanos(e.saturating_sub(op.start())));
        if ok {
            m.ops_ok += 1;
        }
        match op.f() {
            "acquire" => {
                let a = if in_fault(op.start()) { &mut m.during_faults } else { &mut m.outside_faults };
                a.acquires += 1;
                if ok {
                    a.ok += 1;
                    acq.extend(latency);
                }
            }
            "write" if ok => wr.extend(latency),
            "write" if op.done.and_then(|d| d.value.get("code")).and_then(|c| c.as_str()) == Some("stale_token") => {
                m.writes_refused_stale += 1
            }
            _ => {}
        }
    }
    m.acquire_latency = percentiles(&mut acq);
    m.write_latency = percentiles(&mut wr);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use fenced_check::history::Event;
    use serde_json::json;

    fn ev(kind: EventType, process: Process, f: &str, value: serde_json::Value, time: u64) -> Event {
        Event { kind, process, f: f.into(), value, time, node: None, wall: None }
    }

    #[test]
    fn availability_splits_by_fault_windows() {
        let n = || Process::Named("nemesis".into());
        let c = |p| Process::Client(p);
        let h = History::new(vec![
            ev(EventType::Invoke, c(1), "acquire", json!({"lock": "a"}), 0),
            ev(EventType::Ok, c(1), "acquire", json!({"lock": "a", "token": 1, "lease": 1}), 10),
            ev(EventType::Info, n(), "start", json!({"fault": "kill"}), 100),
            ev(EventType::Invoke, c(2), "acquire", json!({"lock": "a"}), 150),
            ev(EventType::Info, c(2), "acquire", json!({"lock": "a"}), 400),
            ev(EventType::Info, n(), "stop", json!({"fault": "kill"}), 500),
            ev(EventType::Info, n(), "start", json!({"fault": "limp", "skipped": "no netem"}), 600),
            ev(EventType::Invoke, c(3), "acquire", json!({"lock": "b"}), 700),
            ev(EventType::Ok, c(3), "acquire", json!({"lock": "b", "token": 2, "lease": 2}), 730),
            ev(EventType::Info, n(), "stop", json!({"fault": "limp"}), 800),
        ]);
        assert_eq!(fault_windows(&h), vec![(100, 500)]);
        let m = measure(&h);
        assert_eq!(m.during_faults, Availability { acquires: 1, ok: 0 });
        assert_eq!(m.outside_faults, Availability { acquires: 2, ok: 2 });
        assert_eq!(m.ops_ok, 2);
        assert_eq!(m.during_faults.ratio(), Some(0.0));
        assert!(m.acquire_latency.max_ms > 0.0);
    }
}
