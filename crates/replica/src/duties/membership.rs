//! Membership changes while serving: add (learner first, then voter),
//! remove, replace. Every change is openraft's joint consensus
//! (`change_membership`), proposed by the leader; a follower forwards the
//! request to it.
//!
//! Safety does not depend on anything here: a membership entry is a log
//! entry like any other, so tokens (log indexes) stay unique and increasing,
//! and leases and waiters live in the replicated table, untouched by a
//! change. What this module adds is a guard for liveness: a change that would
//! leave fewer live voters than a majority of the new configuration is
//! refused unless `force` is given (then it warns), because such a cluster
//! could commit nothing, not even the change that would undo it.

use crate::duties::drain::DrainError;
use crate::duties::members::{live_members, live_window, view};
use crate::node::{ProposeError, Replica};
use crate::storage::types::{Node, NodeId};
use fenced_core::admin::{AddMember, Membership, RemoveMember, ReplaceMember};
use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;
use std::collections::BTreeSet;
use std::time::Duration;

/// Why a membership change was refused. Each says what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    MemberExists(String),
    #[error("{0}")]
    NotAVoter(String),
    /// The new voters would hold no live majority ([`live_majority`]).
    #[error("{0}")]
    WouldLoseQuorum(String),
    /// openraft refused the change (another is under way).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    CatchUpTimeout(String),
    #[error(transparent)]
    Propose(#[from] ProposeError),
    #[error(transparent)]
    HandOff(#[from] DrainError),
}

/// The outcome of a change this replica was asked to make.
#[derive(Debug)]
pub enum Change {
    Done(Membership),
    /// This replica handed its leadership away, since the change removes
    /// it: the request goes to the new leader.
    Forward,
}

/// Whether the `live` members hold a majority of `voters`; if not, the live
/// voters there are. Only voters count: a live learner elects nobody.
pub fn live_majority(voters: &BTreeSet<NodeId>, live: &BTreeSet<NodeId>) -> Result<(), BTreeSet<NodeId>> {
    let live_voters: BTreeSet<NodeId> = voters.intersection(live).copied().collect();
    if live_voters.len() > voters.len() / 2 {
        Ok(())
    } else {
        Err(live_voters)
    }
}

/// How long a new learner may take to catch up (snapshot included).
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// Refuse a new voter set without a live majority, unless forced. A leader
/// elected a moment ago has not heard from everyone yet: it is given one
/// liveness window to do so before it refuses.
async fn guard(app: &Replica, new_voters: &BTreeSet<NodeId>, force: bool) -> Result<Vec<String>, MembershipError> {
    let majority = new_voters.len() / 2 + 1;
    let deadline = app.seams.clock.now().plus(live_window(app));
    let live_new = loop {
        let live_new = match live_majority(new_voters, &live_members(app)) {
            Ok(()) => return Ok(Vec::new()),
            Err(live_new) => live_new,
        };
        if app.seams.clock.now() >= deadline {
            break live_new;
        }
        tokio::time::sleep(app.config.heartbeat).await;
    };
    let message = format!(
        "after this change the voters would be {new_voters:?}, of which only {live_new:?} are live (acknowledged the \
         leader within {:?}): fewer than a majority ({majority}); the cluster could commit nothing, not even a change \
         back. Bring replicas back first, or pass --force",
        live_window(app)
    );
    if force {
        tracing::warn!("forced membership change: {message}");
        Ok(vec![format!("forced: {message}")])
    } else {
        Err(MembershipError::WouldLoseQuorum(message))
    }
}

fn write_error(
    e: RaftError<crate::storage::types::TypeConfig, ClientWriteError<crate::storage::types::TypeConfig>>,
) -> MembershipError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ProposeError::NoLeader.into(),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => MembershipError::Refused(format!(
            "{e}; wait for the previous change to finish (fenced cluster members) and retry"
        )),
        RaftError::APIError(e) => MembershipError::Refused(e.to_string()),
        RaftError::Fatal(_) => ProposeError::ShuttingDown.into(),
    }
}

