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
use fenced_core::command::{Command, Request};
use std::sync::Arc;
use tokio::sync::watch;

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

/// Run the leader duties until `shutdown`.
pub async fn run(replica: Arc<Replica>, mut shutdown: watch::Receiver<bool>) {
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
            let secret = fenced_core::token::secret_from_entropy(&replica.seams.key_entropy);
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
