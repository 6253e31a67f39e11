//! The clock seam.
//!
//! Durations are measured on a monotonic clock only. The wall clock is for
//! display (the `issued_at` of a signed token, report timestamps) and never
//! decides anything. The replica and client take a `Clock` so the simulator can
//! substitute simulated time, with per-host drift and pauses.

use std::time::Duration;

/// A monotonic instant, as nanoseconds since an arbitrary per-process origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mono(pub u64);

impl Mono {
    /// The instant `d` after this one (saturating).
    pub fn plus(self, d: Duration) -> Mono {
        Mono(self.0.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
    }

    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn since(self, earlier: Mono) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// Where a component reads time.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic time: never goes backwards, may be slewed.
    fn now(&self) -> Mono;
    /// Wall-clock time in milliseconds since the Unix epoch. May jump either
    /// way; used for display only.
    fn wall_ms(&self) -> u64;
}
