//! The HTTP API in-process: every rejection leaves the store unchanged.

mod common;

use axum::http::Method;
use common::*;
use fenced_store::{StoreConfig, StoreError};
use fenced_store_client::{Fence, Idem};

async fn value(c: &fenced_store::StoreClient, key: &str) -> Option<(Vec<u8>, u64, u64)> {
    c.get(key).await.expect("get").map(|o| (o.value.to_vec(), o.version, o.token))
}

#[tokio::test]
async fn stale_write_is_409_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_dir(dir.path(), config(false)).await;
    let c = client(&s.addr);
    let f34 = fence("k", 34);
    c.put("k", "new", 34, &f34.signed, None).await.expect("34 writes");
    let f33 = fence("k", 33);
    match c.put("k", "old", 33, &f33.signed, None).await {
        Err(StoreError::StaleToken { presented: 33, current: 34 }) => {}
        other => panic!("expected stale, got {other:?}"),
    }
    let r = raw(
        &s.addr,
        Method::PUT,
        "/v1/objects/k",
        &[("fenced-token", "33"), ("fenced-signed-token", &f33.signed)],
        b"x",
    )
    .await;
    assert_eq!(r.status, 409);
    let j = json(&r);
    assert_eq!(
        (j["code"].as_str(), j["presented"].as_u64(), j["current"].as_u64()),
        (Some("stale_token"), Some(33), Some(34))
    );
    assert_eq!(value(&c, "k").await, Some((b"new".to_vec(), 1, 34)));
    assert_eq!(c.max_token("k").await.expect("fence"), 34);
    s.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_403_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_dir(dir.path(), config(false)).await;
    let c = client(&s.addr);
    c.put("k", "v1", 5, &fence("k", 5).signed, None).await.expect("first write");
    let cases: Vec<(&str, String, String)> = vec![
        ("forged signature", "50".into(), forged("k", 50)),
        ("signed for another lock", "50".into(), signed_by(1, "other", 50)),
        ("other cluster's key", "50".into(), signed_by(2, "k", 50)),
        ("number differs from signed token", "50".into(), signed_by(1, "k", 49)),
        ("garbage", "50".into(), "fenced1.garbage".into()),
    ];
    for (what, token, signed) in cases {
        let h = [("fenced-token", token.as_str()), ("fenced-signed-token", signed.as_str())];
        for method in [Method::PUT, Method::DELETE] {
            let r = raw(&s.addr, method.clone(), "/v1/objects/k", &h, b"evil").await;
            assert_eq!(r.status, 403, "{what} {method}");
            assert_eq!(json(&r)["code"], "bad_token", "{what}");
        }
        assert_eq!(value(&c, "k").await, Some((b"v1".to_vec(), 1, 5)), "{what}");
        assert_eq!(c.max_token("k").await.expect("fence"), 5, "{what}");
    }
    // The typed client maps 403.
    let e = c.put("k", "evil", 50, &signed_by(2, "k", 50), None).await.expect_err("refused");
    assert!(matches!(e, StoreError::BadToken { .. }), "{e:?}");
    s.stop().await;
}

#[tokio::test]
async fn missing_tokens_are_400() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_dir(dir.path(), config(false)).await;
    let signed = fence("k", 5).signed;
    for h in [vec![], vec![("fenced-token", "5")], vec![("fenced-signed-token", signed.as_str())]] {
        let r = raw(&s.addr, Method::PUT, "/v1/objects/k", &h, b"v").await;
        assert_eq!(r.status, 400);
        assert_eq!(json(&r)["code"], "missing_token");
    }
    let r =
        raw(&s.addr, Method::PUT, "/v1/objects/k", &[("fenced-token", "x"), ("fenced-signed-token", &signed)], b"v")
            .await;
    assert_eq!(r.status, 400);
    let e = client(&s.addr).write("k", Some("v".into()), None, None, None).await.expect_err("refused");
    assert!(matches!(e, StoreError::MissingToken { .. }), "{e:?}");
    assert_eq!(client(&s.addr).get("k").await.expect("get"), None);
    s.stop().await;
}

