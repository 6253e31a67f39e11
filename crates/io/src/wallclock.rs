//! The wall clock's error bound, from the kernel's NTP state.
//!
//! `adjtimex(2)` with `modes = 0` only reads: `maxerror` is the kernel's bound
//! on the clock's offset from true time (µs; NTP sets it at each update and the
//! kernel grows it by 500 ppm per second until the next, capped at 16 s),
//! `esterror` its estimate, and `STA_UNSYNC` in `status` says no time daemon is
//! disciplining the clock — then the bound means nothing. This is what AWS
//! ClockBound publishes, and Spanner's TrueTime `[earliest, latest]`.

use fenced_core::toolbox::clock::{WallBound, MAX_ERROR_CAP_US};

/// The kernel's view of the wall clock's error, or `None` if it cannot be read
/// (not Linux, or the call failed).
pub fn kernel_bound(now_ms: u64) -> Option<WallBound> {
    read_timex().map(|(max, est, unsync)| WallBound::new(now_ms, max, est, !unsync))
}

#[cfg(target_os = "linux")]
fn read_timex() -> Option<(u64, u64, bool)> {
    // SAFETY: `timex` is plain data; zeroed is a valid value, and modes = 0
    // asks the kernel only to fill it in.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    tx.modes = 0;
    // SAFETY: a valid pointer to a timex we own, for the duration of the call.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return None;
    }
    let clamp = |v: libc::c_long| u64::try_from(v).unwrap_or(MAX_ERROR_CAP_US).min(MAX_ERROR_CAP_US);
    let unsync = tx.status & libc::STA_UNSYNC != 0 || state == libc::TIME_ERROR;
    Some((clamp(tx.maxerror), clamp(tx.esterror), unsync))
}

#[cfg(not(target_os = "linux"))]
fn read_timex() -> Option<(u64, u64, bool)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_bound_is_an_interval_around_now() {
        // Whatever the machine's NTP state, the call works on Linux and the
        // interval contains the reading.
        let b = kernel_bound(1_700_000_000_000).expect("adjtimex readable on Linux");
        assert!(b.earliest_ms <= b.now_ms && b.now_ms <= b.latest_ms);
        assert!(b.max_error_us <= MAX_ERROR_CAP_US);
        assert_eq!(b.latest_ms - b.now_ms, b.max_error_us.div_ceil(1000));
    }
}
