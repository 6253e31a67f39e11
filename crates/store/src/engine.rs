//! The storage engine: per-key value, version and `max_token`, made durable
//! by a write-ahead log on the [`Disk`] seam.
//!
//! # Why it is shaped like this
//! - **One writer.** Every write goes through a bounded queue to one task,
//!   which is the only place that compares a token with `max_token`. The
//!   check and the raise of `max_token` are therefore atomic, without locks
//!   held across an fsync.
//! - **Group commit** ([`fenced_io::group_commit`], shared with the
//!   replica's Raft log). The writer takes up to `batch_max` queued writes,
//!   decides each against the state as the batch has changed it so far,
//!   appends one WAL record per accepted write, and fsyncs once. Only then
//!   is the batch made visible to readers and answered. A reader therefore
//!   never sees a value that a crash could take back (linearizable reads),
//!   and an acknowledged write is always on disk.
//! - **One record per write** carries the value, the version, the token that
//!   wrote it, the new `max_token` and the lock that guards the key, so the
//!   value and its fences can never be persisted apart. A DELETE leaves a
//!   tombstone that keeps `max_token`.
//! - **Fences are per lock.** A key is guarded by a lock (the longest
//!   `--guard` prefix's, else the lock named like the key; the API resolves
//!   it into [`WriteRequest::lock`]). The writer keeps the highest token
//!   accepted for each lock and refuses a write below it, whichever key under
//!   the lock the earlier write touched: a stale holder can neither overwrite,
//!   create nor delete any key its lock guards. The per-key `max_token` is
//!   kept as well (and checked), so changing the `--guard` configuration
//!   across a restart can never lower a key's fence.
//! - **Compaction** writes a snapshot with `write_atomic`, then empties the
//!   WAL. Records carry a sequence number and the snapshot the last one it
//!   contains, so a crash between the two steps replays nothing twice.
//! - **Recovery** reads the snapshot, then the WAL ([`recover`], a pure
//!   function). A record whose checksum fails with nothing intact after it
//!   (a torn tail from a crash mid-append) ends the log: it is truncated and
//!   reported with `tracing::warn` and [`Recovery::torn_bytes`]. A damaged
//!   record followed by intact ones, or a damaged snapshot, is never
//!   truncated: the store refuses to start, since both hold acknowledged
//!   data.
//!
//! The batch's append and fsync run where the group-commit writer runs its
//! disk calls (tokio's blocking pool, inline under the simulator);
//! compaction's are synchronous, in the writer task.

use crate::dedup::{Bounds, Dedup, Fingerprint, Seen};
use bytes::Bytes;
use fenced_io::disk::Disk;
use fenced_io::group_commit::{self, Batch, Commit, Failure, Queue};
use fenced_io::{frame, listing};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, RwLock};
use tokio::sync::{oneshot, watch};

/// The write-ahead log's file name.
pub const WAL: &str = "store.wal";
/// The snapshot's file name.
pub const SNAPSHOT: &str = "store.snap";
/// Snapshot entries per frame, so no frame nears `frame::PAYLOAD_MAX`.
const SNAPSHOT_CHUNK_BYTES: usize = 8 << 20;

pub use fenced_store_client::wire::{Object, WriteOk};

/// A key as the console lists it ([`Store::list`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    pub key: String,
    /// Accepted writes so far (deletes included).
    pub version: u64,
    /// The token of the last accepted write.
    pub token: u64,
    /// The highest token accepted for this key.
    pub max_token: u64,
    /// The last accepted write was a DELETE (a tombstone, which keeps its fence).
    pub deleted: bool,
    /// The lock that guards the key.
    pub lock: String,
    /// The highest token accepted for any key `lock` guards.
    pub lock_max_token: u64,
}

/// One page of [`Store::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    pub keys: Vec<KeyState>,
    /// The last key of this page, when more follow (the next page's `after`).
    pub next: Option<String>,
    /// Visible keys matching the prefix, counted up to the caller's bound.
    pub total: u64,
    /// Whether `total` is the whole count.
    pub exact: bool,
}

/// A key's state: the live value (or a tombstone) and its fence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Entry {
    value: Option<Bytes>,
    /// Increases by one with every accepted write (DELETE included), so a
    /// version is never reused even after a delete.
    version: u64,
    token: u64,
    max_token: u64,
}

