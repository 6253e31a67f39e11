//! Knossos's multi-register: transactions of reads and writes over several
//! registers, applied atomically.

use super::NilRead;
use crate::checker::{Model, Steps};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;

/// Registers named by `K`. Transactions may span registers, so this model
/// is not partitioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiRegister<K, V> {
    /// Initial values; a register not listed starts absent.
    pub init: BTreeMap<K, V>,
    pub nil_read: NilRead,
}

/// One step of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Micro<K, V> {
    Read(K),
    Write(K, V),
}

/// The output is one entry per micro-operation: the value read for a read
/// (`None` = nil), ignored for a write.
impl<K, V> Model for MultiRegister<K, V>
where
    K: Ord + Clone + Hash + Debug + Send + Sync,
    V: Clone + Eq + Hash + Debug + Send + Sync,
{
    type State = BTreeMap<K, V>;
    type Input = Vec<Micro<K, V>>;
    type Output = Vec<Option<V>>;

    fn init(&self) -> BTreeMap<K, V> {
        self.init.clone()
    }

    fn read_only(&self, txn: &Vec<Micro<K, V>>) -> bool {
        txn.iter().all(|m| matches!(m, Micro::Read(_)))
    }

    fn step(
        &self,
        state: &BTreeMap<K, V>,
        txn: &Vec<Micro<K, V>>,
        output: Option<&Vec<Option<V>>>,
    ) -> Steps<Self::State> {
        let mut next: Option<BTreeMap<K, V>> = None;
        for (i, m) in txn.iter().enumerate() {
            let cur = next.as_ref().unwrap_or(state);
            match m {
                Micro::Read(k) => {
                    let Some(out) = output else { continue };
                    let Some(seen) = out.get(i) else { return Steps::None };
                    if !self.nil_read.matches(cur.get(k), seen.as_ref()) {
                        return Steps::None;
                    }
                }
                Micro::Write(k, v) => {
                    next.get_or_insert_with(|| state.clone()).insert(k.clone(), v.clone());
                }
            }
        }
        Steps::One(next.unwrap_or_else(|| state.clone()))
    }
}
