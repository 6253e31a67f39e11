//! The state of shared locks, re-entrant holds and counting semaphores, and
//! how it is stored.
//!
//! It lives apart from the rest of the table so that the table's encoding is
//! unchanged where these primitives are unused: it is the table's last field,
//! omitted while it equals the default, else encoded as `(PRIMS_FORMAT,
//! Prims)`. A snapshot written before it existed
//! simply ends where the field would start; reading that end as "no
//! primitives" is the one decoding error tolerated (see [`Tail`]). A
//! snapshot with primitives carries format version [`PRIMS_FORMAT`]; a build
//! that does not know them must not read it (it would drop the primitives'
//! holders), so a cluster that uses them must not be downgraded.

use crate::machine::ids::LeaseId;
use crate::machine::response::GrantRecord;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::Waiter;

/// The encoding version of [`Prims`] inside a snapshot.
pub const PRIMS_FORMAT: u32 = 1;

/// Bounds on the primitives, enforced like [`crate::machine::limits::Limits`]: a
/// command that would exceed one is refused and changes nothing. They travel
/// with the table's state (snapshots), not with the replica's configuration:
/// every replica uses these defaults unless a test sets others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimitiveLimits {
    /// Most shared holders of one lock at once (`429 limit_exceeded`).
    pub shared_holders_max: usize,
    /// Most permits of one semaphore (`400 invalid_argument` when asked for more).
    pub permits_max: u32,
    /// Deepest re-entrant hold of one lock by one lease (`429 limit_exceeded`).
    pub hold_depth_max: u32,
    /// Most semaphores at once (`429 limit_exceeded`).
    pub semaphores_max: usize,
}

impl Default for PrimitiveLimits {
    fn default() -> Self {
        PrimitiveLimits {
            shared_holders_max: 10_000,
            permits_max: 10_000,
            hold_depth_max: 1_000,
            semaphores_max: 100_000,
        }
    }
}

/// A counting semaphore.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Sem {
    pub permits: u32,
    /// Slot -> its holder. A grant takes the lowest free slot, which is below
    /// `permits` since a grant needs fewer than `permits` holders.
    pub holders: BTreeMap<u32, GrantRecord>,
    /// FIFO. Bounded by `Limits::waiters_per_lock_max`.
    pub waiters: VecDeque<Waiter>,
}

/// Shared holders, re-entrant depths and semaphores.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prims {
    pub(super) limits: PrimitiveLimits,
    /// Lock -> its shared holders. A lock with shared holders has no
    /// exclusive holder.
    pub(super) shared: BTreeMap<String, BTreeMap<LeaseId, GrantRecord>>,
    /// `(lock, lease)` of the waiters in a lock's queue that want it shared;
    /// the others want it exclusive.
    pub(super) shared_waiters: BTreeSet<(String, LeaseId)>,
    /// `(lock, lease)` -> hold count, for counts above 1 only.
    pub(super) depth: BTreeMap<(String, LeaseId), u32>,
    pub(super) sems: BTreeMap<String, Sem>,
}

/// The table's last field: [`Prims`] with its format version, absent in
/// snapshots written before it existed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tail(pub Prims);

impl Serialize for Tail {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (PRIMS_FORMAT, &self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Tail {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tail;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the primitives' format version and state")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tail, A::Error> {
                // An older snapshot ends here: the version cannot be read.
                // Only this first read may fail; everything after it must
                // decode, or the snapshot is refused.
                let version = match seq.next_element::<u32>() {
                    Ok(Some(v)) => v,
                    Ok(None) | Err(_) => return Ok(Tail::default()),
                };
                if version != PRIMS_FORMAT {
                    return Err(de::Error::custom(format!(
                        "the snapshot's primitives have format v{version}; this build reads v{PRIMS_FORMAT}. \
                         Use the fenced that wrote it"
                    )));
                }
                let prims = seq.next_element::<Prims>()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
                Ok(Tail(prims))
            }
        }
        d.deserialize_tuple(2, V)
    }
}

impl Tail {
    /// Nothing to store: the table encodes exactly as before primitives existed.
    pub fn is_unused(&self) -> bool {
        self.0 == Prims::default()
    }
}
