//! Local measurement: what each process judges for itself, and no two
//! replicas need agree on. Pure (the caller passes the time in), but the
//! answers depend on when and where they are asked, so the state machine
//! never uses them (see the crate's rule); a file here imports only from
//! this folder.
//!
//! - [`clock`]: the monotonic `Clock` seam and `WallBound`, used by the replica and client.
//! - [`phi`]: the phi-accrual failure detector.
//! - [`latency`]: bounded windows of latency samples and their percentiles.
//! - [`throughput`]: throughput over a sliding time window.
//! - [`rate`]: per-client token buckets for request rate limits.
//! - [`clockwatch`]: pause (lateness) and wall-clock jump detection from clock readings.

pub mod clock;
pub mod clockwatch;
pub mod latency;
pub mod phi;
pub mod rate;
pub mod throughput;
