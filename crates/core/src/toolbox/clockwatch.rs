//! Watching the clocks from inside: process pauses and wall-clock jumps.
//!
//! A task that asks to wake every `expected` and compares, on each wake-up,
//! how much monotonic and wall time passed learns two things:
//!
//! - **lateness** = monotonic elapsed − expected: how long this process was
//!   not running when it should have been (a GC pause, SIGSTOP, swapping, a
//!   starved scheduler, a VM steal). This is jHiccup's measurement.
//! - **jump** = wall elapsed − monotonic elapsed: a step of the time-of-day
//!   clock (NTP stepping it, an operator running `date`, a VM restore). The
//!   monotonic clock is only slewed (≤ 500 ppm), so over one tick any
//!   difference above a few ms is a step, forward or back.
//!
//! Pure: the caller reads the clock and passes the values in, so tests can
//! inject a pause or a jump through the `Clock` seam.

use crate::toolbox::clock::Mono;
use std::time::Duration;

/// What one observation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observation {
    /// Monotonic time since the previous observation, minus what was expected.
    pub lateness: Duration,
    /// `Some(lateness)` if it exceeds the pause threshold.
    pub pause: Option<Duration>,
    /// `Some(wall − monotonic)` in ms if its magnitude exceeds the jump
    /// threshold (positive: the wall clock jumped forward).
    pub jump_ms: Option<i64>,
}

/// Thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockWatchConfig {
    /// Lateness above this is a pause worth acting on.
    pub pause_threshold: Duration,
    /// A wall-vs-monotonic difference above this is a jump.
    pub jump_threshold: Duration,
}

impl Default for ClockWatchConfig {
    fn default() -> Self {
        ClockWatchConfig { pause_threshold: Duration::from_millis(500), jump_threshold: Duration::from_millis(100) }
    }
}

/// The watcher: remembers the previous readings.
#[derive(Debug, Clone)]
pub struct ClockWatch {
    config: ClockWatchConfig,
    last: Option<(Mono, u64)>,
}

impl ClockWatch {
    pub fn new(config: ClockWatchConfig) -> Self {
        ClockWatch { config, last: None }
    }

    pub fn config(&self) -> &ClockWatchConfig {
        &self.config
    }

    /// Record a wake-up at monotonic `now` and wall `wall_ms`, `expected`
    /// after the previous one. The first call only sets the baseline.
    pub fn observe(&mut self, now: Mono, wall_ms: u64, expected: Duration) -> Observation {
        let Some((last_mono, last_wall)) = self.last.replace((now, wall_ms)) else {
            return Observation::default();
        };
        let mono_elapsed = now.since(last_mono);
        let lateness = mono_elapsed.saturating_sub(expected);
        let mono_ms = i64::try_from(mono_elapsed.as_millis()).unwrap_or(i64::MAX);
        let wall_elapsed = wall_ms as i64 - last_wall as i64;
        let diff = wall_elapsed.saturating_sub(mono_ms);
        let threshold = i64::try_from(self.config.jump_threshold.as_millis()).unwrap_or(i64::MAX);
        Observation {
            lateness,
            pause: (lateness > self.config.pause_threshold).then_some(lateness),
            jump_ms: (diff.abs() > threshold).then_some(diff),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(50);

    fn watch() -> ClockWatch {
        ClockWatch::new(ClockWatchConfig::default())
    }

    #[test]
    fn steady_ticks_find_nothing() {
        let mut w = watch();
        let mut mono = Mono::ZERO;
        let mut wall = 1_700_000_000_000u64;
        for _ in 0..100 {
            let o = w.observe(mono, wall, TICK);
            assert_eq!((o.pause, o.jump_ms), (None, None));
            mono = mono.plus(TICK + Duration::from_millis(3));
            wall += 53;
        }
    }

    #[test]
    fn a_pause_is_lateness_on_both_clocks_not_a_jump() {
        let mut w = watch();
        w.observe(Mono::ZERO, 1000, TICK);
        // Stopped for 3 s: both clocks advanced 3.05 s.
        let o = w.observe(Mono::ZERO.plus(Duration::from_millis(3050)), 4050, TICK);
        assert_eq!(o.pause, Some(Duration::from_millis(3000)));
        assert_eq!(o.jump_ms, None);
    }

    #[test]
    fn wall_jumps_either_way_are_detected_and_signed() {
        let mut w = watch();
        w.observe(Mono::ZERO, 100_000, TICK);
        let o = w.observe(Mono::ZERO.plus(TICK), 100_050 + 5_000, TICK);
        assert_eq!((o.pause, o.jump_ms), (None, Some(5_000)));
        let o = w.observe(Mono::ZERO.plus(TICK * 2), 100_100 + 5_000 - 60_000, TICK);
        assert_eq!(o.jump_ms, Some(-60_000));
        // Below the threshold (NTP slew, scheduling noise): nothing.
        let o = w.observe(Mono::ZERO.plus(TICK * 3), 100_150 + 5_000 - 60_000 + 40, TICK);
        assert_eq!(o.jump_ms, None);
    }
}
