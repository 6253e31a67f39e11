//! Layer 3: talking to the other replicas: openraft's RPC over the transport
//! seam, the handshake every peer message carries, and each peer's health
//! (phi, round trips, link throughput) as this replica measures it.

pub mod handshake;
pub mod health;
pub mod network;