#[tokio::test]
async fn retried_write_returns_first_result_and_applies_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_dir(dir.path(), config(false)).await;
    let c = client(&s.addr);
    let f = fence("k", 7);
    let idem = Idem { client: "c1".into(), request_id: 1 };
    let first = c.put("k", "a", 7, &f.signed, Some(&idem)).await.expect("first");
    let again = c.put("k", "a", 7, &f.signed, Some(&idem)).await.expect("retry");
    assert_eq!(first, again);
    assert_eq!(value(&c, "k").await, Some((b"a".to_vec(), 1, 7)), "applied once");
    // A new request id from the same client is a new write.
    let second = c.put("k", "b", 7, &f.signed, Some(&Idem { client: "c1".into(), request_id: 2 })).await.expect("2");
    assert_eq!(second.version, 2);
    // The remembered result survives a restart.
    s.stop().await;
    let s = start_dir(dir.path(), config(false)).await;
    let c = client(&s.addr);
    assert_eq!(c.put("k", "a", 7, &f.signed, Some(&idem)).await.expect("retry after restart"), first);
    assert_eq!(value(&c, "k").await, Some((b"b".to_vec(), 2, 7)));
    // A rejected first attempt is remembered too.
    let stale = fence("k", 6);
    let idem3 = Idem { client: "c1".into(), request_id: 3 };
    assert!(matches!(c.put("k", "z", 6, &stale.signed, Some(&idem3)).await, Err(StoreError::StaleToken { .. })));
    assert!(matches!(c.put("k", "z", 6, &stale.signed, Some(&idem3)).await, Err(StoreError::StaleToken { .. })));
    s.stop().await;
}

#[tokio::test]
async fn compare_and_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_dir(dir.path(), config(false)).await;
    let c = client(&s.addr);
    let f = fence("k", 3);
    assert_eq!(c.put_if("k", "a", &f, None, 0).await.expect("create if absent").version, 1);
    match c.put_if("k", "b", &f, None, 0).await {
        Err(StoreError::VersionMismatch { expected: 0, current: 1 }) => {}
        other => panic!("{other:?}"),
    }
    let r = raw(
        &s.addr,
        Method::PUT,
        "/v1/objects/k",
        &[("fenced-token", "3"), ("fenced-signed-token", &f.signed), ("if-match", "7")],
        b"b",
    )
    .await;
    assert_eq!(r.status, 412);
    let j = json(&r);
    assert_eq!(
        (j["code"].as_str(), j["expected"].as_u64(), j["current"].as_u64()),
        (Some("version_mismatch"), Some(7), Some(1))
    );
    assert_eq!(c.put_if("k", "b", &f, None, 1).await.expect("matches").version, 2);
    assert_eq!(value(&c, "k").await, Some((b"b".to_vec(), 2, 3)));
    s.stop().await;
}

#[tokio::test]
async fn delete_keeps_max_token_as_tombstone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_dir(dir.path(), config(false)).await;
    let c = client(&s.addr);
    c.put("k", "a", 10, &fence("k", 10).signed, None).await.expect("put");
    let d = c.delete("k", &fence("k", 11), None).await.expect("delete");
    assert!(d.deleted);
    assert_eq!(c.get("k").await.expect("get"), None);
    assert_eq!(raw(&s.addr, Method::GET, "/v1/objects/k", &[], b"").await.status, 404);
    assert_eq!(c.max_token("k").await.expect("fence"), 11);
    assert!(matches!(c.put("k", "old", 10, &fence("k", 10).signed, None).await, Err(StoreError::StaleToken { .. })));
    s.stop().await;
    let s = start_dir(dir.path(), config(false)).await;
    assert_eq!(client(&s.addr).max_token("k").await.expect("fence"), 11, "tombstone survives restart");
    s.stop().await;
}

#[tokio::test]
async fn reads_json_binary_guards_and_key_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(false);
    cfg.guards.insert("orders/", "orders");
    cfg.cluster_keys.push(signing_key(3).verifying_key());
    let s = start_dir(dir.path(), cfg).await;
    let c = client(&s.addr);
    // A prefix-guarded key takes the guard lock's token, not its own name's.
    c.put("orders/1", "x", 4, &signed_by(1, "orders", 4), None).await.expect("guarded by orders");
    assert!(matches!(
        c.put("orders/1", "x", 5, &signed_by(1, "orders/1", 5), None).await,
        Err(StoreError::BadToken { .. })
    ));
    // The second (rotated-in) key is accepted too.
    c.put("orders/1", "y", 6, &signed_by(3, "orders", 6), None).await.expect("second key");
    let r = raw(&s.addr, Method::GET, "/v1/objects/orders/1?format=json", &[], b"").await;
    let j = json(&r);
    assert_eq!(
        (j["value"].as_str(), j["encoding"].as_str(), j["version"].as_u64(), j["token"].as_u64()),
        (Some("y"), Some("utf8"), Some(2), Some(6))
    );
    c.put("bin", vec![0xff, 0, 1], 1, &signed_by(1, "bin", 1), None).await.expect("binary");
    let j = json(&raw(&s.addr, Method::GET, "/v1/objects/bin?format=json", &[], b"").await);
    assert_eq!((j["value"].as_str(), j["encoding"].as_str()), (Some("/wAB"), Some("base64")));
    let r = raw(&s.addr, Method::GET, "/v1/objects/bin", &[], b"").await;
    assert_eq!(
        (&r.body[..], r.headers["fenced-version"].to_str().ok(), r.headers["fenced-token"].to_str().ok()),
        (&[0xff, 0, 1][..], Some("1"), Some("1"))
    );
    let j = json(&raw(&s.addr, Method::GET, "/v1/keys/orders/1/fence", &[], b"").await);
    assert_eq!((j["key"].as_str(), j["max_token"].as_u64()), (Some("orders/1"), Some(6)));
    assert!(r.headers.get("fenced-warning").is_none(), "a fenced store sets no warning");
    s.stop().await;
}

