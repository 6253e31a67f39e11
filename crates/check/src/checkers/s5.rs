//! S5, durability: an acknowledged grant, release or store write is never
//! lost, even across crashes and restarts.
//!
//! - Every ok acquire must appear as a grant of the same lock and token in
//!   the log read back at the end of the run (process `"log"`).
//! - Every ok release must appear as the end (release, expiry or revocation)
//!   of that grant in the log.
//! - Every ok write must be visible to the final read of its key (process
//!   `"final"`): the read's token is at least the write's. When the tokens are
//!   equal and the write was the last one with that token, the read returns
//!   its value. Writes with the same token are ordered by real time only: a
//!   write is superseded when another ok write with that token was invoked
//!   after it completed; any write not superseded (ok or unknown) may be last.
//!
//! - No two replicas hold different entries at an index both had committed
//!   (a `"diverged"` record from process `"log"`): whichever replica is
//!   asked later decides, so an acknowledged decision can silently vanish.
//!
//! Without log entries or final reads, the matching part cannot be judged and
//! the verdict is `unknown`, with the reason, never `invalid`.

use super::view_or_unknown;
use crate::history::History;
use crate::verdict::{Evidence, Options, Property, Status, Verdict};
use crate::view::{LogKind, Read, View, Write};
use std::collections::{BTreeMap, BTreeSet};

pub fn check(history: &History, opts: &Options) -> Verdict {
    let view = match view_or_unknown(history, Property::S5) {
        Ok(v) => v,
        Err(v) => return v,
    };
    let mut evidence = Vec::new();
    let mut unknown = Vec::new();
    check_log(&view, &mut evidence, &mut unknown);
    let checked_writes = check_writes(&view, &mut evidence, &mut unknown);

    let mut verdict = Verdict::from_violations(
        Property::S5,
        opts,
        evidence,
        format!(
            "every acknowledged grant and release is in the log, and {checked_writes} acknowledged writes are visible to the final reads"
        ),
    );
    if verdict.status == Status::Valid && !unknown.is_empty() {
        verdict = Verdict::unknown(Property::S5, unknown.join("; "));
    }
    verdict
}

fn check_log(view: &View<'_>, evidence: &mut Vec<Evidence>, unknown: &mut Vec<String>) {
    for d in &view.diverged {
        evidence.push(
            Evidence::new(format!(
                "the replicas' logs disagree at committed index {}{}",
                d.index,
                d.detail.map(|x| format!(": {x}")).unwrap_or_default()
            ))
            .op(&d.op),
        );
    }
    let acquired = view.acquires.iter().filter(|a| a.token.is_some());
    let released = view.releases.iter().filter(|r| r.op.outcome().is_ok());
    if view.log.is_empty() {
        let (a, r) = (acquired.count(), released.count());
        if a + r > 0 {
            unknown.push(format!(
                "{a} ok acquires and {r} ok releases not checked: the history has no log entries (process \"log\")"
            ));
        }
        return;
    }
    let grants: BTreeSet<(&str, u64)> =
        view.log.iter().filter(|e| e.kind == LogKind::Grant).map(|e| (e.lock, e.token)).collect();
    let ends: BTreeSet<(&str, u64)> = view
        .log
        .iter()
        .filter(|e| matches!(e.kind, LogKind::Release | LogKind::Expire | LogKind::Revoke))
        .map(|e| (e.lock, e.token))
        .collect();
    for a in acquired {
        let token = a.token.unwrap_or_default();
        if !grants.contains(&(a.lock, token)) {
            evidence.push(
                Evidence::new(format!(
                    "acquire of {:?} was acknowledged with token {token}, but the log has no such grant",
                    a.lock
                ))
                .op(&a.op),
            );
        }
    }
    for r in released {
        if !ends.contains(&(r.lock, r.token)) {
            evidence.push(
                Evidence::new(format!(
                    "release of {:?} token {} was acknowledged, but the log never ends that grant",
                    r.lock, r.token
                ))
                .op(&r.op),
            );
        }
    }
}

/// Returns how many ok writes were checked.
fn check_writes(view: &View<'_>, evidence: &mut Vec<Evidence>, unknown: &mut Vec<String>) -> usize {
    let mut by_key: BTreeMap<&str, Vec<&Write<'_>>> = BTreeMap::new();
    for w in view.writes.iter().filter(|w| w.op.outcome().may_have_happened()) {
        by_key.entry(w.key).or_default().push(w);
    }
    // The last final read of each key.
    let finals: BTreeMap<&str, &Read<'_>> = view.finals.iter().map(|r| (r.key, r)).collect();
    let mut checked = 0;
    let mut unread = Vec::new();
    for (key, writes) in &by_key {
        let acked = writes.iter().filter(|w| w.op.outcome().is_ok());
        let Some(fin) = finals.get(key) else {
            if acked.count() > 0 {
                unread.push(*key);
            }
            continue;
        };
        for w in acked.clone() {
            checked += 1;
            if w.token > fin.token {
                evidence.push(
                    Evidence::new(format!(
                        "key {key:?}: write with token {} was acknowledged, but the final read shows token {}",
                        w.token, fin.token
                    ))
                    .op(&w.op)
                    .op(&fin.op),
                );
            }
        }
        // Equal tokens: the final value must be that of a write with that
        // token that nothing with the same token certainly followed.
        let same: Vec<&&Write<'_>> = writes.iter().filter(|w| w.token == fin.token).collect();
        let Some(last_ok_start) = same.iter().filter(|w| w.op.outcome().is_ok()).map(|w| w.op.start()).max() else {
            continue;
        };
        let may_be_last: Vec<&Write<'_>> =
            same.into_iter().copied().filter(|w| w.op.end().is_none_or(|end| end >= last_ok_start)).collect();
        let read_value = fin.value.unwrap_or(&serde_json::Value::Null);
        if !may_be_last.iter().any(|w| w.value == read_value) {
            let mut ev = Evidence::new(format!(
                "key {key:?}: the final read returns {read_value} with token {}, which is not the value of the last acknowledged write with that token",
                fin.token
            ));
            for w in may_be_last.iter().filter(|w| w.op.outcome().is_ok()) {
                ev = ev.op(&w.op);
            }
            evidence.push(ev.op(&fin.op));
        }
    }
    if !unread.is_empty() {
        let what = if view.finals.is_empty() {
            "the history has no final reads (process \"final\")".to_string()
        } else {
            format!("no final read of key(s) {unread:?}")
        };
        unknown.push(format!("acknowledged writes of {} key(s) not checked: {what}", unread.len()));
    }
    checked
}
