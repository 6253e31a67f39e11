//! Who may write which keys: with a policy, a write needs credentials (401)
//! and a grant on a prefix of the key (403), on top of a valid token; a
//! refused write changes nothing.

mod common;

use axum::http::Method;
use common::*;
use fenced_io::auth::Policy;
use std::sync::Arc;

const ALICE: &str = "alice-token-0123456789abcdef";

#[tokio::test]
async fn writes_need_credentials_and_a_grant_on_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(false);
    let policy: Policy = serde_json::from_value(serde_json::json!({
        "tokens": [{"token": ALICE, "identity": "alice"}],
        "acl": [{"identity": "alice", "prefix": "a/", "allow": ["write", "read"]}],
    }))
    .expect("policy");
    cfg.policy = Some(Arc::new(policy));
    let s = start_dir(dir.path(), cfg).await;
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
    for key in ["a/x", "b/x"] {
        assert_eq!(s.store.max_token(key).expect("fence"), 0, "{key}: refused writes changed nothing");
    }
    assert_eq!(put("a/x", Some(bearer.clone())).await.status, 200);
    let r = raw(&s.addr, Method::GET, "/v1/objects/a/x", &[("authorization", &bearer)], b"").await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"v"[..]));
    s.stop().await;
}
