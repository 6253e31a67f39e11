//! Layer 2: what a replica keeps on disk: the Raft log and its group-commit
//! writer, the state machine with its snapshots and lease timers, the data
//! directory's identity, and backup, restore and recovery. Imports only
//! [`crate::config`].

pub mod backup;
pub mod data_dir;
pub mod log_store;
pub mod state_machine;
pub mod types;
mod wal_writer;
