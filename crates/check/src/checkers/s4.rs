//! S4, exclusion in the log: per lock, a grant appears only when the lock is
//! free, that is after the previous holder's release, expiry or revocation.
//!
//! The log is read back at the end of a run (process `"log"`) and its events
//! are in log order, so this is a replay; real time plays no part.

use super::view_or_unknown;
use crate::history::{History, Op};
use crate::verdict::{Evidence, Options, Property, Verdict};
use crate::view::LogKind;
use std::collections::BTreeMap;

pub fn check(history: &History, opts: &Options) -> Verdict {
    let view = match view_or_unknown(history, Property::S4) {
        Ok(v) => v,
        Err(v) => return v,
    };
    if view.log.is_empty() {
        return Verdict::unknown(
            Property::S4,
            "the history has no log entries (process \"log\"), so exclusion in the log cannot be judged",
        );
    }
    // lock -> (token, grant) of the current holder
    let mut holder: BTreeMap<&str, (u64, Op<'_>)> = BTreeMap::new();
    let mut evidence = Vec::new();
    for e in &view.log {
        match e.kind {
            LogKind::Grant => {
                if let Some((token, prev)) = holder.insert(e.lock, (e.token, e.op)) {
                    evidence.push(
                        Evidence::new(format!(
                            "lock {:?} was granted with token {} while token {token} still held it (no release, expiry or revocation between)",
                            e.lock, e.token
                        ))
                        .op(&prev)
                        .op(&e.op),
                    );
                }
            }
            LogKind::Release | LogKind::Expire | LogKind::Revoke => {
                // An end for a token that does not hold the lock (a late
                // release of an expired grant) changes nothing.
                if holder.get(e.lock).is_some_and(|(t, _)| *t == e.token) {
                    holder.remove(e.lock);
                }
            }
        }
    }
    Verdict::from_violations(
        Property::S4,
        opts,
        evidence,
        format!("{} log entries: every grant found its lock free", view.log.len()),
    )
}
