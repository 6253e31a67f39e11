//! S3, fenced resource: the store never accepts a write whose token is lower
//! than a token it accepted before for the same lock.
//!
//! Writes are grouped by the lock whose token authorised them (`value.lock`,
//! else the key): the store fences by lock, so under `--guard PREFIX=LOCK`
//! every key under the prefix shares one fence, and a stale holder creating
//! or overwriting *another* key under the prefix is a violation too. Without
//! guards a key is its own lock and this is the per-key rule.
//!
//! The order in which the store accepted two concurrent writes is not in the
//! history, so a violation is only certain when the higher-token write A
//! completed ok before the lower-token write B was invoked, and B is ok too.
//! Equal tokens are fine: a holder may write several times.

use super::{fmt_ns, realtime_violations, view_or_unknown, Timed};
use crate::history::History;
use crate::verdict::{Evidence, Options, Property, Verdict};
use crate::view::Write;
use std::collections::BTreeMap;

pub fn check(history: &History, opts: &Options) -> Verdict {
    let view = match view_or_unknown(history, Property::S3) {
        Ok(v) => v,
        Err(v) => return v,
    };
    let mut by_lock: BTreeMap<&str, Vec<&Write<'_>>> = BTreeMap::new();
    for w in view.writes.iter().filter(|w| w.op.outcome().is_ok()) {
        by_lock.entry(w.lock_name()).or_default().push(w);
    }
    let mut evidence = Vec::new();
    for (lock, writes) in &by_lock {
        let timed: Vec<Timed> = writes
            .iter()
            .map(|w| Timed { start: w.op.start(), end: w.op.end().unwrap_or(u64::MAX), token: w.token })
            .collect();
        for (a, b) in realtime_violations(&timed, true) {
            let (a, b) = (writes[a], writes[b]);
            evidence.push(
                Evidence::new(format!(
                    "lock {lock:?}: write of key {:?} with token {} (process {}) was accepted at {}, then the store accepted a write of key {:?} with an older token {} (process {}) invoked at {}",
                    a.key,
                    a.token,
                    a.op.process(),
                    fmt_ns(a.op.end().unwrap_or(0)),
                    b.key,
                    b.token,
                    b.op.process(),
                    fmt_ns(b.op.start())
                ))
                .op(&a.op)
                .op(&b.op),
            );
        }
    }
    let n: usize = by_lock.values().map(Vec::len).sum();
    Verdict::from_violations(
        Property::S3,
        opts,
        evidence,
        format!("{n} accepted writes under {} locks never went back to an older token", by_lock.len()),
    )
}
