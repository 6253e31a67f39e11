//! What the log decided, replayed: every grant and every end of a grant, in
//! log order. The simulator and the chaos runner turn a replica's log into
//! these to let the checkers judge exclusion (S4) and durability (S5) by the
//! log itself, through the real state machine rather than a second reading
//! of the rules; and compare replicas' committed logs entry by entry.

use crate::machine::command::Request;
use crate::machine::ids::Token;
use crate::machine::response::{GrantKind, Response};
use crate::machine::table::{EndReason, Event, LockTable};
use serde::Serialize;
use std::collections::BTreeMap;

/// One decision of the log about a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// `grant`, `release`, `expire`, `revoke` or `permits` (the history's `f`).
    #[serde(skip)]
    pub kind: &'static str,
    pub lock: String,
    pub token: u64,
    pub lease: u64,
    /// The log index of the deciding entry.
    pub index: u64,
    /// How a grant is held, when not exclusive: `shared` or `permit`.
    /// Absent for exclusive grants, so histories of exclusive locks read as
    /// they did before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// A permit's slot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// For `permits` decisions (kind `permits`): the semaphore's new count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permits: Option<u32>,
}

/// Apply `entries` (index, request) to a fresh table and list the decisions.
pub fn replay<'a>(entries: impl IntoIterator<Item = (u64, &'a Request)>) -> Vec<Decision> {
    replay_onto(&mut LockTable::new(Default::default()), entries)
}

/// Apply `entries` to `table` (a log's starting state: a restored or
/// recovered cluster's first snapshot) and list the decisions; `table` is
/// left in the state the entries reach.
pub fn replay_onto<'a>(table: &mut LockTable, entries: impl IntoIterator<Item = (u64, &'a Request)>) -> Vec<Decision> {
    let mut out = Vec::new();
    for (index, req) in entries {
        let applied = table.apply(index, req);
        if let Response::PermitsSet { name, permits, .. } = &applied.response {
            let d = Decision {
                kind: "permits",
                lock: name.clone(),
                token: 0,
                lease: 0,
                index,
                mode: None,
                slot: None,
                permits: Some(*permits),
            };
            out.push(d);
        }
        for ev in applied.events {
            // A grant is still held right after the entry that made it.
            let kind_of = |lock: &str, token: Token| match table.grant_kind(lock, token) {
                Some(GrantKind::Exclusive) | None => (None, None),
                Some(k) => (Some(k.name()), k.slot()),
            };
            let (mut mode, mut slot) = (None, None);
            let (kind, lock, token, lease) = match ev {
                Event::Granted { lock, token, lease } => {
                    (mode, slot) = kind_of(&lock, token);
                    ("grant", lock, token, lease)
                }
                Event::Freed { lock, token, lease, reason } => {
                    let kind = match reason {
                        EndReason::Released => "release",
                        EndReason::Expired => "expire",
                        EndReason::Revoked => "revoke",
                    };
                    (kind, lock, token, lease)
                }
                _ => continue,
            };
            out.push(Decision { kind, lock, token: token.0, lease: lease.0, index, mode, slot, permits: None });
        }
    }
    out
}

/// One replica's committed log, for [`divergences`]: index → the entry as
/// text (its term and payload; any faithful rendering, the same for all).
pub type CommittedLog = BTreeMap<u64, String>;

/// Two replicas that hold different entries at an index both had committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Divergence {
    pub index: u64,
    pub replicas: [u64; 2],
    /// What each holds there.
    pub detail: String,
}

/// Raft's state-machine safety, checked on logs read back from disks: for
/// every pair of replicas, the first index that both had committed where
/// their entries differ. Indexes only one of them holds (a compacted start)
/// are not compared.
pub fn divergences(logs: &BTreeMap<u64, CommittedLog>) -> Vec<Divergence> {
    let mut out = Vec::new();
    let ids: Vec<u64> = logs.keys().copied().collect();
    for (n, a) in ids.iter().enumerate() {
        for b in &ids[n + 1..] {
            let (la, lb) = (&logs[a], &logs[b]);
            // Only the first disagreement per pair: what follows it usually
            // differs too.
            let first = la.iter().find(|(i, ea)| lb.get(*i).is_some_and(|eb| eb != *ea));
            if let Some((i, ea)) = first {
                let eb = lb.get(i).map_or("", String::as_str);
                out.push(Divergence {
                    index: *i,
                    replicas: [*a, *b],
                    detail: format!("n{a} holds {ea}; n{b} holds {eb}"),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod divergence_tests {
    use super::*;

    fn log(entries: &[(u64, &str)]) -> CommittedLog {
        entries.iter().map(|(i, e)| (*i, e.to_string())).collect()
    }

    #[test]
    fn committed_logs_that_agree_or_only_overlap_pass_and_a_difference_is_named() {
        let mut logs = BTreeMap::new();
        logs.insert(1, log(&[(1, "t1 a"), (2, "t1 b"), (3, "t2 c")]));
        logs.insert(2, log(&[(1, "t1 a"), (2, "t1 b")]));
        logs.insert(3, log(&[(2, "t1 b"), (3, "t2 c")]));
        assert!(divergences(&logs).is_empty());
        logs.insert(4, log(&[(1, "t1 a"), (2, "t1 x"), (3, "t2 y")]));
        let d = divergences(&logs);
        assert_eq!(d.len(), 3, "n4 differs from each of the others: {d:?}");
        assert_eq!((d[0].index, d[0].replicas), (2, [1, 4]));
        assert_eq!(d[0].detail, "n1 holds t1 b; n4 holds t1 x");
    }
}