/// Add `id` as a learner and wait until it has caught up.
async fn add_learner(app: &Replica, id: NodeId, addr: &str) -> Result<(), MembershipError> {
    let added =
        tokio::time::timeout(CATCH_UP_TIMEOUT, app.raft.add_learner(id, Node { addr: addr.into() }, true)).await;
    match added {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(write_error(e)),
        Err(_) => Err(MembershipError::CatchUpTimeout(format!(
            "replica {id} at {addr} did not catch up within {CATCH_UP_TIMEOUT:?}; is `fenced serve --join --id {id} \
                 --listen {addr}` running there? It stays a learner: run the same command again to retry, or remove it"
        ))),
    }
}

fn check_addr(addr: &str) -> Result<(), MembershipError> {
    if addr.is_empty() || addr.len() > 255 || !addr.contains(':') {
        return Err(MembershipError::Invalid(format!("address {addr:?} is not HOST:PORT")));
    }
    Ok(())
}

/// What is wrong with an add request on its face, before it is forwarded.
pub fn check_add(b: &AddMember) -> Result<(), MembershipError> {
    if b.id == 0 {
        return Err(MembershipError::Invalid("id must be positive".into()));
    }
    check_addr(&b.addr)
}

/// What is wrong with a replace request on its face, before it is forwarded.
pub fn check_replace(b: &ReplaceMember) -> Result<(), MembershipError> {
    if b.new == 0 || b.new == b.old {
        return Err(MembershipError::Invalid("the new id must be positive and differ from the old one".into()));
    }
    check_addr(&b.addr)
}

/// `fenced cluster add ID HOST:PORT`, on the leader.
pub async fn add(app: &Replica, b: &AddMember) -> Result<Membership, MembershipError> {
    let before = view(app);
    if let Some(at) = before.nodes.get(&b.id).filter(|a| **a != b.addr) {
        return Err(MembershipError::MemberExists(format!(
            "replica {} is already a member at {at}; remove it first, or use `fenced cluster replace`",
            b.id
        )));
    }
    if before.voters.contains(&b.id) {
        return Ok(before);
    }
    add_learner(app, b.id, &b.addr).await?;
    if b.learner_only {
        return Ok(view(app));
    }
    let mut voters = view(app).voters;
    voters.insert(b.id);
    let warnings = guard(app, &voters, b.force).await?;
    app.raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([b.id])), false).await.map_err(write_error)?;
    tracing::info!(id = b.id, addr = %b.addr, "added a voter");
    Ok(Membership { warnings, ..view(app) })
}

/// `fenced cluster remove ID`, on the leader.
pub async fn remove(app: &Replica, b: &RemoveMember) -> Result<Change, MembershipError> {
    let before = view(app);
    if !before.nodes.contains_key(&b.id) {
        return Ok(Change::Done(before));
    }
    if !before.voters.contains(&b.id) {
        let change = ChangeMembers::RemoveNodes(BTreeSet::from([b.id]));
        app.raft.change_membership(change, false).await.map_err(write_error)?;
        let after = view(app);
        drain_removed(app, before.nodes.get(&b.id).cloned(), after.log_index);
        return Ok(Change::Done(after));
    }
    let mut voters = before.voters.clone();
    voters.remove(&b.id);
    if voters.is_empty() {
        return Err(MembershipError::Invalid(format!("replica {} is the last voter; a cluster needs one", b.id)));
    }
    let warnings = guard(app, &voters, b.force).await?;
    if b.id == app.config.id {
        crate::duties::drain::hand_off(app).await?;
        return Ok(Change::Forward);
    }
    app.raft
        .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([b.id])), false)
        .await
        .map_err(write_error)?;
    tracing::info!(id = b.id, "removed a voter");
    let after = view(app);
    drain_removed(app, before.nodes.get(&b.id).cloned(), after.log_index);
    Ok(Change::Done(Membership { warnings, ..after }))
}

