//! A host's disk for one life: the files outlive a crash (a
//! [`MemDisk`] loses only what was not synced), but the dead life can no
//! longer touch them. Its tasks may run on briefly after the crash until they
//! notice; what they try to read or write is refused.

use crate::net::Incarnation;
use fenced_io::disk::{Disk, MemDisk};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A host's fsync latencies: drawn from a seeded RNG, one per fsync, so a
/// seed replays them exactly. Shared by the host's lives.
#[derive(Clone)]
pub struct FsyncLatency {
    rng: Arc<Mutex<ChaCha8Rng>>,
    min: Duration,
    max: Duration,
}

impl FsyncLatency {
    /// Latencies uniform in `[min, max)`, from `seed`.
    pub fn new(seed: u64, min: Duration, max: Duration) -> Self {
        FsyncLatency { rng: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed))), min, max: max.max(min) }
    }

    /// No latency: fsyncs complete at once.
    pub fn none() -> Self {
        Self::new(0, Duration::ZERO, Duration::ZERO)
    }

    fn next(&self) -> Duration {
        if self.max <= self.min {
            return self.min;
        }
        match self.rng.lock() {
            Ok(mut rng) => rng.gen_range(self.min..self.max),
            Err(_) => self.min,
        }
    }
}

/// [`MemDisk`] seen by one [`Incarnation`].
#[derive(Clone)]
pub struct HostDisk {
    disk: MemDisk,
    life: Arc<Incarnation>,
    fsync: FsyncLatency,
}

impl HostDisk {
    pub fn new(disk: MemDisk, life: Arc<Incarnation>, fsync: FsyncLatency) -> Self {
        HostDisk { disk, life, fsync }
    }

    fn check(&self) -> io::Result<()> {
        if self.life.alive() {
            Ok(())
        } else {
            Err(io::Error::other(format!("{} crashed: this process no longer has a disk", self.life.host())))
        }
    }
}

impl Disk for HostDisk {
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        self.check()?;
        self.disk.read(name)
    }

    fn append(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.check()?;
        self.disk.append(name, data)
    }

    fn sync(&self, name: &str) -> io::Result<()> {
        self.check()?;
        self.disk.sync(name)
    }

    fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.check()?;
        self.disk.write_atomic(name, data)
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        self.check()?;
        self.disk.truncate(name, len)
    }

    fn sync_latency(&self) -> Duration {
        self.fsync.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Net;
    use std::time::Duration;

    #[test]
    fn a_crashed_life_cannot_touch_the_disk_and_the_next_life_finds_what_was_synced() {
        let net = Net::new(1, Duration::from_millis(1), Duration::from_millis(5));
        let mem = MemDisk::new();
        let first = HostDisk::new(mem.clone(), net.transport("n1").incarnation(), FsyncLatency::none());
        first.append("wal", b"synced").expect("append");
        first.sync("wal").expect("sync");
        first.append("wal", b"+lost").expect("append");
        net.crash("n1");
        mem.crash();
        assert!(first.append("wal", b"zombie").is_err());
        assert!(first.write_atomic("snap", b"zombie").is_err());
        assert!(first.read("wal").is_err());
        let second = HostDisk::new(mem, net.transport("n1").incarnation(), FsyncLatency::none());
        assert_eq!(second.read("wal").expect("read").as_deref(), Some(&b"synced"[..]));
        assert_eq!(second.read("snap").expect("read"), None);
    }
}
