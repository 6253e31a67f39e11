//! The data directory's identity and format version (`fenced.meta`).
//!
//! The meta file is one checksummed frame `{format, body}`; `body` is
//! decoded according to `format`, so a future layout can still be recognised
//! as future and refused with a clear message instead of misread. It records
//! which cluster (by name) and which replica id the directory belongs to.
//!
//! Formats:
//! - v1: `raft.wal` and `snapshot` without `fenced.meta` (the first release).
//! - v2: v1's files, byte for byte, plus `fenced.meta`. A v1 directory is
//!   upgraded in place on start by writing the meta file; a v1 binary ignores
//!   the file, so a rollback is possible too.

use crate::config::ReplicaConfig;
use fenced_io::disk::Disk;
use fenced_io::frame;
use serde::{Deserialize, Serialize};
use std::io;

pub const META: &str = "fenced.meta";
/// The data format this build writes.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest data format this build reads.
pub const FORMAT_OLDEST: u32 = 1;

/// The stable outer layer of `fenced.meta`.
#[derive(Serialize, Deserialize)]
struct MetaFile {
    format: u32,
    body: Vec<u8>,
}

/// Format 2's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaV2 {
    pub cluster: String,
    pub replica: u64,
}

/// Why a data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("the data directory was written by a newer fenced (data format v{found}); this build reads formats v{FORMAT_OLDEST} to v{FORMAT_VERSION}. Run a fenced at most one version older than the one that wrote it")]
    TooNew { found: u32 },
    #[error("the data directory has data format v{found}, older than this build reads (v{FORMAT_OLDEST}); upgrade through the releases in between")]
    TooOld { found: u32 },
    #[error("the data directory belongs to cluster {found:?}, but this replica is configured for cluster {configured:?}. Point --data-dir at this cluster's directory (or an empty one), or fix --cluster-name")]
    OtherCluster { found: String, configured: String },
    #[error("the data directory belongs to replica {found}, but this is replica {configured}. Each replica needs its own data directory; fix --id or --data-dir")]
    OtherReplica { found: u64, configured: u64 },
    #[error("{META} is unreadable ({0}); it is checksummed, so it is corrupt or not fenced's. Restore it, or give this replica an empty data directory and add it back to the cluster")]
    Corrupt(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Read the meta file, if any: `(format, body)`.
pub fn read(disk: &dyn Disk) -> Result<Option<(u32, Option<MetaV2>)>, DataDirError> {
    let Some(bytes) = disk.read(META)? else { return Ok(None) };
    let file: MetaFile = frame::decode_exact(&bytes).map_err(|e| DataDirError::Corrupt(e.to_string()))?;
    let body = if file.format == 2 { Some(postcard_body(&file.body)?) } else { None };
    Ok(Some((file.format, body)))
}

fn postcard_body(body: &[u8]) -> Result<MetaV2, DataDirError> {
    frame::decode_exact(body).map_err(|e| DataDirError::Corrupt(e.to_string()))
}

fn write(disk: &dyn Disk, meta: &MetaV2) -> Result<(), DataDirError> {
    let body = frame::encode(meta).map_err(|e| DataDirError::Corrupt(e.to_string()))?;
    let file =
        frame::encode(&MetaFile { format: FORMAT_VERSION, body }).map_err(|e| DataDirError::Corrupt(e.to_string()))?;
    disk.write_atomic(META, &file)?;
    Ok(())
}

/// Stamp `disk` as replica `replica` of cluster `cluster` (a restored or
/// recovered data directory, written before its first start).
pub fn stamp(disk: &dyn Disk, cluster: &str, replica: u64) -> Result<(), DataDirError> {
    write(disk, &MetaV2 { cluster: cluster.to_string(), replica })
}

/// Check that `disk` is a data directory this replica may use, upgrading a
/// v1 directory and stamping a new one. Returns the format found (0 if new).
pub fn open(disk: &dyn Disk, config: &ReplicaConfig) -> Result<u32, DataDirError> {
    let ours = MetaV2 { cluster: config.cluster_name.clone(), replica: config.id };
    match read(disk)? {
        Some((found, _)) if found > FORMAT_VERSION => Err(DataDirError::TooNew { found }),
        Some((found, _)) if found < FORMAT_OLDEST => Err(DataDirError::TooOld { found }),
        Some((found, Some(meta))) => {
            if meta.cluster != ours.cluster {
                return Err(DataDirError::OtherCluster { found: meta.cluster, configured: ours.cluster });
            }
            if meta.replica != ours.replica {
                return Err(DataDirError::OtherReplica { found: meta.replica, configured: ours.replica });
            }
            Ok(found)
        }
        Some((found, None)) => Err(DataDirError::Corrupt(format!("format v{found} has no body"))),
        None => {
            let existing = disk.read(crate::storage::log_store::WAL)?.is_some() || disk.read("snapshot")?.is_some();
            write(disk, &ours)?;
            if existing {
                tracing::info!(
                    cluster = %ours.cluster,
                    "upgraded the data directory from format v1 to v{FORMAT_VERSION} (added {META})"
                );
                Ok(1)
            } else {
                Ok(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fenced_io::disk::MemDisk;
    use std::collections::BTreeMap;

    fn config(cluster: &str, id: u64) -> ReplicaConfig {
        let mut c = ReplicaConfig::new(id, "127.0.0.1:1".into(), BTreeMap::new());
        c.cluster_name = cluster.into();
        c
    }

    #[test]
    fn a_new_directory_is_stamped_and_then_checked() {
        let disk = MemDisk::new();
        assert_eq!(open(&disk, &config("prod", 1)).expect("new"), 0);
        assert_eq!(open(&disk, &config("prod", 1)).expect("same"), FORMAT_VERSION);
        let e = open(&disk, &config("staging", 1)).expect_err("other cluster");
        assert!(e.to_string().contains("belongs to cluster \"prod\""), "{e}");
        assert!(e.to_string().contains("--data-dir"), "{e}");
        let e = open(&disk, &config("prod", 2)).expect_err("other replica");
        assert!(matches!(e, DataDirError::OtherReplica { found: 1, configured: 2 }), "{e}");
    }

    #[test]
    fn a_version_1_directory_is_upgraded_in_place() {
        let disk = MemDisk::new();
        disk.append(crate::storage::log_store::WAL, b"v1 records").expect("write");
        assert_eq!(open(&disk, &config("prod", 3)).expect("v1 read"), 1);
        assert_eq!(read(&disk).expect("meta").map(|m| m.0), Some(FORMAT_VERSION));
        assert_eq!(
            disk.read(crate::storage::log_store::WAL).expect("wal"),
            Some(b"v1 records".to_vec()),
            "WAL untouched"
        );
    }

    #[test]
    fn a_future_format_is_refused_with_what_to_do() {
        let disk = MemDisk::new();
        let file = frame::encode(&MetaFile { format: FORMAT_VERSION + 1, body: vec![1, 2, 3] }).expect("encode");
        disk.write_atomic(META, &file).expect("write");
        let e = open(&disk, &config("prod", 1)).expect_err("future refused");
        assert!(matches!(e, DataDirError::TooNew { found: 3 }), "{e}");
        assert!(e.to_string().contains("reads formats v1 to v2"), "{e}");
    }

    #[test]
    fn a_corrupt_meta_file_is_refused() {
        let disk = MemDisk::new();
        disk.write_atomic(META, b"garbage!garbage!").expect("write");
        assert!(matches!(open(&disk, &config("prod", 1)), Err(DataDirError::Corrupt(_))));
    }
}
