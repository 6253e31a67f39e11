//! The store console's routes (`GET /v1/keys`, `GET /v1/refusals`, `/ui`)
//! over HTTP, with an auth policy: every kind of refusal is recorded with
//! its sender, and each caller sees only the keys, and the refusals of the
//! keys, it may read. Unit tests of the bounded record are in
//! `src/refusals.rs`.

mod common;

use axum::http::Method;
use common::*;
use fenced_io::auth::Policy;
use std::sync::Arc;

const ALICE: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdefgh";
const ADMIN: &str = "admin-token-0123456789abcdef";

fn bearer(t: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {t}"))
}

async fn start(dir: &std::path::Path) -> fenced_store::RunningStore {
    let mut cfg = config(false);
    // Keys under a/ share the fence of lock "a".
    cfg.guards.insert("a/", "a");
    let policy: Policy = serde_json::from_value(serde_json::json!({
        "tokens": [
            {"token": ALICE, "identity": "alice"},
            {"token": BOB, "identity": "bob"},
            {"token": ADMIN, "identity": "admin"},
        ],
        "admins": ["admin"],
        "acl": [
            {"identity": "alice", "prefix": "a/", "allow": ["write", "read"]},
            {"identity": "bob", "prefix": "b/", "allow": ["write", "read"]},
        ],
    }))
    .expect("policy");
    cfg.policy = Some(Arc::new(policy));
    start_dir(dir, cfg).await
}

/// PUT `key` as `who` (None: no credentials) with `token`, signed for
/// `lock` (or forged), and `Fenced-Client: client`; the status answered.
async fn put(addr: &str, who: Option<&str>, key: &str, lock: &str, token: u64, forge: bool) -> u16 {
    let signed = if forge { forged(lock, token) } else { fence(lock, token).signed };
    let t = token.to_string();
    let mut h = vec![
        ("fenced-token", t),
        ("fenced-signed-token", signed),
        ("fenced-client", format!("c-{key}")),
        ("fenced-request-id", token.to_string()),
    ];
    if let Some(w) = who {
        let (k, v) = bearer(w);
        h.push((k, v));
    }
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    raw(addr, Method::PUT, &format!("/v1/objects/{key}"), &h, b"v").await.status.as_u16()
}

async fn get(addr: &str, who: Option<&str>, path: &str) -> (u16, serde_json::Value) {
    let h: Vec<(&str, String)> = who.map(bearer).into_iter().collect();
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = raw(addr, Method::GET, path, &h, b"").await;
    (r.status.as_u16(), serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null))
}

fn keys(j: &serde_json::Value) -> Vec<&str> {
    j["keys"].as_array().expect("keys").iter().filter_map(|k| k["key"].as_str()).collect()
}

fn codes(list: &serde_json::Value) -> Vec<(&str, &str)> {
    list.as_array()
        .expect("a list of refusals")
        .iter()
        .map(|r| (r["code"].as_str().unwrap_or("?"), r["sender"].as_str().unwrap_or("?")))
        .collect()
}

