//! Deterministic simulation of the real fenced code under the seed's faults.
//!
//! The replicas, the store and the clients here are the production crates,
//! unchanged; only the seams differ: an event-driven simulated network
//! ([`net`]) on a paused clock ([`time`]), in-memory disks that lose
//! unsynced writes on a crash ([`fenced_io::disk::MemDisk`], seen through
//! [`disk`]), drifting clocks ([`clock`]) and seeded randomness. A seed fixes everything: the same seed (and build) gives the
//! same history, bit for bit.
//!
//! - [`config`]: what one run is (seed, model, fault model).
//! - [`nemesis`]: the fault schedule drawn from the seed.
//! - [`workload`]: the clients and what they record.
//! - [`recorder`]: the history being written.
//! - [`membership`]: membership changes during a run (remove and re-add voters).
//! - [`disaster`]: losing the cluster mid-run and restoring or recovering it.
//! - [`run`]: one seed, end to end, judged by `fenced_check`.
//! - [`net`], [`time`], [`disk`]: the simulated network, time and disks.

pub mod clock;
pub mod config;
pub mod disaster;
pub mod disk;
pub mod membership;
pub mod nemesis;
pub mod net;
pub mod recorder;
pub mod run;
pub mod time;
pub mod workload;
