//! The Raft log on disk: one write-ahead file of checksummed records.
//!
//! Every change (entries, vote, truncation, purge, committed index) is a
//! record appended to `raft.wal` and fsynced before openraft is told it is
//! durable, so a vote or an acknowledged entry survives `kill -9`. Appends
//! return as soon as the entries are readable; the WAL writer task
//! ([`crate::storage::wal_writer`]) fsyncs them, many per fsync, and tells openraft. On start
//! the file is replayed; a torn or corrupt tail (a crash mid-append) is
//! detected by its checksum, reported, and cut off, while a damaged record
//! followed by intact ones stops the replica ([`CorruptLog`]). The whole log is also
//! kept in memory; snapshots let openraft purge it, and the file is rewritten
//! when purged records dominate it.

use crate::storage::types::{Entry, LogId, TypeConfig, Vote};
use crate::storage::wal_writer::{Done, Op, WalWriter};
use fenced_io::disk::Disk;
use fenced_io::frame;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, OnceLock};

pub const WAL: &str = "raft.wal";
/// Rewrite the WAL when it is this many times larger than its live content.
const REWRITE_FACTOR: u64 = 4;
/// ...and at least this large, so small logs are not rewritten constantly.
const REWRITE_MIN_BYTES: u64 = 8 << 20;

#[derive(Serialize, Deserialize)]
enum Record {
    Entries(Vec<Entry>),
    Vote(Vote),
    Committed(Option<LogId>),
    TruncateAfter(Option<LogId>),
    Purge(LogId),
}

#[derive(Default)]
struct Inner {
    log: BTreeMap<u64, Entry>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
    /// Bytes in the WAL file, to decide when to rewrite it.
    wal_bytes: u64,
}