impl Entry {
    /// The version a compare-and-set compares with: 0 when there is no value.
    fn live_version(&self) -> u64 {
        if self.value.is_some() {
            self.version
        } else {
            0
        }
    }
}

/// What a write does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Put(Bytes),
    Delete,
}

/// A write, already authenticated (see [`crate::fence`]).
#[derive(Debug, Clone)]
pub struct WriteRequest {
    pub key: String,
    /// The lock that guards `key` (`GuardMap::lock_for`): its highest
    /// accepted token fences this write.
    pub lock: String,
    pub op: WriteOp,
    /// The presented fencing token (0 for a token-less unfenced write).
    pub token: u64,
    /// Compare-and-set: apply only if the live version equals this (0: absent).
    pub if_match: Option<u64>,
    /// Who sent it and under which request id, for deduplication of retries.
    pub origin: Option<Origin>,
}

/// The deduplication identity of a write: bound to the authenticated caller
/// (`owner`), so that one identity's answers never answer another's request,
/// and to the request itself (`fingerprint`), so that a request id reused for
/// a different write is refused instead of answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The caller's authenticated identity; empty when the store has no policy.
    pub owner: String,
    /// The `Fenced-Client` header.
    pub client: String,
    pub request_id: u64,
    /// [`fingerprint`] of the request.
    pub fingerprint: Fingerprint,
}

/// SHA-256 over what makes a write the write it is: method, key, token,
/// `If-Match` and the body. Length-prefixed, so no two requests encode alike.
pub fn fingerprint(key: &str, op: &WriteOp, token: u64, if_match: Option<u64>) -> Fingerprint {
    let mut h = Sha256::new();
    h.update(b"fenced-store write v1\0");
    h.update((key.len() as u64).to_be_bytes());
    h.update(key.as_bytes());
    h.update(token.to_be_bytes());
    match if_match {
        Some(v) => {
            h.update([1]);
            h.update(v.to_be_bytes());
        }
        None => h.update([0]),
    }
    match op {
        WriteOp::Put(v) => {
            h.update([1]);
            h.update((v.len() as u64).to_be_bytes());
            h.update(v);
        }
        WriteOp::Delete => h.update([2]),
    }
    h.finalize().into()
}

/// Why a write was not applied. None of these changed any state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    #[error("stale fencing token {presented}: token {current} was already accepted for the lock guarding this key")]
    Stale { presented: u64, current: u64 },
    #[error("version mismatch: expected {expected}, current {current}")]
    VersionMismatch { expected: u64, current: u64 },
    #[error("request id {request_id} is older than the remembered window; its outcome is unknown")]
    RequestTooOld { request_id: u64 },
    #[error(
        "request id {request_id} of this client was already used for a different write; \
         use a new request id for every new write"
    )]
    RequestIdReused { request_id: u64 },
    #[error(
        "the store already remembers deduplicated writes of {max} identities, its limit; \
         retry without Fenced-Client, or ask the operator to raise the limit"
    )]
    TooManyIdentities { max: usize },
    /// The outcome is unknown: the store failed to persist, or is stopping.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

pub type WriteResult = Result<WriteOk, Rejection>;

/// What the dedup window remembers of an outcome: the key is the request's
/// (its fingerprint matched), so it is not stored again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Answer {
    Ok { version: u64, token: u64, deleted: bool },
    Rejected(Rejection),
}

impl Answer {
    fn of(r: &WriteResult) -> Answer {
        match r {
            Ok(ok) => Answer::Ok { version: ok.version, token: ok.token, deleted: ok.deleted },
            Err(e) => Answer::Rejected(e.clone()),
        }
    }

    fn for_key(self, key: &str) -> WriteResult {
        match self {
            Answer::Ok { version, token, deleted } => Ok(WriteOk { key: key.to_string(), version, token, deleted }),
            Answer::Rejected(e) => Err(e),
        }
    }
}

/// Tuning of the engine (see [`crate::StoreConfig`]).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub unsafe_no_fencing: bool,
    pub compact_wal_bytes: u64,
    pub batch_max: usize,
    pub queue_max: usize,
    /// Identities whose writes are remembered (see [`crate::dedup`]).
    pub dedup_identities_max: usize,
    /// Clients remembered per identity.
    pub dedup_clients_max: usize,
    pub dedup_per_client: usize,
}

