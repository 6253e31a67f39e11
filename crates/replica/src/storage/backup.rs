//! Backup, restore and disaster recovery, none of which may re-issue a token.
//!
//! - **Backup** (`GET /v1/cluster/snapshot`, `fenced cluster snapshot save`):
//!   the leader confirms its leadership with a quorum (read index), then
//!   copies its applied state and the log id it is at, together. The file
//!   is one checksummed frame with a magic and a format version outside,
//!   so a damaged or foreign file is refused and a future one recognised.
//! - **Restore** ([`restore`], `fenced snapshot restore`): a data directory
//!   for a replica of a *new* cluster, starting from the backup.
//! - **Recovery** ([`recover`], `fenced cluster recover`): a surviving
//!   replica's data directory rewritten as a one-member cluster, after the
//!   majority is lost for good.
//!
//! Both start the new cluster above a **token floor** (see
//! `fenced_core::machine::table::LockTable::restart_above`): the snapshot's last log
//! id is placed at index `floor`, so the first new entry, and so the first
//! new token, is `floor + 1`. The floor is the highest index this data knows
//! plus `bump` ([`DEFAULT_BUMP`]), because the old cluster may have committed
//! entries nobody here saw: after the backup was taken, or beyond the
//! survivor's log. docs/design.md ("Restore and recovery never re-issue a
//! token") argues why 2^32 is enough; etcd's `--bump-revision` (etcd issue
//! 16028) is the same idea.
//!
//! Every lease ends in the new cluster (holders acquire again, above the
//! floor); the signing keys stay, so resources keep verifying tokens.

// Route rights: `GET /v1/cluster/snapshot` needs **admin** (the lead ports
// this into the router's per-route rights).

use crate::storage::data_dir::{self, DataDirError};
use crate::storage::log_store::{self, LogStore, WAL};
use crate::storage::state_machine::{decode_snapshot_data, decode_snapshot_file, SnapshotFile, SNAPSHOT};
use crate::storage::types::{LogId, Node, NodeId, SnapshotMeta, StoredMembership, TypeConfig, Vote};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use fenced_core::admin::SnapshotExport;
use fenced_core::machine::limits::Limits;
use fenced_core::machine::table::{FloorError, LockTable, Restarted};
use fenced_io::disk::Disk;
use fenced_io::frame;
use openraft::alias::LeaderIdOf;
use openraft::entry::RaftEntry;
use openraft::vote::RaftLeaderIdExt;
use openraft::{EntryPayload, Membership};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The backup file format this build writes and reads.
pub const BACKUP_FORMAT: u32 = 1;
/// The first bytes of every backup file's payload.
const MAGIC: [u8; 8] = *b"fencedbk";
/// The default bump of the token floor above the highest index known: 2^32.
/// docs/design.md argues why no cluster can have issued that many tokens
/// unseen; `--bump` overrides it.
pub const DEFAULT_BUMP: u64 = 1 << 32;
/// Where `recover` keeps the survivor's files before rewriting them.
pub const KEPT_SUFFIX: &str = ".before-recover";

/// The stable outer layer of a backup file.
#[derive(Serialize, Deserialize)]
struct Outer {
    magic: [u8; 8],
    format: u32,
    body: Vec<u8>,
}

/// Format 1's body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupV1 {
    /// The cluster's name (`--cluster-name`) when the backup was taken.
    pub cluster: String,
    /// The taking leader's id.
    pub taken_by: NodeId,
    /// The taking leader's wall clock (ms since the epoch); display only.
    pub taken_at_ms: u64,
    pub meta: SnapshotMeta,
    /// The lock table in its checksummed frame, as in a snapshot file.
    pub data: Vec<u8>,
}

/// A decoded backup.
#[derive(Debug, Clone)]
pub struct Backup {
    pub body: BackupV1,
    pub table: LockTable,
}

