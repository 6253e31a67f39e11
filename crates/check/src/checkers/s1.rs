//! S1, uniqueness: no two grants carry the same fencing token.
//!
//! Grants are ok acquires and ok claims that carry a token; tokens are
//! compared across all locks or per lock ([`TokenScope`]). Two ok claims of
//! the same name by different owners are also two winners of one name. The
//! log's own grants must have distinct tokens too, since a token is the log
//! index of its grant.

use super::view_or_unknown;
use crate::history::{History, Op};
use crate::verdict::{Evidence, Options, Property, TokenScope, Verdict};
use std::collections::BTreeMap;

pub fn check(history: &History, opts: &Options) -> Verdict {
    let view = match view_or_unknown(history, Property::S1) {
        Ok(v) => v,
        Err(v) => return v,
    };
    let mut evidence = Vec::new();

    let grants = view.acquires.iter().filter_map(|a| Some((a.op, a.lock, a.token?, "acquire"))).chain(
        view.claims.iter().filter(|c| c.op.outcome().is_ok()).filter_map(|c| Some((c.op, c.name, c.token?, "claim"))),
    );
    let mut seen: BTreeMap<(Option<&str>, u64), (Op<'_>, &str)> = BTreeMap::new();
    let mut n = 0;
    for (op, lock, token, what) in grants {
        n += 1;
        let scope = match opts.token_scope {
            TokenScope::Global => None,
            TokenScope::PerLock => Some(lock),
        };
        match seen.get(&(scope, token)) {
            Some((first, first_lock)) => evidence.push(
                Evidence::new(format!(
                    "token {token} was granted twice: to an {what} of {lock:?} and earlier for {first_lock:?}"
                ))
                .op(first)
                .op(&op),
            ),
            None => {
                seen.insert((scope, token), (op, lock));
            }
        }
    }

    let mut winners: BTreeMap<&str, &crate::view::Claim<'_>> = BTreeMap::new();
    for c in view.claims.iter().filter(|c| c.op.outcome().is_ok()) {
        match winners.get(c.name) {
            Some(w) if w.owner.is_none() || w.owner != c.owner => evidence.push(
                Evidence::new(format!("claim {:?} was won twice, by different owners", c.name)).op(&w.op).op(&c.op),
            ),
            Some(_) => {}
            None => {
                winners.insert(c.name, c);
            }
        }
    }

    let mut log_tokens: BTreeMap<u64, Op<'_>> = BTreeMap::new();
    for g in view.log.iter().filter(|e| e.kind == crate::view::LogKind::Grant) {
        if let Some(first) = log_tokens.insert(g.token, g.op) {
            evidence
                .push(Evidence::new(format!("the log holds two grants with token {}", g.token)).op(&first).op(&g.op));
        }
    }

    Verdict::from_violations(
        Property::S1,
        opts,
        evidence,
        format!("{n} grants and {} log grants carry distinct tokens", log_tokens.len()),
    )
}
