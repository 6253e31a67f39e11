//! Layer 1: a replica's configuration and the checks that refuse a bad one
//! before it can hurt. Imports nothing of the replica.

pub mod check;
