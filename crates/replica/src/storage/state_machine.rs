//! The state machine: the pure [`LockTable`] behind openraft's storage API,
//! plus snapshots on disk and each replica's lease timers.
//!
//! Lease timers live here because they must see every applied entry, in
//! order: a lease's deadline is the local monotonic time at which this
//! replica applied its last renewal (or checkpoint), plus the remaining TTL.
//! The renewal was made before it was applied anywhere, so this deadline is
//! never earlier than the one the old leader held (up to clock-rate error) —
//! and it is never reset by an election, which is etcd issue 9888's bug.
//! Only the leader acts on the timers (see [`crate::duties::leader`]).

use crate::storage::types::{Entry, LogId, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig};
use fenced_core::machine::table::{Event, LockTable};
use fenced_core::toolbox::clock::{Clock, Mono};
use fenced_core::{LeaseId, Response};
use fenced_io::disk::Disk;
use fenced_io::frame;
use futures::TryStreamExt;
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::EntryPayload;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// The snapshot file's name in the data directory.
pub const SNAPSHOT: &str = "snapshot";
/// Applied-entry notifications buffered for slow watchers; a watcher that
/// falls further behind is told it lagged and re-reads the table.
const EVENTS_CAPACITY: usize = 4096;

/// What one applied entry did, for watchers and history recorders.
#[derive(Debug, Clone)]
pub struct AppliedEntry {
    pub index: u64,
    pub events: Vec<Event>,
    /// The kind of command applied ([`command_kind`]): the console tells a
    /// hand-off from a grant, and sees key rotations, which change no lock.
    pub command: &'static str,
}

/// A command's kind, for the console's event stream.
pub fn command_kind(cmd: &fenced_core::machine::command::Command) -> &'static str {
    use fenced_core::machine::command::Command as C;
    match cmd {
        C::SetSigningKey { .. } => "set_key",
        C::LeaseGrant { .. } => "lease_grant",
        C::LeaseKeepAlive { .. } => "keepalive",
        C::LeaseRevoke { .. } => "revoke",
        C::Acquire { .. } => "acquire",
        C::CancelWait { .. } => "cancel_wait",
        C::Release { .. } => "release",
        C::Claim { .. } => "claim",
        C::Expire { .. } => "expire",
        C::Handoff { .. } => "handoff",
        C::Checkpoint { .. } => "checkpoint",
        C::RotateSigningKey { .. } => "rotate_key",
        C::RetireSigningKeys => "retire_keys",
        C::ReleaseClaim { .. } => "release_claim",
        C::AcquireMode { .. } => "acquire",
        C::SemPermits { .. } => "sem_permits",
        C::SemAcquire { .. } => "sem_acquire",
        C::SemRelease { .. } => "sem_release",
        C::SemCancelWait { .. } => "sem_cancel_wait",
    }
}

/// A lease's timer on this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimer {
    /// When the lease ends, on this replica's monotonic clock.
    pub deadline: Mono,
    /// The renewal this deadline is based on; an `Expire` carries it.
    pub renewed: u64,
}

/// The snapshot file: its metadata and the table's frame (`data`), in one frame.
#[derive(Serialize, Deserialize)]
pub struct SnapshotFile {
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

fn damaged(e: frame::FrameError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "snapshot file {SNAPSHOT} is damaged ({e}); refusing to start, since it holds applied state the log may \
             no longer have. Restore this replica's data directory from a backup, or wipe it and re-add the replica \
             to the cluster as a new member"
        ),
    )
}

/// Decode a snapshot's data, as a leader sends it or as it is stored: the
/// lock table in a checksummed frame. Pure, so that it can be fuzzed.
pub fn decode_snapshot_data(data: &[u8]) -> Result<LockTable, frame::FrameError> {
    frame::decode_exact(data)
}

/// Decode the snapshot file as stored on disk. Pure, so that it can be fuzzed.
pub fn decode_snapshot_file(bytes: &[u8]) -> io::Result<(SnapshotFile, LockTable)> {
    let file: SnapshotFile = frame::decode_exact(bytes).map_err(damaged)?;
    let table = decode_snapshot_data(&file.data).map_err(damaged)?;
    Ok((file, table))
}

