//! Group commit: one writer task owns a file, and many callers share each
//! fsync.
//!
//! Callers queue jobs ([`Queue::submit`]) on a bounded queue and wait for
//! room when it is full, so a slow disk costs latency, never unbounded
//! memory. The writer ([`Writer::run`]) takes the first queued job, waits out
//! the disk's simulated fsync latency ([`Disk::sync_latency`], zero on a real
//! disk; jobs queued meanwhile join the batch), takes whatever else is queued
//! up to the batch bound, and then:
//!
//! 1. asks its [`Commit`] to turn the jobs, in queue order, into the batch's
//!    writes ([`Batch`]): what a record is, and whether a job is accepted at
//!    all, is the caller's;
//! 2. applies the writes in order and fsyncs **once** (only if asked);
//! 3. hands every job the outcome ([`Commit::complete`]): acknowledge only
//!    now, after the fsync, or fail.
//!
//! After a failed write or fsync the file's state is unknown (a failed fsync
//! may have dropped dirty pages), so the writer is **poisoned**: every later
//! job is refused ([`Commit::refuse`]) without being decided or written, and
//! [`Queue::failed`] says so to callers that would rather not queue.
//!
//! Blocking disk calls run on tokio's blocking pool in a multi-threaded
//! runtime. On a current-thread runtime (the simulator's hosts) they run
//! inline: there is no other thread to hand them to without losing
//! determinism, and the simulated disk does not block.

use crate::disk::Disk;
use std::fmt;
use std::io;
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, watch};

/// Why a batch failed: the disk's error, shared by every job of the batch
/// and by every job refused after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(Arc<str>);

impl Failure {
    pub fn new(why: impl fmt::Display) -> Self {
        Failure(why.to_string().into())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The queue is closed: the writer has stopped.
#[derive(Debug, thiserror::Error)]
#[error("the {0} writer has stopped")]
pub struct Stopped(pub &'static str);

/// The writes of one batch, in order.
#[derive(Debug, Default)]
pub struct Batch {
    steps: Vec<Step>,
}

#[derive(Debug)]
enum Step {
    /// Append bytes, then fsync if `sync`.
    Append { bytes: Vec<u8>, sync: bool },
    /// Replace the whole file atomically.
    Replace(Vec<u8>),
}

impl Batch {
    /// Append `bytes` (joined with the appends before it into one write).
    pub fn append(&mut self, bytes: Vec<u8>) {
        match self.steps.last_mut() {
            Some(Step::Append { bytes: b, .. }) => b.extend_from_slice(&bytes),
            _ => self.steps.push(Step::Append { bytes, sync: false }),
        }
    }

    /// Make everything appended so far durable before the next step (one
    /// fsync however often this is called in a row).
    pub fn sync(&mut self) {
        match self.steps.last_mut() {
            Some(Step::Append { sync, .. }) => *sync = true,
            _ => self.steps.push(Step::Append { bytes: Vec::new(), sync: true }),
        }
    }

    /// Replace the whole file (a rewrite). Appends before it are written
    /// (and synced, if asked) first, so the order on disk is the batch's.
    pub fn replace(&mut self, bytes: Vec<u8>) {
        self.steps.push(Step::Replace(bytes));
    }

    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Apply the steps in order: one append and at most one fsync between
    /// two replacements.
    fn write(self, disk: &dyn Disk, file: &str) -> io::Result<()> {
        for step in self.steps {
            match step {
                Step::Append { bytes, sync } => {
                    if !bytes.is_empty() {
                        disk.append(file, &bytes)?;
                    }
                    if sync {
                        disk.sync(file)?;
                    }
                }
                Step::Replace(bytes) => disk.write_atomic(file, &bytes)?,
            }
        }
        Ok(())
    }
}

/// What one user of the writer knows: what a job is, what it writes, and
/// whom to tell, and what to do, once it is durable.
pub trait Commit: Send + 'static {
    /// One queued request.
    type Job: Send + 'static;
    /// The batch's jobs as [`Commit::prepare`] decided them, until they are
    /// durable.
    type Decided: Send + 'static;

    /// Decide `jobs` in queue order and add their writes to `batch`.
    fn prepare(&mut self, jobs: Vec<Self::Job>, batch: &mut Batch) -> Self::Decided;

    /// The batch's writes are durable (`Ok`), or failed (`Err`, and the
    /// writer is now poisoned): answer every job. An `Err` returned here
    /// poisons the writer too (state the writer can no longer trust).
    fn complete(&mut self, decided: Self::Decided, outcome: Result<(), &Failure>) -> Result<(), Failure>;

    /// The writer was poisoned by an earlier batch: refuse `jobs`, which
    /// were neither decided nor written.
    fn refuse(&mut self, jobs: Vec<Self::Job>, failure: &Failure);
}

/// Bounds of the queue and of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Most jobs decided under one fsync (at least 1).
    pub batch_max: usize,
    /// Most jobs queued; [`Queue::submit`] waits for room beyond it (at least 1).
    pub queue_max: usize,
}

/// The sending side; cloning shares the one writer.
pub struct Queue<J> {
    tx: mpsc::Sender<J>,
    poison: Arc<OnceLock<Failure>>,
    what: &'static str,
}

impl<J> Clone for Queue<J> {
    fn clone(&self) -> Self {
        Queue { tx: self.tx.clone(), poison: self.poison.clone(), what: self.what }
    }
}

impl<J> Queue<J> {
    /// Queue `job`, waiting while the queue is full.
    pub async fn submit(&self, job: J) -> Result<(), Stopped> {
        self.tx.send(job).await.map_err(|_| Stopped(self.what))
    }