/// Why a backup, restore or recovery cannot proceed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not a fenced backup file (bad magic); `fenced cluster snapshot save FILE` writes one")]
    NotBackup,
    #[error("the backup file is damaged ({0}); take another with `fenced cluster snapshot save`")]
    Damaged(String),
    #[error("the backup file has format v{0}; this build reads v{BACKUP_FORMAT}. Use the fenced that wrote it")]
    Format(u32),
    #[error("the data directory {0} is not empty; restore into an empty directory (a restore creates a new cluster)")]
    NotEmpty(String),
    #[error("the data directory holds no fenced replica ({0}); point --data-dir at the survivor's data directory")]
    NoReplica(String),
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(
        "replica {id} is not in --peers; give every member of the new cluster, this one included (ID=HOST:PORT,...)"
    )]
    NotInPeers { id: NodeId },
    #[error("replica {id} has no address in the survivor's membership; give it with --addr HOST:PORT")]
    NoAddress { id: NodeId },
    #[error("the token floor {known} + {bump} overflows; choose a smaller --bump")]
    Overflow { known: u64, bump: u64 },
    #[error(transparent)]
    Floor(#[from] FloorError),
    #[error("invalid membership: {0}")]
    Membership(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn frame_err(e: frame::FrameError) -> BackupError {
    BackupError::Damaged(e.to_string())
}

/// Encode a backup file.
pub fn encode(body: &BackupV1) -> Result<Vec<u8>, BackupError> {
    let body = frame::encode(body).map_err(frame_err)?;
    frame::encode(&Outer { magic: MAGIC, format: BACKUP_FORMAT, body }).map_err(frame_err)
}

/// Decode a backup file. Pure, so that it can be fuzzed.
pub fn decode(bytes: &[u8]) -> Result<Backup, BackupError> {
    let outer: Outer = frame::decode_exact(bytes).map_err(|e| match e {
        frame::FrameError::Decode(_) => BackupError::NotBackup,
        e => frame_err(e),
    })?;
    if outer.magic != MAGIC {
        return Err(BackupError::NotBackup);
    }
    if outer.format != BACKUP_FORMAT {
        return Err(BackupError::Format(outer.format));
    }
    let body: BackupV1 = frame::decode_exact(&outer.body).map_err(frame_err)?;
    let table = decode_snapshot_data(&body.data).map_err(frame_err)?;
    Ok(Backup { body, table })
}

/// A held lock in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldLock {
    pub lock: String,
    pub token: u64,
    pub lease: u64,
}

/// What `fenced snapshot inspect` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub format: u32,
    pub cluster: String,
    pub taken_by: NodeId,
    pub taken_at_ms: u64,
    /// The log index (and term) the state is at.
    pub index: u64,
    pub term: u64,
    /// Voters and their addresses.
    pub members: BTreeMap<NodeId, String>,
    pub leases: usize,
    pub locks: Vec<HeldLock>,
    pub claims: usize,
    /// The highest token granted (or reserved by an earlier floor).
    pub highest_token: u64,
    /// The floor a restore with the default bump would place.
    pub restore_floor: u64,
}

fn voters_of(m: &StoredMembership) -> BTreeMap<NodeId, String> {
    let voters: BTreeSet<NodeId> = m.membership().voter_ids().collect();
    m.membership().nodes().filter(|(id, _)| voters.contains(id)).map(|(id, n)| (*id, n.addr.clone())).collect()
}

impl Backup {
    pub fn index(&self) -> u64 {
        self.body.meta.last_log_id.as_ref().map_or(0, |l| l.index)
    }

