//! A key/value map with get, put and append (Porcupine's kv model), checked
//! one key at a time.

use super::{partition_by, NilRead};
use crate::checker::{Model, Operation, Steps};
use std::fmt::Debug;
use std::hash::Hash;

/// Values that `append` can extend.
pub trait Append: Sized {
    /// `base` with `suffix` appended; an absent base counts as empty.
    fn append(base: Option<&Self>, suffix: &Self) -> Self;
}

impl Append for String {
    fn append(base: Option<&Self>, suffix: &Self) -> Self {
        let mut s = base.cloned().unwrap_or_default();
        s.push_str(suffix);
        s
    }
}

impl<T: Clone> Append for Vec<T> {
    fn append(base: Option<&Self>, suffix: &Self) -> Self {
        let mut v = base.cloned().unwrap_or_default();
        v.extend_from_slice(suffix);
        v
    }
}

/// The map, as the state of one key: operations are partitioned by key
/// (P-compositionality), so the state never needs to hold more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv<V> {
    /// The value every key starts with (Porcupine's kv model uses `""`).
    pub init: Option<V>,
    pub nil_read: NilRead,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvF<V> {
    Get,
    Put(V),
    Append(V),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvOp<V> {
    pub key: String,
    pub f: KvF<V>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvRet<V> {
    Get(Option<V>),
    Done,
}

impl<V> Model for Kv<V>
where
    V: Clone + Eq + Hash + Debug + Send + Sync + Append,
{
    type State = Option<V>;
    type Input = KvOp<V>;
    type Output = KvRet<V>;

    fn init(&self) -> Option<V> {
        self.init.clone()
    }

    fn read_only(&self, input: &KvOp<V>) -> bool {
        matches!(input.f, KvF::Get)
    }

    fn step(&self, state: &Option<V>, input: &KvOp<V>, output: Option<&KvRet<V>>) -> Steps<Option<V>> {
        match (&input.f, output) {
            (KvF::Get, None) => Steps::One(state.clone()),
            (KvF::Get, Some(KvRet::Get(seen))) => {
                Steps::when(self.nil_read.matches(state.as_ref(), seen.as_ref()), || state.clone())
            }
            (KvF::Put(v), None | Some(KvRet::Done)) => Steps::One(Some(v.clone())),
            (KvF::Append(v), None | Some(KvRet::Done)) => Steps::One(Some(V::append(state.as_ref(), v))),
            _ => Steps::None,
        }
    }

    fn partition(&self, ops: &[Operation<KvOp<V>, KvRet<V>>]) -> Vec<Vec<usize>> {
        partition_by(ops, |i| i.key.clone())
    }
}
