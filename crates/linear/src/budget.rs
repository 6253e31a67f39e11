//! The checker's time budget: the one place this crate reads a clock.
//!
//! The workspace forbids reading clocks outside clock modules (`clippy.toml`);
//! this crate depends on nothing of fenced's, so it has its own tiny one. Time
//! here only bounds how long a search may run and reports how long it took;
//! it never changes a verdict other than to `Unknown`.

use std::time::{Duration, Instant};

/// A started stopwatch.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    #[allow(clippy::disallowed_methods)] // this crate's clock module
    pub fn start() -> Self {
        Stopwatch(Instant::now())
    }

    #[allow(clippy::disallowed_methods)] // this crate's clock module
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A budget measured from a stopwatch's start.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub start: Stopwatch,
    pub budget: Duration,
}

impl Deadline {
    pub fn passed(&self) -> bool {
        self.start.elapsed() >= self.budget
    }
}
