//! Simulated time: tokio's paused clock, measured from the start of a run.
//!
//! A run owns one current-thread runtime whose clock is paused. When no task
//! can run, tokio jumps to the next timer, so idle simulated time costs
//! nothing. Every simulated clock, the recorder and the driver read this.

use std::cell::Cell;
use std::time::Duration;

thread_local! {
    static START: Cell<Option<tokio::time::Instant>> = const { Cell::new(None) };
}

/// The paused runtime's clock: the simulation's one source of time, which
/// the simulated [`crate::clock::SimClock`]s and the network read.
#[allow(clippy::disallowed_methods)]
pub fn instant() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

/// Mark now as simulated time zero on this thread (one run per thread).
pub fn start() {
    START.with(|s| s.set(Some(instant())));
}

/// Simulated time since [`start`]; zero outside a run.
pub fn elapsed() -> Duration {
    START.with(|s| s.get()).map(|s| instant().saturating_duration_since(s)).unwrap_or_default()
}
