//! Deduplication is per identity and per request (issue 17, finding 3): a
//! request id is bound to the authenticated caller and to the write it
//! answered, and one identity's traffic cannot evict another's window.

mod common;

use axum::http::Method;
use common::*;
use fenced_io::auth::Policy;
use fenced_io::http::HttpResponse;
use std::sync::Arc;

const ALICE: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdefgh";
const CAROL: &str = "carol-token-0123456789abcdef";

fn policy_config(dir_limits: impl FnOnce(&mut fenced_store::StoreConfig)) -> fenced_store::StoreConfig {
    let mut cfg = config(false);
    let policy: Policy = serde_json::from_value(serde_json::json!({
        "tokens": [
            {"token": ALICE, "identity": "alice"},
            {"token": BOB, "identity": "bob"},
            {"token": CAROL, "identity": "carol"},
        ],
        "acl": [
            {"identity": "alice", "prefix": "svc/", "allow": ["write", "read"]},
            {"identity": "bob", "prefix": "bob/", "allow": ["write", "read"]},
            {"identity": "carol", "prefix": "carol/", "allow": ["write", "read"]},
        ],
    }))
    .expect("policy");
    cfg.policy = Some(Arc::new(policy));
    cfg.guards.insert("svc/", "svc");
    dir_limits(&mut cfg);
    cfg
}

/// PUT `key` = `value` as `who`, with `lock`'s token `t`, under `(client, id)`.
#[allow(clippy::too_many_arguments)]
async fn put(addr: &str, who: &str, key: &str, lock: &str, t: u64, client: &str, id: u64, value: &str) -> HttpResponse {
    let f = fence(lock, t);
    let (auth, ts, ids) = (format!("Bearer {who}"), t.to_string(), id.to_string());
    let h = [
        ("authorization", auth.as_str()),
        ("fenced-token", ts.as_str()),
        ("fenced-signed-token", f.signed.as_str()),
        ("fenced-client", client),
        ("fenced-request-id", ids.as_str()),
    ];
    raw(addr, Method::PUT, &format!("/v1/objects/{key}"), &h, value.as_bytes()).await
}

fn stored(s: &fenced_store::RunningStore, key: &str) -> Option<(Vec<u8>, u64)> {
    s.store.get(key).expect("get").map(|o| (o.value.to_vec(), o.version))
}

#[tokio::test]
async fn two_identities_with_the_same_client_and_request_id_both_get_their_own_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_dir(dir.path(), policy_config(|_| {})).await;
    // Finding 3, first half: bob's answer was given to alice, whose write was dropped.
    let r = put(&s.addr, BOB, "bob/x", "bob/x", 3, "c-shared", 7, "bob's").await;
    assert_eq!((r.status.as_u16(), json(&r)["key"].as_str()), (200, Some("bob/x")));
    let r = put(&s.addr, ALICE, "svc/config", "svc", 14, "c-shared", 7, "alice's").await;
    assert_eq!((r.status.as_u16(), json(&r)["key"].as_str()), (200, Some("svc/config")));
    assert_eq!(stored(&s, "bob/x"), Some((b"bob's".to_vec(), 1)));
    assert_eq!(stored(&s, "svc/config"), Some((b"alice's".to_vec(), 1)), "alice's write was applied");
    // Second half: bob read alice's key's answer by reusing her client id.
    let r = put(&s.addr, ALICE, "svc/secret-plan", "svc", 14, "c-alice", 1, "plan").await;
    assert_eq!(r.status, 200);
    let r = put(&s.addr, BOB, "bob/y", "bob/y", 1, "c-alice", 1, "mine").await;
    let j = json(&r);
    assert_eq!((r.status.as_u16(), j["key"].as_str(), j["token"].as_u64()), (200, Some("bob/y"), Some(1)));
    assert_eq!(stored(&s, "bob/y"), Some((b"mine".to_vec(), 1)));
    s.stop().await;
}

