//! The fenced store's client side: [`StoreClient`] and the API's wire types
//! ([`wire`]). The lock client (`fenced-client`), the simulator and the chaos
//! runner talk to the store through it; the store's server (`fenced-store`)
//! answers with the same wire types. Split from the store so that a program
//! that only writes to a store does not build its engine, its HTTP server or
//! its command line.

pub mod client;
pub mod wire;

pub use client::{Fence, Idem, StoreClient, StoreError, Written};
pub use wire::{Object, WriteOk};