    pub fn summary(&self) -> Summary {
        let t = &self.table;
        let term = self.body.meta.last_log_id.as_ref().map_or(0, |l| l.leader_id.term);
        Summary {
            format: BACKUP_FORMAT,
            cluster: self.body.cluster.clone(),
            taken_by: self.body.taken_by,
            taken_at_ms: self.body.taken_at_ms,
            index: self.index(),
            term,
            members: voters_of(&self.body.meta.last_membership),
            leases: t.leases().count(),
            locks: t
                .held_locks()
                .map(|g| HeldLock { lock: g.lock.clone(), token: g.token.0, lease: g.lease.0 })
                .collect(),
            claims: t.claims().count(),
            highest_token: t.highest_token(),
            restore_floor: floor_above(self.index().max(t.highest_token()), DEFAULT_BUMP).unwrap_or(u64::MAX),
        }
    }
}

fn floor_above(known: u64, bump: u64) -> Result<u64, BackupError> {
    known.checked_add(bump).filter(|_| bump > 0).ok_or(BackupError::Overflow { known, bump })
}

/// What a restore or recovery wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub cluster: String,
    pub id: NodeId,
    pub members: BTreeMap<NodeId, String>,
    /// The highest index the source knew.
    pub known_index: u64,
    /// Every token of the new cluster exceeds this.
    pub floor: u64,
    pub term: u64,
    pub leases_ended: usize,
    pub locks_freed: usize,
    pub claims_dropped: usize,
}

/// Write the first state of a new cluster into `disk`: the snapshot at
/// index `floor` first (so that any start from a partial write already
/// starts above the floor), then a WAL holding only a vote in `term`, then
/// the directory's identity.
fn write_start(
    disk: &dyn Disk,
    cluster: &str,
    id: NodeId,
    term: u64,
    members: &BTreeMap<NodeId, String>,
    table: &LockTable,
    floor: u64,
) -> Result<(), BackupError> {
    let log_id = LogId::new(LeaderIdOf::<TypeConfig>::new_committed(term, id), floor);
    let voters: BTreeSet<NodeId> = members.keys().copied().collect();
    let nodes: BTreeMap<NodeId, Node> = members.iter().map(|(id, a)| (*id, Node { addr: a.clone() })).collect();
    let membership = Membership::new(vec![voters], nodes).map_err(|e| BackupError::Membership(e.to_string()))?;
    let meta =
        SnapshotMeta { last_log_id: Some(log_id), last_membership: StoredMembership::new(Some(log_id), membership) };
    let data = frame::encode(table).map_err(frame_err)?;
    disk.write_atomic(SNAPSHOT, &frame::encode(&SnapshotFile { meta, data }).map_err(frame_err)?)?;
    disk.write_atomic(WAL, &log_store::fresh_wal(Vote::new(term, id))?)?;
    data_dir::stamp(disk, cluster, id)?;
    Ok(())
}

fn report(
    cluster: &str,
    id: NodeId,
    members: BTreeMap<NodeId, String>,
    known: u64,
    term: u64,
    r: Restarted,
) -> Started {
    Started {
        cluster: cluster.to_string(),
        id,
        members,
        known_index: known,
        floor: r.floor,
        term,
        leases_ended: r.leases_ended,
        locks_freed: r.locks_freed,
        claims_dropped: r.claims_dropped,
    }
}

/// Make `disk` (empty) the data directory of replica `id` of the new
/// cluster `cluster` whose voters are `peers`, starting from `backup`.
/// Run it for every member with the same file: each gets the same state.
pub fn restore(
    disk: &dyn Disk,
    backup: &Backup,
    cluster: &str,
    id: NodeId,
    peers: &BTreeMap<NodeId, String>,
    bump: u64,
) -> Result<Started, BackupError> {
    for name in [data_dir::META, WAL, SNAPSHOT] {
        if disk.read(name)?.is_some() {
            return Err(BackupError::NotEmpty(format!("(it has {name})")));
        }
    }
    if !peers.contains_key(&id) {
        return Err(BackupError::NotInPeers { id });
    }
    let known = backup.index().max(backup.table.highest_token());
    let floor = floor_above(known, bump)?;
    let mut table = backup.table.clone();
    let restarted = table.restart_above(floor)?;
    let term = backup.body.meta.last_log_id.as_ref().map_or(0, |l| l.leader_id.term);
    write_start(disk, cluster, id, term, peers, &table, floor)?;
    Ok(report(cluster, id, peers.clone(), known, term, restarted))
}

