//! `--guard PREFIX=LOCK` fences by the lock (issue 17, finding 4): a write or
//! delete of any key under the prefix is checked against the highest token
//! accepted for the lock, across restarts and compaction.

mod common;

use axum::http::Method;
use common::*;
use fenced_store::StoreError;

fn guarded(compact_wal_bytes: u64) -> fenced_store::StoreConfig {
    let mut cfg = config(false);
    cfg.guards.insert("svc/", "svc");
    cfg.compact_wal_bytes = compact_wal_bytes;
    cfg
}

async fn assert_stale_everywhere(c: &fenced_store::StoreClient, s: &fenced_store::RunningStore, what: &str) {
    let f14 = fence("svc", 14);
    for key in ["svc/config", "svc/orders-2", "svc/new"] {
        match c.put(key, "stale", 14, &f14.signed, None).await {
            Err(StoreError::StaleToken { presented: 14, current: 29 }) => {}
            other => panic!("{what}: PUT {key} with 14 after 29: {other:?}"),
        }
    }
    match c.delete("svc/secret-plan", &f14, None).await {
        Err(StoreError::StaleToken { presented: 14, current: 29 }) => {}
        other => panic!("{what}: DELETE with 14 after 29: {other:?}"),
    }
    assert_eq!(s.store.get("svc/orders-2").expect("get"), None, "{what}: no stale create");
    assert_eq!(s.store.get("svc/new").expect("get"), None, "{what}: no stale create");
    let plan = s.store.get("svc/secret-plan").expect("get").expect("{what}: no stale delete");
    assert_eq!(&plan.value[..], b"plan");
    let r = raw(&s.addr, Method::GET, "/v1/keys/svc/orders-2/fence", &[], b"").await;
    let j = json(&r);
    assert_eq!((j["max_token"].as_u64(), j["lock"].as_str()), (Some(29), Some("svc")), "{what}");
}

#[tokio::test]
async fn a_stale_holder_cannot_create_or_delete_keys_under_a_guarded_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_dir(dir.path(), guarded(u64::MAX)).await;
    let c = client(&s.addr);
    c.put("svc/secret-plan", "plan", 14, &fence("svc", 14).signed, None).await.expect("old holder writes");
    c.put("svc/config", "new", 29, &fence("svc", 29).signed, None).await.expect("new holder writes");
    assert_stale_everywhere(&c, &s, "live").await;
    // The new holder still writes anywhere under the prefix.
    c.put("svc/orders-3", "ok", 29, &fence("svc", 29).signed, None).await.expect("29 creates");
    s.stop().await;
    // Across a restart (WAL replay), then across compaction (snapshot only).
    let s = start_dir(dir.path(), guarded(u64::MAX)).await;
    assert_stale_everywhere(&client(&s.addr), &s, "after restart").await;
    s.stop().await;
    let s = start_dir(dir.path(), guarded(1)).await;
    let c = client(&s.addr);
    c.put("svc/config", "newer", 29, &fence("svc", 29).signed, None).await.expect("a write compacts");
    s.stop().await;
    assert!(dir.path().join(fenced_store::engine::SNAPSHOT).exists());
    assert_eq!(std::fs::metadata(dir.path().join(fenced_store::engine::WAL)).expect("wal").len(), 0);
    let s = start_dir(dir.path(), guarded(u64::MAX)).await;
    assert_stale_everywhere(&client(&s.addr), &s, "after compaction").await;
    s.stop().await;
}

#[tokio::test]
async fn unguarded_keys_keep_their_own_fence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_dir(dir.path(), guarded(u64::MAX)).await;
    let c = client(&s.addr);
    c.put("k1", "a", 29, &fence("k1", 29).signed, None).await.expect("k1");
    c.put("k2", "b", 14, &fence("k2", 14).signed, None).await.expect("k2 is its own lock");
    s.stop().await;
}
