//! A replica watching its own clocks: scheduling lateness, pauses, wall-clock
//! jumps, and the step-down after a long pause.
//!
//! The seed's GC-paused leader "doesn't even realize that an entire minute
//! has passed". Here it does, two ways:
//!
//! - a loop wakes every `tick` and feeds [`ClockWatch`]: lateness goes into a
//!   window (jHiccup), a late wake-up above the pause threshold counts as a
//!   pause, and a wall-vs-monotonic difference counts as a wall-clock jump;
//! - every request path asks [`Timekeeper::must_reconfirm`] before serving.
//!   It compares the monotonic clock with the loop's last beat, so a request
//!   handled right after SIGCONT, before the loop has run, still sees the
//!   pause.
//!
//! A pause longer than the election timeout means another replica may have
//! been elected meanwhile. The replica then serves nothing as leader (no
//! proposal, no read, no leader duty) until a quorum has acknowledged a
//! heartbeat sent *after* the pause (openraft's ReadIndex round, see
//! [`crate::node::Replica::ensure_not_paused`]). Safety does not rest on this
//! — a deposed leader cannot commit, and reads use ReadIndex anyway — but it
//! stops a zombie leader from acting on state that may be a minute old.

use fenced_core::api::ClockHealth;
use fenced_core::toolbox::clock::{Clock, Mono, WallBound};
use fenced_core::toolbox::clockwatch::{ClockWatch, ClockWatchConfig};
use fenced_core::toolbox::latency::LatencyWindow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Lateness samples kept.
const LATENESS_WINDOW: usize = 4096;

/// Told of every detected wall-clock jump: its size in ms (negative: back)
/// and the wall bound read right after. A history recorder listens here (the
/// simulator writes each detection into the history).
pub type JumpSink = Box<dyn Fn(i64, WallBound) + Send + Sync>;

/// Counters and state of the clock watch.
pub struct Timekeeper {
    clock: Arc<dyn Clock>,
    tick: Duration,
    pause_threshold: Duration,
    /// Monotonic ns of the loop's last beat.
    last_beat: AtomicU64,
    /// False until the first beat (start-up is not a pause).
    started: AtomicBool,
    /// A background re-confirmation is running (at most one).
    pub(crate) reconfirming: Arc<AtomicBool>,
    awaiting_reconfirm: AtomicBool,
    pauses: AtomicU64,
    longest_pause_ms: AtomicU64,
    stepdowns: AtomicU64,
    jumps: AtomicU64,
    last_jump_ms: Mutex<Option<i64>>,
    lateness: Mutex<LatencyWindow>,
    watch: Mutex<ClockWatch>,
    jump_sink: Mutex<Option<JumpSink>>,
}

impl Timekeeper {
    /// `pause_threshold`: the election timeout (a shorter pause cannot have
    /// let another leader be elected).
    pub fn new(clock: Arc<dyn Clock>, tick: Duration, pause_threshold: Duration) -> Self {
        let now = clock.now();
        let config = ClockWatchConfig { pause_threshold, ..ClockWatchConfig::default() };
        Timekeeper {
            tick,
            pause_threshold,
            last_beat: AtomicU64::new(now.as_nanos()),
            started: AtomicBool::new(false),
            reconfirming: Arc::default(),
            awaiting_reconfirm: AtomicBool::new(false),
            pauses: AtomicU64::new(0),
            longest_pause_ms: AtomicU64::new(0),
            stepdowns: AtomicU64::new(0),
            jumps: AtomicU64::new(0),
            last_jump_ms: Mutex::new(None),
            lateness: Mutex::new(LatencyWindow::new(LATENESS_WINDOW)),
            watch: Mutex::new(ClockWatch::new(config)),
            jump_sink: Mutex::new(None),
            clock,
        }
    }

