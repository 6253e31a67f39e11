//! Paged listings by name prefix, as the consoles' APIs serve them: the
//! replica's `/v1/locks` and `/v1/claims`, the store's `/v1/keys`. A page
//! holds the visible names under a prefix after a cursor (the previous
//! page's last name); the total is counted up to [`COUNT_MAX`], so that a
//! page costs a bounded walk whatever the table's size. Pure functions over
//! sorted iterators, so both servers page alike and the rules are tested once.

/// The largest page `limit` may ask for.
pub const PAGE_MAX: usize = 1000;
/// The page size when `limit` is not given.
pub const PAGE_DEFAULT: usize = 100;
/// Counting the matching names stops here (`total_exact: false`).
pub const COUNT_MAX: u64 = 100_000;

/// The page size `limit` asks for, between 1 and `max`; out of range, the
/// message for a 400.
pub fn page_size(limit: Option<usize>, max: usize) -> Result<usize, String> {
    match limit.unwrap_or(PAGE_DEFAULT.min(max)) {
        n if (1..=max).contains(&n) => Ok(n),
        n => Err(format!("limit {n} is out of range: give 1 to {max}")),
    }
}

/// Where a walk for the page after `after` under `prefix` starts: the
/// cursor, unless it sorts before the prefix.
pub fn start<'a>(prefix: &'a str, after: Option<&'a str>) -> &'a str {
    after.filter(|a| *a > prefix).unwrap_or(prefix)
}

/// One page from a sorted iterator (started at or before [`start`]): the
/// visible items whose name matches `prefix`, after `after`, up to `limit`,
/// and the cursor of the next page if there are more.
pub fn page<T>(
    items: impl Iterator<Item = T>,
    name: impl Fn(&T) -> &str,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
    visible: impl Fn(&str) -> bool,
) -> (Vec<T>, Option<String>) {
    let mut out = Vec::new();
    for item in items {
        let n = name(&item);
        if !n.starts_with(prefix) {
            break;
        }
        if after.is_some_and(|a| n <= a) || !visible(n) {
            continue;
        }
        if out.len() == limit {
            let next = out.last().map(|t| name(t).to_string());
            return (out, next);
        }
        out.push(item);
    }
    (out, None)
}

/// Count the visible names matching `prefix` in a sorted iterator started at
/// the prefix, up to `max`: the count, and whether it is exact.
pub fn count<'a>(
    names: impl Iterator<Item = &'a str>,
    prefix: &str,
    max: u64,
    visible: impl Fn(&str) -> bool,
) -> (u64, bool) {
    let mut total = 0;
    for n in names {
        if !n.starts_with(prefix) {
            break;
        }
        if visible(n) {
            if total == max {
                return (total, false);
            }
            total += 1;
        }
    }
    (total, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_keeps_to_the_prefix_the_cursor_and_the_visible_names() {
        let names = ["a/1", "a/2", "a/3", "a/4", "b/1"];
        let see = |n: &str| n != "a/2";
        let (p, next) = page(names.iter().copied(), |n: &&str| *n, "a/", None, 2, see);
        assert_eq!((p, next.as_deref()), (vec!["a/1", "a/3"], Some("a/3")));
        let (p, next) = page(names.iter().copied(), |n: &&str| *n, "a/", Some("a/3"), 2, see);
        assert_eq!((p, next), (vec!["a/4"], None));
        assert_eq!(count(names.iter().copied(), "a/", COUNT_MAX, see), (3, true));
        assert_eq!(count(names.iter().copied(), "a/", 2, see), (2, false), "counting stops at the bound");
        assert_eq!(start("a/", Some("a/3")), "a/3");
        assert_eq!(start("b/", Some("a/3")), "b/", "a cursor before the prefix starts at the prefix");
    }

    #[test]
    fn a_page_size_out_of_bounds_is_refused() {
        assert!(page_size(Some(0), PAGE_MAX).is_err());
        assert_eq!(page_size(Some(PAGE_MAX + 1), PAGE_MAX), Err("limit 1001 is out of range: give 1 to 1000".into()));
        assert_eq!(page_size(None, PAGE_MAX), Ok(PAGE_DEFAULT));
        assert_eq!(page_size(None, 10), Ok(10), "the default never exceeds a smaller bound");
    }
}
