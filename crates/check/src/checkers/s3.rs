//! S3, fenced resource: the store never accepts a stale operation, judged
//! for each mode of grant (docs/primitives.md).
//!
//! - **Writes go forward per lock.** The store never accepts a write whose
//!   token is lower than a token it accepted before for the same lock.
//!   Writes are grouped by the lock whose token authorised them
//!   (`value.lock`, else the key): the store fences by lock, so under
//!   `--guard PREFIX=LOCK` every key under the prefix shares one fence, and a
//!   stale holder creating or overwriting *another* key under the prefix is
//!   a violation too. A semaphore permit writes under its slot's lock
//!   (`SEM#SLOT`), so this is the per-slot rule for permits: a slot never
//!   goes back to an older permit's token, whatever the other slots do.
//! - **Writes need an exclusive grant** (or a permit, on its slot): an
//!   accepted write whose token was a *shared* grant's is a violation. The
//!   grant's kind is the log's (process `"log"`, `value.mode`), else what the
//!   client recorded on the write (`value.mode`).
//! - **Fenced reads are not stale.** A read whose invoke carries `fence` (the
//!   reader's token, of any kind) asked the store to refuse it if a writer
//!   under the same lock had written with a later token; an ok fenced read
//!   invoked after such a write completed is a violation: the reader's grant
//!   had ended before that writer was granted, and it was served anyway.
//!
//! The order in which the store handled two concurrent operations is not in
//! the history, so a violation is only certain when the higher-token write
//! A completed ok before the lower-token operation B was invoked, and B is
//! ok too. Equal tokens are fine: a holder may write (and read) several
//! times.

use super::{fmt_ns, realtime_violations, view_or_unknown, Timed};
use crate::history::History;
use crate::verdict::{Evidence, Options, Property, Verdict};
use crate::view::{GrantMode, LogKind, Read, Write};
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
        let timed: Vec<Timed> = writes.iter().map(|w| timed(&w.op, w.token)).collect();
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

    // Writes need an exclusive grant: the kind of each token, from the log.
    let kinds: BTreeMap<u64, GrantMode> =
        view.log.iter().filter(|e| e.kind == LogKind::Grant).map(|e| (e.token, e.mode)).collect();
    for w in by_lock.values().flatten() {
        let mode = match kinds.get(&w.token) {
            Some(m) => *m,
            None if w.mode == Some("shared") => GrantMode::Shared,
            None => continue,
        };
        if mode == GrantMode::Shared {
            evidence.push(
                Evidence::new(format!(
                    "lock {:?}: the store accepted a write of key {:?} with token {} (process {}), a shared grant's: writes need an exclusive grant's token",
                    w.lock_name(),
                    w.key,
                    w.token,
                    w.op.process()
                ))
                .op(&w.op),
            );
        }
    }

    // Fenced reads: never served below a write completed before them.
    let mut fenced: BTreeMap<&str, Vec<&Read<'_>>> = BTreeMap::new();
    for r in view.reads.iter().filter(|r| r.fence.is_some()) {
        fenced.entry(r.lock_name()).or_default().push(r);
    }
    let n_fenced: usize = fenced.values().map(Vec::len).sum();
    for (lock, reads) in &fenced {
        let writes = by_lock.get(lock).map(Vec::as_slice).unwrap_or(&[]);
        for (w, r) in stale_reads(writes, reads) {
            evidence.push(
                Evidence::new(format!(
                    "lock {lock:?}: write of key {:?} with token {} (process {}) was accepted at {}, then the store served a fenced read of key {:?} with the older token {} (process {}) invoked at {}: that reader's grant had ended before the writer's",
                    w.key,
                    w.token,
                    w.op.process(),
                    fmt_ns(w.op.end().unwrap_or(0)),
                    r.key,
                    r.fence.unwrap_or(0),
                    r.op.process(),
                    fmt_ns(r.op.start())
                ))
                .op(&w.op)
                .op(&r.op),
            );
        }
    }

    let n: usize = by_lock.values().map(Vec::len).sum();
    Verdict::from_violations(
        Property::S3,
        opts,
        evidence,
        format!(
            "{n} accepted writes under {} locks never went back to an older token, none with a shared grant's; {n_fenced} fenced reads never below an earlier write",
            by_lock.len()
        ),
    )
}

fn timed(op: &crate::history::Op<'_>, token: u64) -> Timed {
    Timed { start: op.start(), end: op.end().unwrap_or(u64::MAX), token }
}

/// Each ok fenced read invoked after an ok write with a higher token had
/// completed, with that write (the highest such). O((w + r) log(w + r)).
fn stale_reads<'h, 'a>(writes: &[&'h Write<'a>], reads: &[&'h Read<'a>]) -> Vec<(&'h Write<'a>, &'h Read<'a>)> {
    let mut by_end: Vec<&Write<'_>> = writes.to_vec();
    by_end.sort_by_key(|w| (w.op.end().unwrap_or(u64::MAX), w.token));
    let mut by_start: Vec<&Read<'_>> = reads.to_vec();
    by_start.sort_by_key(|r| r.op.start());
    let mut out = Vec::new();
    let mut done = 0;
    let mut max: Option<&Write<'_>> = None;
    for r in by_start {
        while done < by_end.len() && by_end[done].op.end().unwrap_or(u64::MAX) < r.op.start() {
            if max.is_none_or(|m| by_end[done].token > m.token) {
                max = Some(by_end[done]);
            }
            done += 1;
        }
        if let (Some(w), Some(fence)) = (max, r.fence) {
            if w.token > fence {
                out.push((w, r));
            }
        }
    }
    out
}