impl EngineOptions {
    pub fn from_config(c: &crate::StoreConfig) -> Self {
        EngineOptions {
            unsafe_no_fencing: c.unsafe_no_fencing,
            compact_wal_bytes: c.compact_wal_bytes,
            batch_max: c.batch_max,
            queue_max: c.queue_max,
            dedup_identities_max: c.limits.dedup_identities_max,
            dedup_clients_max: c.limits.dedup_clients_max,
            dedup_per_client: c.limits.dedup_per_client,
        }
    }

    fn bounds(&self) -> Bounds {
        Bounds {
            owners_max: self.dedup_identities_max,
            clients_per_owner: self.dedup_clients_max,
            per_client: self.dedup_per_client,
        }
    }
}

/// What recovery found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    pub snapshot_keys: usize,
    pub wal_records: usize,
    /// Bytes of torn or corrupt WAL tail that were cut off.
    pub torn_bytes: u64,
}

/// One WAL record: a whole accepted write.
#[derive(Serialize, Deserialize)]
struct WalRecord {
    seq: u64,
    key: String,
    value: Option<Vec<u8>>,
    version: u64,
    token: u64,
    max_token: u64,
    /// The lock that guarded the key; its fence rises to at least `token`.
    lock: String,
    origin: Option<Origin>,
}

#[derive(Serialize, Deserialize)]
struct DiskEntry {
    value: Option<Vec<u8>>,
    version: u64,
    token: u64,
    max_token: u64,
}

/// The snapshot: `Header`, any number of `Entries` and `Locks`, `Dedup`, `End`.
#[derive(Serialize, Deserialize)]
enum SnapFrame {
    Header {
        last_seq: u64,
    },
    Entries(Vec<(String, DiskEntry)>),
    Dedup(Dedup<Answer>),
    End,
    /// Per-lock fences: the highest token accepted for each lock.
    Locks(Vec<(String, u64)>),
}

/// The committed state readers see.
#[derive(Default)]
struct State {
    map: BTreeMap<String, Entry>,
    /// The highest token accepted for each lock, over every key it guards.
    locks: BTreeMap<String, u64>,
}

struct Shared {
    state: RwLock<State>,
}

struct Cmd {
    req: WriteRequest,
    reply: oneshot::Sender<WriteResult>,
}

/// A handle to the store: cheap to clone; reads are served from memory.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    /// The writer's queue; it refuses every write once a WAL write or fsync
    /// failed, because what is on disk is no longer known.
    queue: Queue<Cmd>,
    unsafe_no_fencing: bool,
    /// Bytes of torn WAL tail cut off when the store started.
    torn_bytes: u64,
}

/// The single writer (run it with [`Writer::run`]).
pub struct Writer(group_commit::Writer<Engine>);

/// The store's side of the group commit: deciding writes, and making a
/// durable batch visible.
struct Engine {
    disk: Arc<dyn Disk>,
    shared: Arc<Shared>,
    opts: EngineOptions,
    dedup: Dedup<Answer>,
    seq: u64,
    wal_bytes: u64,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn poisoned<T>(_: T) -> io::Error {
    io::Error::other("store state lock poisoned by an earlier panic")
}

/// Recovered state: what [`recover`] rebuilt from the snapshot and WAL bytes.
pub struct Recovered {
    state: State,
    dedup: Dedup<Answer>,
    seq: u64,
    /// Length of the intact WAL prefix; the rest is a torn tail to cut off.
    pub wal_len: usize,
    pub recovery: Recovery,
    /// The torn tail, if any.
    pub torn: Option<frame::TornTail>,
}

impl Recovered {
    /// The recovered object under `key`, if any (for tests and fuzzing).
    pub fn get(&self, key: &str) -> Option<Object> {
        self.state
            .map
            .get(key)
            .and_then(|e| e.value.as_ref().map(|v| Object { value: v.clone(), version: e.version, token: e.token }))
    }

    /// The recovered highest token of `key`.
    pub fn max_token(&self, key: &str) -> u64 {
        self.state.map.get(key).map_or(0, |e| e.max_token)
    }

