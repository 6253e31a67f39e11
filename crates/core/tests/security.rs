//! The lock table's part in protecting the service (issue 9): signing-key
//! rotation, lease ownership between authenticated identities, and leases
//! per owner.

use fenced_core::machine::command::{Command, Origin, Request};
use fenced_core::machine::limits::Limits;
use fenced_core::machine::table::LockTable;
use fenced_core::machine::token::{self, key_id};
use fenced_core::{ClientId, LeaseId, Response, SmError};

struct T {
    table: LockTable,
    index: u64,
    request: u64,
}

impl T {
    fn new(limits: Limits) -> T {
        T { table: LockTable::new(limits), index: 0, request: 0 }
    }

    fn apply(&mut self, client: Option<&str>, cmd: Command) -> Response {
        self.index += 1;
        self.request += 1;
        let origin = client.map(|c| Origin { client: ClientId(c.into()), request_id: self.request });
        self.table.apply(self.index, &Request { origin, at_ms: 0, cmd }).response
    }

    fn lease(&mut self, client: &str) -> LeaseId {
        match self.apply(Some(client), Command::LeaseGrant { ttl_ms: 10_000 }) {
            Response::LeaseGranted { lease, .. } => lease,
            r => panic!("lease grant: {r:?}"),
        }
    }

    fn acquire(&mut self, client: &str, lock: &str, lease: LeaseId) -> Response {
        self.apply(Some(client), Command::Acquire { lock: lock.into(), lease, wait: false, value: String::new() })
    }
}

/// The signed token of a grant, as the answering replica signs it.
fn signed(t: &T, r: &Response) -> String {
    match r {
        Response::Granted(g) => t.table.sign(g).expect("signs").signed,
        r => panic!("expected a grant: {r:?}"),
    }
}

fn signer(t: &T, r: &Response) -> u32 {
    token::decode(&signed(t, r)).expect("decodes").0.key_id
}

#[test]
fn rotation_signs_with_the_new_key_and_publishes_both_until_retired() {
    let mut t = T::new(Limits::default());
    t.apply(None, Command::SetSigningKey { secret: [1; 32] });
    let l = t.lease("c");
    let first = t.acquire("c", "a", l);
    let keys = t.table.public_keys();
    assert_eq!(signer(&t, &first), key_id(&keys[0]));

    t.apply(None, Command::RotateSigningKey { secret: [2; 32] });
    let keys = t.table.public_keys();
    assert_eq!(keys.len(), 2, "old and new key published during the overlap");
    let second = t.acquire("c", "b", l);
    assert_eq!(signer(&t, &second), key_id(&keys[1]), "the newest key signs");
    assert_eq!(signer(&t, &first), key_id(&keys[0]), "grants made before still sign with their key");
    // Both tokens verify against the published set.
    for r in [&first, &second] {
        token::verify(&keys, &signed(&t, r)).expect("verifies during the overlap");
    }
    // One rotation at a time; installing-if-absent never rotates.
    let r = t.apply(None, Command::RotateSigningKey { secret: [3; 32] });
    assert!(matches!(r, Response::Err(SmError::Invalid(_))), "{r:?}");
    t.apply(None, Command::SetSigningKey { secret: [9; 32] });
    assert_eq!(t.table.public_keys(), keys);
    // Retiring waits until no lock is held under the old key.
    let r = t.apply(None, Command::RetireSigningKeys);
    assert!(matches!(r, Response::Err(SmError::Invalid(_))), "{r:?}");
    assert_eq!(t.table.public_keys(), keys, "refused: nothing changed");
    let old_token = signed(&t, &first);
    let Response::Granted(g) = &first else { unreachable!() };
    t.apply(Some("c"), Command::Release { lock: "a".into(), lease: l, token: g.token });
    assert_eq!(t.apply(None, Command::RetireSigningKeys), Response::Done);
    let after = t.table.public_keys();
    assert_eq!(after, vec![keys[1]]);
    assert!(matches!(token::verify(&after, &old_token), Err(token::TokenError::UnknownKey(_))), "retired key refused");
    // The next rotation may start.
    assert_eq!(t.apply(None, Command::RotateSigningKey { secret: [3; 32] }), Response::Done);
}

