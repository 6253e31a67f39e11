//! The host's clocks as every process of a chaos run reads them: the
//! monotonic clock that puts the driver's and the workers' events on one
//! time line, and the wall clock with its error bound for an event's `wall`.

use fenced_check::history::Wall;

/// CLOCK_MONOTONIC in nanoseconds (shared by every process on the host).
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// This process's wall clock with its error bound (`adjtimex`, through the
/// clock seam), for the `wall` of a history event.
pub fn wall_now() -> Wall {
    let b = fenced_core::toolbox::clock::Clock::wall_bound(fenced_io::clock::system());
    Wall::new(b.earliest_ms, b.latest_ms, b.synchronized)
}
