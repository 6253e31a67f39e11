//! `fenced store put|get --json` against a real `fenced store serve`: what
//! each answer prints and which exit code it gives (0 ok, 1 refused, 2 not
//! asked). Tokens are signed here with a key the store is given, so no lock
//! cluster is needed.

mod support;

use ed25519_dalek::SigningKey;
use fenced_core::machine::token::{encode_public_key, sign, TokenClaims};
use std::time::Duration;
use support::{fenced, StoreProc};

const WITHIN: Duration = Duration::from_secs(30);

fn signed(by: &SigningKey, lock: &str, token: u64) -> String {
    sign(by, TokenClaims { key_id: 0, lock: lock.into(), token, lease: 9, issued_at_ms: 0 })
}

/// `fenced store put k VALUE --json` with both tokens; exit code and the
/// one JSON line printed.
fn put(store: &str, value: &str, token: u64, signed_token: &str) -> (i32, serde_json::Value) {
    let t = token.to_string();
    let args = ["store", "put", "k", value, "--store", store, "--token", &t, "--signed-token", signed_token];
    let (code, out) = fenced(&[&args[..], &["--json", "--timeout-ms", "2000"]].concat(), WITHIN);
    (code, first_line_json(&out))
}

fn get(store: &str, key: &str) -> (i32, serde_json::Value) {
    let (code, out) = fenced(&["store", "get", key, "--store", store, "--json", "--timeout-ms", "2000"], WITHIN);
    (code, first_line_json(&out))
}

/// The JSON line on stdout (on a failure the helper appends stderr after it).
fn first_line_json(out: &str) -> serde_json::Value {
    let line = out.lines().next().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("a JSON line first ({e}): {out}"))
}

#[tokio::test]
async fn put_and_get_report_json_and_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::from_bytes(&[11; 32]);
    let mut s = StoreProc::start(dir.path(), Some(&encode_public_key(&key.verifying_key()))).await;
    let addr = s.addr.clone();

    let (code, j) = put(&addr, "v34", 34, &signed(&key, "k", 34));
    assert_eq!((code, j["ok"].as_bool(), j["token"].as_u64()), (0, Some(true), Some(34)), "{j}");
    let (code, j) = put(&addr, "v33", 33, &signed(&key, "k", 33));
    assert_eq!(code, 1, "{j}");
    assert_eq!(
        (j["code"].as_str(), j["presented"].as_u64(), j["current"].as_u64()),
        (Some("stale_token"), Some(33), Some(34)),
        "{j}"
    );
    let (code, j) = put(&addr, "v99", 99, &signed(&SigningKey::from_bytes(&[12; 32]), "k", 99));
    assert_eq!((code, j["code"].as_str()), (1, Some("bad_token")), "{j}");

    let (code, j) = get(&addr, "k");
    assert_eq!((code, j["value"].as_str(), j["token"].as_u64()), (0, Some("v34"), Some(34)), "{j}");
    let (code, j) = get(&addr, "absent");
    assert_eq!((code, j["code"].as_str()), (1, Some("not_found")), "{j}");

    s.kill9();
    let (code, j) = put(&addr, "v", 35, &signed(&key, "k", 35));
    assert_eq!((code, j["code"].as_str()), (2, Some("unreachable")), "{j}");
}
