//! The disk seam: named files in one directory, with explicit durability.
//!
//! `append` may be buffered and is durable only after `sync` returns;
//! `write_atomic` replaces a whole file durably (write, fsync, rename, fsync
//! the directory). [`FsDisk`] is the real thing. [`MemDisk`] keeps files in
//! memory and, on [`MemDisk::crash`], drops every append that was not synced:
//! the simulator's model of `kill -9` and power loss.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// Durable named files.
pub trait Disk: Send + Sync + 'static {
    /// The whole file, or `None` if it does not exist.
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Append bytes; durable only after [`Disk::sync`].
    fn append(&self, name: &str, data: &[u8]) -> io::Result<()>;
    /// Make every append to `name` durable (fsync).
    fn sync(&self, name: &str) -> io::Result<()>;
    /// Replace `name` with `data`, durably and atomically.
    fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()>;
    /// Cut `name` to `len` bytes, durably (used to drop a torn tail).
    fn truncate(&self, name: &str, len: u64) -> io::Result<()>;
    /// How long the next fsync is to take beyond the call itself. A real
    /// disk takes its own time inside [`Disk::sync`] and returns zero; a
    /// simulated one returns a latency for the writer to wait on the
    /// runtime's timer before syncing, so that a crash can land while
    /// written data is not yet durable.
    fn sync_latency(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

fn poisoned<T>(_: T) -> io::Error {
    io::Error::other("disk state lock poisoned by an earlier panic")
}

/// Files in a real directory.
pub struct FsDisk {
    dir: PathBuf,
    /// Open append handles, so appends do not reopen the file each time.
    open: Mutex<BTreeMap<String, File>>,
}

impl FsDisk {
    /// Use (and create) `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(FsDisk { dir, open: Mutex::new(BTreeMap::new()) })
    }

    fn handle<'a>(&self, g: &'a mut MutexGuard<'_, BTreeMap<String, File>>, name: &str) -> io::Result<&'a mut File> {
        if !g.contains_key(name) {
            let f = OpenOptions::new().create(true).append(true).open(self.dir.join(name))?;
            g.insert(name.to_string(), f);
        }
        g.get_mut(name).ok_or_else(|| io::Error::other("file handle vanished"))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

impl Disk for FsDisk {
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.dir.join(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn append(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut g = self.open.lock().map_err(poisoned)?;
        self.handle(&mut g, name)?.write_all(data)
    }

    fn sync(&self, name: &str) -> io::Result<()> {
        let mut g = self.open.lock().map_err(poisoned)?;
        let created = !self.dir.join(name).exists();
        self.handle(&mut g, name)?.sync_data()?;
        if created {
            self.sync_dir()?;
        }
        Ok(())
    }

    fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut g = self.open.lock().map_err(poisoned)?;
        g.remove(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, self.dir.join(name))?;
        self.sync_dir()
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let mut g = self.open.lock().map_err(poisoned)?;
        g.remove(name);
        let f = OpenOptions::new().write(true).open(self.dir.join(name))?;
        f.set_len(len)?;
        f.sync_all()
    }
}

/// One in-memory file: its bytes, and how many of them are durable. Appends
/// only ever extend a file, so "durable" is a prefix: syncing is O(1), not a
/// copy of the file (which made the simulator quadratic in its WAL size).
#[derive(Default, Clone)]
struct MemFile {
    data: Vec<u8>,
    synced: usize,
}

/// An in-memory disk that forgets unsynced writes on [`MemDisk::crash`].
/// Cloning shares the files, so the disk outlives a crashed host.
#[derive(Clone, Default)]
pub struct MemDisk {
    files: Arc<Mutex<BTreeMap<String, MemFile>>>,
}

impl MemDisk {
    pub fn new() -> Self {
        Self::default()
    }

    /// Lose everything not synced, as a crash does.
    pub fn crash(&self) {
        if let Ok(mut files) = self.files.lock() {
            for f in files.values_mut() {
                f.data.truncate(f.synced);
            }
        }
    }
}

impl Disk for MemDisk {
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.files.lock().map_err(poisoned)?.get(name).map(|f| f.data.clone()))
    }

    fn append(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.files.lock().map_err(poisoned)?.entry(name.to_string()).or_default().data.extend_from_slice(data);
        Ok(())
    }

    fn sync(&self, name: &str) -> io::Result<()> {
        let mut files = self.files.lock().map_err(poisoned)?;
        let f = files.entry(name.to_string()).or_default();
        f.synced = f.data.len();
        Ok(())
    }

    fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let file = MemFile { data: data.to_vec(), synced: data.len() };
        self.files.lock().map_err(poisoned)?.insert(name.to_string(), file);
        Ok(())
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let mut files = self.files.lock().map_err(poisoned)?;
        if let Some(f) = files.get_mut(name) {
            let len = usize::try_from(len).unwrap_or(usize::MAX).min(f.data.len());
            f.data.truncate(len);
            // Durable on return, like the real one.
            f.synced = len;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(d: &dyn Disk) {
        d.append("log", b"abc").expect("append");
        d.sync("log").expect("sync");
        d.append("log", b"def").expect("append");
        assert_eq!(d.read("log").expect("read").as_deref(), Some(&b"abcdef"[..]));
        d.truncate("log", 4).expect("truncate");
        assert_eq!(d.read("log").expect("read").as_deref(), Some(&b"abcd"[..]));
        d.write_atomic("snap", b"xyz").expect("write");
        assert_eq!(d.read("snap").expect("read").as_deref(), Some(&b"xyz"[..]));
        assert_eq!(d.read("missing").expect("read"), None);
    }

    #[test]
    fn fs_disk_behaves() {
        let dir = tempfile::tempdir().expect("tempdir");
        exercise(&FsDisk::open(dir.path()).expect("open"));
    }

    #[test]
    fn mem_disk_behaves_and_crash_drops_unsynced() {
        let d = MemDisk::new();
        exercise(&d);
        d.append("log", b"zz").expect("append");
        d.crash();
        assert_eq!(d.read("log").expect("read").as_deref(), Some(&b"abcd"[..]));
    }
}