/// `fenced cluster replace OLD NEW HOST:PORT`, on the leader.
pub async fn replace(app: &Replica, b: &ReplaceMember) -> Result<Change, MembershipError> {
    let before = view(app);
    if before.voters.contains(&b.new) && !before.voters.contains(&b.old) {
        return Ok(Change::Done(before)); // Done already.
    }
    if !before.voters.contains(&b.old) {
        return Err(MembershipError::NotAVoter(format!("replica {} is not a voter", b.old)));
    }
    if before.voters.contains(&b.new) {
        return Err(MembershipError::MemberExists(format!("replica {} is already a voter", b.new)));
    }
    if b.old == app.config.id {
        crate::duties::drain::hand_off(app).await?;
        return Ok(Change::Forward);
    }
    if before.nodes.get(&b.new).is_some_and(|a| *a != b.addr) {
        return Err(MembershipError::MemberExists(format!(
            "replica {} is already a learner at another address; remove it first",
            b.new
        )));
    }
    add_learner(app, b.new, &b.addr).await?;
    let mut voters = view(app).voters;
    voters.remove(&b.old);
    voters.insert(b.new);
    let warnings = guard(app, &voters, b.force).await?;
    app.raft.change_membership(ChangeMembers::ReplaceAllVoters(voters), false).await.map_err(write_error)?;
    tracing::info!(old = b.old, new = b.new, addr = %b.addr, "replaced a voter");
    let after = view(app);
    drain_removed(app, before.nodes.get(&b.old).cloned(), after.log_index);
    Ok(Change::Done(Membership { warnings, ..after }))
}

/// Tell a replica that was just removed (by the membership at log index
/// `removed_at`) to drain, best effort, in the background: it no longer
/// receives the log, so acquires waiting there would never see their grant;
/// drained, it sends them elsewhere. It stops draining by itself once it is
/// added back ([`crate::duties::drain::drain_removed`]).
fn drain_removed(app: &Replica, addr: Option<String>, removed_at: u64) {
    let Some(addr) = addr else { return };
    let http = app.http.clone();
    let handshake = app.handshake.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::duties::drain::tell_removed(&http, &handshake, &addr, removed_at).await {
            tracing::debug!(%addr, error = %e, "could not tell a removed replica to drain");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_majority_of_the_new_voters_must_be_live() {
        assert_eq!(live_majority(&set(&[1, 2, 3]), &set(&[1, 2])), Ok(()));
        assert_eq!(live_majority(&set(&[1, 2, 3, 4]), &set(&[1, 2])), Err(set(&[1, 2])), "half is no majority");
        assert_eq!(live_majority(&set(&[1, 2, 3, 4]), &set(&[1, 2, 4])), Ok(()));
        assert_eq!(live_majority(&set(&[1]), &set(&[])), Err(set(&[])));
    }

    #[test]
    fn live_members_that_are_not_new_voters_do_not_count() {
        // Replacing 3 by 4 while 4 is down: 1 and the removed 3 are live,
        // but of the new voters {1, 2, 4} only 1 is.
        assert_eq!(live_majority(&set(&[1, 2, 4]), &set(&[1, 3])), Err(set(&[1])));
    }

    #[test]
    fn requests_wrong_on_their_face_are_refused_before_forwarding() {
        let add = |id, addr: &str| AddMember { id, addr: addr.into(), learner_only: false, force: false };
        assert!(check_add(&add(0, "h:1")).is_err());
        assert!(check_add(&add(4, "no-port")).is_err());
        assert!(check_add(&add(4, "")).is_err());
        assert!(check_add(&add(4, "h:1")).is_ok());
        let replace = |old, new| ReplaceMember { old, new, addr: "h:1".into(), force: false };
        assert!(check_replace(&replace(1, 1)).is_err());
        assert!(check_replace(&replace(1, 0)).is_err());
        assert!(check_replace(&replace(1, 4)).is_ok());
    }
}
