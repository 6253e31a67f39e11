//! The pure core of fenced: the lock table as a deterministic state machine.
//!
//! Nothing here does I/O or reads a clock. Time enters only as values inside
//! commands ([`command::Request::at_ms`]), and every replica that applies the same
//! log produces the same state and the same responses, byte for byte. That is
//! what lets a retried request get the original answer from any replica, and
//! what lets the simulator replay a seed.
//!
//! - [`ids`]: lease ids, fencing tokens, names and their validation.
//! - [`command`]: what goes into the replicated log.
//! - [`response`]: what applying a command answers.
//! - [`table`]: the lock table itself (`apply`).
//! - [`token`]: signed fencing tokens (Ed25519), issue and verify.
//! - [`clock`]: the monotonic `Clock` seam, used by the replica and client.
//! - [`limits`]: the bounds on every collection in the table.
//! - [`name_set`]: the small sorted sets of names a lease holds, awaits and claims.
//! - [`phi`]: the phi-accrual failure detector (pure; time is passed in).
//! - [`admin`]: JSON bodies of the maintenance API (membership, drain, peers).
//! - [`rate`]: per-client token buckets for request rate limits (pure).
//! - [`latency`]: bounded windows of latency samples and their percentiles.
//! - [`clockwatch`]: pause (lateness) and wall-clock jump detection from clock readings.

pub mod admin;
pub mod api;
pub mod audit;
#[cfg(feature = "bugs")]
pub mod bugs;
pub mod clock;
pub mod clockwatch;
pub mod command;
pub mod ids;
pub mod latency;
pub mod limits;
pub mod name_set;
pub mod phi;
pub mod rate;
pub mod response;
pub mod table;
pub mod throughput;
pub mod token;

pub use command::{Command, Mode, Request};
pub use ids::{ClientId, LeaseId, Token};
pub use response::{Grant, GrantKind, GrantRecord, Response, SmError};
pub use table::LockTable;