    /// The recovered highest token of `lock`, over every key it guards.
    pub fn lock_max_token(&self, lock: &str) -> u64 {
        self.state.locks.get(lock).copied().unwrap_or(0)
    }

    /// Keys recovered, tombstones included.
    pub fn keys(&self) -> usize {
        self.state.map.len()
    }
}

/// Rebuild the store from its snapshot and WAL bytes: a pure function, so
/// that recovery can be fuzzed. A damaged snapshot, or a damaged WAL record
/// followed by intact ones, is an error: both hold durable, acknowledged
/// writes, and serving without them would be serving wrong data.
pub fn recover(snapshot: Option<&[u8]>, wal: &[u8], opts: &EngineOptions) -> io::Result<Recovered> {
    let mut state = State::default();
    let mut dedup = Dedup::default();
    let mut recovery = Recovery::default();
    let mut last_seq = 0;
    if let Some(bytes) = snapshot {
        last_seq = read_snapshot(bytes, &mut state, &mut dedup)?;
        recovery.snapshot_keys = state.map.len();
    }
    let mut seq = last_seq;
    let torn = frame::read_log::<WalRecord>(wal, |rec| {
        if rec.seq <= last_seq {
            return;
        }
        seq = rec.seq;
        recovery.wal_records += 1;
        replay(&mut state, &mut dedup, rec, opts);
    })
    .map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "store WAL {WAL} is corrupt: {e}. This is not a torn tail from a crash, so truncating it would lose \
                 acknowledged writes; refusing to start. Restore the data directory from a backup"
            ),
        )
    })?;
    let wal_len = torn.as_ref().map_or(wal.len(), |t| t.offset);
    recovery.torn_bytes = torn.as_ref().map_or(0, |t| t.bytes as u64);
    Ok(Recovered { state, dedup, seq, wal_len, recovery, torn })
}

impl Store {
    /// Recover the store from `disk`. Spawn [`Writer::run`] to accept writes.
    pub fn open(disk: Arc<dyn Disk>, opts: EngineOptions) -> io::Result<(Store, Writer, Recovery)> {
        let snapshot = disk.read(SNAPSHOT)?;
        let wal = disk.read(WAL)?.unwrap_or_default();
        let r = recover(snapshot.as_deref(), &wal, &opts)
            .inspect_err(|e| tracing::error!(error = %e, "store cannot start"))?;
        if let Some(t) = &r.torn {
            t.cut(disk.as_ref(), WAL, "store WAL")?;
        }
        let shared = Arc::new(Shared { state: RwLock::new(r.state) });
        let bounds = group_commit::Bounds { batch_max: opts.batch_max, queue_max: opts.queue_max };
        let unsafe_no_fencing = opts.unsafe_no_fencing;
        let engine = Engine {
            disk: disk.clone(),
            shared: shared.clone(),
            opts,
            dedup: r.dedup,
            seq: r.seq,
            wal_bytes: r.wal_len as u64,
        };
        let (queue, writer) = group_commit::new(disk, WAL, "store WAL", bounds, engine);
        let store = Store { shared, queue, unsafe_no_fencing, torn_bytes: r.recovery.torn_bytes };
        Ok((store, Writer(writer), r.recovery))
    }

    /// Bytes of torn WAL tail cut off when the store started (0 if none).
    pub fn torn_bytes(&self) -> u64 {
        self.torn_bytes
    }

    /// Whether this store accepts writes whatever their token.
    pub fn unsafe_no_fencing(&self) -> bool {
        self.unsafe_no_fencing
    }

    /// The live object under `key`, if any.
    pub fn get(&self, key: &str) -> io::Result<Option<Object>> {
        let state = self.shared.state.read().map_err(poisoned)?;
        Ok(state
            .map
            .get(key)
            .and_then(|e| e.value.as_ref().map(|v| Object { value: v.clone(), version: e.version, token: e.token })))
    }

    /// The highest token ever accepted for `key` (0 if none).
    pub fn max_token(&self, key: &str) -> io::Result<u64> {
        Ok(self.shared.state.read().map_err(poisoned)?.map.get(key).map_or(0, |e| e.max_token))
    }

