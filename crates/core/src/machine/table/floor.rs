//! The token floor: how a cluster restored from a backup, or recovered from
//! a surviving minority, keeps tokens increasing past every token the old
//! cluster could have issued.
//!
//! Tokens are log indexes. A new cluster's log starts right above the floor
//! (its snapshot's last log id is placed at index `floor`), and the floor is
//! written into the table as the highest token spent, `max_token`, and the
//! last applied index. Every later snapshot carries both, and the table's
//! existing assertions (`apply`: indexes increase; `grant` and `claim_name`:
//! a token exceeds `max_token`) refuse an entry at or below the floor. So a
//! floor is not a separate mechanism that could be forgotten: it is the same
//! invariant that makes tokens increase within one cluster. The choice of the
//! floor (the highest index known plus a bump for what nobody here knows) is
//! argued in docs/design.md, "Restore and recovery never re-issue a token".

use super::LockTable;

/// What [`LockTable::restart_above`] dropped, for the operator's report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restarted {
    /// The floor now in force: every token of the new cluster exceeds it.
    pub floor: u64,
    /// Leases ended (their holders must acquire again, above the floor).
    pub leases_ended: usize,
    /// Locks that had a holder and are now free.
    pub locks_freed: usize,
    /// Claims tied to an ended lease, removed with it.
    pub claims_dropped: usize,
}

/// A floor that cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FloorError {
    #[error(
        "token floor {floor} is not above this state's last applied index {applied} and highest token {max_token}; \
         a floor must exceed both (raise --bump)"
    )]
    NotAbove { floor: u64, applied: u64, max_token: u64 },
}

impl LockTable {
    /// The highest token this state has spent: granted, or reserved by a
    /// token floor. Every later grant exceeds it.
    pub fn highest_token(&self) -> u64 {
        self.max_token
    }

    /// Claims (name order), for listings and backups.
    pub fn claims(&self) -> impl Iterator<Item = (&String, &super::ClaimRecord)> {
        self.claims.iter()
    }

    /// Turn this state into the first state of a new cluster whose tokens
    /// all exceed `floor`.
    ///
    /// Every lease ends: the old cluster may have ended it and granted its
    /// locks again in entries that are lost, so keeping it could leave a
    /// holder whose token a fenced store already refuses (safe, but stuck).
    /// Claims tied to a lease go with it; unconditional claims stay.
    /// Remembered responses are forgotten: they are answers of the old
    /// cluster, and a retry must not be answered with a grant that is gone.
    /// The signing keys and limits stay, so resources keep verifying tokens.
    pub fn restart_above(&mut self, floor: u64) -> Result<Restarted, FloorError> {
        if floor <= self.last_applied || floor <= self.max_token {
            return Err(FloorError::NotAbove { floor, applied: self.last_applied, max_token: self.max_token });
        }
        let report = Restarted {
            floor,
            leases_ended: self.leases.len(),
            locks_freed: self.locks.values().filter(|l| l.holder.is_some()).count(),
            claims_dropped: self.claims.values().filter(|c| c.lease.is_some()).count(),
        };
        self.leases.clear();
        self.owner_leases.clear();
        self.locks.clear();
        self.pending_handoff.clear();
        self.claims.retain(|_, c| c.lease.is_none());
        self.sessions.clear();
        self.session_lru.clear();
        self.max_token = floor;
        self.last_applied = floor;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use crate::machine::command::{Command, Request};
    use crate::machine::ids::LeaseId;
    use crate::machine::limits::Limits;
    use crate::machine::response::Response;
    use crate::machine::table::{Event, LockTable};
    use crate::machine::token::secret_from_entropy;

    fn entry(cmd: Command) -> Request {
        Request { origin: None, at_ms: 7, cmd }
    }

    /// A table where lease 2 holds `a` (token 3) and lease 4 waits for it.
    fn busy() -> LockTable {
        let mut t = LockTable::new(Limits::default());
        t.apply(1, &entry(Command::SetSigningKey { secret: secret_from_entropy(&[7; 32]) }));
        t.apply(2, &entry(Command::LeaseGrant { ttl_ms: 1000 }));
        let acquire =
            |lease| Command::Acquire { lock: "a".into(), lease: LeaseId(lease), wait: true, value: "".into() };
        t.apply(3, &entry(acquire(2)));
        t.apply(4, &entry(Command::LeaseGrant { ttl_ms: 1000 }));
        t.apply(5, &entry(acquire(4)));
        t
    }

    #[test]
    fn after_a_restart_every_lock_is_free_and_the_next_token_exceeds_the_floor() {
        let mut t = busy();
        assert_eq!(t.highest_token(), 3);
        let r = t.restart_above(1_000).expect("floor above");
        assert_eq!((r.floor, r.leases_ended, r.locks_freed), (1_000, 2, 1));
        assert_eq!((t.highest_token(), t.last_applied()), (1_000, 1_000));
        assert!(t.lock_status("a").holder.is_none() && t.lock_status("a").waiters.is_empty());
        assert!(!t.public_keys().is_empty(), "resources keep verifying with the same keys");
        t.apply(1_001, &entry(Command::LeaseGrant { ttl_ms: 1000 }));
        let acquire = Command::Acquire { lock: "a".into(), lease: LeaseId(1_001), wait: false, value: "".into() };
        let applied = t.apply(1_002, &entry(acquire));
        assert!(matches!(applied.response, Response::Granted(_)), "{:?}", applied.response);
        assert!(applied.events.iter().any(|e| matches!(e, Event::Granted { token, .. } if token.0 == 1_002)));
        // The floor is state: it survives a snapshot (serde) round trip.
        let copy: LockTable = postcard::from_bytes(&postcard::to_allocvec(&t).expect("encode")).expect("decode");
        assert_eq!(copy.highest_token(), 1_002);
    }

    #[test]
    fn a_floor_at_or_below_what_was_applied_is_refused_and_changes_nothing() {
        let mut t = busy();
        let before = t.clone();
        assert!(t.restart_above(5).is_err(), "not above the last applied index");
        assert!(t.restart_above(0).is_err());
        assert_eq!(t, before);
    }

    #[test]
    #[should_panic(expected = "applied after")]
    fn an_entry_at_or_below_the_floor_is_never_applied() {
        let mut t = busy();
        t.restart_above(1_000).expect("floor above");
        // A log that did not start above the floor would re-issue token 6.
        t.apply(6, &entry(Command::LeaseGrant { ttl_ms: 1000 }));
    }
}
