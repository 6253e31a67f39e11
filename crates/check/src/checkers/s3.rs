//! S3, fenced resource: the store never accepts a write whose token is lower
//! than a token it accepted before for the same key.
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
    let mut by_key: BTreeMap<&str, Vec<&Write<'_>>> = BTreeMap::new();
    for w in view.writes.iter().filter(|w| w.op.outcome().is_ok()) {
        by_key.entry(w.key).or_default().push(w);
    }
    let mut evidence = Vec::new();
    for (key, writes) in &by_key {
        let timed: Vec<Timed> = writes
            .iter()
            .map(|w| Timed { start: w.op.start(), end: w.op.end().unwrap_or(u64::MAX), token: w.token })
            .collect();
        for (a, b) in realtime_violations(&timed, true) {
            let (a, b) = (writes[a], writes[b]);
            evidence.push(
                Evidence::new(format!(
                    "key {key:?}: write with token {} (process {}) was accepted at {}, then the store accepted an older token {} (process {}) invoked at {}",
                    a.token,
                    a.op.process(),
                    fmt_ns(a.op.end().unwrap_or(0)),
                    b.token,
                    b.op.process(),
                    fmt_ns(b.op.start())
                ))
                .op(&a.op)
                .op(&b.op),
            );
        }
    }
    let n: usize = by_key.values().map(Vec::len).sum();
    Verdict::from_violations(
        Property::S3,
        opts,
        evidence,
        format!("{n} accepted writes on {} keys never went back to an older token", by_key.len()),
    )
}