#[tokio::test]
async fn limits_are_enforced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(false);
    cfg.limits.value_len_max = 8;
    cfg.limits.body_len_max = 8;
    cfg.limits.key_len_max = 4;
    let s = start_dir(dir.path(), cfg).await;
    let f = fence("k", 1);
    let h = [("fenced-token", "1"), ("fenced-signed-token", f.signed.as_str())];
    assert_eq!(raw(&s.addr, Method::PUT, "/v1/objects/k", &h, b"123456789").await.status, 413);
    assert_eq!(raw(&s.addr, Method::PUT, "/v1/objects/kkkkk", &h, b"1").await.status, 400);
    assert_eq!(raw(&s.addr, Method::PUT, "/v1/objects/k", &h, b"12345678").await.status, 200);
    let half = [("fenced-token", "1"), ("fenced-signed-token", f.signed.as_str()), ("fenced-client", "c")];
    assert_eq!(raw(&s.addr, Method::PUT, "/v1/objects/k", &half, b"1").await.status, 400);
    s.stop().await;
}

#[tokio::test]
async fn unfenced_store_accepts_everything_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_dir(dir.path(), config(true)).await;
    let c = client(&s.addr);
    c.put("k", "new", 34, &fence("k", 34).signed, None).await.expect("34");
    let w = c
        .write("k", Some("old".into()), Some(&Fence { token: 33, signed: String::new() }), None, None)
        .await
        .expect("33");
    assert!(w.unfenced);
    let r = raw(&s.addr, Method::PUT, "/v1/objects/k", &[], b"none").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["fenced-warning"], "unfenced-store");
    let r = raw(&s.addr, Method::GET, "/v1/objects/missing", &[], b"").await;
    assert_eq!((r.status.as_u16(), r.headers["fenced-warning"].to_str().ok()), (404, Some("unfenced-store")));
    s.stop().await;
}

#[tokio::test]
async fn trust_unsigned_store_checks_numbers_without_signatures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = StoreConfig::new("127.0.0.1:0", Vec::new());
    cfg.trust_unsigned_tokens = true;
    let s = start_dir(dir.path(), cfg).await;
    let c = client(&s.addr);
    let bare = |token| Fence { token, signed: String::new() };
    c.write("k", Some("new".into()), Some(&bare(34)), None, None).await.expect("34 accepted unsigned");
    // The number still fences: an older one is refused and changes nothing.
    match c.write("k", Some("old".into()), Some(&bare(33)), None, None).await {
        Err(StoreError::StaleToken { presented: 33, current: 34 }) => {}
        other => panic!("expected stale, got {other:?}"),
    }
    assert_eq!(value(&c, "k").await, Some((b"new".to_vec(), 1, 34)));
    // A write must still say which token it holds.
    let r = raw(&s.addr, Method::PUT, "/v1/objects/k", &[], b"none").await;
    assert_eq!((r.status.as_u16(), json(&r)["code"].as_str()), (400, Some("missing_token")));
    let r = raw(&s.addr, Method::PUT, "/v1/objects/k", &[("fenced-token", "x")], b"none").await;
    assert_eq!(r.status, 400);
    assert_eq!(value(&c, "k").await, Some((b"new".to_vec(), 1, 34)));
    s.stop().await;
}

#[tokio::test]
async fn trust_unsigned_and_no_fencing_exclude_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(true);
    cfg.trust_unsigned_tokens = true;
    let seams = fenced_store::StoreSeams {
        transport: std::sync::Arc::new(fenced_io::transport::TcpTransport),
        disk: std::sync::Arc::new(fenced_io::disk::FsDisk::open(dir.path()).expect("disk")),
        clock: std::sync::Arc::new(fenced_io::clock::SystemClock::new()),
    };
    let e = fenced_store::start(cfg, seams).await.err().expect("refused");
    assert!(e.to_string().contains("exclude each other"), "{e}");
}

/// Found by the `store_http` fuzz target: unknown paths and methods were
/// answered with an empty body instead of an error body.
#[tokio::test]
async fn unknown_paths_and_methods_get_an_error_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_dir(dir.path(), config(false)).await;
    let r = raw(&s.addr, Method::GET, "/nope", &[], b"").await;
    assert_eq!((r.status.as_u16(), json(&r)["code"].as_str()), (404, Some("not_found")));
    let r = raw(&s.addr, Method::POST, "/v1/objects/k", &[], b"v").await;
    assert_eq!((r.status.as_u16(), json(&r)["code"].as_str()), (405, Some("method_not_allowed")));
    assert_eq!(client(&s.addr).get("k").await.expect("get"), None);
    s.stop().await;
}
