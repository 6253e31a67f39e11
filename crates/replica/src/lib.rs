//! A fenced replica: the lock table replicated by openraft.
//!
//! - [`types`]: openraft's type configuration.
//! - [`log_store`]: the Raft log on disk (checksummed WAL, fsync before ack).
//! - `wal_writer`: group commit, the one task that appends to and fsyncs the WAL.
//! - [`state_machine`]: the lock table, snapshots, and lease timers.
//! - [`network`]: replica-to-replica RPC over the transport seam.
//! - [`node`]: a running replica: propose (with forwarding), linearizable reads.
//! - [`leader`]: the leader's duties: expiry, handoff, checkpoints, signing key.
//! - [`console`]: the read-only console at `/ui`, its listings and event stream.
//! - [`api`]: the HTTP API; [`error_codes`]: every error code it can answer.
//! - [`limits`]: authentication, ACLs, per-client rate and watch limits, bounded proposals.
//! - [`server`]: wiring it all together.
//! - [`metrics`]: counters for `/metrics`.
//! - [`membership`]: add, remove, replace members while serving.
//! - [`drain`]: hand off leadership and refuse new sessions before a stop.
//! - [`handshake`]: versions, cluster identity and timing at every peer message.
//! - [`data_dir`]: the data directory's format version and owner.
//! - [`backup`]: backup through the leader, restore and recovery above a token floor.
//! - [`ready`]: the readiness probe (a leader is known).
//! - [`config_check`]: configuration refused before it can hurt.
//! - [`vitals`]: peers, clocks, pauses, fsync latency, limping, for status and `/metrics`:
//!   [`peers`] (phi-accrual per peer, probe RTT), [`timekeeper`] (lateness, pauses, wall jumps,
//!   step-down after a pause), [`limp`] (a leader far slower than its peers hands over).

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
