//! S4, exclusion in the log: per lock, a grant appears only when the lock is
//! free, that is after the previous holder's release, expiry or revocation.
//! Extended to the other primitives: an exclusive grant overlaps no holder
//! of any mode, a shared grant overlaps no exclusive holder, and a
//! semaphore grants a permit only while fewer than its count (as the log
//! last set it) are held, in a slot nobody holds. A lowered count may leave
//! more holders than permits for a while; what must never happen is a
//! grant beyond the count.
//!
//! The log is read back at the end of a run (process `"log"`) and its events
//! are in log order, so this is a replay; real time plays no part.

use super::view_or_unknown;
use crate::history::{History, Op};
use crate::verdict::{Evidence, Options, Property, Verdict};
use crate::view::{GrantMode, LogKind};
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
    // lock -> token -> (mode, slot, grant) of its current holders
    let mut holders: BTreeMap<&str, BTreeMap<u64, Holder<'_>>> = BTreeMap::new();
    // semaphore -> its permit count, as the log last set it
    let mut permits: BTreeMap<&str, u64> = BTreeMap::new();
    let mut evidence = Vec::new();
    for e in &view.log {
        match e.kind {
            LogKind::Grant => {
                let held = holders.entry(e.lock).or_default();
                let conflict = match e.mode {
                    // An exclusive holder overlaps nobody.
                    GrantMode::Exclusive => held.iter().next(),
                    // A shared holder overlaps shared holders only.
                    GrantMode::Shared => held.iter().find(|(_, (m, _, _))| *m != GrantMode::Shared),
                    GrantMode::Permit => None,
                };
                if let Some((token, (mode, _, prev))) = conflict {
                    let text = if e.mode == GrantMode::Exclusive && *mode == GrantMode::Exclusive {
                        format!(
                            "lock {:?} was granted with token {} while token {token} still held it (no release, expiry or revocation between)",
                            e.lock, e.token
                        )
                    } else {
                        format!(
                            "lock {:?} was granted {} with token {} while token {token} still held it {} (no release, expiry or revocation between)",
                            e.lock,
                            mode_name(e.mode),
                            e.token,
                            mode_name(*mode)
                        )
                    };
                    evidence.push(Evidence::new(text).op(prev).op(&e.op));
                }
                if e.mode == GrantMode::Permit {
                    let n = permits.get(e.lock).copied().unwrap_or(0);
                    let permit_holders = held.values().filter(|(m, _, _)| *m == GrantMode::Permit).count() as u64;
                    if permit_holders >= n {
                        let mut ev = Evidence::new(format!(
                            "semaphore {:?} granted a permit with token {} while {permit_holders} of its {n} permits were held",
                            e.lock, e.token
                        ));
                        for (_, _, op) in held.values().take(3) {
                            ev = ev.op(op);
                        }
                        evidence.push(ev.op(&e.op));
                    }
                    if let Some((token, (_, _, prev))) =
                        held.iter().find(|(_, (_, s, _))| e.slot.is_some() && *s == e.slot)
                    {
                        evidence.push(
                            Evidence::new(format!(
                                "semaphore {:?} granted slot {} with token {} while token {token} still held it",
                                e.lock,
                                e.slot.unwrap_or(0),
                                e.token
                            ))
                            .op(prev)
                            .op(&e.op),
                        );
                    }
                }
                held.insert(e.token, (e.mode, e.slot, e.op));
            }
            LogKind::Release | LogKind::Expire | LogKind::Revoke => {
                // An end for a token that does not hold the lock (a late
                // release of an expired grant) changes nothing.
                if let Some(held) = holders.get_mut(e.lock) {
                    held.remove(&e.token);
                }
            }
            LogKind::Permits => {
                permits.insert(e.lock, e.permits.unwrap_or(0));
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

/// A current holder: its mode, its slot (permits), and its grant.
type Holder<'a> = (GrantMode, Option<u64>, Op<'a>);

fn mode_name(m: GrantMode) -> &'static str {
    match m {
        GrantMode::Exclusive => "exclusive",
        GrantMode::Shared => "shared",
        GrantMode::Permit => "as a permit",
    }
}