/// The log store. Cloning shares it (openraft wants a separate reader).
#[derive(Clone)]
pub struct LogStore {
    disk: Arc<dyn Disk>,
    inner: Arc<Mutex<Inner>>,
    /// Started on the first write, inside the replica's runtime, so that
    /// read-only users (`fenced debug`, the simulator's log audit) need none.
    writer: Arc<OnceLock<WalWriter>>,
    torn_bytes: u64,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// The raft log is damaged in the middle: records after the damage are
/// intact, so it is not a torn tail, and the replica must not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "raft log {WAL} is corrupt: {0}. This is not a torn tail from a crash, so truncating it would lose durable, \
     possibly acknowledged entries; refusing to start. Restore this replica's data directory from a backup, \
     or wipe it and re-add this replica to the cluster as a new member"
)]
pub struct CorruptLog(#[from] pub frame::MidLogCorruption);

/// What replaying the WAL found.
pub struct Replayed {
    inner: Inner,
    /// Records replayed.
    pub records: usize,
    /// The torn or corrupt tail to cut off, if any.
    pub torn: Option<frame::TornTail>,
}

impl Replayed {
    /// Index of the last entry, if any.
    pub fn last_index(&self) -> Option<u64> {
        self.inner.log.keys().next_back().copied()
    }

    /// Number of entries in the log.
    pub fn entries(&self) -> usize {
        self.inner.log.len()
    }
}

/// The WAL of a replica that starts from a snapshot alone (a restored or
/// recovered cluster): its vote, and no entries.
pub fn fresh_wal(vote: Vote) -> io::Result<Vec<u8>> {
    frame::encode(&Record::Vote(vote)).map_err(io_err)
}

/// Replay a WAL's bytes: a pure function, so that recovery can be fuzzed.
pub fn replay(bytes: &[u8]) -> Result<Replayed, CorruptLog> {
    let mut inner = Inner::default();
    let mut records = 0;
    let torn = frame::read_log::<Record>(bytes, |rec| {
        records += 1;
        inner.replay(rec);
    })?;
    inner.wal_bytes = torn.as_ref().map_or(bytes.len(), |t| t.offset) as u64;
    Ok(Replayed { inner, records, torn })
}

impl LogStore {
    /// Open the log on `disk`, replaying and repairing the WAL: a torn tail is
    /// cut off and reported; damage in the middle is an error.
    pub fn open(disk: Arc<dyn Disk>) -> io::Result<Self> {
        let bytes = disk.read(WAL)?.unwrap_or_default();
        let replayed = replay(&bytes).map_err(|e| {
            tracing::error!(error = %e, "raft log is corrupt");
            io::Error::new(io::ErrorKind::InvalidData, e)
        })?;
        let torn_bytes = match &replayed.torn {
            Some(t) => t.cut(disk.as_ref(), WAL, "raft log")?,
            None => 0,
        };
        Ok(LogStore {
            disk,
            inner: Arc::new(Mutex::new(replayed.inner)),
            writer: Arc::new(OnceLock::new()),
            torn_bytes,
        })
    }

    /// Bytes of torn tail cut off when this log was opened (0 if none).
    pub fn torn_bytes(&self) -> u64 {
        self.torn_bytes
    }

    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, Inner>> {
        self.inner.lock().map_err(|_| io_err("log store lock poisoned"))
    }

    fn writer(&self) -> &WalWriter {
        self.writer.get_or_init(|| WalWriter::spawn(self.disk.clone(), WAL))
    }

    /// Encode `record`, count its bytes, and wait until it is durable.
    async fn write(&self, record: &Record) -> io::Result<()> {
        let bytes = self.encode(record)?;
        self.writer().submit_and_wait(Op::Append { bytes, sync: true }).await
    }

    fn encode(&self, record: &Record) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        frame::encode_into(record, &mut bytes).map_err(io_err)?;
        self.lock()?.wal_bytes += bytes.len() as u64;
        Ok(bytes)
    }

    /// Rewrite the WAL with only the live state, if it has grown stale.
    async fn maybe_rewrite(&self) -> io::Result<()> {
        let buf = {
            let mut inner = self.lock()?;
            let live: u64 = 64 * inner.log.len() as u64 + 1024;
            if inner.wal_bytes < REWRITE_MIN_BYTES || inner.wal_bytes < live * REWRITE_FACTOR {
                return Ok(());
            }
            let mut recs = Vec::new();
            if let Some(v) = &inner.vote {
                recs.push(Record::Vote(*v));
            }
            if let Some(p) = &inner.last_purged {
                recs.push(Record::Purge(*p));
            }
            recs.push(Record::Committed(inner.committed));
            recs.push(Record::Entries(inner.log.values().cloned().collect()));
            let mut buf = Vec::new();
            for r in &recs {
                frame::encode_into(r, &mut buf).map_err(io_err)?;
            }
            tracing::info!(from = inner.wal_bytes, to = buf.len(), "rewriting raft log");
            inner.wal_bytes = buf.len() as u64;
            buf
        };
        self.writer().submit_and_wait(Op::Replace(buf)).await
    }

    /// The highest index known committed here, if recorded.
    pub fn committed_index(&self) -> io::Result<Option<u64>> {
        Ok(self.lock()?.committed.map(|c| c.index))
    }

    /// The vote on disk, if any (`fenced cluster recover` starts above its term).
    pub fn vote(&self) -> io::Result<Option<Vote>> {
        Ok(self.lock()?.vote)
    }

    /// Every entry currently in the log, for `fenced` tooling and histories.
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        Ok(self.lock()?.log.values().cloned().collect())
    }
}

impl Inner {
    fn replay(&mut self, rec: Record) {
        match rec {
            Record::Entries(es) => {
                for e in es {
                    self.log.insert(e.log_id().index(), e);
                }
            }
            Record::Vote(v) => self.vote = Some(v),
            Record::Committed(c) => self.committed = c,
            Record::TruncateAfter(after) => self.truncate_after(after.as_ref()),
            Record::Purge(upto) => self.purge(&upto),
        }
    }

    fn truncate_after(&mut self, after: Option<&LogId>) {
        // Checked: a record naming index u64::MAX (found by fuzzing) must not overflow.
        if let Some(from) = after.map_or(Some(0), |l| l.index().checked_add(1)) {
            self.log.split_off(&from);
        }
    }