    /// The lowest token a write to `key`, guarded by `lock`, may carry: the
    /// highest accepted for the key or for any key `lock` guards.
    pub fn fence(&self, key: &str, lock: &str) -> io::Result<u64> {
        let state = self.shared.state.read().map_err(poisoned)?;
        let key_max = state.map.get(key).map_or(0, |e| e.max_token);
        Ok(key_max.max(state.locks.get(lock).copied().unwrap_or(0)))
    }

    /// One page of keys for the console (`GET /v1/keys`): the keys starting
    /// with `prefix`, after `after`, that `visible` admits, in name order, at
    /// most `limit` of them, with the cursor of the next page if any; and
    /// how many visible keys match, counted up to `count_max` (then
    /// `exact` is false), so a page costs a bounded walk at any size.
    /// `lock_for` names the lock that guards a key. Tombstones are listed:
    /// a deleted key keeps its fence.
    pub fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        count_max: u64,
        visible: impl Fn(&str) -> bool,
        lock_for: impl Fn(&str) -> String,
    ) -> io::Result<KeyPage> {
        let state = self.shared.state.read().map_err(poisoned)?;
        let from = listing::start(prefix, after).to_string();
        let (page, next) = listing::page(state.map.range(from..), |(k, _)| k.as_str(), prefix, after, limit, &visible);
        let keys = page
            .into_iter()
            .map(|(k, e)| {
                let lock = lock_for(k);
                let lock_max_token = state.locks.get(&lock).copied().unwrap_or(0);
                KeyState {
                    key: k.clone(),
                    version: e.version,
                    token: e.token,
                    max_token: e.max_token,
                    deleted: e.value.is_none(),
                    lock,
                    lock_max_token,
                }
            })
            .collect();
        let names = state.map.range(prefix.to_string()..).map(|(k, _)| k.as_str());
        let (total, exact) = listing::count(names, prefix, count_max, &visible);
        Ok(KeyPage { keys, next, total, exact })
    }

    /// Submit a write and wait until it is durable (or refused).
    pub async fn write(&self, req: WriteRequest) -> WriteResult {
        if self.queue.failed().is_some() {
            return Err(Rejection::Unavailable(EARLIER_FAILURE.into()));
        }
        let (reply, rx) = oneshot::channel();
        if self.queue.submit(Cmd { req, reply }).await.is_err() {
            return Err(Rejection::Unavailable("the store is stopping".into()));
        }
        rx.await.unwrap_or_else(|_| Err(Rejection::Unavailable("the store stopped before answering".into())))
    }
}

fn replay(state: &mut State, dedup: &mut Dedup<Answer>, rec: WalRecord, opts: &EngineOptions) {
    if let Some(o) = rec.origin {
        let a = Answer::Ok { version: rec.version, token: rec.token, deleted: rec.value.is_none() };
        dedup.record(&o.owner, &o.client, o.request_id, o.fingerprint, a, opts.bounds());
    }
    let l = state.locks.entry(rec.lock).or_default();
    *l = (*l).max(rec.token);
    let e = state.map.entry(rec.key).or_default();
    e.value = rec.value.map(Bytes::from);
    e.version = rec.version;
    e.token = rec.token;
    e.max_token = e.max_token.max(rec.max_token);
}

fn read_snapshot(bytes: &[u8], state: &mut State, dedup: &mut Dedup<Answer>) -> io::Result<u64> {
    let corrupt =
        |e: frame::FrameError| io_err(format!("store snapshot {SNAPSHOT} is damaged ({e}); refusing to start"));
    let mut at = 0;
    let mut last_seq = None;
    loop {
        let (f, n) = frame::decode::<SnapFrame>(&bytes[at..]).map_err(corrupt)?;
        at += n;
        match f {
            SnapFrame::Header { last_seq: s } => last_seq = Some(s),
            SnapFrame::Entries(es) => {
                for (k, d) in es {
                    let e = Entry {
                        value: d.value.map(Bytes::from),
                        version: d.version,
                        token: d.token,
                        max_token: d.max_token,
                    };
                    state.map.insert(k, e);
                }
            }
            SnapFrame::Locks(ls) => state.locks.extend(ls),
            SnapFrame::Dedup(d) => *dedup = d,
            SnapFrame::End => break,
        }
    }
    last_seq.ok_or_else(|| io_err(format!("store snapshot {SNAPSHOT} has no header; refusing to start")))
}

