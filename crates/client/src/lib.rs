//! The fenced client: talk to a replica set, acquire locks, and know at once
//! when a lock is lost.
//!
//! - [`Client`]: endpoints with failover; every mutating request carries
//!   `(client, request_id)`, and a retry after a lost reply reuses them, so it
//!   gets the original answer (the same grant), never a second one.
//! - [`Guard`]: a held lock. It keeps its lease alive, watches the lock, and
//!   keeps a local validity deadline `t_send + ttl·(1−ρ) − margin` on the
//!   client's monotonic clock. [`Guard::lost`] resolves the moment any of
//!   these says the lock may be gone.
//!
//! The truth is what the majority decided: the guard's local view can only
//! make it give up *earlier* than the cluster, never hold on longer. Writes
//! to a resource must still carry [`Guard::token`], because a paused client
//! cannot notice anything until it runs again. [`Guard::put`] writes to a
//! fenced store with both tokens attached, and returns the store's typed
//! rejections ([`StoreError::StaleToken`], [`StoreError::BadToken`]).

mod admin;
mod client;
mod error;
mod guard;
mod resource;
mod sse;

pub use client::{Client, ClientConfig};
pub use error::ClientError;
pub use fenced_store_client::{Fence, Idem};
pub use fenced_store_client::{StoreClient, StoreError, WriteOk};
pub use guard::{AcquireOptions, Guard, LostReason, What};
