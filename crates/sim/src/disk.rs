//! A host's disk for one life: the files outlive a crash (a
//! [`MemDisk`] loses only what was not synced), but the dead life can no
//! longer touch them. Its tasks may run on briefly after the crash until they
//! notice; what they try to read or write is refused.

use crate::net::Incarnation;
use fenced_io::disk::{Disk, MemDisk};
use std::io;
use std::sync::Arc;

/// [`MemDisk`] seen by one [`Incarnation`].
#[derive(Clone)]
pub struct HostDisk {
    disk: MemDisk,
    life: Arc<Incarnation>,
}

impl HostDisk {
    pub fn new(disk: MemDisk, life: Arc<Incarnation>) -> Self {
        HostDisk { disk, life }
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
        let first = HostDisk::new(mem.clone(), net.transport("n1").incarnation());
        first.append("wal", b"synced").expect("append");
        first.sync("wal").expect("sync");
        first.append("wal", b"+lost").expect("append");
        net.crash("n1");
        mem.crash();
        assert!(first.append("wal", b"zombie").is_err());
        assert!(first.write_atomic("snap", b"zombie").is_err());
        assert!(first.read("wal").is_err());
        let second = HostDisk::new(mem, net.transport("n1").incarnation());
        assert_eq!(second.read("wal").expect("read").as_deref(), Some(&b"synced"[..]));
        assert_eq!(second.read("snap").expect("read"), None);
    }
}