/// What every write is answered once a WAL write or fsync failed.
const EARLIER_FAILURE: &str = "an earlier disk write failed; restart the store";

impl Writer {
    /// Commit queued writes until `shutdown` turns true or every [`Store`]
    /// handle is dropped.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        self.0.run(Some(shutdown)).await
    }
}

/// A batch decided, waiting for its fsync.
struct Decided {
    /// What the accepted writes change, made visible once durable.
    overlay: State,
    answers: Vec<(oneshot::Sender<WriteResult>, WriteResult)>,
    /// Bytes the batch appends to the WAL.
    wal_bytes: u64,
}

impl Commit for Engine {
    type Job = Cmd;
    type Decided = Decided;

    fn prepare(&mut self, batch: Vec<Cmd>, writes: &mut Batch) -> Decided {
        let mut overlay = State::default();
        let mut buf = Vec::new();
        let mut answers = Vec::with_capacity(batch.len());
        for Cmd { req, reply } in batch {
            let result = self.decide(req, &mut overlay, &mut buf);
            answers.push((reply, result));
        }
        let wal_bytes = buf.len() as u64;
        if !buf.is_empty() {
            writes.append(buf);
            writes.sync();
        }
        Decided { overlay, answers, wal_bytes }
    }

    fn complete(&mut self, decided: Decided, outcome: Result<(), &Failure>) -> Result<(), Failure> {
        let Decided { overlay, answers, wal_bytes } = decided;
        if let Err(e) = outcome {
            for (reply, result) in answers {
                let r = match result {
                    Ok(_) => Err(Rejection::Unavailable(format!("write may or may not be durable: {e}"))),
                    rejected => rejected,
                };
                let _ = reply.send(r);
            }
            return Ok(());
        }
        if wal_bytes > 0 {
            self.wal_bytes += wal_bytes;
            match self.shared.state.write() {
                Ok(mut state) => {
                    state.map.extend(overlay.map);
                    state.locks.extend(overlay.locks);
                }
                Err(_) => return Err(Failure::new("store state lock poisoned by an earlier panic")),
            }
        }
        for (reply, result) in answers {
            let _ = reply.send(result);
        }
        if self.wal_bytes >= self.opts.compact_wal_bytes {
            if let Err(e) = self.compact() {
                // The WAL still holds everything; compaction is retried later.
                tracing::warn!(error = %e, "store compaction failed");
            }
        }
        Ok(())
    }

    fn refuse(&mut self, batch: Vec<Cmd>, _: &Failure) {
        for Cmd { reply, .. } in batch {
            let _ = reply.send(Err(Rejection::Unavailable(EARLIER_FAILURE.into())));
        }
    }
}

impl Engine {
    /// Decide one write against the committed state plus this batch so far.
    fn decide(&mut self, req: WriteRequest, overlay: &mut State, buf: &mut Vec<u8>) -> WriteResult {
        let bounds = self.opts.bounds();
        if let Some(o) = &req.origin {
            match self.dedup.lookup(&o.owner, &o.client, o.request_id, &o.fingerprint, bounds) {
                Seen::New => {}
                Seen::Done(a) => return a.for_key(&req.key),
                Seen::Reused => return Err(Rejection::RequestIdReused { request_id: o.request_id }),
                Seen::TooOld => return Err(Rejection::RequestTooOld { request_id: o.request_id }),
                Seen::Full => return Err(Rejection::TooManyIdentities { max: bounds.owners_max }),
            }
        }
        let (cur, lock_max) = {
            let state = match self.shared.state.read() {
                Ok(s) => s,
                Err(_) => return Err(Rejection::Unavailable("store state lock poisoned".into())),
            };
            let cur = overlay.map.get(&req.key).or_else(|| state.map.get(&req.key)).cloned().unwrap_or_default();
            let lock_max = overlay.locks.get(&req.lock).or_else(|| state.locks.get(&req.lock)).copied().unwrap_or(0);
            (cur, lock_max)
        };
        let fence = if fence_per_key_bug() { cur.max_token } else { cur.max_token.max(lock_max) };
        let result = if !self.opts.unsafe_no_fencing && !accept_stale_bug() && req.token < fence {
            Err(Rejection::Stale { presented: req.token, current: fence })
        } else if let Some(expected) = req.if_match.filter(|e| *e != cur.live_version()) {
            Err(Rejection::VersionMismatch { expected, current: cur.live_version() })
        } else {
            let value = match req.op {
                WriteOp::Put(v) => Some(v),
                WriteOp::Delete => None,
            };
            let next =
                Entry { version: cur.version + 1, token: req.token, max_token: cur.max_token.max(req.token), value };
            let rec = WalRecord {
                seq: self.seq + 1,
                key: req.key.clone(),
                value: next.value.as_ref().map(|v| v.to_vec()),
                version: next.version,
                token: next.token,
                max_token: next.max_token,
                lock: req.lock.clone(),
                origin: req.origin.clone(),
            };
            if let Err(e) = frame::encode_into(&rec, buf) {
                // Nothing was appended and nothing is remembered: a retry is
                // decided afresh.
                return Err(Rejection::Unavailable(format!("cannot encode the write: {e}")));
            }
            self.seq += 1;
            let ok = WriteOk {
                key: req.key.clone(),
                version: next.version,
                token: next.token,
                deleted: next.value.is_none(),
            };
            overlay.map.insert(req.key, next);
            overlay.locks.insert(req.lock, lock_max.max(req.token));
            Ok(ok)
        };
        if let Some(o) = req.origin {
            self.dedup.record(&o.owner, &o.client, o.request_id, o.fingerprint, Answer::of(&result), bounds);
        }
        result
    }

