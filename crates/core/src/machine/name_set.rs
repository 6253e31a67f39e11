//! A small ordered set of names, sized for the common case of a lease that
//! holds, awaits or has claimed one or two names.
//!
//! A `BTreeSet<String>` with one element allocates a whole B-tree leaf (about
//! 280 bytes for eleven slots); at 100 000 leases that was a fifth of a
//! replica's heap. `NameSet` is a sorted, duplicate-free `Vec` that grows one
//! slot at a time. Lookups are binary searches; sets are bounded by
//! `Limits::locks_per_lease_max`, so inserts and removes stay cheap.
//!
//! It serializes exactly as a `BTreeSet<String>` does (a sequence of names
//! in order), so snapshots written before it existed still load, and a
//! deserialized set is sorted and deduplicated whatever the input's order.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Sorted, duplicate-free names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameSet(Vec<String>);

impl NameSet {
    pub fn new() -> Self {
        NameSet(Vec::new())
    }

    /// Add `name`; false if it was already there.
    pub fn insert(&mut self, name: &str) -> bool {
        match self.0.binary_search_by(|n| n.as_str().cmp(name)) {
            Ok(_) => false,
            Err(at) => {
                self.0.reserve_exact(1);
                self.0.insert(at, name.to_string());
                true
            }
        }
    }

    /// Remove `name`; false if it was not there.
    pub fn remove(&mut self, name: &str) -> bool {
        match self.0.binary_search_by(|n| n.as_str().cmp(name)) {
            Ok(at) => {
                self.0.remove(at);
                if self.0.is_empty() {
                    self.0 = Vec::new();
                }
                true
            }
            Err(_) => false,
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.binary_search_by(|n| n.as_str().cmp(name)).is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names in order.
    pub fn iter(&self) -> std::slice::Iter<'_, String> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a NameSet {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<S: AsRef<str>> FromIterator<S> for NameSet {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut v: Vec<String> = iter.into_iter().map(|s| s.as_ref().to_string()).collect();
        v.sort_unstable();
        v.dedup();
        v.shrink_to_fit();
        NameSet(v)
    }
}

impl Serialize for NameSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(&self.0)
    }
}

impl<'de> Deserialize<'de> for NameSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        Ok(names.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn behaves_as_an_ordered_set() {
        let mut s = NameSet::new();
        assert!(s.insert("b"));
        assert!(s.insert("a"));
        assert!(!s.insert("b"), "a second insert is refused");
        assert!(s.contains("a") && s.contains("b") && !s.contains("c"));
        assert_eq!(s.iter().map(String::as_str).collect::<Vec<_>>(), ["a", "b"]);
        assert!(s.remove("a"));
        assert!(!s.remove("a"), "a second remove finds nothing");
        assert_eq!(s.len(), 1);
        assert!(s.remove("b"));
        assert!(s.is_empty());
    }

    #[test]
    fn one_name_costs_one_slot() {
        let mut s = NameSet::new();
        s.insert("lock");
        assert_eq!(s.0.capacity(), 1);
        s.remove("lock");
        assert_eq!(s.0.capacity(), 0, "an emptied set gives its slot back");
    }

    #[test]
    fn serializes_as_a_btreeset_and_reads_one_back() {
        let names = ["z", "a", "m", "a"];
        let tree: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
        let set: NameSet = names.iter().collect();
        let from_tree = postcard::to_allocvec(&tree).expect("encodes");
        assert_eq!(postcard::to_allocvec(&set).expect("encodes"), from_tree, "same bytes as a BTreeSet");
        let back: NameSet = postcard::from_bytes(&from_tree).expect("decodes");
        assert_eq!(back, set);
        // Out of order and duplicated on the wire: still a set.
        let messy = postcard::to_allocvec(&vec!["b", "a", "b"]).expect("encodes");
        let back: NameSet = postcard::from_bytes(&messy).expect("decodes");
        assert_eq!(back.iter().map(String::as_str).collect::<Vec<_>>(), ["a", "b"]);
    }
}
