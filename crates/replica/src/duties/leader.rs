//! The leader's duties that nobody asks for: expiring leases whose timers
//! ran out, handing freed locks to their next waiter, checkpointing remaining
//! TTLs, and installing the signing key.
//!
//! Every duty is a proposal through the log, and every one is safe to repeat
//! or to race with another leader's: an `Expire` names the renewal it was
//! based on and is void if the lease was renewed since; a `Handoff` of a lock
//! that is no longer pending does nothing; a key is installed only if absent.
//! So the timers decide only *when* things happen (liveness), never whether
//! two holders can overlap (safety).

use crate::node::Replica;
use fenced_core::machine::command::{Command, Request};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Panics in a row (each within [`PANIC_WINDOW`] of the previous restart)
/// after which a leader also hands its leadership to another voter: if its
/// duties keep failing here, another replica's may not.
const PANICS_BEFORE_STEP_DOWN: u32 = 3;
/// A run of the duties that lasted longer than this ends a series of panics.
const PANIC_WINDOW: Duration = Duration::from_secs(10);

/// Deliberate panics of the duties, for the test that shows they restart.
#[cfg(any(test, feature = "bugs"))]
pub static INJECT_PANICS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Bound on proposals per tick, so a mass expiry cannot monopolise the log.
const PROPOSALS_PER_TICK_MAX: usize = 256;

/// Leases named by one `Checkpoint` entry. Each checkpoint interval covers
/// the next this many leases after the last one checkpointed, wrapping
/// around, so an entry stays small (≈ 24 KB) however many leases exist. With
/// every lease in one entry, 100 000 leases made a 2.4 MB entry every 2 s that
/// every replica fsynced, applied and kept in its log, and the leader copied
/// all its timers on every tick to build it: the throughput of the whole
/// cluster fell with the number of leases held (`fenced bench`, memory phase).
pub const CHECKPOINT_BATCH_MAX: usize = 1000;

