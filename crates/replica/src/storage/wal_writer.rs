//! Group commit for the Raft log: one task owns every write to the WAL
//! ([`fenced_io::group_commit`], shared with the store's engine).
//!
//! openraft asks `append` to return as soon as the entries are readable and to
//! report durability later through a callback, so that the leader can send
//! entries to its followers while its own fsync is still running (pipelining).
//! [`WalWriter`] gives the log store exactly that: callers queue encoded
//! records and return; the writer takes everything queued since its last
//! fsync, appends it in queue order, fsyncs **once**, and then completes every
//! caller of the batch. Under load, many proposals share one fsync. What is
//! this log's: a job is an append (with or without an fsync) or a rewrite of
//! the whole file, and whoever waits is openraft's callback, a caller, or
//! nobody.
//!
//! Order is the queue's order, so a vote, a truncation or a rewrite queued
//! after an append lands after it on disk. After a failed write or fsync the
//! writer fails every later job too and openraft stops the replica.
//!
//! A leader sends entries before they are durable here, so after `kill -9`
//! it can lack entries its followers committed; that is why a restarted
//! leader must win a new term (`node.rs`). The simulator gives fsyncs a
//! seeded latency ([`fenced_io::disk::Disk::sync_latency`]), waited out
//! before each batch, so that this window exists in simulation too.

use fenced_io::disk::Disk;
use fenced_io::group_commit::{self, Batch, Commit, Failure, Queue};
use openraft::storage::IOFlushed;
use std::io;
use std::sync::Arc;
use tokio::sync::oneshot;

use crate::storage::types::TypeConfig;

/// Most jobs written under one fsync; bounds the latency a batch adds.
const MAX_BATCH: usize = 1024;

/// Most jobs queued for the writer. When the queue is full, [`WalWriter::submit`]
/// waits for room: the log store's caller (openraft's storage task) stops
/// taking new work, proposals then wait in the replica's bounded proposal
/// slots, and once those are full clients are answered `503 overloaded`
/// (`limits.rs`). A slow disk so costs latency and refusals, never unbounded
/// memory. Four batches: the writer takes a whole batch at a time, so a full
/// queue still keeps it busy.
pub(crate) const QUEUE_MAX: usize = 4 * MAX_BATCH;

/// What to do with the file.
pub(crate) enum Op {
    /// Append bytes; `sync` asks for an fsync before completion.
    Append { bytes: Vec<u8>, sync: bool },
    /// Replace the whole file atomically (a rewrite after purging).
    Replace(Vec<u8>),
}

/// Who to tell when the job is durable.
pub(crate) enum Done {
    /// openraft's append callback.
    Flushed(IOFlushed<TypeConfig>),
    /// A caller waiting for the result.
    Reply(oneshot::Sender<io::Result<()>>),
    /// Nobody (the committed index rides along with the next fsync).
    Nobody,
}

struct Job {
    op: Op,
    done: Done,
}

/// The Raft log's side of the group commit.
struct RaftLog;

impl RaftLog {
    fn tell(dones: impl IntoIterator<Item = Done>, outcome: Result<(), &Failure>) {
        for done in dones {
            let result = outcome.map_err(|why| io::Error::other(format!("raft log write failed: {why}")));
            match done {
                Done::Flushed(cb) => cb.io_completed(result),
                Done::Reply(tx) => {
                    let _ = tx.send(result);
                }
                Done::Nobody => {}
            }
        }
    }
}

impl Commit for RaftLog {
    type Job = Job;
    type Decided = Vec<Done>;

    fn prepare(&mut self, jobs: Vec<Job>, batch: &mut Batch) -> Vec<Done> {
        jobs.into_iter()
            .map(|Job { op, done }| {
                match op {
                    Op::Append { bytes, sync } => {
                        batch.append(bytes);
                        if sync {
                            batch.sync();
                        }
                    }
                    // Everything queued before the rewrite is already in its
                    // content; it is written first anyway so the order on
                    // disk is exactly the queue's.
                    Op::Replace(bytes) => batch.replace(bytes),
                }
                done
            })
            .collect()
    }

    fn complete(&mut self, dones: Vec<Done>, outcome: Result<(), &Failure>) -> Result<(), Failure> {
        Self::tell(dones, outcome);
        Ok(())
    }

    fn refuse(&mut self, jobs: Vec<Job>, failure: &Failure) {
        Self::tell(jobs.into_iter().map(|j| j.done), Err(failure));
    }
}

/// The sending side; cloning shares the one writer task.
#[derive(Clone)]
pub(crate) struct WalWriter {
    queue: Queue<Job>,
}

impl WalWriter {
    /// Start the writer task for `file` on `disk`. Must be called inside a
    /// tokio runtime; the task ends when every `WalWriter` is dropped.
    pub(crate) fn spawn(disk: Arc<dyn Disk>, file: &'static str) -> Self {
        let bounds = group_commit::Bounds { batch_max: MAX_BATCH, queue_max: QUEUE_MAX };
        let (queue, writer) = group_commit::new(disk, file, "raft log", bounds, RaftLog);
        tokio::spawn(writer.run(None));
        WalWriter { queue }
    }

    /// Queue `op`; `done` hears the outcome once it is durable (or failed).
    /// Waits while the queue is full ([`QUEUE_MAX`]).
    pub(crate) async fn submit(&self, op: Op, done: Done) -> io::Result<()> {
        self.queue
            .submit(Job { op, done })
            .await
            .map_err(|_| io::Error::other("the raft log writer has stopped (the replica is shutting down)"))
    }

    /// Queue `op` and wait until it is durable.
    pub(crate) async fn submit_and_wait(&self, op: Op) -> io::Result<()> {
        let (reply, rx) = oneshot::channel();
        self.submit(op, Done::Reply(reply)).await?;
        rx.await.map_err(|_| io::Error::other("the raft log writer stopped before finishing a write"))?
    }
}

#[cfg(test)]
mod tests {
    //! Batching, failure propagation and backpressure are the shared
    //! writer's (`fenced_io::group_commit`'s tests); here, what this log adds.
    use super::*;
    use fenced_io::disk::MemDisk;

    #[tokio::test]
    async fn writes_land_in_queue_order_under_one_fsync() {
        let disk = MemDisk::new();
        let w = WalWriter::spawn(Arc::new(disk.clone()), "f");
        w.submit(Op::Append { bytes: b"ab".to_vec(), sync: false }, Done::Nobody).await.unwrap();
        w.submit_and_wait(Op::Append { bytes: b"cd".to_vec(), sync: true }).await.unwrap();
        disk.crash();
        assert_eq!(disk.read("f").unwrap().as_deref(), Some(&b"abcd"[..]), "the fsync covered both appends");
        w.submit_and_wait(Op::Replace(b"xyz".to_vec())).await.unwrap();
        w.submit(Op::Append { bytes: b"!".to_vec(), sync: false }, Done::Nobody).await.unwrap();
        w.submit_and_wait(Op::Append { bytes: b"?".to_vec(), sync: false }).await.unwrap();
        disk.crash();
        assert_eq!(disk.read("f").unwrap().as_deref(), Some(&b"xyz"[..]), "unsynced appends are lost at a crash");
    }
}