    /// Snapshot the committed state, then empty the WAL.
    fn compact(&mut self) -> io::Result<()> {
        let mut out = Vec::new();
        let enc = |f: &SnapFrame, out: &mut Vec<u8>| frame::encode_into(f, out).map_err(io_err);
        enc(&SnapFrame::Header { last_seq: self.seq }, &mut out)?;
        {
            let state = self.shared.state.read().map_err(poisoned)?;
            let mut chunk = Vec::new();
            let mut chunk_bytes = 0;
            for (k, e) in state.map.iter() {
                chunk_bytes += k.len() + e.value.as_ref().map_or(0, |v| v.len()) + 32;
                let d = DiskEntry {
                    value: e.value.as_ref().map(|v| v.to_vec()),
                    version: e.version,
                    token: e.token,
                    max_token: e.max_token,
                };
                chunk.push((k.clone(), d));
                if chunk_bytes >= SNAPSHOT_CHUNK_BYTES {
                    enc(&SnapFrame::Entries(std::mem::take(&mut chunk)), &mut out)?;
                    chunk_bytes = 0;
                }
            }
            enc(&SnapFrame::Entries(chunk), &mut out)?;
            let mut locks = Vec::new();
            let mut locks_bytes = 0;
            for (l, t) in state.locks.iter() {
                locks_bytes += l.len() + 16;
                locks.push((l.clone(), *t));
                if locks_bytes >= SNAPSHOT_CHUNK_BYTES {
                    enc(&SnapFrame::Locks(std::mem::take(&mut locks)), &mut out)?;
                    locks_bytes = 0;
                }
            }
            enc(&SnapFrame::Locks(locks), &mut out)?;
        }
        enc(&SnapFrame::Dedup(self.dedup.clone()), &mut out)?;
        enc(&SnapFrame::End, &mut out)?;
        self.disk.write_atomic(SNAPSHOT, &out)?;
        self.disk.truncate(WAL, 0)?;
        tracing::debug!(snapshot_bytes = out.len(), wal_bytes = self.wal_bytes, "store compacted");
        self.wal_bytes = 0;
        Ok(())
    }
}

/// The deliberately broken variant "the store accepts any token" (feature
/// `bugs`, test builds only, off unless a test turns it on).
#[cfg(feature = "bugs")]
fn accept_stale_bug() -> bool {
    crate::bugs::ACCEPT_STALE.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(not(feature = "bugs"))]
fn accept_stale_bug() -> bool {
    false
}

/// The deliberately broken variant "a guard fences per key, not per lock"
/// (finding 4 of issue 17; feature `bugs`, off unless a test turns it on).
#[cfg(feature = "bugs")]
fn fence_per_key_bug() -> bool {
    crate::bugs::FENCE_PER_KEY.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(not(feature = "bugs"))]
fn fence_per_key_bug() -> bool {
    false
}
