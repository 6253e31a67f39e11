//! The clock seam.
//!
//! Durations are measured on a monotonic clock only. The wall clock is for
//! display (the `issued_at` of a signed token, report timestamps) and never
//! decides anything. The replica and client take a `Clock` so the simulator can
//! substitute simulated time, with per-host drift and pauses.

use std::time::Duration;

/// A monotonic instant: nanoseconds since an arbitrary per-process (or,
/// in the simulator, per-host) origin. The unit is in every name that
/// crosses the type's boundary (`from_nanos`, `as_nanos`, `as_millis`), so a
/// caller never guesses it; arithmetic goes through `Duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mono(u64);

impl Mono {
    /// The origin.
    pub const ZERO: Mono = Mono(0);

    /// The instant `ns` nanoseconds after the origin.
    pub const fn from_nanos(ns: u64) -> Mono {
        Mono(ns)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Whole milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// The instant `d` after this one (saturating).
    pub fn plus(self, d: Duration) -> Mono {
        Mono(self.0.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
    }

    /// The instant `d` before this one, or the origin if `d` reaches past it.
    pub fn minus(self, d: Duration) -> Mono {
        Mono(self.0.saturating_sub(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
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
    /// Wall-clock time with its error bound. The default knows no bound.
    fn wall_bound(&self) -> WallBound {
        WallBound::unknown(self.wall_ms())
    }
}

/// A wall-clock reading with its error bound, the way AWS ClockBound and
/// Spanner's TrueTime report time: the true time is somewhere in
/// `[earliest_ms, latest_ms]`, *if* the clock is synchronized. Read from the
/// kernel's NTP state (`adjtimex`): `maxerror` bounds the offset from true
/// time, `esterror` estimates it, `STA_UNSYNC` says nobody disciplines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WallBound {
    /// The reading itself (ms since the Unix epoch).
    pub now_ms: u64,
    /// `now - maxerror`.
    pub earliest_ms: u64,
    /// `now + maxerror`.
    pub latest_ms: u64,
    /// The kernel's maximum error, in µs.
    pub max_error_us: u64,
    /// The kernel's estimated error, in µs.
    pub est_error_us: u64,
    /// False if the kernel reports `STA_UNSYNC` (no NTP discipline) or the
    /// bound could not be read: then the interval is not to be believed.
    pub synchronized: bool,
    /// Where the bound came from: `adjtimex`, `simulated`, or `none` (unknown).
    pub source: WallSource,
}

/// Where a [`WallBound`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WallSource {
    Adjtimex,
    /// The simulator's clocks: a fixed, deterministic bound.
    Simulated,
    None,
}

/// The kernel's cap on `maxerror` (NTP_PHASE_LIMIT scaled): 16 s.
pub const MAX_ERROR_CAP_US: u64 = 16_000_000;

impl WallBound {
    /// A reading whose error is known: `[now − max_error, now + max_error]`.
    pub fn new(now_ms: u64, max_error_us: u64, est_error_us: u64, synchronized: bool) -> WallBound {
        let err_ms = max_error_us.div_ceil(1000);
        WallBound {
            now_ms,
            earliest_ms: now_ms.saturating_sub(err_ms),
            latest_ms: now_ms.saturating_add(err_ms),
            max_error_us,
            est_error_us,
            synchronized,
            source: WallSource::Adjtimex,
        }
    }

    /// A reading with no known bound: the widest interval, unsynchronized.
    pub fn unknown(now_ms: u64) -> WallBound {
        WallBound { source: WallSource::None, ..WallBound::new(now_ms, MAX_ERROR_CAP_US, MAX_ERROR_CAP_US, false) }
    }

    /// Certainly before `other` (the intervals do not overlap), TrueTime's
    /// `after`/`before`. Only meaningful if both are synchronized.
    pub fn certainly_before(&self, other: &WallBound) -> bool {
        self.synchronized && other.synchronized && self.latest_ms < other.earliest_ms
    }
}
