//! The fenced store: per key, a value and the highest token it accepted.
//! A write carrying token `t` is accepted iff `t` is at least that token,
//! otherwise rejected as stale (DESIGN.md, S3). Checked one key at a time.

use super::{partition_by, NilRead};
use crate::checker::{Model, Operation, Steps};
use std::fmt::Debug;
use std::hash::Hash;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp<V> {
    Write { key: String, token: u64, value: V },
    Read { key: String },
}

impl<V> StoreOp<V> {
    pub fn key(&self) -> &str {
        match self {
            StoreOp::Write { key, .. } | StoreOp::Read { key } => key,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteResult {
    Accepted,
    /// Rejected because a higher token was accepted before.
    Stale,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreRet<V> {
    Write(WriteResult),
    /// The value read (`None` = nil) and, if the store reports it, the token
    /// of the write that stored it.
    Read {
        value: Option<V>,
        token: Option<u64>,
    },
}

/// One key of the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreState<V> {
    pub max_token: Option<u64>,
    pub value: Option<V>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedStore<V> {
    /// The value every key starts with.
    pub init: Option<V>,
    pub nil_read: NilRead,
}

impl<V> Model for FencedStore<V>
where
    V: Clone + Eq + Hash + Debug + Send + Sync,
{
    type State = StoreState<V>;
    type Input = StoreOp<V>;
    type Output = StoreRet<V>;

    fn init(&self) -> StoreState<V> {
        StoreState { max_token: None, value: self.init.clone() }
    }

    fn read_only(&self, input: &StoreOp<V>) -> bool {
        matches!(input, StoreOp::Read { .. })
    }

    fn step(&self, s: &StoreState<V>, input: &StoreOp<V>, output: Option<&StoreRet<V>>) -> Steps<StoreState<V>> {
        match (input, output) {
            (StoreOp::Write { token, value, .. }, out) => {
                let accepts = s.max_token.is_none_or(|m| *token >= m);
                let accepted = || StoreState { max_token: Some(*token), value: Some(value.clone()) };
                match out {
                    None => Steps::One(if accepts { accepted() } else { s.clone() }),
                    Some(StoreRet::Write(WriteResult::Accepted)) => Steps::when(accepts, accepted),
                    Some(StoreRet::Write(WriteResult::Stale)) => Steps::when(!accepts, || s.clone()),
                    Some(StoreRet::Read { .. }) => Steps::None,
                }
            }
            (StoreOp::Read { .. }, None) => Steps::One(s.clone()),
            (StoreOp::Read { .. }, Some(StoreRet::Read { value, token })) => {
                let value_ok = self.nil_read.matches(s.value.as_ref(), value.as_ref());
                let token_ok = token.is_none() || *token == s.max_token;
                Steps::when(value_ok && token_ok, || s.clone())
            }
            (StoreOp::Read { .. }, Some(StoreRet::Write(_))) => Steps::None,
        }
    }

    fn partition(&self, ops: &[Operation<StoreOp<V>, StoreRet<V>>]) -> Vec<Vec<usize>> {
        partition_by(ops, |i| i.key().to_string())
    }
}
