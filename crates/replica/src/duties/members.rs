//! The membership as this replica sees it, and which members are live: read
//! by drain (whom to hand leadership to) and by membership changes (the
//! live-majority guard).

use crate::node::Replica;
use crate::storage::types::NodeId;
use fenced_core::admin::Membership;
use openraft::async_runtime::WatchReceiver;
use openraft::Instant as _;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The shortest window in which an acknowledgement counts as live, so that
/// a cluster with very short election timeouts does not call its members
/// dead between two heartbeats of a loaded machine.
const LIVE_WINDOW_MIN: Duration = Duration::from_secs(1);

/// The membership this replica knows (the latest, maybe not yet committed).
pub fn view(app: &Replica) -> Membership {
    let m = app.raft.metrics().borrow_watched().clone();
    let mem = m.membership_config.membership();
    let voters: BTreeSet<NodeId> = mem.voter_ids().collect();
    let nodes: BTreeMap<NodeId, String> = mem.nodes().map(|(id, n)| (*id, n.addr.clone())).collect();
    let learners = nodes.keys().filter(|id| !voters.contains(id)).copied().collect();
    Membership {
        voters,
        learners,
        nodes,
        leader: m.current_leader,
        log_index: m.membership_config.log_id().as_ref().map(|l| l.index).unwrap_or(0),
        warnings: Vec::new(),
    }
}

/// The address of member `id`, from the replicated membership.
pub fn addr_of(app: &Replica, id: NodeId) -> Option<String> {
    view(app).nodes.get(&id).cloned()
}

/// The members that acknowledged this leader recently (itself included).
/// Empty on a follower: only the leader knows.
pub fn live_members(app: &Replica) -> BTreeSet<NodeId> {
    let window = live_window(app);
    let m = app.raft.metrics().borrow_watched().clone();
    let mut live = BTreeSet::new();
    if m.current_leader == Some(app.config.id) {
        live.insert(app.config.id);
    }
    if let Some(hb) = &m.heartbeat {
        for (id, at) in hb {
            if at.as_ref().is_some_and(|t| t.elapsed() <= window) {
                live.insert(*id);
            }
        }
    }
    live
}

/// How recently a member must have acknowledged the leader to count as live.
pub fn live_window(app: &Replica) -> Duration {
    (app.config.election_timeout_max * 2).max(LIVE_WINDOW_MIN)
}
