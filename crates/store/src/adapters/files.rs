//! Fencing for a plain directory: "include the fencing token in the filename".
//!
//! A write of object `name` with token `t` creates `DIR/<name>.<t:020>`: the
//! data goes to a hidden temporary file, is fsynced, and is renamed into
//! place (then the directory is fsynced), so a reader never sees a partial
//! file. A reader takes the file with the highest token. The zero-padded
//! token makes lexical and numeric order agree, for humans and `ls`.
//!
//! Why this is safe without any lock in the file system: a stale writer
//! (token below the highest present) is refused before it writes, and if it
//! races past that check, its file carries its lower token, so no reader
//! ever takes it; the writer is told `Stale` after the rename too. The
//! directory itself is the fence. What it cannot do is stop a writer from
//! *deleting* newer files: it fences honest-but-slow clients, not malicious
//! ones (use the fenced store or PostgreSQL adapter for that).
//!
//! Old versions are pruned beyond `keep` (the newest `keep` stay).
//! This module uses `std::fs` directly: its whole point is a plain directory.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a write or read failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("stale fencing token {presented}: {current} is already present")]
    Stale { presented: u64, current: u64 },
    #[error("bad object name {0:?}: use 1-200 bytes of [A-Za-z0-9_-], not starting with '-'")]
    BadName(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A directory of fenced objects.
#[derive(Debug)]
pub struct FencedDir {
    dir: PathBuf,
    keep: usize,
}

/// Distinguishes concurrent temporary files of this process.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

fn check_name(name: &str) -> Result<(), FilesError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('-')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(FilesError::BadName(name.into()))
    }
}

impl FencedDir {
    /// Use (and create) `dir`, keeping the newest `keep` versions of each object (at least 1).
    pub fn open(dir: impl Into<PathBuf>, keep: usize) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(FencedDir { dir, keep: keep.max(1) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tokens present for `name`, ascending.
    pub fn tokens(&self, name: &str) -> Result<Vec<u64>, FilesError> {
        check_name(name)?;
        let prefix = format!("{name}.");
        let mut tokens = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let file = entry?.file_name();
            let Some(file) = file.to_str() else { continue };
            let Some(t) = file.strip_prefix(&prefix) else { continue };
            // Exactly 20 digits: excludes temporaries and other objects'
            // names that merely share the prefix (`a.b`).
            if t.len() == 20 && t.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(t) = t.parse() {
                    tokens.push(t);
                }
            }
        }
        tokens.sort_unstable();
        Ok(tokens)
    }

    fn path(&self, name: &str, token: u64) -> PathBuf {
        self.dir.join(format!("{name}.{token:020}"))
    }

    /// Write `data` as object `name` under fencing token `token`.
    ///
    /// Refused with `Stale` if a higher token is present. An equal token (the
    /// same holder writing again) replaces its own file.
    pub fn write(&self, name: &str, token: u64, data: &[u8]) -> Result<PathBuf, FilesError> {
        let highest = self.tokens(name)?.last().copied();
        if let Some(current) = highest.filter(|h| *h > token) {
            return Err(FilesError::Stale { presented: token, current });
        }
        let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!(".{name}.{token:020}.tmp.{}.{seq}", std::process::id()));
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            let dst = self.path(name, token);
            fs::rename(&tmp, &dst)?;
            File::open(&self.dir)?.sync_all()?;
            Ok::<_, io::Error>(dst)
        })();
        let dst = match result {
            Ok(d) => d,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e.into());
            }
        };
        // A higher token may have landed while we wrote: our file is then
        // shadowed (never read), and the caller must know it lost.
        let tokens = self.tokens(name)?;
        if let Some(current) = tokens.last().copied().filter(|h| *h > token) {
            return Err(FilesError::Stale { presented: token, current });
        }
        self.prune(name, &tokens)?;
        Ok(dst)
    }

    fn prune(&self, name: &str, tokens: &[u64]) -> io::Result<()> {
        let excess = tokens.len().saturating_sub(self.keep);
        for t in &tokens[..excess] {
            match fs::remove_file(self.path(name, *t)) {
                Ok(()) => {}
                // A concurrent writer pruned it first.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The current object: the highest token present and its data.
    pub fn read(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>, FilesError> {
        // Retry if a concurrent prune removed the file between list and open.
        for _ in 0..3 {
            let Some(t) = self.tokens(name)?.last().copied() else { return Ok(None) };
            match fs::read(self.path(name, t)) {
                Ok(data) => return Ok(Some((t, data))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::other("object kept changing while being read").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for bad in ["", "a/b", "..", "-x", "a.b", "a b"] {
            assert!(matches!(check_name(bad), Err(FilesError::BadName(_))), "{bad}");
        }
        check_name("orders_1-a").expect("valid");
    }
}