/// State shared between the state machine, the API and the leader loop.
pub struct Shared {
    table: RwLock<LockTable>,
    applied: Mutex<(Option<LogId>, StoredMembership)>,
    /// The metadata of the snapshot on disk. Its data stays on disk, read
    /// back only when a follower needs it: keeping it in memory cost a
    /// serialized copy of the whole table per replica.
    snapshot: Mutex<Option<SnapshotMeta>>,
    timers: Mutex<BTreeMap<LeaseId, LeaseTimer>>,
    clock: Arc<dyn Clock>,
    disk: Arc<dyn Disk>,
    applied_tx: watch::Sender<u64>,
    events_tx: broadcast::Sender<Arc<AppliedEntry>>,
    snapshots_built: std::sync::atomic::AtomicU64,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn poisoned<T>(_: T) -> io::Error {
    io_err("state machine lock poisoned")
}

impl Shared {
    /// Read the lock table. The guard must not be held across an await.
    pub fn read<R>(&self, f: impl FnOnce(&LockTable) -> R) -> R {
        let g = self.table.read().unwrap_or_else(|p| p.into_inner());
        f(&g)
    }

    /// The last applied log index.
    pub fn applied_index(&self) -> u64 {
        *self.applied_tx.borrow()
    }

    /// Wait until the applied index changes.
    pub fn watch_applied(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// Every applied entry's events, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AppliedEntry>> {
        self.events_tx.subscribe()
    }

