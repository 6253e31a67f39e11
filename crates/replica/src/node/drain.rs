//! Whether this replica is draining, and why: one type, written only by the
//! drain duty ([`crate::duties::drain`]) and read by the node (a draining
//! replica answers a proposal at once) and the HTTP layer (it refuses new
//! sessions).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The longest a waiter goes without looking whether its replica drains.
pub const DRAIN_POLL_MAX: Duration = Duration::from_millis(250);

/// How often a waiting acquire or proposal looks whether its replica
/// started draining: once a heartbeat (a removed replica's waiters should
/// move on about as fast as a leader change is noticed), at least every
/// 250 ms.
pub fn poll(heartbeat: Duration) -> Duration {
    heartbeat.min(DRAIN_POLL_MAX)
}

/// Two reasons to drain, which end differently: an operator's drain
/// (SIGTERM, `fenced cluster drain`) never ends; a drain because the replica
/// was removed from the cluster ends when it is added back, unless an
/// operator drained it too.
#[derive(Debug, Default)]
pub struct DrainState {
    draining: AtomicBool,
    requested: AtomicBool,
}

/// What a removed replica's watcher does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRemoval {
    /// Still removed: look again later.
    Watch,
    /// The drain is an operator's now, or over: stop watching, change nothing.
    Over,
    /// Added back: the drain has ended.
    Undrained,
}

impl DrainState {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// An operator asked for a drain; it will not end by a re-add.
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    /// Start draining. True only the first time, when the caller starts the
    /// task that keeps handing leadership away.
    pub fn start(&self) -> bool {
        !self.draining.swap(true, Ordering::SeqCst)
    }

    /// One look by the watcher of a removal's drain; `readded` is asked only
    /// while the drain is still the removal's.
    pub fn after_removal(&self, readded: impl FnOnce() -> bool) -> AfterRemoval {
        if self.requested.load(Ordering::SeqCst) || !self.is_draining() {
            return AfterRemoval::Over;
        }
        if readded() {
            self.draining.store(false, Ordering::SeqCst);
            return AfterRemoval::Undrained;
        }
        AfterRemoval::Watch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_replica_stops_draining_once_added_back() {
        let d = DrainState::default();
        assert!(d.start() && d.is_draining());
        assert_eq!(d.after_removal(|| false), AfterRemoval::Watch);
        assert!(d.is_draining());
        assert_eq!(d.after_removal(|| true), AfterRemoval::Undrained);
        assert!(!d.is_draining());
        assert_eq!(d.after_removal(|| panic!("not asked once the drain is over")), AfterRemoval::Over);
    }

    #[test]
    fn an_operators_drain_never_ends_even_when_the_replica_is_added_back() {
        let d = DrainState::default();
        assert!(d.start(), "removed first");
        d.request();
        assert!(!d.start(), "the task that hands leadership off runs once");
        assert_eq!(d.after_removal(|| true), AfterRemoval::Over);
        assert!(d.is_draining());
    }

    #[test]
    fn draining_starts_once() {
        let d = DrainState::default();
        assert!(!d.is_draining());
        assert!(d.start());
        assert!(!d.start());
    }
}
