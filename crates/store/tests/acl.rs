//! Who may write which keys: with a policy, a write needs credentials (401)
//! and a grant on a prefix of the key (403), on top of a valid token; a
//! refused write changes nothing. Reads of a value or of a key's fence need
//! a read grant.

mod common;

use axum::http::Method;
use common::*;
use fenced_io::auth::Policy;
use std::sync::Arc;

const ALICE: &str = "alice-token-0123456789abcdef";

/// A store whose policy lets alice (by bearer token) write and read `a/`.
async fn start_with_policy(dir: &std::path::Path) -> fenced_store::RunningStore {
    let mut cfg = config(false);
    let policy: Policy = serde_json::from_value(serde_json::json!({
        "tokens": [{"token": ALICE, "identity": "alice"}],
        "acl": [{"identity": "alice", "prefix": "a/", "allow": ["write", "read"]}],
    }))
    .expect("policy");
    cfg.policy = Some(Arc::new(policy));
    start_dir(dir, cfg).await
}

#[tokio::test]
async fn writes_need_credentials_and_a_grant_on_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_with_policy(dir.path()).await;
    let bearer = format!("Bearer {ALICE}");
    let put = |key: &'static str, auth: Option<String>| {
        let addr = s.addr.clone();
        async move {
            let f = fence(key, 7);
            let mut h = vec![("fenced-token", "7".to_string()), ("fenced-signed-token", f.signed)];
            if let Some(a) = auth {
                h.push(("authorization", a));
            }
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            raw(&addr, Method::PUT, &format!("/v1/objects/{key}"), &h, b"v").await
        }
    };
    let r = put("a/x", None).await;
    assert_eq!((r.status.as_u16(), json(&r)["code"].as_str()), (401, Some("unauthenticated")));
    let r = put("a/x", Some("Bearer wrong-token-0123456789".into())).await;
    assert_eq!(r.status.as_u16(), 401);
    let r = put("b/x", Some(bearer.clone())).await;
    assert_eq!((r.status.as_u16(), json(&r)["code"].as_str()), (403, Some("forbidden")));
    assert_eq!(raw(&s.addr, Method::GET, "/v1/objects/b/x", &[("authorization", &bearer)], b"").await.status, 403);
    // A key's fence is part of the key: reading it needs the same grant.
    assert_eq!(raw(&s.addr, Method::GET, "/v1/keys/b/x/fence", &[("authorization", &bearer)], b"").await.status, 403);
    assert_eq!(raw(&s.addr, Method::GET, "/v1/keys/a/x/fence", &[], b"").await.status, 401);
    for key in ["a/x", "b/x"] {
        assert_eq!(s.store.max_token(key).expect("fence"), 0, "{key}: refused writes changed nothing");
    }
    assert_eq!(put("a/x", Some(bearer.clone())).await.status, 200);
    let r = raw(&s.addr, Method::GET, "/v1/objects/a/x", &[("authorization", &bearer)], b"").await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"v"[..]));
    let r = raw(&s.addr, Method::GET, "/v1/keys/a/x/fence", &[("authorization", &bearer)], b"").await;
    assert_eq!((r.status.as_u16(), json(&r)["max_token"].as_u64()), (200, Some(7)));
    s.stop().await;
}

#[tokio::test]
async fn the_typed_client_sends_its_bearer_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_with_policy(dir.path()).await;
    let f = fence("a/x", 3);
    let anonymous = client(&s.addr);
    match anonymous.put("a/x", "v", f.token, &f.signed, None).await {
        Err(fenced_store::StoreError::Http { status: 401, code, .. }) => assert_eq!(code, "unauthenticated"),
        other => panic!("expected 401, got {other:?}"),
    }
    let alice = client(&s.addr).with_bearer_token(ALICE).expect("token is ASCII");
    match alice.put("b/x", "v", f.token, &f.signed, None).await {
        Err(fenced_store::StoreError::Http { status: 403, code, .. }) => assert_eq!(code, "forbidden"),
        other => panic!("expected 403, got {other:?}"),
    }
    assert_eq!(alice.put("a/x", "v", f.token, &f.signed, None).await.expect("alice writes a/x").token, 3);
    assert_eq!(alice.get("a/x").await.expect("read").map(|o| o.value.to_vec()), Some(b"v".to_vec()));
    assert_eq!(alice.max_token("a/x").await.expect("fence"), 3);
    assert!(client(&s.addr).with_bearer_token("line\nbreak").is_err(), "a token that cannot be a header is refused");
    s.stop().await;
}