    /// Why the writer refuses every job, if it does.
    pub fn failed(&self) -> Option<&Failure> {
        self.poison.get()
    }

    /// Free room in the queue.
    pub fn capacity(&self) -> usize {
        self.tx.capacity()
    }
}

/// The one writer of `file` (run it with [`Writer::run`]).
pub struct Writer<C: Commit> {
    disk: Arc<dyn Disk>,
    file: &'static str,
    batch_max: usize,
    commit: C,
    rx: mpsc::Receiver<C::Job>,
    poison: Arc<OnceLock<Failure>>,
    what: &'static str,
}

/// A queue and its writer for `file` on `disk`; `what` names the file in
/// errors and logs ("raft log", "store WAL").
pub fn new<C: Commit>(
    disk: Arc<dyn Disk>,
    file: &'static str,
    what: &'static str,
    bounds: Bounds,
    commit: C,
) -> (Queue<C::Job>, Writer<C>) {
    let (tx, rx) = mpsc::channel(bounds.queue_max.max(1));
    let poison = Arc::new(OnceLock::new());
    let queue = Queue { tx, poison: poison.clone(), what };
    let writer = Writer { disk, file, batch_max: bounds.batch_max.max(1), commit, rx, poison, what };
    (queue, writer)
}

impl<C: Commit> Writer<C> {
    /// Commit queued jobs until every [`Queue`] is dropped, or `shutdown`
    /// (when given) turns true.
    pub async fn run(mut self, mut shutdown: Option<watch::Receiver<bool>>) {
        loop {
            let first = match shutdown.as_mut() {
                Some(stop) => tokio::select! {
                    j = self.rx.recv() => j,
                    _ = stop.wait_for(|s| *s) => None,
                },
                None => self.rx.recv().await,
            };
            let Some(first) = first else { return };
            // A simulated disk's fsync latency (zero on a real disk, whose
            // sync takes its own time): jobs queued meanwhile join this batch.
            let latency = self.disk.sync_latency();
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            let mut jobs = vec![first];
            while jobs.len() < self.batch_max {
                match self.rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            self.commit_batch(jobs).await;
        }
    }

    async fn commit_batch(&mut self, jobs: Vec<C::Job>) {
        if let Some(failure) = self.poison.get() {
            self.commit.refuse(jobs, failure);
            return;
        }
        let mut batch = Batch::default();
        let decided = self.commit.prepare(jobs, &mut batch);
        let outcome = if batch.is_empty() {
            Ok(())
        } else {
            let (disk, file) = (self.disk.clone(), self.file);
            on_blocking_pool(self.what, move || batch.write(disk.as_ref(), file)).await.map_err(Failure::new)
        };
        if let Err(failure) = &outcome {
            self.poison_with(failure.clone());
        }
        if let Err(failure) = self.commit.complete(decided, outcome.as_ref().copied()) {
            self.poison_with(failure);
        }
    }

    fn poison_with(&self, failure: Failure) {
        if self.poison.set(failure.clone()).is_ok() {
            tracing::error!(file = self.file, error = %failure, "{} write failed; refusing every later write", self.what);
        }
    }
}

/// Run blocking disk work off the async workers when there are threads to
/// run it on; inline on a current-thread runtime (see the module docs).
async fn on_blocking_pool<R: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> io::Result<R> + Send + 'static,
) -> io::Result<R> {
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::CurrentThread => f(),
        _ => tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| io::Error::other(format!("{what} writer thread panicked: {e}")))?,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    use tokio::sync::oneshot;

