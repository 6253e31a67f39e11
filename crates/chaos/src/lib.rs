//! `fenced chaos`: the real binaries under real faults.
//!
//! The simulator proves the code under simulated faults; this crate runs the
//! built `fenced serve` processes, one per Linux network namespace, and
//! injects faults with the kernel's own tools: nftables drops for partitions,
//! SIGSTOP/SIGCONT for pauses, SIGKILL for crashes, netem for a limping link
//! and libfaketime for wall-clock skew. Clients run as separate processes (so
//! that a client holding a lock can be paused too) and stream their events to
//! the driver, which writes the same history the simulator writes and judges
//! it with the same checkers.
//!
//! Module map: [`plan`] (pure address plan), [`nemesis`] (pure schedule and
//! nft rule text), [`netns`] (the commands that build and tear down the
//! namespaces), [`procs`] (processes started by pid), [`worker`] (the client
//! process's workload), [`run`] (the driver), [`cli`] (arguments).

pub mod cli;
pub mod compare;
pub mod error;
pub mod host_clock;
pub mod jumps;
pub mod metrics;
pub mod nemesis;
pub mod netns;
pub mod plan;
pub mod procs;
pub mod redlock;
pub mod resp;
pub mod run;
pub mod target;
pub mod worker;

pub use error::ChaosError;
