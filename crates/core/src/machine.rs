//! The replicated state machine: what every replica must agree on. Nothing
//! here reads a clock or a local measurement (see the crate's rule); a file
//! here imports only from this folder.
//!
//! - [`ids`]: lease ids, fencing tokens, names and their validation.
//! - [`command`]: what goes into the replicated log.
//! - [`response`]: what applying a command answers.
//! - [`table`]: the lock table itself (`apply`), with its token floor and the
//!   primitives (shared holds, re-entrance, semaphores).
//! - [`token`]: signed fencing tokens (Ed25519), issue and verify.
//! - [`limits`]: the bounds on every collection in the table.
//! - [`name_set`]: the small sorted sets of names a lease holds, awaits and claims.
//! - [`audit`]: a log's decisions replayed through the table, for the checkers.
//! - `bugs` (feature `bugs`): deliberately broken variants of the table, for tests.

pub mod audit;
#[cfg(feature = "bugs")]
pub mod bugs;
pub mod command;
pub mod ids;
pub mod limits;
pub mod name_set;
pub mod response;
pub mod table;
pub mod token;
