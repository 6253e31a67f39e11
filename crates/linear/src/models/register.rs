//! A single register, optionally with compare-and-set.

use super::NilRead;
use crate::checker::{Model, Steps};
use std::fmt::Debug;
use std::hash::Hash;

/// A register holding one value (`None` = absent). With `cas` false,
/// compare-and-set operations are rejected by the model, so a plain register
/// history that contains one is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register<V> {
    pub init: Option<V>,
    pub nil_read: NilRead,
    pub cas: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOp<V> {
    Read,
    Write(V),
    Cas { from: V, to: V },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterRet<V> {
    /// The value read; `None` is nil (see [`NilRead`]).
    Read(Option<V>),
    Write,
    /// Whether the swap happened. A Jepsen `fail` cas is dropped before the
    /// check; `Cas(false)` is for histories that record a refused swap as a
    /// completed operation.
    Cas(bool),
}

impl<V: Clone + Eq + Hash + Debug + Send + Sync> Model for Register<V> {
    type State = Option<V>;
    type Input = RegisterOp<V>;
    type Output = RegisterRet<V>;

    fn init(&self) -> Option<V> {
        self.init.clone()
    }

    fn read_only(&self, input: &RegisterOp<V>) -> bool {
        matches!(input, RegisterOp::Read)
    }

    fn step(&self, state: &Option<V>, input: &RegisterOp<V>, output: Option<&RegisterRet<V>>) -> Steps<Option<V>> {
        match (input, output) {
            (RegisterOp::Read, None) => Steps::One(state.clone()),
            (RegisterOp::Read, Some(RegisterRet::Read(seen))) => {
                Steps::when(self.nil_read.matches(state.as_ref(), seen.as_ref()), || state.clone())
            }
            (RegisterOp::Write(v), None | Some(RegisterRet::Write)) => Steps::One(Some(v.clone())),
            (RegisterOp::Cas { .. }, _) if !self.cas => Steps::None,
            (RegisterOp::Cas { from, to }, out) => {
                let swaps = state.as_ref() == Some(from);
                match out {
                    None => Steps::One(if swaps { Some(to.clone()) } else { state.clone() }),
                    Some(RegisterRet::Cas(true)) => Steps::when(swaps, || Some(to.clone())),
                    Some(RegisterRet::Cas(false)) => Steps::when(!swaps, || state.clone()),
                    Some(_) => Steps::None,
                }
            }
            _ => Steps::None,
        }
    }
}
