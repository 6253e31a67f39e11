//! What the log decided, replayed: every grant and every end of a grant, in
//! log order. The simulator and the chaos runner turn a replica's log into
//! these to let the checkers judge exclusion (S4) and durability (S5) by the
//! log itself, through the real state machine rather than a second reading
//! of the rules.

use crate::command::Request;
use crate::table::{EndReason, Event, LockTable};
use serde::Serialize;

/// One decision of the log about a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// `grant`, `release`, `expire` or `revoke` (the history's `f`).
    #[serde(skip)]
    pub kind: &'static str,
    pub lock: String,
    pub token: u64,
    pub lease: u64,
    /// The log index of the deciding entry.
    pub index: u64,
}

/// Apply `entries` (index, request) to a fresh table and list the decisions.
pub fn replay<'a>(entries: impl IntoIterator<Item = (u64, &'a Request)>) -> Vec<Decision> {
    let mut table = LockTable::new(Default::default());
    let mut out = Vec::new();
    for (index, req) in entries {
        for ev in table.apply(index, req).events {
            let (kind, lock, token, lease) = match ev {
                Event::Granted { lock, token, lease } => ("grant", lock, token, lease),
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
            out.push(Decision { kind, lock, token: token.0, lease: lease.0, index });
        }
    }
    out
}