    fn purge(&mut self, upto: &LogId) {
        self.log = match upto.index().checked_add(1) {
            Some(from) => self.log.split_off(&from),
            None => BTreeMap::new(),
        };
        if self.last_purged.as_ref().is_none_or(|p| p.index() < upto.index()) {
            self.last_purged = Some(*upto);
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(self.lock()?.log.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.lock()?.vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let g = self.lock()?;
        let last = g.log.values().next_back().map(|e| e.log_id()).or_else(|| g.last_purged);
        Ok(LogState { last_purged_log_id: g.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.write(&Record::Vote(*vote)).await?;
        self.lock()?.vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Not fsynced on its own: losing it only means re-learning the commit
        // index from the leader. It rides along with the next synced append.
        let bytes = self.encode(&Record::Committed(committed))?;
        self.writer().submit(Op::Append { bytes, sync: false }, Done::Nobody).await?;
        self.lock()?.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.lock()?.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // Readable now (openraft replicates them while they are being
        // fsynced); durable when the writer calls `callback`.
        let record = Record::Entries(entries.into_iter().collect());
        let bytes = self.encode(&record)?;
        if let Record::Entries(entries) = record {
            let mut g = self.lock()?;
            for e in entries {
                g.log.insert(e.log_id().index(), e);
            }
        }
        self.writer().submit(Op::Append { bytes, sync: true }, Done::Flushed(callback)).await
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        self.write(&Record::TruncateAfter(last_log_id)).await?;
        self.lock()?.truncate_after(last_log_id.as_ref());
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.write(&Record::Purge(log_id)).await?;
        self.lock()?.purge(&log_id);
        self.maybe_rewrite().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fenced_io::disk::MemDisk;
    use openraft::alias::LeaderIdOf;
    use openraft::vote::RaftLeaderIdExt;

    fn log_id(index: u64) -> LogId {
        LogId::new(LeaderIdOf::<TypeConfig>::new_committed(1, 1), index)
    }

    fn wal(records: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            frame::encode_into(r, &mut out).expect("encodes");
        }
        out
    }

    fn three_records() -> Vec<Vec<u8>> {
        vec![
            wal(&[Record::Vote(Vote::new(1, 1))]),
            wal(&[Record::Entries((1..=2).map(|i| Entry::new_blank(log_id(i))).collect())]),
            wal(&[Record::Entries(vec![Entry::new_blank(log_id(3))])]),
        ]
    }

    fn open_with(bytes: &[u8]) -> (Arc<MemDisk>, io::Result<LogStore>) {
        let disk = Arc::new(MemDisk::new());
        disk.write_atomic(WAL, bytes).expect("write");
        let store = LogStore::open(disk.clone());
        (disk, store)
    }

    #[test]
    fn torn_tail_is_cut_off_and_reported() {
        let good = three_records().concat();
        let mut bytes = good.clone();
        bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3]);
        let (disk, store) = open_with(&bytes);
        let store = store.expect("a torn tail is repaired");
        assert_eq!((store.torn_bytes(), store.entries().expect("entries").len()), (7, 3));
        assert_eq!(disk.read(WAL).expect("read"), Some(good.clone()), "the tail was cut off");
        // A half-written last record is a tail too.
        let (_, store) = open_with(&good[..good.len() - 3]);
        assert_eq!(store.expect("repaired").entries().expect("entries").len(), 2);
    }

    #[test]
    fn corrupt_record_in_the_middle_stops_the_replica() {
        let recs = three_records();
        let mut bytes = recs.concat();
        // Flip a payload byte of the second record: the third is intact.
        bytes[recs[0].len() + frame::HEADER_LEN + 1] ^= 0x01;
        let (disk, store) = open_with(&bytes);
        let err = store.err().expect("middle damage must stop the replica");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let msg = err.to_string();
        assert!(msg.contains("not a torn tail") && msg.contains(&format!("byte {}", recs[0].len())), "{msg}");
        assert_eq!(disk.read(WAL).expect("read"), Some(bytes), "nothing was truncated");
    }

    /// Found by the `raft_log` fuzz target: a purge or truncation naming index
    /// u64::MAX overflowed (a panic with overflow checks on).
    #[test]
    fn records_naming_the_last_index_do_not_overflow() {
        let max = log_id(u64::MAX);
        let bytes = wal(&[
            Record::Entries(vec![Entry::new_blank(log_id(1))]),
            Record::TruncateAfter(Some(max)),
            Record::Purge(max),
        ]);
        let r = replay(&bytes).expect("replays");
        assert_eq!((r.entries(), r.inner.last_purged.map(|l| l.index())), (0, Some(u64::MAX)));
    }
}
