//! S2, monotonic sequence: if grant x completed before grant y was invoked
//! (real time), then `token(x) < token(y)`.
//!
//! Grants are ok acquires and ok claims that carry a token. Concurrent grants
//! may come in any order. O(n log n), see [`super::realtime_violations`].

use super::{fmt_ns, realtime_violations, view_or_unknown, Timed};
use crate::history::{History, Op};
use crate::verdict::{Evidence, Options, Property, TokenScope, Verdict};
use std::collections::BTreeMap;

pub fn check(history: &History, opts: &Options) -> Verdict {
    let view = match view_or_unknown(history, Property::S2) {
        Ok(v) => v,
        Err(v) => return v,
    };
    let grants =
        view.acquires.iter().filter_map(|a| Some((a.op, a.lock, a.token?))).chain(
            view.claims.iter().filter(|c| c.op.outcome().is_ok()).filter_map(|c| Some((c.op, c.name, c.token?))),
        );
    let mut groups: BTreeMap<Option<&str>, Vec<(Op<'_>, &str, u64)>> = BTreeMap::new();
    let mut n = 0;
    for g in grants {
        n += 1;
        let scope = (opts.token_scope == TokenScope::PerLock).then_some(g.1);
        groups.entry(scope).or_default().push(g);
    }
    let mut evidence = Vec::new();
    for grants in groups.values() {
        let timed: Vec<Timed> = grants
            .iter()
            .map(|(op, _, token)| Timed { start: op.start(), end: op.end().unwrap_or(u64::MAX), token: *token })
            .collect();
        for (x, y) in realtime_violations(&timed, false) {
            let (ox, lx, tx) = grants[x];
            let (oy, ly, ty) = grants[y];
            evidence.push(
                Evidence::new(format!(
                    "grant of {lx:?} with token {tx} completed at {}, before the acquire of {ly:?} was invoked at {}, yet that got token {ty}",
                    fmt_ns(ox.end().unwrap_or(0)),
                    fmt_ns(oy.start())
                ))
                .op(&ox)
                .op(&oy),
            );
        }
    }
    Verdict::from_violations(Property::S2, opts, evidence, format!("{n} grants increase in real-time order"))
}
