//! Sequential specifications for the objects fenced and its peers expose.
//!
//! Values are generic (`V`): callers intern large values (the `fenced-check`
//! adapter maps JSON values to small integers) so that states stay cheap to
//! clone and hash during the search.

mod kv;
mod multi;
mod mutex;
mod register;
mod store;

pub use kv::{Append, Kv, KvF, KvOp, KvRet};
pub use multi::{Micro, MultiRegister};
pub use mutex::{FencedMutex, FencedMutexState, Holder, LockF, LockOp, LockRet, Mutex};
pub use register::{Register, RegisterOp, RegisterRet};
pub use store::{FencedStore, StoreOp, StoreRet, StoreState, WriteResult};

use crate::checker::Operation;
use std::collections::BTreeMap;

/// What a read that returned nil means. Both conventions are in the wild.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NilRead {
    /// Knossos (`cas-register`, `multi-register`): nil is a read whose value
    /// is unknown, and matches any state.
    #[default]
    Unknown,
    /// Porcupine's etcd model: nil means the key is absent, which only the
    /// initial state without an initial value is.
    Absent,
}

impl NilRead {
    /// Whether a read that observed `seen` (None = nil) is consistent with
    /// the current value `current` (None = absent).
    pub fn matches<V: PartialEq>(self, current: Option<&V>, seen: Option<&V>) -> bool {
        match seen {
            None => self == NilRead::Unknown || current.is_none(),
            Some(v) => current == Some(v),
        }
    }
}

/// Groups operations by `key`, in key order so that reports are stable.
pub fn partition_by<I, O, K: Ord>(ops: &[Operation<I, O>], key: impl Fn(&I) -> K) -> Vec<Vec<usize>> {
    let mut groups: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        groups.entry(key(&op.input)).or_default().push(i);
    }
    groups.into_values().collect()
}
