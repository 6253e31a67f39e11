//! A fenced replica: the lock table replicated by openraft, in layers that
//! import only downward (see docs/ARCHITECTURE.md):
//!
//! 1. [`config`]: the configuration and its start-time checks.
//! 2. [`storage`]: the Raft log and its group-commit writer, the state
//!    machine with snapshots and lease timers, the data directory, backup.
//! 3. [`peer`]: the peer RPC client, the handshake, each peer's health.
//! 4. [`vitals`]: clocks, pauses, fsync latency and the limp judgement.
//! 5. [`node`]: a running replica: propose (with forwarding), linearizable
//!    reads, drain state.
//! 6. [`duties`]: leader duties, drain, membership, probes, the timekeeper's
//!    beat, the limping hand-over; domain errors only.
//! 7. [`http`]: routes with their rights, client protection, the API, the
//!    console, admin, metrics and the peer RPC server.
//!
//! [`server`] assembles them.

/// Deliberately broken variants, for proving the checkers catch them.
#[cfg(feature = "bugs")]
pub mod bugs {
    use std::sync::atomic::AtomicBool;
    /// Let a restarted leader resume its old term without an election
    /// (openraft's default), which can reuse log ids after `kill -9`.
    pub static LEADER_RESTORE: AtomicBool = AtomicBool::new(false);
}
pub mod config;
pub mod duties;
pub mod http;
pub mod node;
pub mod peer;
pub mod server;
pub mod storage;
pub mod vitals;
