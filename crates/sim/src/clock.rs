//! Simulated clocks: per-host rate drift and wall-clock jumps.
//!
//! Monotonic time is the simulation's time scaled by `1 + drift`, so a host
//! whose clock runs fast measures a TTL as shorter than it is. Wall time adds
//! an offset that the nemesis can jump forward or back. Nothing in fenced
//! uses the wall clock for a decision, and these clocks let the simulator
//! show it.

use fenced_core::toolbox::clock::{Clock, Mono, WallBound, WallSource};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The error bound every simulated wall clock claims (a typical NTP
/// `maxerror` on a LAN). A nemesis jump makes the claim false: the host's
/// interval then misses the true time, which the history shows.
pub const SIM_MAX_ERROR_US: u64 = 10_000;

/// What the nemesis can change about a host's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClockState {
    /// Rate error: +0.0005 runs 500 ppm fast.
    pub drift: f64,
    /// Added to the wall clock, in ms (may be negative).
    pub wall_offset_ms: i64,
    /// While the host is paused: the monotonic (ns) and wall (ms) readings
    /// of the instant the pause began, which every read returns.
    pub frozen: Option<(u64, u64)>,
}

/// A host's clock. Clones share the state, so the driver can adjust it.
#[derive(Debug, Clone)]
pub struct SimClock {
    state: Arc<Mutex<ClockState>>,
    /// Monotonic reading when the drift last changed, and the sim time then:
    /// drift changes are applied from that point on, keeping time monotonic.
    anchor: Arc<Mutex<(u64, Duration)>>,
    epoch_ms: u64,
}

fn sim_now() -> Duration {
    crate::time::elapsed()
}

impl SimClock {
    pub fn new(epoch_ms: u64) -> Self {
        SimClock { state: Arc::default(), anchor: Arc::new(Mutex::new((0, Duration::ZERO))), epoch_ms }
    }

    fn mono_ns(&self, at: Duration) -> u64 {
        let drift = self.state.lock().map(|s| s.drift).unwrap_or(0.0);
        let (base, since) = self.anchor.lock().map(|a| *a).unwrap_or_default();
        let dt = at.saturating_sub(since).as_nanos() as f64 * (1.0 + drift);
        base + dt.max(0.0) as u64
    }

    /// Change the rate error from now on.
    pub fn set_drift(&self, drift: f64, at: Duration) {
        let now = self.mono_ns(at);
        if let Ok(mut a) = self.anchor.lock() {
            *a = (now, at);
        }
        if let Ok(mut s) = self.state.lock() {
            s.drift = drift;
        }
    }

    /// Pause the host: until [`SimClock::thaw`], every reading is the
    /// reading of this instant, as for a process that is not running. The
    /// first reading after the thaw has moved on by the whole pause.
    pub fn freeze(&self) {
        let readings = (self.mono_ns(sim_now()), self.live_wall_ms());
        if let Ok(mut s) = self.state.lock() {
            s.frozen.get_or_insert(readings);
        }
    }

    /// End a pause begun by [`SimClock::freeze`].
    pub fn thaw(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.frozen = None;
        }
    }

    fn frozen(&self) -> Option<(u64, u64)> {
        self.state.lock().ok().and_then(|s| s.frozen)
    }

    fn live_wall_ms(&self) -> u64 {
        let offset = self.state.lock().map(|s| s.wall_offset_ms).unwrap_or(0);
        let ms = self.epoch_ms as i64 + sim_now().as_millis() as i64 + offset;
        ms.max(0) as u64
    }

    /// Jump the wall clock by `ms` (negative: back in time).
    pub fn jump_wall(&self, ms: i64) {
        if let Ok(mut s) = self.state.lock() {
            s.wall_offset_ms += ms;
        }
    }
}

impl Clock for SimClock {
    fn now(&self) -> Mono {
        match self.frozen() {
            Some((mono, _)) => Mono::from_nanos(mono),
            None => Mono::from_nanos(self.mono_ns(sim_now())),
        }
    }

    fn wall_ms(&self) -> u64 {
        match self.frozen() {
            Some((_, wall)) => wall,
            None => self.live_wall_ms(),
        }
    }

    /// Deterministic: the reading with a fixed, synchronized bound.
    fn wall_bound(&self) -> WallBound {
        let b = WallBound::new(self.wall_ms(), SIM_MAX_ERROR_US, SIM_MAX_ERROR_US / 2, true);
        WallBound { source: WallSource::Simulated, ..b }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_clock_reads_the_pause_start_until_thawed_then_jumps() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("rt");
        rt.block_on(async {
            crate::time::start();
            let c = SimClock::new(1_000);
            tokio::time::sleep(Duration::from_millis(10)).await;
            let (mono, wall) = (c.now(), c.wall_ms());
            c.freeze();
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!((c.now(), c.wall_ms()), (mono, wall), "a paused process reads no time passing");
            c.thaw();
            assert!(c.now().since(mono) >= Duration::from_millis(500), "the pause shows at the first reading after it");
            assert_eq!(c.wall_ms(), wall + 500);
        });
    }
}
