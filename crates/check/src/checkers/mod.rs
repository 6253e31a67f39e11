//! The checkers: one pure function per property, `check(&History, &Options)
//! -> Verdict`. Each builds the typed [`View`] itself, so that any of them can
//! be called alone (the simulator calls a few after every run).

use crate::history::History;
use crate::verdict::{Options, Property, Verdict};
use crate::view::View;

pub mod l1;
pub mod s1;
pub mod s2;
pub mod s3;
pub mod s4;
pub mod s5;
pub mod s7;

/// Runs every checker of [`Property::CHECKED`], in that order.
pub fn check_all(history: &History, opts: &Options) -> Vec<Verdict> {
    vec![
        s1::check(history, opts),
        s2::check(history, opts),
        s3::check(history, opts),
        s4::check(history, opts),
        s5::check(history, opts),
        s7::check(history, opts),
        l1::check(history, opts),
    ]
}

/// Builds the view, or the `unknown` verdict a checker returns when the
/// history breaks the conventions (the CLI reports that as bad input before
/// any checker runs; library callers get it here).
pub(crate) fn view_or_unknown(history: &History, property: Property) -> Result<View<'_>, Verdict> {
    View::build(history).map_err(|e| Verdict::unknown(property, format!("cannot judge a malformed history: {e}")))
}

/// An operation placed in real time, with the token it carries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timed {
    pub start: u64,
    pub end: u64,
    pub token: u64,
}

/// Finds every `y` for which some `x` completed strictly before `y` was
/// invoked while carrying a token that is too high: `token(x) >= token(y)`,
/// or, with `allow_equal`, `token(x) > token(y)`. Returns `(x, y)` index
/// pairs, `x` being the completed operation with the highest token.
///
/// O(n log n): sort by completion and by invoke, then sweep the invokes in
/// time order while folding in every operation completed before each one.
/// Only the maximum token completed so far matters, since any higher token
/// convicts `y` if the maximum does not.
pub(crate) fn realtime_violations(items: &[Timed], allow_equal: bool) -> Vec<(usize, usize)> {
    let mut by_end: Vec<usize> = (0..items.len()).collect();
    by_end.sort_by_key(|&i| (items[i].end, i));
    let mut by_start: Vec<usize> = (0..items.len()).collect();
    by_start.sort_by_key(|&i| (items[i].start, i));
    let mut out = Vec::new();
    let mut done = 0;
    let mut max: Option<usize> = None;
    for &y in &by_start {
        while done < by_end.len() && items[by_end[done]].end < items[y].start {
            let x = by_end[done];
            if max.is_none_or(|m| items[x].token > items[m].token) {
                max = Some(x);
            }
            done += 1;
        }
        if let Some(x) = max {
            let (tx, ty) = (items[x].token, items[y].token);
            if tx > ty || (tx == ty && !allow_equal) {
                out.push((x, y));
            }
        }
    }
    out
}

/// Nanoseconds for humans: `1.5s`, `20ms`, `800ns`.
pub fn fmt_ns(ns: u64) -> String {
    if ns >= 1_000_000_000 {
        format!("{}s", ns as f64 / 1e9)
    } else if ns >= 1_000_000 {
        format!("{}ms", ns as f64 / 1e6)
    } else if ns >= 1_000 {
        format!("{}µs", ns as f64 / 1e3)
    } else {
        format!("{ns}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(start: u64, end: u64, token: u64) -> Timed {
        Timed { start, end, token }
    }

    #[test]
    fn sweep_finds_only_certain_order() {
        // Concurrent: no violation whatever the tokens.
        assert!(realtime_violations(&[t(0, 10, 5), t(5, 15, 1)], false).is_empty());
        // Sequential, decreasing.
        assert_eq!(realtime_violations(&[t(0, 10, 5), t(11, 15, 1)], false), vec![(0, 1)]);
        // Equal tokens: a violation only when equality is not allowed.
        assert_eq!(realtime_violations(&[t(0, 1, 5), t(2, 3, 5)], false), vec![(0, 1)]);
        assert!(realtime_violations(&[t(0, 1, 5), t(2, 3, 5)], true).is_empty());
        // Completion at the same instant as the invoke is not "before".
        assert!(realtime_violations(&[t(0, 2, 5), t(2, 3, 1)], false).is_empty());
        // The culprit named is the highest token completed before.
        let v = realtime_violations(&[t(0, 1, 3), t(0, 2, 9), t(5, 6, 4)], false);
        assert_eq!(v, vec![(1, 2)]);
    }
}
