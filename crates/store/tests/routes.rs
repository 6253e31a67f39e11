//! Every store route, tried by every kind of caller (issue 17, item 1): the
//! rights come from `api::ROUTES`, the one place routes are declared, and a
//! refused request changes nothing.

mod common;

use axum::http::Method;
use common::*;
use fenced_io::auth::{Op, Policy};
use fenced_store::api::{Need, ROUTES};
use fenced_store::{WriteOp, WriteRequest};
use std::sync::Arc;

const ALICE: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdefgh";
const ADMIN: &str = "admin-token-0123456789abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Nobody,
    /// Holds read and write on `a/`, the prefix of the key tried.
    Client,
    /// Holds read and write on `b/` only.
    OtherClient,
    Admin,
}

impl Caller {
    fn header(self) -> Option<String> {
        match self {
            Caller::Nobody => None,
            Caller::Client => Some(format!("Bearer {ALICE}")),
            Caller::OtherClient => Some(format!("Bearer {BOB}")),
            Caller::Admin => Some(format!("Bearer {ADMIN}")),
        }
    }
}

async fn start(dir: &std::path::Path) -> fenced_store::RunningStore {
    let mut cfg = config(false);
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

/// The key's state, as a refused request must leave it.
fn state(s: &fenced_store::RunningStore) -> (Option<(Vec<u8>, u64, u64)>, u64) {
    let o = s.store.get("a/x").expect("get").map(|o| (o.value.to_vec(), o.version, o.token));
    (o, s.store.max_token("a/x").expect("fence"))
}

#[tokio::test]
async fn every_route_with_every_caller() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start(dir.path()).await;
    let mut token = 0u64;
    let mut seen = std::collections::BTreeSet::new();
    for route in ROUTES {
        assert!(seen.insert((route.method, route.path)), "{} {} is declared twice", route.method, route.path);
        let path = route.path.replace("{*key}", "a/x").replace("{*rest}", "a/x/fence");
        let method = Method::from_bytes(route.method.as_bytes()).expect("method");
        for caller in [Caller::Nobody, Caller::OtherClient, Caller::Client, Caller::Admin] {
            // The key exists before every attempt, so that success is 200 for every route.
            token += 1;
            let w = WriteRequest {
                key: "a/x".into(),
                lock: "a/x".into(),
                op: WriteOp::Put("v".into()),
                token,
                if_match: None,
                origin: None,
            };
            s.store.write(w).await.expect("seed the key");
            token += 1;
            let f = fence("a/x", token);
            let ts = token.to_string();
            let mut h = vec![("fenced-token", ts.clone()), ("fenced-signed-token", f.signed.clone())];
            if let Some(a) = caller.header() {
                h.push(("authorization", a));
            }
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let before = state(&s);
            let r = raw(&s.addr, method.clone(), &path, &h, b"new").await;
            let code = serde_json::from_slice::<serde_json::Value>(&r.body).ok().map(|j| j["code"].clone());
            let what = format!("{} {path} as {caller:?}: {} {code:?}", route.method, r.status);
            let expected = match (route.need, caller) {
                (Need::Nothing, _) => 200,
                (Need::Prefix(..), Caller::Nobody) => 401,
                (Need::Prefix(..), Caller::OtherClient) => 403,
                (Need::Prefix(..), Caller::Client | Caller::Admin) => 200,
                // Listings: any authenticated caller, shown what it may read
                // (tests/console_api.rs checks the filtering).
                (Need::Listed(_), Caller::Nobody) => 401,
                (Need::Listed(_), _) => 200,
            };
            assert_eq!(r.status.as_u16(), expected, "{what}");
            if expected != 200 {
                assert!(code.is_some_and(|c| c.is_string()), "{what}: a refusal has a {{code, message}} body");
                assert_eq!(state(&s), before, "{what}: a refused request changed nothing");
            } else if matches!(route.need, Need::Prefix(Op::Write, _)) {
                assert_ne!(state(&s), before, "{what}: an allowed write was applied");
            } else {
                assert_eq!(state(&s), before, "{what}: a read changed nothing");
            }
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn bad_keys_and_methods_get_json_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start(dir.path()).await;
    let auth = format!("Bearer {ALICE}");
    // A key that is not UTF-8 once percent-decoded.
    for (method, path) in [
        (Method::GET, "/v1/objects/a/%FF"),
        (Method::PUT, "/v1/objects/a/%FF%FE"),
        (Method::GET, "/v1/keys/a/%FF/fence"),
    ] {
        let r = raw(&s.addr, method.clone(), path, &[("authorization", &auth)], b"v").await;
        let j = json(&r);
        assert_eq!((r.status.as_u16(), j["code"].as_str()), (400, Some("bad_request")), "{method} {path}");
        assert!(j["message"].as_str().is_some_and(|m| m.contains("UTF-8")), "{j}");
    }
    // A method a route does not take: 405 with a body, before any credentials.
    for (method, path) in
        [(Method::POST, "/v1/health"), (Method::POST, "/v1/objects/a/x"), (Method::PUT, "/v1/keys/a/x/fence")]
    {
        let r = raw(&s.addr, method.clone(), path, &[], b"v").await;
        assert_eq!(
            (r.status.as_u16(), json(&r)["code"].as_str()),
            (405, Some("method_not_allowed")),
            "{method} {path}"
        );
    }
    assert_eq!(state(&s), (None, 0));
    s.stop().await;
}
