//! Records what happened, as a history the checkers judge.

use fenced_check::history::{Event, EventType, Process};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A shared, append-only history. Times are simulated nanoseconds, so the
/// history of a seed is the same on every replay.
#[derive(Clone, Default)]
pub struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
}

fn now_ns() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_nanos() as u64
}

impl Recorder {
    pub fn record(&self, kind: EventType, process: Process, f: &str, value: Value) {
        self.record_at(kind, process, f, value, now_ns());
    }

    pub fn record_at(&self, kind: EventType, process: Process, f: &str, value: Value, time: u64) {
        let e = Event { kind, process, f: f.to_string(), value, time, node: None };
        if let Ok(mut v) = self.events.lock() {
            v.push(e);
        }
    }

    /// A nemesis event, from the driver (outside any host).
    pub fn nemesis(&self, f: &str, value: Value, at: Duration) {
        self.record_at(EventType::Info, Process::Named("nemesis".into()), f, value, at.as_nanos() as u64);
    }

    pub fn take(&self) -> Vec<Event> {
        self.events.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }
}