    /// One wake-up of the loop: measure, count, log. Returns the pause, if
    /// this wake-up was one.
    pub fn beat(&self, is_leader: bool) -> Option<Duration> {
        let now = self.clock.now();
        let wall = self.clock.wall_ms();
        let obs = self.watch.lock().map(|mut w| w.observe(now, wall, self.tick)).unwrap_or_default();
        self.last_beat.store(now.as_nanos(), Ordering::SeqCst);
        if !self.started.swap(true, Ordering::SeqCst) {
            return None;
        }
        if let Ok(mut l) = self.lateness.lock() {
            l.record(obs.lateness);
        }
        if let Some(jump) = obs.jump_ms {
            self.jumps.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut j) = self.last_jump_ms.lock() {
                *j = Some(jump);
            }
            let wall = self.clock.wall_bound();
            tracing::warn!(
                jump_ms = jump,
                ?wall,
                "the wall clock jumped relative to the monotonic clock; nothing in fenced decides by wall time, \
                 but timestamps around now are unreliable"
            );
            if let Ok(sink) = self.jump_sink.lock() {
                if let Some(sink) = sink.as_ref() {
                    sink(jump, wall);
                }
            }
        }
        if let Some(pause) = obs.pause {
            self.pauses.fetch_add(1, Ordering::Relaxed);
            self.longest_pause_ms.fetch_max(pause.as_millis() as u64, Ordering::Relaxed);
            tracing::warn!(
                pause_ms = pause.as_millis() as u64,
                threshold_ms = self.pause_threshold.as_millis() as u64,
                "this replica was paused longer than the election timeout"
            );
            self.suspect_pause(is_leader);
        }
        obs.pause
    }

    /// Report every detected wall-clock jump to `sink` from now on.
    pub fn on_jump(&self, sink: JumpSink) {
        if let Ok(mut s) = self.jump_sink.lock() {
            *s = Some(sink);
        }
    }

    /// Mark that leadership must be re-confirmed before serving.
    fn suspect_pause(&self, is_leader: bool) {
        if !self.awaiting_reconfirm.swap(true, Ordering::SeqCst) && is_leader {
            self.stepdowns.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("stepping down as leader until a quorum re-confirms it");
        }
    }

    /// Must leadership be re-confirmed before serving? True after a detected
    /// pause, and also when the loop itself has not beaten for longer than
    /// the pause threshold (this process was stopped and the loop has not run
    /// yet, or it is starved: either way, time passed unobserved).
    pub fn must_reconfirm(&self, is_leader: bool) -> bool {
        if self.awaiting_reconfirm.load(Ordering::SeqCst) {
            return true;
        }
        if !self.started.load(Ordering::SeqCst) {
            return false;
        }
        let since = self.clock.now().since(Mono::from_nanos(self.last_beat.load(Ordering::SeqCst)));
        if since > self.pause_threshold + self.tick {
            self.suspect_pause(is_leader);
            return true;
        }
        false
    }

    /// Without a `must_reconfirm` side effect: is a re-confirmation pending?
    pub fn awaiting_reconfirm(&self) -> bool {
        self.awaiting_reconfirm.load(Ordering::SeqCst)
    }

    /// A quorum acknowledged this replica's leadership after the pause (or it
    /// is not the leader and has nothing to re-confirm).
    pub fn reconfirmed(&self, as_leader: bool) {
        if self.awaiting_reconfirm.swap(false, Ordering::SeqCst) {
            if as_leader {
                tracing::info!("a quorum re-confirmed this leader after the pause; serving again");
            } else {
                tracing::info!("not the leader after the pause; serving as a follower (forwarding to the leader)");
            }
        }
    }

    /// The recent scheduling lateness, as a summary.
    pub fn lateness(&self) -> fenced_core::toolbox::latency::LatencySummary {
        self.lateness.lock().map(|l| l.summary()).unwrap_or_default()
    }

    pub fn health(&self) -> ClockHealth {
        ClockHealth {
            wall: self.clock.wall_bound(),
            jumps: self.jumps.load(Ordering::Relaxed),
            last_jump_ms: self.last_jump_ms.lock().map(|j| *j).unwrap_or(None),
            pauses: self.pauses.load(Ordering::Relaxed),
            longest_pause_ms: self.longest_pause_ms.load(Ordering::Relaxed),
            pause_stepdowns: self.stepdowns.load(Ordering::Relaxed),
            awaiting_reconfirm: self.awaiting_reconfirm(),
            lateness: self.lateness(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Manual {
        mono: AtomicU64,
        wall_offset_ms: AtomicU64,
    }

    impl Clock for Manual {
        fn now(&self) -> Mono {
            Mono::from_nanos(self.mono.load(Ordering::SeqCst))
        }
        fn wall_ms(&self) -> u64 {
            1_700_000_000_000
                + self.mono.load(Ordering::SeqCst) / 1_000_000
                + self.wall_offset_ms.load(Ordering::SeqCst)
        }
    }

    fn advance(c: &Manual, d: Duration) {
        c.mono.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }

    const TICK: Duration = Duration::from_millis(50);
    const ELECTION: Duration = Duration::from_millis(500);

    #[test]
    fn a_pause_longer_than_the_election_timeout_steps_a_leader_down_until_reconfirmed() {
        let clock = Arc::new(Manual::default());
        let tk = Timekeeper::new(clock.clone(), TICK, ELECTION);
        for _ in 0..10 {
            advance(&clock, TICK);
            assert_eq!(tk.beat(true), None);
            assert!(!tk.must_reconfirm(true));
        }
        // SIGSTOP for 3 s. The request path runs before the loop does.
        advance(&clock, Duration::from_secs(3));
        assert!(tk.must_reconfirm(true), "the gap since the last beat is seen at once");
        assert_eq!(tk.health().pause_stepdowns, 1);
        // Then the loop runs and measures the pause; not counted as a second step-down.
        advance(&clock, Duration::from_millis(1));
        assert!(tk.beat(true).is_some_and(|p| p >= Duration::from_secs(2)));
        let h = tk.health();
        assert_eq!((h.pauses, h.pause_stepdowns, h.awaiting_reconfirm), (1, 1, true));
        assert!(h.longest_pause_ms >= 2900, "{h:?}");
        assert!(tk.must_reconfirm(true), "still waiting for the quorum");
        tk.reconfirmed(true);
        assert!(!tk.must_reconfirm(true));
        // A pause shorter than the election timeout is lateness, not a step-down.
        advance(&clock, Duration::from_millis(300));
        assert!(!tk.must_reconfirm(true));
        assert_eq!(tk.beat(true), None);
        assert_eq!(tk.health().pauses, 1);
    }

    #[test]
    fn a_wall_jump_through_the_seam_is_counted_not_taken_for_a_pause() {
        let clock = Arc::new(Manual::default());
        let tk = Timekeeper::new(clock.clone(), TICK, ELECTION);
        let seen: Arc<Mutex<Vec<(i64, u64)>>> = Arc::default();
        let sink = seen.clone();
        tk.on_jump(Box::new(move |ms, wall| {
            if let Ok(mut s) = sink.lock() {
                s.push((ms, wall.now_ms));
            }
        }));
        advance(&clock, TICK);
        tk.beat(false);
        clock.wall_offset_ms.store(3_600_000, Ordering::SeqCst); // an hour forward
        advance(&clock, TICK);
        assert_eq!(tk.beat(false), None);
        let h = tk.health();
        assert_eq!((h.jumps, h.last_jump_ms, h.pauses), (1, Some(3_600_000), 0));
        let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(seen, vec![(3_600_000, clock.wall_ms())], "the detection reaches the sink (the history)");
        assert!(!h.wall.synchronized, "the manual clock knows no bound");
    }
}