#[test]
fn an_authenticated_identity_cannot_use_anothers_lease() {
    let mut t = T::new(Limits::default());
    t.apply(None, Command::SetSigningKey { secret: [1; 32] });
    let alice = t.lease("c1@alice");
    // Another client process of the same identity may use it.
    assert!(matches!(t.acquire("c2@alice", "x", alice), Response::Granted(_)));
    let before = t.table.lock_status("y");
    assert_eq!(t.acquire("c3@bob", "y", alice), Response::Err(SmError::NotOwner { lease: alice }));
    assert_eq!(t.table.lock_status("y"), before, "refused: no state change");
    assert_eq!(
        t.apply(Some("c3@bob"), Command::LeaseKeepAlive { lease: alice }),
        Response::Err(SmError::NotOwner { lease: alice })
    );
    assert_eq!(
        t.apply(Some("c3@bob"), Command::LeaseRevoke { lease: alice }),
        Response::Err(SmError::NotOwner { lease: alice })
    );
    assert!(t.table.lease(alice).is_some(), "bob could not revoke alice's lease");
    // Without authentication (bare client ids) leases are not owned: the CLI
    // releases in one process what it acquired in another.
    let anon = t.lease("c4");
    assert!(matches!(t.acquire("c5", "z", anon), Response::Granted(_)));
}

#[test]
fn leases_per_owner_are_bounded_and_freed_when_they_end() {
    let mut t = T::new(Limits { leases_per_owner_max: 2, ..Limits::default() });
    let a = t.lease("c1@alice");
    t.lease("c2@alice");
    let r = t.apply(Some("c3@alice"), Command::LeaseGrant { ttl_ms: 10_000 });
    assert!(matches!(r, Response::Err(SmError::LimitExceeded(_))), "{r:?}");
    t.lease("c1@bob");
    t.apply(Some("c1@alice"), Command::LeaseRevoke { lease: a });
    t.lease("c3@alice");
}

#[test]
fn state_machine_limits_refuse_deterministically_and_change_nothing() {
    let limits = Limits {
        name_len_max: 8,
        value_len_max: 4,
        locks_per_lease_max: 2,
        waiters_per_lock_max: 1,
        ..Limits::default()
    };
    let mut t = T::new(limits);
    t.apply(None, Command::SetSigningKey { secret: [1; 32] });
    let l = t.lease("c");
    let long = "x".repeat(9);
    assert!(matches!(t.acquire("c", &long, l), Response::Err(SmError::Invalid(_))));
    let r = t.apply(Some("c"), Command::Acquire { lock: "v".into(), lease: l, wait: false, value: "12345".into() });
    assert!(matches!(r, Response::Err(SmError::Invalid(_))), "{r:?}");
    assert!(matches!(t.acquire("c", "a", l), Response::Granted(_)));
    assert!(matches!(t.acquire("c", "b", l), Response::Granted(_)));
    assert!(matches!(t.acquire("c", "c", l), Response::Err(SmError::LimitExceeded(_))), "locks per lease");
    // Waiters per lock: one may queue on "a", the next is refused.
    let w1 = t.lease("d");
    let w2 = t.lease("e");
    let q = |lease| Command::Acquire { lock: "a".into(), lease, wait: true, value: String::new() };
    assert!(matches!(t.apply(Some("d"), q(w1)), Response::Queued { .. }));
    let before = t.table.lock_status("a");
    assert!(matches!(t.apply(Some("e"), q(w2)), Response::Err(SmError::LimitExceeded(_))), "waiters per lock");
    assert_eq!(t.table.lock_status("a"), before, "refused: the queue is unchanged");
    // TTL bounds.
    let r = t.apply(Some("f"), Command::LeaseGrant { ttl_ms: 1 });
    assert!(matches!(r, Response::Err(SmError::Invalid(_))), "{r:?}");
}
