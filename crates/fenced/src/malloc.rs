//! glibc malloc settings for the long-running servers (`fenced serve`,
//! `fenced dev`, `fenced store serve`).
//!
//! Two glibc defaults cost a replica 29 MB at 100 000 held locks: 176 MB
//! with them, 147 MB without (`docs/benchmarks.md`, session 4, "Memory"):
//! - one malloc arena per contending thread (up to eight per core), each
//!   keeping its own freed pages;
//! - a dynamic mmap threshold: once a large buffer (a snapshot's encoding)
//!   is freed, the threshold rises to its size, so later buffers of that size
//!   come from, and stay in, the arenas.
//!
//! Two arenas and a fixed 256 KiB threshold keep the resident set close to
//! the live heap at no measured throughput cost. An operator's own
//! `MALLOC_ARENA_MAX` or `MALLOC_MMAP_THRESHOLD_` wins: we only set what the
//! environment leaves alone.

/// Arenas shared by all threads.
const ARENA_MAX: i32 = 2;
/// Allocations at least this large are mmapped and returned on free.
const MMAP_THRESHOLD: i32 = 256 * 1024;

/// Apply the settings. Call before the runtime starts its threads.
pub fn tune_for_server() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let unset = |name: &str| std::env::var_os(name).is_none();
        // SAFETY: mallopt only changes allocator parameters; it is called
        // before any other thread exists.
        unsafe {
            if unset("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
            }
            if unset("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            }
        }
    }
}
