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
