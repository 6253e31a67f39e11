//! Bounds on everything the lock table holds.
//!
//! Every collection is bounded so that a misbehaving client cannot grow the
//! replicated state without limit. A command that would exceed a bound is
//! rejected deterministically with [`crate::machine::response::SmError::LimitExceeded`]; the
//! state is unchanged.

use serde::{Deserialize, Serialize};

/// Limits enforced inside the state machine. They are part of the replicated
/// configuration: all replicas must use the same values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest lock, claim or election name, in bytes.
    pub name_len_max: usize,
    /// Longest value attached to a lock (election proclamations), in bytes.
    pub value_len_max: usize,
    /// Shortest lease TTL, in milliseconds.
    pub ttl_ms_min: u64,
    /// Longest lease TTL, in milliseconds.
    pub ttl_ms_max: u64,
    /// Most leases alive at once.
    pub leases_max: usize,
    /// Most leases alive at once per owner: per authenticated identity, or
    /// per client id without authentication.
    pub leases_per_owner_max: usize,
    /// Most locks (held or awaited) per lease.
    pub locks_per_lease_max: usize,
    /// Most waiters queued on one lock.
    pub waiters_per_lock_max: usize,
    /// Most claims.
    pub claims_max: usize,
    /// Most claims alive at once per owner: the identity that made them
    /// (see [`crate::machine::table::owner_of`]). A claim without a lease never ends
    /// on its own, so without this bound one identity could fill
    /// `claims_max` and refuse every other identity's claims for good.
    pub claims_per_owner_max: usize,
    /// Most clients whose recent responses are remembered for deduplication.
    /// The least recently active client is forgotten first.
    pub sessions_max: usize,
    /// Responses remembered per client. A retry older than this window is
    /// answered with [`crate::machine::response::SmError::RequestTooOld`], never re-executed.
    pub responses_per_session: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            name_len_max: 512,
            value_len_max: 4096,
            ttl_ms_min: 100,
            ttl_ms_max: 24 * 3600 * 1000,
            leases_max: 1_000_000,
            leases_per_owner_max: 10_000,
            locks_per_lease_max: 10_000,
            waiters_per_lock_max: 10_000,
            claims_max: 1_000_000,
            claims_per_owner_max: 10_000,
            sessions_max: 100_000,
            responses_per_session: 64,
        }
    }
}