#[tokio::test]
async fn keys_and_refusals_are_listed_with_their_senders_to_those_who_may_read_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start(dir.path()).await;
    let a = s.addr.clone();
    assert_eq!(put(&a, Some(ALICE), "a/x", "a", 5, false).await, 200);
    assert_eq!(put(&a, Some(ALICE), "a/z", "a", 6, false).await, 200, "raises lock a's fence to 6");
    assert_eq!(put(&a, Some(BOB), "b/y", "b/y", 2, false).await, 200);
    // Refused: stale (409), forged (403), no grant (403), no credentials
    // (401), and bob's own stale write on b/y.
    assert_eq!(put(&a, Some(ALICE), "a/x", "a", 3, false).await, 409);
    assert_eq!(put(&a, Some(ALICE), "a/x", "a", 9, true).await, 403);
    assert_eq!(put(&a, Some(BOB), "a/x", "a", 10, false).await, 403);
    assert_eq!(put(&a, None, "a/x", "a", 11, false).await, 401);
    assert_eq!(put(&a, Some(BOB), "b/y", "b/y", 1, false).await, 409);
    let before = s.store.get("a/x").expect("get");

    // No credentials, or unknown ones: refused like every key route.
    let (code, j) = get(&a, None, "/v1/keys").await;
    assert_eq!((code, j["code"].as_str()), (401, Some("unauthenticated")), "{j}");
    let (code, j) = get(&a, Some("not-a-known-token-0123456789"), "/v1/refusals").await;
    assert_eq!((code, j["code"].as_str()), (401, Some("bad_credentials")), "{j}");

    // Alice reads a/ only: her keys, with their fences and refusals.
    let (code, j) = get(&a, Some(ALICE), "/v1/keys").await;
    assert_eq!(code, 200, "{j}");
    assert_eq!(keys(&j), vec!["a/x", "a/z"], "only the keys alice may read: {j}");
    assert_eq!((j["total"].as_u64(), j["total_exact"].as_bool()), (Some(2), Some(true)));
    let x = &j["keys"][0];
    assert_eq!(
        (x["lock"].as_str(), x["max_token"].as_u64(), x["fence"].as_u64()),
        (Some("a"), Some(5), Some(6)),
        "{x}"
    );
    let refused = codes(&x["refused"]);
    assert_eq!(refused.len(), 4, "{x}");
    assert_eq!(
        &refused[1..],
        &[("forbidden", "bob"), ("bad_token", "alice"), ("stale_token", "alice")],
        "newest first, with the authenticated sender"
    );
    assert_eq!(refused[0].0, "unauthenticated");
    assert!(refused[0].1.starts_with("127.0.0.1:"), "an unauthenticated sender is its peer address: {x}");
    assert_eq!(x["refused"][0]["authenticated"].as_bool(), Some(false));
    let stale = &x["refused"][3];
    assert_eq!(
        (stale["status"].as_u64(), stale["presented"].as_u64(), stale["current"].as_u64()),
        (Some(409), Some(3), Some(6)),
        "{stale}"
    );
    assert_eq!(
        (stale["op"].as_str(), stale["client"].as_str(), stale["authenticated"].as_bool()),
        (Some("put"), Some("c-a/x"), Some(true))
    );
    assert!(stale.get("seq").is_none(), "the record's sequence is not served: {stale}");
    assert_eq!(x["refused"][2]["presented"].as_u64(), Some(9), "the forged write's token is shown");
    let (_, r) = get(&a, Some(ALICE), "/v1/refusals").await;
    assert_eq!(r["refusals"].as_array().map(Vec::len), Some(4), "none of bob's b/y: {r}");
    assert_eq!(r["kept"].as_u64(), Some(fenced_store::refusals::RECENT_MAX as u64));

    // Bob reads b/ only: a/x and its refusals (his own 403 included) are not his to see.
    let (_, j) = get(&a, Some(BOB), "/v1/keys").await;
    assert_eq!(keys(&j), vec!["b/y"], "{j}");
    assert_eq!(codes(&j["keys"][0]["refused"]), vec![("stale_token", "bob")]);
    let (_, r) = get(&a, Some(BOB), "/v1/refusals").await;
    assert_eq!(codes(&r["refusals"]), vec![("stale_token", "bob")], "{r}");
    let (_, j) = get(&a, Some(BOB), "/v1/keys?prefix=a/").await;
    assert_eq!((keys(&j).len(), j["total"].as_u64()), (0, Some(0)), "not even counted: {j}");

    // The administrator reads everything; the feed is newest first.
    let (_, r) = get(&a, Some(ADMIN), "/v1/refusals?limit=2").await;
    let newest = codes(&r["refusals"]);
    assert_eq!((newest.len(), newest[0], newest[1].0), (2, ("stale_token", "bob"), "unauthenticated"), "{r}");
    let (_, r) = get(&a, Some(ADMIN), "/v1/refusals?prefix=b/").await;
    assert_eq!(r["refusals"].as_array().map(Vec::len), Some(1));

    // Pages in name order, with a cursor.
    let (_, p1) = get(&a, Some(ADMIN), "/v1/keys?limit=2").await;
    assert_eq!((keys(&p1), p1["next"].as_str()), (vec!["a/x", "a/z"], Some("a/z")));
    let (_, p2) = get(&a, Some(ADMIN), "/v1/keys?limit=2&after=a/z").await;
    assert_eq!((keys(&p2), p2["next"].as_str()), (vec!["b/y"], None));

    // Bad queries: a JSON 400 that says what to do.
    for path in ["/v1/keys?limit=0", "/v1/keys?limit=1001", "/v1/keys?bogus=1", "/v1/refusals?limit=1001"] {
        let (code, j) = get(&a, Some(ADMIN), path).await;
        assert_eq!((code, j["code"].as_str()), (400, Some("bad_request")), "{path}: {j}");
    }
    assert_eq!(s.store.get("a/x").expect("get"), before, "listing changed nothing");
    s.stop().await;
}

#[tokio::test]
async fn the_console_page_is_served_with_a_strict_policy_and_no_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start(dir.path()).await;
    for (path, kind) in [
        ("/ui", "text/html"),
        ("/ui/common.js", "text/javascript"),
        ("/ui/store.js", "text/javascript"),
        ("/ui/console.css", "text/css"),
    ] {
        let r = raw(&s.addr, Method::GET, path, &[], b"").await;
        assert_eq!(r.status.as_u16(), 200, "{path} needs no credentials");
        let h = |n: &str| r.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(h("content-type").starts_with(kind), "{path}: {}", h("content-type"));
        assert_eq!(h("content-security-policy"), fenced_io::ui::CSP, "{path}");
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains("innerHTML") && !body.contains("insertAdjacentHTML"), "{path} never writes HTML");
    }
    s.stop().await;
}
