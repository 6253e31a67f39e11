//! What a snapshot of the lock table weighs, measured on the real encoding
//! (the table in its checksummed frame, inside the peer's `SnapshotRequest`
//! frame), per item at the largest sizes the limits admit; and the worst
//! case the default limits allow, set against the peer message limit
//! (`PEER_BODY_MAX`). docs/ARCHITECTURE.md ("Known gap: snapshot size")
//! quotes these numbers; this test keeps them true.
//!
//! Each per-item size is a slope: the encoded size with 2N items minus that
//! with N, over N, so the frame and the table's fixed part cancel out.

use fenced_core::machine::command::{Command, Origin, Request};
use fenced_core::machine::ids::{ClientId, LeaseId};
use fenced_core::machine::limits::Limits;
use fenced_core::machine::table::LockTable;
use fenced_core::machine::token::secret_from_entropy;
use fenced_io::frame;
use fenced_replica::http::locks::PEER_BODY_MAX;

const N: u64 = 200;

fn req(cmd: Command, origin: Option<Origin>) -> Request {
    Request { origin, at_ms: 1, cmd }
}

/// A client id as long as the API admits (128 bytes) plus an identity.
fn client(i: u64) -> ClientId {
    ClientId(format!("{:0>128}@{:0>64}", i, "identity"))
}

fn encoded(t: &LockTable) -> u64 {
    frame::encode(t).expect("encode").len() as u64
}

fn table() -> (LockTable, u64) {
    let mut t = LockTable::new(Limits::default());
    t.apply(1, &req(Command::SetSigningKey { secret: secret_from_entropy(&[3; 32]) }, None));
    (t, 2)
}

fn name(prefix: &str, i: u64, limits: &Limits) -> String {
    let s = format!("{prefix}{i}-");
    format!("{s}{}", "n".repeat(limits.name_len_max - s.len()))
}

/// The slope of `fill(table, next_index, k)` for k = 0..count.
fn per_item(fill: impl Fn(&mut LockTable, &mut u64, u64)) -> u64 {
    let size = |count: u64| {
        let (mut t, mut index) = table();
        for k in 0..count {
            fill(&mut t, &mut index, k);
        }
        encoded(&t)
    };
    (size(2 * N) - size(N)) / N
}

fn next(index: &mut u64) -> u64 {
    *index += 1;
    *index - 1
}

#[test]
fn worst_case_item_sizes_and_what_the_default_limits_admit() {
    let l = Limits::default();
    let value = "v".repeat(l.value_len_max);
    // A lease, alone.
    let lease = per_item(|t, i, _| {
        t.apply(next(i), &req(Command::LeaseGrant { ttl_ms: 1000 }, None));
    });
    // A lease holding one lock with the longest name and value.
    let held = per_item(|t, i, k| {
        let id = next(i);
        t.apply(id, &req(Command::LeaseGrant { ttl_ms: 1000 }, None));
        let acquire =
            Command::Acquire { lock: name("held", k, &l), lease: LeaseId(id), wait: false, value: value.clone() };
        t.apply(next(i), &req(acquire, None));
    }) - lease;
    // A lease queued on a held lock, with the longest value.
    let waiter = per_item(|t, i, k| {
        if k == 0 {
            let id = next(i);
            t.apply(id, &req(Command::LeaseGrant { ttl_ms: 1000 }, None));
            let acquire = Command::Acquire { lock: "q".into(), lease: LeaseId(id), wait: false, value: "".into() };
            t.apply(next(i), &req(acquire, None));
        }
        let id = next(i);
        t.apply(id, &req(Command::LeaseGrant { ttl_ms: 1000 }, None));
        let acquire = Command::Acquire { lock: "q".into(), lease: LeaseId(id), wait: true, value: value.clone() };
        t.apply(next(i), &req(acquire, None));
    }) - lease;
    // A claim with the longest name, by the longest owner.
    let claim = per_item(|t, i, k| {
        let owner = client(k).0;
        let c = Command::Claim { name: name("claim", k, &l), owner, lease: None };
        t.apply(next(i), &req(c, None));
    });
    // A remembered response: a grant with the longest name and value, one
    // per client (each client also adds its session).
    let response = per_item(|t, i, k| {
        let id = next(i);
        t.apply(id, &req(Command::LeaseGrant { ttl_ms: 1000 }, None));
        let acquire =
            Command::Acquire { lock: name("resp", k, &l), lease: LeaseId(id), wait: false, value: value.clone() };
        t.apply(next(i), &req(acquire, Some(Origin { client: client(k), request_id: 1 })));
    }) - held
        - lease;

    // What the default limits admit, category by category (each bounded by
    // its own limit; together they can all be full at once).
    let gib = |b: u128| b as f64 / f64::from(1u32 << 30);
    let (leases, claims, sessions) = (l.leases_max as u128, l.claims_max as u128, l.sessions_max as u128);
    let per_lease_locks = l.locks_per_lease_max as u128;
    let claims_total = claims * u128::from(claim);
    let dedup_total = sessions * l.responses_per_session as u128 * u128::from(response);
    let leases_total = leases * u128::from(lease);
    let held_total = leases * per_lease_locks * u128::from(held);
    eprintln!(
        "encoded bytes per item: lease {lease}, held lock {held}, waiter {waiter}, claim {claim}, remembered grant {response}"
    );
    eprintln!(
        "default limits admit: claims {:.1} GiB, remembered responses {:.1} GiB, empty leases {:.2} GiB, \
         locks held {:.0} GiB; the peer message limit is {} MiB",
        gib(claims_total),
        gib(dedup_total),
        gib(leases_total),
        gib(held_total),
        PEER_BODY_MAX >> 20
    );
    // The items are as large as the limits let them be: each carries its
    // longest strings at least once.
    assert!(held >= (l.name_len_max + l.value_len_max) as u64, "held lock {held}");
    assert!(waiter >= l.value_len_max as u64, "waiter {waiter}");
    assert!(claim >= l.name_len_max as u64, "claim {claim}");
    assert!(response >= l.value_len_max as u64, "response {response}");
    // The gap this file documents: each of these alone exceeds what one peer
    // message carries, so a full table cannot be sent to a lagging replica.
    // When a state byte budget closes it, these become the budget's checks.
    for (what, total) in [("claims", claims_total), ("remembered responses", dedup_total)] {
        assert!(total > PEER_BODY_MAX as u128, "{what}: {total} bytes would fit; update docs/ARCHITECTURE.md");
    }
}