    /// This replica's lease timers.
    pub fn timers(&self) -> BTreeMap<LeaseId, LeaseTimer> {
        self.timers.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Time left on each of `leases` by this replica's timers as of `now`
    /// (`None`: no timer, the lease is gone here).
    pub fn time_left(&self, leases: &[LeaseId], now: Mono) -> Vec<Option<Duration>> {
        let Ok(t) = self.timers.lock() else { return vec![None; leases.len()] };
        leases.iter().map(|l| t.get(l).map(|timer| timer.deadline.since(now))).collect()
    }

    /// Up to `max` leases whose timer ran out by `now`, with the renewal
    /// each timer is based on. Scans the timers in place (no copy).
    pub fn expired_timers(&self, now: Mono, max: usize) -> Vec<(LeaseId, u64)> {
        let Ok(t) = self.timers.lock() else { return Vec::new() };
        t.iter().filter(|(_, t)| t.deadline <= now).take(max).map(|(id, t)| (*id, t.renewed)).collect()
    }

    /// Up to `max` timers of the leases after `after` in id order, wrapping
    /// around to the first lease when the end is reached (`None`: from the
    /// start). A rotating checkpoint walks every lease this way.
    pub fn timers_after(&self, after: Option<LeaseId>, max: usize) -> Vec<(LeaseId, LeaseTimer)> {
        self.timers.lock().map(|t| rotate_after(&t, after, max)).unwrap_or_default()
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The applied state as a snapshot's metadata and data, copied under
    /// the locks together (as [`RaftSnapshotBuilder::build_snapshot`] does)
    /// so that the data is exactly the state at `last_log_id`. Written
    /// nowhere: this is what `fenced cluster snapshot save` exports.
    pub fn export(&self) -> io::Result<(SnapshotMeta, Vec<u8>)> {
        let table = self.table.read().map_err(poisoned)?;
        let (last, membership) = self.applied.lock().map_err(poisoned)?.clone();
        let data = frame::encode(&*table).map_err(io_err)?;
        Ok((SnapshotMeta { last_log_id: last, last_membership: membership }, data))
    }

    fn on_events(&self, now: Mono, events: &[Event]) {
        let Ok(mut t) = self.timers.lock() else { return };
        for e in events {
            match e {
                Event::LeaseRenewed { lease, renewed, remaining_ms } => {
                    let deadline = now.plus(Duration::from_millis(*remaining_ms));
                    t.insert(*lease, LeaseTimer { deadline, renewed: *renewed });
                }
                Event::LeaseCheckpointed { lease, renewed, remaining_ms } => {
                    if let Some(timer) = t.get_mut(lease).filter(|t| t.renewed == *renewed) {
                        timer.deadline = timer.deadline.min(now.plus(Duration::from_millis(*remaining_ms)));
                    }
                }
                Event::LeaseEnded { lease, .. } => {
                    t.remove(lease);
                }
                _ => {}
            }
        }
    }

    /// Restart every timer from the table's remaining TTLs (after a restart
    /// or a snapshot install, when this replica saw no renewals itself).
    fn rebuild_timers(&self, table: &LockTable) {
        let now = self.clock.now();
        let timers = table
            .leases()
            .map(|(id, l)| {
                let deadline = now.plus(Duration::from_millis(l.remaining_ms));
                (*id, LeaseTimer { deadline, renewed: l.renewed })
            })
            .collect();
        if let Ok(mut t) = self.timers.lock() {
            *t = timers;
        }
    }
}

/// openraft's handle on the state machine.
#[derive(Clone)]
pub struct StateMachine {
    pub shared: Arc<Shared>,
}

impl StateMachine {
    /// Open the state machine, loading the last snapshot from `disk`.
    pub fn open(disk: Arc<dyn Disk>, clock: Arc<dyn Clock>, table: LockTable) -> io::Result<Self> {
        let (applied_tx, _) = watch::channel(0);
        let (events_tx, _) = broadcast::channel(EVENTS_CAPACITY);
        let shared = Arc::new(Shared {
            table: RwLock::new(table),
            applied: Mutex::new((None, StoredMembership::default())),
            snapshot: Mutex::new(None),
            timers: Mutex::new(BTreeMap::new()),
            clock,
            disk,
            applied_tx,
            events_tx,
            snapshots_built: Default::default(),
        });
        let sm = StateMachine { shared };
        if let Some(bytes) = sm.shared.disk.read(SNAPSHOT)? {
            let (file, table) = decode_snapshot_file(&bytes)?;
            sm.install_table(&file.meta, table)?;
            *sm.shared.snapshot.lock().map_err(poisoned)? = Some(file.meta);
        }
        Ok(sm)
    }

    fn load(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        self.install_table(meta, decode_snapshot_data(data).map_err(io_err)?)
    }

    fn install_table(&self, meta: &SnapshotMeta, table: LockTable) -> io::Result<()> {
        self.shared.rebuild_timers(&table);
        *self.shared.table.write().map_err(poisoned)? = table;
        *self.shared.applied.lock().map_err(poisoned)? = (meta.last_log_id, meta.last_membership.clone());
        let index = meta.last_log_id.as_ref().map(|l| l.index).unwrap_or(0);
        self.shared.applied_tx.send_replace(index);
        Ok(())
    }

    fn apply_one(&self, entry: &Entry) -> io::Result<Response> {
        let index = entry.index();
        let response = match &entry.payload {
            EntryPayload::Blank => Response::Done,
            EntryPayload::Normal(req) => {
                let applied = self.shared.table.write().map_err(poisoned)?.apply(index, req);
                self.shared.on_events(self.shared.clock.now(), &applied.events);
                let command = command_kind(&req.cmd);
                // Key changes alter no lock but the console shows them.
                let keys = matches!(command, "rotate_key" | "retire_keys" | "set_key")
                    && !matches!(applied.response, Response::Err(_));
                if !applied.events.is_empty() || keys {
                    // No receivers is fine: nobody is watching.
                    let _ =
                        self.shared.events_tx.send(Arc::new(AppliedEntry { index, events: applied.events, command }));
                }
                applied.response
            }
            EntryPayload::Membership(m) => {
                self.shared.applied.lock().map_err(poisoned)?.1 =
                    StoredMembership::new(Some(entry.log_id()), m.clone());
                Response::Done
            }
        };
        self.shared.applied.lock().map_err(poisoned)?.0 = Some(entry.log_id());
        self.shared.applied_tx.send_replace(index);
        Ok(response)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<openraft::alias::SnapshotOf<TypeConfig, SnapshotData>, io::Error> {
        // Copy the table and the applied state under the locks, together, so
        // the snapshot's data matches its `last_log_id`.
        let (data, (last, membership)) = {
            let table = self.shared.table.read().map_err(poisoned)?;
            let applied = self.shared.applied.lock().map_err(poisoned)?.clone();
            (frame::encode(&*table).map_err(io_err)?, applied)
        };
        self.shared.snapshots_built.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let meta = SnapshotMeta { last_log_id: last, last_membership: membership };
        let file = SnapshotFile { meta, data };
        self.shared.disk.write_atomic(SNAPSHOT, &frame::encode(&file).map_err(io_err)?)?;
        *self.shared.snapshot.lock().map_err(poisoned)? = Some(file.meta.clone());
        Ok(openraft::storage::Snapshot { meta: file.meta, snapshot: std::io::Cursor::new(file.data) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok(self.shared.applied.lock().map_err(poisoned)?.clone())
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: futures::Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let response = self.apply_one(&entry)?;
            if let Some(r) = responder {
                r.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotData) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        self.load(meta, &data)?;
        let file = SnapshotFile { meta: meta.clone(), data };
        self.shared.disk.write_atomic(SNAPSHOT, &frame::encode(&file).map_err(io_err)?)?;
        *self.shared.snapshot.lock().map_err(poisoned)? = Some(file.meta);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<openraft::alias::SnapshotOf<TypeConfig, SnapshotData>>, io::Error> {
        if self.shared.snapshot.lock().map_err(poisoned)?.is_none() {
            return Ok(None);
        }
        // The file is replaced atomically and carries its own metadata in the
        // same checksummed frame, so whichever snapshot is on disk (a builder
        // running concurrently may just have replaced it) is consistent.
        let bytes = self.shared.disk.read(SNAPSHOT)?.ok_or_else(|| io_err("the snapshot file is missing"))?;
        let file: SnapshotFile = frame::decode_exact(&bytes).map_err(damaged)?;
        Ok(Some(openraft::storage::Snapshot { meta: file.meta, snapshot: std::io::Cursor::new(file.data) }))
    }
}

/// Up to `max` entries of `map` after the key `after`, in key order, wrapping
/// around to the smallest key; each key at most once.
fn rotate_after<K: Ord + Copy, V: Copy>(map: &BTreeMap<K, V>, after: Option<K>, max: usize) -> Vec<(K, V)> {
    let tail = match after {
        Some(a) => map.range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
        None => map.range(..),
    };
    let mut out: Vec<(K, V)> = tail.take(max).map(|(k, v)| (*k, *v)).collect();
    if let Some(a) = after {
        let room = max - out.len();
        out.extend(map.range(..=a).take(room).map(|(k, v)| (*k, *v)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::rotate_after;
    use std::collections::BTreeMap;

    #[test]
    fn a_rotating_checkpoint_visits_every_lease_once_per_cycle() {
        let map: BTreeMap<u64, ()> = (1..=10).map(|k| (k, ())).collect();
        let keys = |v: Vec<(u64, ())>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(rotate_after(&map, None, 4)), vec![1, 2, 3, 4]);
        assert_eq!(keys(rotate_after(&map, Some(4), 4)), vec![5, 6, 7, 8]);
        assert_eq!(keys(rotate_after(&map, Some(8), 4)), vec![9, 10, 1, 2], "wraps around");
        // The cursor's lease may be gone (expired): the walk goes on after it.
        assert_eq!(keys(rotate_after(&map, Some(0), 3)), vec![1, 2, 3]);
        assert_eq!(keys(rotate_after(&map, Some(99), 3)), vec![1, 2, 3]);
        // Fewer leases than the batch: each exactly once.
        assert_eq!(keys(rotate_after(&map, Some(7), 50)), vec![8, 9, 10, 1, 2, 3, 4, 5, 6, 7]);
        assert!(rotate_after(&BTreeMap::<u64, ()>::new(), Some(3), 5).is_empty());
        // Walking batch after batch covers every key.
        let (mut cursor, mut seen) = (None, Vec::new());
        for _ in 0..4 {
            let batch = rotate_after(&map, cursor, 3);
            cursor = batch.last().map(|(k, _)| *k);
            seen.extend(keys(batch));
        }
        assert_eq!(seen, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2]);
    }
}
