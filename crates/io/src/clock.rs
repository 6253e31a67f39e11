//! The system clock: `CLOCK_MONOTONIC` (via `std::time::Instant`) for
//! durations, and the wall clock for display only.

use fenced_core::toolbox::clock::{Clock, Mono, WallBound};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The production [`Clock`].
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    #[allow(clippy::disallowed_methods)] // the clock seam itself
    pub fn new() -> Self {
        SystemClock { origin: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the clock seam itself
    fn now(&self) -> Mono {
        Mono::ZERO.plus(self.origin.elapsed())
    }

    fn wall_bound(&self) -> WallBound {
        let now = self.wall_ms();
        crate::wallclock::kernel_bound(now).unwrap_or_else(|| WallBound::unknown(now))
    }

    #[allow(clippy::disallowed_methods)] // the clock seam itself
    fn wall_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }
}

/// The process-wide system clock, for code that is never simulated and has no
/// clock injected (benchmarks, CLI tools, tests of real processes).
pub fn system() -> &'static SystemClock {
    static CLOCK: std::sync::OnceLock<SystemClock> = std::sync::OnceLock::new();
    CLOCK.get_or_init(SystemClock::new)
}

/// Monotonic now on the process-wide system clock ([`system`]).
pub fn now() -> Mono {
    system().now()
}
