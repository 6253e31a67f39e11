//! Counters for `/metrics` (Prometheus text format).

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a replica counts.
#[derive(Debug, Default)]
pub struct Metrics {
    pub proposals: Counter,
    pub forwards: Counter,
    pub grants: Counter,
    pub expiries_proposed: Counter,
    pub handoffs_proposed: Counter,
    /// Times the leader's duties panicked and were restarted (`leader.rs`).
    pub leader_duty_panics: Counter,
    pub checkpoints_proposed: Counter,
    pub http_requests: Counter,
    pub http_client_errors: Counter,
    pub watches_lost_signalled: Counter,
    /// Peer messages refused because their frame did not check or decode.
    pub peer_frames_rejected: Counter,
}
