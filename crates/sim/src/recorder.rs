//! Records what happened, as a history the checkers judge.

use fenced_check::history::{Event, EventType, Process, Wall};
use fenced_check::nemesis::NemesisEvent;
use fenced_core::toolbox::clock::Clock;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A shared, append-only history. Times are simulated nanoseconds, so the
/// history of a seed is the same on every replay. A recorder bound to a
/// host's clock ([`Recorder::on_host`]) also stamps each event with that
/// clock's wall-clock bound (deterministic too: see `SimClock::wall_bound`).
#[derive(Clone, Default)]
pub struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
    clock: Option<Arc<dyn Clock>>,
}

fn now_ns() -> u64 {
    crate::time::elapsed().as_nanos() as u64
}

/// A clock's bound as a history interval.
pub fn wall_of(clock: &dyn Clock) -> Wall {
    let b = clock.wall_bound();
    Wall::new(b.earliest_ms, b.latest_ms, b.synchronized)
}

impl Recorder {
    /// The same history, with events stamped by `clock` (the recording host's).
    pub fn on_host(&self, clock: Arc<dyn Clock>) -> Recorder {
        Recorder { events: self.events.clone(), clock: Some(clock) }
    }

    pub fn record(&self, kind: EventType, process: Process, f: &str, value: Value) {
        self.record_at(kind, process, f, value, now_ns());
    }

    /// Like [`Recorder::record`], naming the node the event concerns.
    pub fn record_on(&self, kind: EventType, process: Process, f: &str, value: Value, node: Option<String>) {
        self.push(Event { kind, process, f: f.to_string(), value, time: now_ns(), node, wall: None });
    }

    pub fn record_at(&self, kind: EventType, process: Process, f: &str, value: Value, time: u64) {
        self.push(Event { kind, process, f: f.to_string(), value, time, node: None, wall: None });
    }

    /// Appends `e`, stamping its wall bound from this recorder's clock.
    pub fn push(&self, mut e: Event) {
        if e.wall.is_none() {
            e.wall = self.clock.as_deref().map(wall_of);
        }
        if let Ok(mut v) = self.events.lock() {
            v.push(e);
        }
    }

    /// A nemesis event, from the driver (outside any host).
    pub fn nemesis(&self, e: NemesisEvent, at: Duration) {
        self.push(e.to_event(at.as_nanos() as u64));
    }

    /// A nemesis event made on this recorder's host, now (a client's pause).
    pub fn nemesis_here(&self, e: NemesisEvent) {
        self.push(e.to_event(now_ns()));
    }

    pub fn take(&self) -> Vec<Event> {
        self.events.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }
}
