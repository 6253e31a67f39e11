//! Locks: a plain mutex (Knossos's), and a fenced mutex whose grants carry
//! strictly increasing tokens. Both are checked one lock at a time.

use super::partition_by;
use crate::checker::{Model, Operation, Steps};
use std::fmt::Debug;

/// An operation on the lock named `lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOp {
    pub lock: String,
    pub f: LockF,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockF {
    Acquire,
    /// Release, with the token the holder presents if the history has it.
    Release(Option<u64>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockRet {
    /// Granted; with the fencing token for [`FencedMutex`].
    Acquired(Option<u64>),
    Released,
}

/// A mutex: acquire succeeds only when free, release only when held. It does
/// not know owners (like Knossos's), so a release by a non-holder that the
/// service acknowledged is legal here; the fenced model below is stricter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mutex;

impl Model for Mutex {
    type State = bool;
    type Input = LockOp;
    type Output = LockRet;

    fn init(&self) -> bool {
        false
    }

    fn step(&self, held: &bool, input: &LockOp, output: Option<&LockRet>) -> Steps<bool> {
        match (input.f, output) {
            (LockF::Acquire, None | Some(LockRet::Acquired(_))) => Steps::when(!held, || true),
            (LockF::Release(_), None | Some(LockRet::Released)) => Steps::when(*held, || false),
            _ => Steps::None,
        }
    }

    fn partition(&self, ops: &[Operation<LockOp, LockRet>]) -> Vec<Vec<usize>> {
        partition_by(ops, |i| i.lock.clone())
    }

    fn describe_state(&self, held: &bool) -> String {
        if *held { "held" } else { "free" }.to_string()
    }
}

/// Who holds a fenced lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holder {
    /// A grant whose token the history shows.
    Known(u64),
    /// A grant with an unknown outcome that (in this linearization) happened:
    /// its token is at least `min`, otherwise unknown.
    Unknown { min: u64 },
}

/// The state of one fenced lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FencedMutexState {
    pub holder: Option<Holder>,
    /// The smallest token the next grant may carry: tokens strictly increase.
    pub floor: u64,
}

/// A mutex whose grants carry strictly increasing fencing tokens, and whose
/// release must present the holder's token (when the history records it).
/// Leases are not modelled: an expiry must appear as a release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FencedMutex;

impl Model for FencedMutex {
    type State = FencedMutexState;
    type Input = LockOp;
    type Output = LockRet;

    fn init(&self) -> FencedMutexState {
        FencedMutexState::default()
    }

    fn step(&self, s: &FencedMutexState, input: &LockOp, output: Option<&LockRet>) -> Steps<FencedMutexState> {
        match (input.f, output) {
            (LockF::Acquire, _) if s.holder.is_some() => Steps::None,
            (LockF::Acquire, Some(LockRet::Acquired(Some(t)))) => Steps::when(*t >= s.floor, || FencedMutexState {
                holder: Some(Holder::Known(*t)),
                floor: t.saturating_add(1),
            }),
            // A grant whose token is not known: it used up one at least.
            (LockF::Acquire, None | Some(LockRet::Acquired(None))) => Steps::One(FencedMutexState {
                holder: Some(Holder::Unknown { min: s.floor }),
                floor: s.floor.saturating_add(1),
            }),
            (LockF::Release(token), None | Some(LockRet::Released)) => {
                let freed = |floor| FencedMutexState { holder: None, floor };
                match (s.holder, token) {
                    (None, _) => Steps::None,
                    (Some(_), None) => Steps::One(freed(s.floor)),
                    (Some(Holder::Known(h)), Some(t)) => Steps::when(h == t, || freed(s.floor)),
                    // Now the unknown grant's token is known to be `t`.
                    (Some(Holder::Unknown { min }), Some(t)) => {
                        Steps::when(t >= min, || freed(s.floor.max(t.saturating_add(1))))
                    }
                }
            }
            _ => Steps::None,
        }
    }

    fn partition(&self, ops: &[Operation<LockOp, LockRet>]) -> Vec<Vec<usize>> {
        partition_by(ops, |i| i.lock.clone())
    }
}
