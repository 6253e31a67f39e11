//! A linearizability checker: Wing & Gong's search with Lowe's memoization,
//! plus the improvements of Porcupine (Athalye, 2017).
//!
//! A history is a list of [`Operation`]s, each with a call time, and either a
//! return time with an output or an unknown completion (Jepsen's `info`, or an
//! operation still pending when the history ended). [`check`] asks whether
//! there is a total order of the operations that respects real time (an
//! operation that returned before another was called comes first) and that a
//! sequential [`Model`] accepts.
//!
//! What it does beyond the textbook search, and why:
//! - **Memoization** of (set of linearized operations, model state): two
//!   search paths that reach the same pair have the same future, so the second
//!   is cut. Without it the search is exponential in the concurrency even for
//!   valid histories. The set is a bitset; the cache stores it trimmed of its
//!   all-ones prefix (see [`checker`]) so that an entry costs a few words, not
//!   `n / 8` bytes.
//! - **P-compositionality**: a history is linearizable iff each of its
//!   per-key sub-histories is (Herlihy & Wing's locality). A model may split
//!   the operations by key ([`Model::partition`]); partitions are checked on
//!   separate threads. This turns one search over `n` operations into many
//!   small ones.
//! - **Unknown completions** are modelled as Jepsen defines them: the operation
//!   may take effect at any point after its call, or never. The checker
//!   gives such an operation a return time of +infinity and does not require
//!   it to be linearized at all.
//! - **Budgets** ([`Options`]): a deadline and a cap on cache entries. Running
//!   out ends in [`Verdict::Unknown`], never in a guess.
//! - **Counterexamples**: on failure, the longest linearizable prefix the
//!   search found and the operation that could not be placed after it
//!   ([`Counterexample`]).
//!
//! `fail` operations (certainly did not happen) are not part of a history
//! given to this crate: the caller drops them.

pub mod budget;
pub mod checker;
pub mod models;

pub use checker::{
    check, Completion, Counterexample, Model, Operation, Options, PartitionReport, PartitionResult, Report, Steps,
    UnknownReason, Verdict,
};
pub use models::NilRead;
