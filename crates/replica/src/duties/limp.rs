//! The limping-leader duty: gather this replica's and its peers' vital
//! signs, let [`LimpState::check`](crate::vitals::limp::LimpState::check)
//! judge them, and hand leadership to the most caught-up unsuspected peer.

use crate::node::Replica;
use crate::storage::types::NodeId;
use crate::vitals::limp::Inputs;
use openraft::async_runtime::WatchReceiver;
use std::collections::BTreeMap;
use std::time::Duration;

fn gather(replica: &Replica) -> Inputs {
    let own = replica.vitals.fsync.lock().map(|w| (w.recent_median(64), w.total())).unwrap_or((None, 0));
    let reports = replica.vitals.peers.reports();
    Inputs {
        own_fsync_p50: own.0,
        own_fsync_samples: own.1,
        peer_fsync_p50: reports.values().filter_map(|r| r.fsync_p50_us).map(Duration::from_micros).collect(),
        own_link_p50: replica.vitals.peers.replication_p50s().into_values().collect(),
        peer_rtt_p50: reports.values().filter_map(|r| r.rtt_p50_us).map(Duration::from_micros).collect(),
        own_link_rate: replica.vitals.peers.link_rates().into_values().collect(),
        peer_link_rate: replica.vitals.peers.reported_link_rates().into_values().map(|r| r as f64).collect(),
    }
}

/// The peer to hand leadership to: unsuspected, most caught up.
fn successor(replica: &Replica) -> Option<NodeId> {
    let m = replica.raft.metrics().borrow_watched().clone();
    let matched: BTreeMap<NodeId, u64> = m
        .replication
        .as_ref()
        .map(|r| r.iter().map(|(id, l)| (*id, l.as_ref().map(|l| l.index).unwrap_or(0))).collect())
        .unwrap_or_default();
    replica
        .voters()
        .into_iter()
        .filter(|id| *id != replica.config.id && !replica.vitals.peers.suspected(*id))
        .max_by_key(|id| (matched.get(id).copied().unwrap_or(0), std::cmp::Reverse(*id)))
}

/// Called on every timekeeper beat; judges at most every [`CHECK_EVERY`](crate::vitals::limp::CHECK_EVERY).
pub async fn check(replica: &Replica) {
    let now = replica.seams.clock.now();
    let leading = replica.is_leader();
    if !replica.vitals.limp.check(now, leading, || gather(replica)) {
        return;
    }
    let Some(to) = successor(replica) else {
        tracing::warn!("limping, but no unsuspected peer to hand leadership to");
        return;
    };
    let reason = replica.vitals.limp.status().reason;
    tracing::warn!(to, %reason, "limping leader: transferring leadership");
    match replica.raft.trigger().transfer_leader(to).await {
        Ok(()) => replica.vitals.limp.transferred(now, reason),
        Err(e) => tracing::warn!(error = %e, "leader transfer failed"),
    }
}
