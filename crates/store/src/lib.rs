//! The fenced store: a durable key/value resource that takes an active part
//! in fencing (DDIA ch. 8, Figure 8-5). It keeps, per key, the highest
//! fencing token it has accepted and rejects any write with a lower one, and
//! it accepts only tokens that the lock service signed for the lock guarding
//! that key.
//!
//! - [`config`]: [`StoreConfig`], guard mapping, limits, and the I/O seams.
//! - [`fence`]: authenticating a write's signed token.
//! - [`engine`]: values and fences, the WAL, group commit, recovery.
//! - [`api`]: the HTTP API and the console at `/ui`, its errors in the shared
//!   envelope (`fenced_io::envelope`) with the codes of [`error_codes`]; [`server`]: wiring it
//!   onto a transport; [`refusals`]: the bounded record of recent refusals
//!   the console shows.
//! - [`StoreClient`]: a typed client, re-exported from
//!   `fenced-store-client`, which holds the API's wire types too.
//! - [`keys`]: the lock service's public keys, from `--cluster-key` values.
//! - [`adapters`]: fencing for resources that know nothing of tokens
//!   (a plain directory, PostgreSQL).
//!
//! All I/O goes through `fenced_io`'s seams (disk, transport, clock), so the
//! simulator runs this same code; only the adapters and [`keys`]' key-file
//! reading touch the OS directly. The command line, `fenced store
//! serve|put|get`, lives in the `fenced` binary, so embedding the store
//! does not build clap.

/// Deliberately broken variants, for proving the checkers catch them.
#[cfg(feature = "bugs")]
pub mod bugs {
    use std::sync::atomic::AtomicBool;
    /// Accept writes with stale tokens, as if the fence check were missing.
    pub static ACCEPT_STALE: AtomicBool = AtomicBool::new(false);
    /// Fence each key by its own highest token only, ignoring the highest
    /// token of the lock that guards it (`--guard PREFIX=LOCK` per key).
    pub static FENCE_PER_KEY: AtomicBool = AtomicBool::new(false);
}
pub mod adapters;
pub mod api;
pub mod config;
mod dedup;
pub mod engine;
pub mod error_codes;
pub mod fence;
pub mod keys;
pub mod refusals;
pub mod server;

pub use api::router;
pub use config::{GuardMap, StoreConfig, StoreLimits, StoreSeams};
pub use engine::{Object, Origin, Rejection, Store, WriteOk, WriteOp, WriteRequest};
pub use fenced_store_client::{StoreClient, StoreError};
pub use server::{start, RunningStore};