/// Rewrite a surviving replica's data directory as the only member of its
/// cluster, above the floor. Everything the survivor has (its snapshot and
/// every entry in its log, committed or not) is applied first; the old
/// files are kept beside the new ones with the suffix [`KEPT_SUFFIX`].
pub fn recover(disk: Arc<dyn Disk>, id: NodeId, addr: Option<String>, bump: u64) -> Result<Started, BackupError> {
    let meta = match data_dir::read(&*disk)? {
        Some((_, Some(meta))) => meta,
        Some((format, None)) => return Err(BackupError::NoReplica(format!("data format v{format} has no identity"))),
        None => return Err(BackupError::NoReplica(format!("no {}", data_dir::META))),
    };
    if meta.replica != id {
        return Err(DataDirError::OtherReplica { found: meta.replica, configured: id }.into());
    }
    let snapshot_bytes = disk.read(SNAPSHOT)?;
    let (mut table, mut membership, mut membership_at, snap_index) = match &snapshot_bytes {
        Some(bytes) => {
            let (file, table) = decode_snapshot_file(bytes)?;
            let index = file.meta.last_log_id.as_ref().map_or(0, |l| l.index);
            let at = file.meta.last_membership.log_id().as_ref().map(|l| l.index);
            (table, voters_of(&file.meta.last_membership), at, index)
        }
        None => (LockTable::new(Limits::default()), BTreeMap::new(), None, 0),
    };
    let wal_bytes = disk.read(WAL)?;
    let log = LogStore::open(disk.clone())?;
    let mut term = log.vote()?.map_or(0, |v| v.leader_id.term);
    let mut known = snap_index.max(table.highest_token());
    for entry in log.entries()? {
        let index = entry.index();
        known = known.max(index);
        term = term.max(entry.log_id().leader_id.term);
        match &entry.payload {
            // Entries the snapshot already holds are not applied twice.
            EntryPayload::Normal(req) if index > table.last_applied() => {
                table.apply(index, req);
            }
            EntryPayload::Normal(_) => {}
            // The log may still hold entries before the snapshot: only a
            // membership newer than the snapshot's replaces it.
            EntryPayload::Membership(m) if membership_at.is_none_or(|at| index > at) => {
                membership_at = Some(index);
                let voters: BTreeSet<NodeId> = m.voter_ids().collect();
                membership = m.nodes().filter(|(i, _)| voters.contains(i)).map(|(i, n)| (*i, n.addr.clone())).collect();
            }
            EntryPayload::Membership(_) | EntryPayload::Blank => {}
        }
    }
    let addr = addr.or_else(|| membership.get(&id).cloned()).ok_or(BackupError::NoAddress { id })?;
    let floor = floor_above(known, bump)?;
    let restarted = table.restart_above(floor)?;
    if let Some(b) = &snapshot_bytes {
        disk.write_atomic(&format!("{SNAPSHOT}{KEPT_SUFFIX}"), b)?;
    }
    if let Some(b) = &wal_bytes {
        disk.write_atomic(&format!("{WAL}{KEPT_SUFFIX}"), b)?;
    }
    let members = BTreeMap::from([(id, addr)]);
    write_start(&*disk, &meta.cluster, id, term, &members, &table, floor)?;
    Ok(report(&meta.cluster, id, members, known, term, restarted))
}

/// Decode an export's file (the client side of [`save`]).
pub fn decode_export(e: &SnapshotExport) -> Result<Vec<u8>, BackupError> {
    B64.decode(&e.file).map_err(|e| BackupError::Damaged(format!("bad base64: {e}")))
}