/// Run the leader duties until `shutdown`, restarting them if they panic.
///
/// Lease expiry lives only here: if this task died silently while locks are
/// held, the leader would keep renewing nothing and expiring nothing, and a
/// dead holder's locks would stay held for as long as it leads. So a panic is
/// caught (in the same task: no extra task, so the simulator's schedule is
/// unchanged), counted in `fenced_leader_duty_panics_total`, logged, and the
/// duties start again from the timers, which live in the state machine and
/// survive. Every duty is idempotent, so a duty cut short by the panic is
/// simply proposed again. After [`PANICS_BEFORE_STEP_DOWN`] panics in a row,
/// a leader also transfers its leadership.
pub async fn run(replica: Arc<Replica>, mut shutdown: watch::Receiver<bool>) {
    let mut in_a_row = 0u32;
    loop {
        let started = replica.seams.clock.now();
        let outcome = AssertUnwindSafe(duties(replica.clone(), shutdown.clone())).catch_unwind().await;
        let Err(panic) = outcome else { return };
        replica.metrics.leader_duty_panics.inc();
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        in_a_row = if replica.seams.clock.now().since(started) > PANIC_WINDOW { 1 } else { in_a_row + 1 };
        tracing::error!(panic = %message, in_a_row, "the leader's duties (lease expiry) panicked; restarting them");
        if in_a_row >= PANICS_BEFORE_STEP_DOWN && replica.is_leader() {
            step_down(&replica).await;
            in_a_row = 0;
        }
        tokio::select! {
            _ = tokio::time::sleep(replica.config.tick) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Hand leadership to another voter (openraft's leader transfer).
async fn step_down(replica: &Replica) {
    let Some(to) = replica.voters().into_iter().find(|v| *v != replica.config.id) else {
        tracing::error!("the leader's duties keep panicking and there is no other voter to take over");
        return;
    };
    tracing::error!(to, "the leader's duties keep panicking; transferring leadership");
    if let Err(e) = replica.raft.trigger().transfer_leader(to).await {
        tracing::warn!(error = %e, "leadership transfer failed");
    }
}

/// The duties themselves, one round per tick, until `shutdown`.
async fn duties(replica: Arc<Replica>, mut shutdown: watch::Receiver<bool>) {
    let mut last_checkpoint = replica.seams.clock.now();
    // The last lease of the previous checkpoint batch.
    let mut checkpoint_cursor: Option<fenced_core::LeaseId> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(replica.config.tick) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if !replica.is_leader() {
            continue;
        }
        #[cfg(any(test, feature = "bugs"))]
        if INJECT_PANICS
            .fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |n| {
                n.checked_sub(1)
            })
            .is_ok()
        {
            panic!("injected panic in the leader's duties");
        }
        let at_ms = replica.seams.clock.wall_ms();
        let propose = |cmd: Command| {
            let r = replica.clone();
            async move {
                if let Err(e) = r.propose_local(Request { origin: None, at_ms, cmd }).await {
                    tracing::debug!(error = %e, "leader duty not proposed");
                }
            }
        };
        if replica.shared.read(|t| t.public_keys().is_empty()) {
            let secret = fenced_core::machine::token::secret_from_entropy(&replica.seams.key_entropy);
            tracing::info!(now = ?replica.seams.clock.now(), "installing the cluster signing key");
            propose(Command::SetSigningKey { secret }).await;
        }
        let now = replica.seams.clock.now();
        let expired = replica.shared.expired_timers(now, PROPOSALS_PER_TICK_MAX);
        for (lease, renewed) in expired {
            replica.metrics.expiries_proposed.inc();
            tracing::info!(%lease, renewed, "lease timer ran out; proposing expiry");
            propose(Command::Expire { lease, renewed }).await;
        }
        let pending: Vec<String> =
            replica.shared.read(|t| t.pending_handoffs().take(PROPOSALS_PER_TICK_MAX).cloned().collect());
        for lock in pending {
            replica.metrics.handoffs_proposed.inc();
            propose(Command::Handoff { lock }).await;
        }
        if now.since(last_checkpoint) >= replica.config.checkpoint_interval {
            last_checkpoint = now;
            let batch = replica.shared.timers_after(checkpoint_cursor, CHECKPOINT_BATCH_MAX);
            checkpoint_cursor = batch.last().map(|(id, _)| *id);
            if !batch.is_empty() {
                let remaining =
                    batch.iter().map(|(id, t)| (*id, t.renewed, t.deadline.since(now).as_millis() as u64)).collect();
                replica.metrics.checkpoints_proposed.inc();
                propose(Command::Checkpoint { remaining }).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ReplicaConfig;
    use crate::node::Seams;
    use fenced_core::{LeaseId, Response};
    use fenced_io::clock::SystemClock;
    use fenced_io::disk::FsDisk;
    use fenced_io::transport::TcpTransport;
    use std::collections::BTreeMap;
    use std::sync::atomic::Ordering;

    async fn propose(r: &Replica, cmd: Command) -> Response {
        r.propose(Request { origin: None, at_ms: 0, cmd }).await.expect("proposed").0
    }

    /// A one-voter replica with a signing key installed, and a handle to stop it.
    async fn sole_voter(dir: &std::path::Path) -> crate::server::Running {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let peers: BTreeMap<u64, String> = [(1, format!("127.0.0.1:{port}"))].into();
        let seams = Seams {
            transport: Arc::new(TcpTransport),
            disk: Arc::new(FsDisk::open(dir).expect("disk")),
            clock: Arc::new(SystemClock::new()),
            seed: 1,
            key_entropy: [7; 32],
        };
        let running =
            crate::server::start(ReplicaConfig::new(1, peers[&1].clone(), peers.clone()), seams).await.expect("starts");
        let until = fenced_io::clock::now().plus(Duration::from_secs(30));
        while running.replica.shared.read(|t| t.public_keys().is_empty()) {
            assert!(fenced_io::clock::now() < until, "no leader with a signing key");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        running
    }

    /// Hold `x` under a fresh 500 ms lease, then wait (bounded, 20 s) until
    /// the duties have expired it.
    async fn hold_and_expect_expiry(r: &Replica, before_waiting: impl FnOnce()) {
        let Response::LeaseGranted { lease, .. } = propose(r, Command::LeaseGrant { ttl_ms: 500 }).await else {
            panic!("no lease")
        };
        let acquire = Command::Acquire { lock: "x".into(), lease, wait: false, value: String::new() };
        assert!(matches!(propose(r, acquire).await, Response::Granted(_)));
        before_waiting();
        let until = fenced_io::clock::now().plus(Duration::from_secs(20));
        while r.shared.read(|t| t.lock_status("x").holder.is_some()) {
            assert!(
                fenced_io::clock::now() < until,
                "the lock of a dead holder is still held 20 s after its 500 ms TTL: expiry stopped \
                 (leader: {}, expiries proposed: {})",
                r.is_leader(),
                r.metrics.expiries_proposed.get(),
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(r.shared.read(|t| t.lease(LeaseId(lease.0)).is_none()), "the lease expired");
    }

    /// A sole voter is its own quorum for as long as it runs. openraft
    /// records a quorum's acknowledgement only when a follower answers, so a
    /// one-voter cluster used to stop counting as led one election timeout
    /// after its election, and its duties stopped: no lease expired again.
    /// (Found as the panic test below failing whenever the panics' restarts
    /// pushed the expiry past that point.)
    /// `INJECT_PANICS` is one per process, and `cargo test` runs a module's
    /// tests on threads of one process: the two replicas of these tests must
    /// not run their duties at once, or one takes the other's panics.
    static ONE_REPLICA_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sole_voter_keeps_expiring_leases_long_after_its_election() {
        let _alone = ONE_REPLICA_AT_A_TIME.lock().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let running = sole_voter(dir.path()).await;
        let r = running.replica.clone();
        tokio::time::sleep(r.config.election_timeout_max * 2).await;
        assert!(r.is_leader(), "a sole voter is the leader {:?} after its election", r.config.election_timeout_max * 2);
        hold_and_expect_expiry(&r, || {}).await;
        running.stop().await;
    }

    /// A panic in the duties while a lock is held does not stop lease expiry:
    /// the duties restart and the dead holder's lock is freed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_in_the_duties_while_a_lock_is_held_does_not_stop_expiry() {
        let _alone = ONE_REPLICA_AT_A_TIME.lock().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let running = sole_voter(dir.path()).await;
        let r = running.replica.clone();
        // The holder goes silent; the duties panic (twice) while it holds the lock.
        hold_and_expect_expiry(&r, || INJECT_PANICS.store(2, Ordering::SeqCst)).await;
        assert_eq!(INJECT_PANICS.load(Ordering::SeqCst), 0, "the injected panics happened");
        assert_eq!(r.metrics.leader_duty_panics.get(), 2, "and were counted");
        running.stop().await;
    }
}