#[tokio::test]
async fn a_different_request_under_the_same_id_is_409_and_changes_nothing_also_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_dir(dir.path(), policy_config(|_| {})).await;
    let first = put(&s.addr, ALICE, "svc/a", "svc", 5, "c", 1, "one").await;
    assert_eq!(first.status, 200);
    let before = (stored(&s, "svc/a"), stored(&s, "svc/b"), s.store.fence("svc/b", "svc").expect("fence"));
    // Another key, another value, another token, a delete: each is another request.
    for (key, t, value) in [("svc/b", 5, "one"), ("svc/a", 5, "two"), ("svc/a", 6, "one")] {
        let r = put(&s.addr, ALICE, key, "svc", t, "c", 1, value).await;
        assert_eq!(
            (r.status.as_u16(), json(&r)["code"].as_str()),
            (409, Some("request_id_reused")),
            "{key} {t} {value}"
        );
    }
    let f = fence("svc", 5);
    let auth = format!("Bearer {ALICE}");
    let h = [
        ("authorization", auth.as_str()),
        ("fenced-token", "5"),
        ("fenced-signed-token", f.signed.as_str()),
        ("fenced-client", "c"),
        ("fenced-request-id", "1"),
    ];
    let r = raw(&s.addr, Method::DELETE, "/v1/objects/svc/a", &h, b"").await;
    assert_eq!((r.status.as_u16(), json(&r)["code"].as_str()), (409, Some("request_id_reused")));
    assert_eq!(
        (stored(&s, "svc/a"), stored(&s, "svc/b"), s.store.fence("svc/b", "svc").expect("fence")),
        before,
        "refused requests changed nothing"
    );
    // The same request is answered with the first answer.
    let again = put(&s.addr, ALICE, "svc/a", "svc", 5, "c", 1, "one").await;
    assert_eq!((again.status, json(&again)), (first.status, json(&first)));
    s.stop().await;
    // What the id answered is durable: the WAL, then a snapshot.
    // The second start compacts on bob's write; the third recovers from the snapshot alone.
    for (i, compact) in [u64::MAX, 1, u64::MAX].into_iter().enumerate() {
        let s = start_dir(dir.path(), policy_config(|c| c.compact_wal_bytes = compact)).await;
        let r = put(&s.addr, ALICE, "svc/a", "svc", 5, "c", 1, "two").await;
        assert_eq!((r.status.as_u16(), json(&r)["code"].as_str()), (409, Some("request_id_reused")));
        let r = put(&s.addr, ALICE, "svc/a", "svc", 5, "c", 1, "one").await;
        assert_eq!((r.status, json(&r)), (first.status, json(&first)), "retry answered after restart");
        // Another identity's same pair is its own write.
        let key = format!("bob/z{i}");
        assert_eq!(put(&s.addr, BOB, &key, &key, 1, "c", 1 + i as u64, "b").await.status, 200);
        assert_eq!(stored(&s, "svc/a"), Some((b"one".to_vec(), 1)));
        s.stop().await;
    }
}

#[tokio::test]
async fn one_identity_cannot_evict_anothers_window_and_a_full_table_refuses_new_identities() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = |c: &mut fenced_store::StoreConfig| {
        c.limits.dedup_identities_max = 2;
        c.limits.dedup_clients_max = 4;
        c.limits.dedup_per_client = 2;
    };
    let s = start_dir(dir.path(), policy_config(limits)).await;
    let first = put(&s.addr, ALICE, "svc/a", "svc", 5, "a1", 1, "once").await;
    assert_eq!(first.status, 200);
    // Bob floods the store with many clients and ids.
    for c in 0..40u64 {
        let r = put(&s.addr, BOB, "bob/x", "bob/x", 1, &format!("b{c}"), c, "flood").await;
        assert_eq!(r.status, 200);
    }
    // Alice's reply was lost; her retry is answered, not executed again.
    let retry = put(&s.addr, ALICE, "svc/a", "svc", 5, "a1", 1, "once").await;
    assert_eq!((retry.status, json(&retry)), (first.status, json(&first)));
    assert_eq!(stored(&s, "svc/a"), Some((b"once".to_vec(), 1)), "applied once");
    // A third identity finds the table full: 429, nothing changed.
    let r = put(&s.addr, CAROL, "carol/x", "carol/x", 1, "c", 1, "v").await;
    assert_eq!((r.status.as_u16(), json(&r)["code"].as_str()), (429, Some("limit_exceeded")));
    assert_eq!(stored(&s, "carol/x"), None);
    s.stop().await;
}
