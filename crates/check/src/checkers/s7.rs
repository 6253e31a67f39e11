//! S7, authenticity: the store accepts no token that the lock service did not
//! issue for that lock.
//!
//! The issued tokens are the grants of the log read back at the end of a run
//! (process `"log"`, `f: "grant"`). A write names its lock in `value.lock`, or
//! else the key is the lock. A Byzantine client may write with a token that
//! was never issued, or one issued for another lock: an ok write of either
//! kind is a violation. A semaphore permit's token is issued for its slot's
//! lock (`SEM#SLOT`, the lock a fenced store guards the slot's keys with).

use super::view_or_unknown;
use crate::history::History;
use crate::verdict::{Evidence, Options, Property, Verdict};
use crate::view::{GrantMode, LogKind};
use std::borrow::Cow;
use std::collections::BTreeMap;

pub fn check(history: &History, opts: &Options) -> Verdict {
    let view = match view_or_unknown(history, Property::S7) {
        Ok(v) => v,
        Err(v) => return v,
    };
    let accepted: Vec<_> = view.writes.iter().filter(|w| w.op.outcome().is_ok()).collect();
    if accepted.is_empty() {
        return Verdict::valid(Property::S7, "the store accepted no writes");
    }
    // token -> locks it was issued for (one, unless S1 is broken too). A
    // permit fences its slot: its token is issued for the slot's lock
    // `SEM#SLOT` (docs/primitives.md), not for the semaphore's name.
    let mut issued: BTreeMap<u64, Vec<Cow<'_, str>>> = BTreeMap::new();
    for g in view.log.iter().filter(|e| e.kind == LogKind::Grant) {
        let lock = match (g.mode, g.slot) {
            (GrantMode::Permit, Some(slot)) => Cow::Owned(format!("{}#{slot}", g.lock)),
            _ => Cow::Borrowed(g.lock),
        };
        issued.entry(g.token).or_default().push(lock);
    }
    if issued.is_empty() {
        return Verdict::unknown(
            Property::S7,
            format!(
                "{} accepted writes not checked: the history has no log grants (process \"log\", f \"grant\") to say which tokens were issued",
                accepted.len()
            ),
        );
    }
    let mut evidence = Vec::new();
    for w in &accepted {
        let lock = w.lock_name();
        let why = match issued.get(&w.token) {
            Some(locks) if locks.iter().any(|l| l == lock) => continue,
            Some(locks) => format!("was issued for {locks:?}, not for {lock:?}"),
            None => "was never issued".to_string(),
        };
        evidence.push(
            Evidence::new(format!("key {:?}: the store accepted token {}, which {why}", w.key, w.token)).op(&w.op),
        );
    }
    Verdict::from_violations(
        Property::S7,
        opts,
        evidence,
        format!("{} accepted writes all carried tokens issued for their lock", accepted.len()),
    )
}
