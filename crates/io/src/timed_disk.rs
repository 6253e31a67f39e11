//! Disk wrappers that measure and that limp.
//!
//! [`TimedDisk`] records how long each `sync` (fsync) takes on the clock seam,
//! so a replica can report its fsync latency and a leader can tell that its
//! own disk is far slower than its peers'. [`SlowDisk`] adds a configurable
//! delay to every `sync`: the seed's limping node, injected in tests.

use crate::disk::Disk;
use fenced_core::toolbox::clock::Clock;
use fenced_core::toolbox::latency::LatencyWindow;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Recent fsync latencies, shared between the disk and whoever reports them.
pub type FsyncWindow = Arc<Mutex<LatencyWindow>>;

/// How many fsync samples a [`TimedDisk`] keeps.
pub const FSYNC_WINDOW: usize = 1024;

/// A disk whose `sync` calls are timed.
pub struct TimedDisk {
    inner: Arc<dyn Disk>,
    clock: Arc<dyn Clock>,
    window: FsyncWindow,
}

impl TimedDisk {
    pub fn new(inner: Arc<dyn Disk>, clock: Arc<dyn Clock>) -> Self {
        TimedDisk { inner, clock, window: Arc::new(Mutex::new(LatencyWindow::new(FSYNC_WINDOW))) }
    }

    /// The shared window of fsync latencies.
    pub fn window(&self) -> FsyncWindow {
        self.window.clone()
    }
}

impl Disk for TimedDisk {
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        self.inner.read(name)
    }

    fn append(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.inner.append(name, data)
    }

    fn sync(&self, name: &str) -> io::Result<()> {
        let start = self.clock.now();
        let r = self.inner.sync(name);
        let took = self.clock.now().since(start);
        if let Ok(mut w) = self.window.lock() {
            w.record(took);
        }
        r
    }

    fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.inner.write_atomic(name, data)
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        self.inner.truncate(name, len)
    }

    fn sync_latency(&self) -> std::time::Duration {
        self.inner.sync_latency()
    }
}

/// A disk whose `sync` blocks the calling thread for an adjustable extra
/// delay (a dying disk, a saturated volume). Zero delay: a pass-through.
pub struct SlowDisk {
    inner: Arc<dyn Disk>,
    delay_us: Arc<AtomicU64>,
}

impl SlowDisk {
    pub fn new(inner: Arc<dyn Disk>) -> Self {
        SlowDisk { inner, delay_us: Arc::new(AtomicU64::new(0)) }
    }

    /// A handle to change the delay while the disk is in use.
    pub fn delay_handle(&self) -> Arc<AtomicU64> {
        self.delay_us.clone()
    }

    /// Set the delay added to each sync.
    pub fn set_delay(handle: &AtomicU64, d: Duration) {
        handle.store(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl Disk for SlowDisk {
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        self.inner.read(name)
    }

    fn append(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.inner.append(name, data)
    }

    fn sync(&self, name: &str) -> io::Result<()> {
        let us = self.delay_us.load(Ordering::Relaxed);
        if us > 0 {
            std::thread::sleep(Duration::from_micros(us));
        }
        self.inner.sync(name)
    }

    fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.inner.write_atomic(name, data)
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        self.inner.truncate(name, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::disk::MemDisk;

    #[test]
    fn a_slow_disk_shows_in_the_fsync_window() {
        let slow = SlowDisk::new(Arc::new(MemDisk::new()));
        let delay = slow.delay_handle();
        let timed = TimedDisk::new(Arc::new(slow), Arc::new(SystemClock::new()));
        timed.append("wal", b"x").expect("append");
        timed.sync("wal").expect("sync");
        SlowDisk::set_delay(&delay, Duration::from_millis(30));
        timed.sync("wal").expect("sync");
        let s = timed.window().lock().expect("lock").summary();
        assert_eq!(s.count, 2);
        assert!(s.max_us >= 30_000, "the delayed sync is measured: {s:?}");
        assert!(s.p50_us < 30_000, "the fast one too: {s:?}");
    }
}
