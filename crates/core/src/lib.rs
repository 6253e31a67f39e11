//! The core of fenced, in two parts that must not blur.
//!
//! - [`machine`]: the replicated state machine, what every replica must
//!   agree on. The lock table, the commands that enter the log, the
//!   responses, the signed tokens, the limits. Every replica that applies the
//!   same log produces the same state and the same responses, byte for byte:
//!   that is what lets a retried request get the original answer from any
//!   replica, and what lets the simulator replay a seed. Time enters only as
//!   values inside commands ([`machine::command::Request::at_ms`]).
//! - [`toolbox`]: local measurement, what each process judges for itself
//!   and no two replicas need agree on: the `Clock` seam, the phi-accrual
//!   detector, latency and throughput windows, rate buckets, pause and
//!   wall-jump detection. Pure too (time is passed in), but its answers
//!   depend on when and where they are asked.
//!
//! **The rule:** nothing in the machine may read a clock or a local
//! measurement, so a file under `machine/` imports nothing from `toolbox/`
//! (nor from the API bodies above both); and the toolbox does not import the
//! machine, so a measurement cannot grow a dependency on replicated state.
//! `tests/layout.rs` reads every source file's `crate::` paths and fails on
//! a path across the line.
//!
//! Above both, the JSON bodies of the HTTP API ([`api`], and [`admin`] for
//! membership, drain and peers) may use either: a status report carries
//! replicated state next to this replica's measurements.

pub mod admin;
pub mod api;
pub mod machine;
pub mod toolbox;

pub use machine::command::{Command, Mode, Request};
pub use machine::ids::{ClientId, LeaseId, Token};
pub use machine::response::{Grant, GrantKind, GrantRecord, Response, SmError};
pub use machine::table::LockTable;
