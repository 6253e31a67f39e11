//! Layer 7: the HTTP face of a replica: its routes and the right each needs
//! ([`routes::ROUTES`]), client protection, the lock API, the console, the
//! admin endpoints and the peer RPC server. The only layer that knows HTTP
//! status codes and error bodies.

pub mod admin;
pub mod console;
pub mod error;
pub mod error_codes;
pub mod limits;
pub mod locks;
pub mod metrics;
pub mod peer;
pub mod ready;
pub mod routes;
pub mod watch;

use crate::http::limits::Limiter;
use crate::node::Replica;
use std::ops::Deref;
use std::sync::Arc;

/// What every handler shares: the running replica, and the state of client
/// protection (rate buckets, watch slots, the proposal bound), which only
/// this layer uses. It reads as the [`Replica`] it wraps.
pub struct HttpState {
    pub replica: Arc<Replica>,
    pub limiter: Limiter,
}

impl HttpState {
    pub fn new(replica: Arc<Replica>) -> Self {
        let limiter = Limiter::new(replica.config.protection.clone());
        HttpState { replica, limiter }
    }
}

impl Deref for HttpState {
    type Target = Replica;

    fn deref(&self) -> &Replica {
        &self.replica
    }
}