    /// A disk whose fsync fails while `fail` is set, and whose every batch
    /// first waits `latency` (as the simulator's disks do).
    struct TestDisk {
        inner: MemDisk,
        fail: AtomicBool,
        latency: Duration,
        syncs: std::sync::atomic::AtomicUsize,
    }

    impl TestDisk {
        fn new(latency: Duration) -> Arc<Self> {
            Arc::new(TestDisk { inner: MemDisk::new(), fail: AtomicBool::new(false), latency, syncs: 0.into() })
        }
    }

    impl Disk for TestDisk {
        fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
            self.inner.read(name)
        }
        fn append(&self, name: &str, data: &[u8]) -> io::Result<()> {
            self.inner.append(name, data)
        }
        fn sync(&self, name: &str) -> io::Result<()> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(io::Error::other("injected fsync failure"));
            }
            self.syncs.fetch_add(1, Ordering::SeqCst);
            self.inner.sync(name)
        }
        fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()> {
            self.inner.write_atomic(name, data)
        }
        fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
            self.inner.truncate(name, len)
        }
        fn sync_latency(&self) -> Duration {
            self.latency
        }
    }

    /// A job: bytes to append (an empty one asks for a rewrite to `"R"`),
    /// whether to sync, and who waits.
    struct Job {
        bytes: Vec<u8>,
        sync: bool,
        reply: oneshot::Sender<Result<usize, String>>,
    }

    /// Answers each job with the size of the batch it was in.
    struct Log;

    impl Commit for Log {
        type Job = Job;
        type Decided = Vec<oneshot::Sender<Result<usize, String>>>;

        fn prepare(&mut self, jobs: Vec<Job>, batch: &mut Batch) -> Self::Decided {
            jobs.into_iter()
                .map(|j| {
                    if j.bytes.is_empty() {
                        batch.replace(b"R".to_vec());
                    } else {
                        batch.append(j.bytes);
                    }
                    if j.sync {
                        batch.sync();
                    }
                    j.reply
                })
                .collect()
        }

        fn complete(&mut self, decided: Self::Decided, outcome: Result<(), &Failure>) -> Result<(), Failure> {
            let n = decided.len();
            for reply in decided {
                let _ = reply.send(outcome.map(|_| n).map_err(|f| f.to_string()));
            }
            Ok(())
        }

        fn refuse(&mut self, jobs: Vec<Job>, failure: &Failure) {
            for j in jobs {
                let _ = j.reply.send(Err(format!("refused: {failure}")));
            }
        }
    }

    fn start(disk: Arc<TestDisk>, bounds: Bounds) -> Queue<Job> {
        let (q, w) = new(disk, "f", "test log", bounds, Log);
        tokio::spawn(w.run(None));
        q
    }

    async fn queue(q: &Queue<Job>, bytes: &[u8], sync: bool) -> oneshot::Receiver<Result<usize, String>> {
        let (reply, rx) = oneshot::channel();
        q.submit(Job { bytes: bytes.to_vec(), sync, reply }).await.expect("writer running");
        rx
    }

    const B: Bounds = Bounds { batch_max: 100, queue_max: 100 };

    #[tokio::test(start_paused = true)]
    async fn jobs_queued_during_a_sync_share_one_fsync_and_land_in_queue_order() {
        let disk = TestDisk::new(Duration::from_millis(10));
        let q = start(disk.clone(), B);
        let replies = [queue(&q, b"a", true).await, queue(&q, b"b", false).await, queue(&q, b"c", true).await];
        for r in replies {
            assert_eq!(r.await.unwrap(), Ok(3), "one batch of three");
        }
        assert_eq!(disk.syncs.load(Ordering::SeqCst), 1, "one fsync for the batch");
        disk.inner.crash();
        assert_eq!(disk.read("f").unwrap().as_deref(), Some(&b"abc"[..]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_is_at_most_batch_max_jobs() {
        let disk = TestDisk::new(Duration::from_millis(10));
        let q = start(disk.clone(), Bounds { batch_max: 2, queue_max: 10 });
        let mut replies = Vec::new();
        for b in [b"1", b"2", b"3"] {
            replies.push(queue(&q, b, true).await);
        }
        let sizes: Vec<_> = futures::future::join_all(replies).await.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(sizes, vec![Ok(2), Ok(2), Ok(1)]);
        assert_eq!(disk.syncs.load(Ordering::SeqCst), 2);
        assert_eq!(disk.read("f").unwrap().as_deref(), Some(&b"123"[..]));
    }

    #[tokio::test]
    async fn unsynced_appends_are_lost_at_a_crash_and_a_rewrite_keeps_queue_order() {
        let disk = TestDisk::new(Duration::ZERO);
        let q = start(disk.clone(), B);
        queue(&q, b"ab", true).await.await.unwrap().unwrap();
        queue(&q, b"", false).await.await.unwrap().unwrap();
        queue(&q, b"!", false).await.await.unwrap().unwrap();
        disk.inner.crash();
        assert_eq!(disk.read("f").unwrap().as_deref(), Some(&b"R"[..]), "the rewrite is durable, the append not");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_fsync_fails_every_job_of_its_batch_and_poisons_the_writer() {
        let disk = TestDisk::new(Duration::from_millis(10));
        let q = start(disk.clone(), B);
        queue(&q, b"a", true).await.await.unwrap().unwrap();
        disk.fail.store(true, Ordering::SeqCst);
        let (first, second) = (queue(&q, b"b", false).await, queue(&q, b"c", true).await);
        for r in [first, second] {
            let err = r.await.unwrap().unwrap_err();
            assert!(err.contains("injected fsync failure"), "{err}");
        }
        assert!(q.failed().is_some());
        disk.fail.store(false, Ordering::SeqCst);
        let err = queue(&q, b"d", true).await.await.unwrap().unwrap_err();
        assert!(err.starts_with("refused: ") && err.contains("injected fsync failure"), "stays failed: {err}");
        disk.inner.crash();
        assert_eq!(disk.read("f").unwrap().as_deref(), Some(&b"a"[..]), "nothing after the failure was written");
    }

    /// Behind a stalled disk the queue holds `queue_max` jobs and no more:
    /// the next submit waits (backpressure), and completes once the disk
    /// catches up.
    #[tokio::test(start_paused = true)]
    async fn a_full_queue_makes_submitters_wait_until_the_disk_catches_up() {
        let latency = Duration::from_secs(1000);
        let disk = TestDisk::new(latency);
        let q = start(disk.clone(), Bounds { batch_max: 4, queue_max: 4 });
        let mut replies = vec![queue(&q, b"a", false).await];
        tokio::task::yield_now().await; // the writer takes it and waits out the latency
        for _ in 0..4 {
            let queued = tokio::time::timeout(Duration::from_millis(1), queue(&q, b"b", false));
            replies.push(queued.await.expect("room in the queue"));
        }
        assert_eq!(q.capacity(), 0, "the queue is full, not growing");
        let blocked = queue(&q, b"c", true);
        tokio::pin!(blocked);
        assert!(tokio::time::timeout(Duration::from_secs(1), &mut blocked).await.is_err(), "must wait");
        let last = tokio::time::timeout(latency * 10, &mut blocked).await.expect("room again");
        replies.push(last);
        for r in replies {
            r.await.unwrap().unwrap();
        }
        assert_eq!(disk.read("f").unwrap().as_deref(), Some(&b"abbbbc"[..]), "in queue order");
    }

    #[tokio::test]
    async fn stopping_the_writer_closes_the_queue() {
        let disk = TestDisk::new(Duration::ZERO);
        let (q, w) = new(disk, "f", "test log", B, Log);
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(w.run(Some(rx)));
        queue(&q, b"a", true).await.await.unwrap().unwrap();
        stop.send(true).unwrap();
        task.await.unwrap();
        let (reply, _rx) = oneshot::channel();
        let err = q.submit(Job { bytes: b"b".to_vec(), sync: true, reply }).await.unwrap_err();
        assert_eq!(err.to_string(), "the test log writer has stopped");
    }
}
