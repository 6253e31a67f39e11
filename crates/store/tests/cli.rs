//! `fenced store put|get` as library calls: output and exit codes.

mod common;

use common::*;
use fenced_store::cli::{run_with, GetArgs, PutArgs, StoreCommand};

fn put(store: &str, value: &str, token: u64, signed: String) -> StoreCommand {
    StoreCommand::Put(PutArgs {
        key: "k".into(),
        value: value.into(),
        store: store.into(),
        token: Some(token),
        signed_token: Some(signed),
        client: None,
        request_id: None,
        if_match: None,
        json: true,
        timeout_ms: 2000,
    })
}

async fn run(cmd: StoreCommand) -> (i32, serde_json::Value) {
    let mut out = Vec::new();
    let code = run_with(cmd, &mut out).await.expect("runs");
    (code, serde_json::from_slice(&out).expect("one JSON line"))
}

#[tokio::test]
async fn put_and_get_report_json_and_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_dir(dir.path(), config(false)).await;
    let (code, j) = run(put(&s.addr, "v34", 34, fence("k", 34).signed)).await;
    assert_eq!((code, j["ok"].as_bool(), j["token"].as_u64()), (0, Some(true), Some(34)));
    let (code, j) = run(put(&s.addr, "v33", 33, fence("k", 33).signed)).await;
    assert_eq!(code, 1);
    assert_eq!(
        (j["code"].as_str(), j["presented"].as_u64(), j["current"].as_u64()),
        (Some("stale_token"), Some(33), Some(34))
    );
    let (code, j) = run(put(&s.addr, "v99", 99, signed_by(2, "k", 99))).await;
    assert_eq!((code, j["code"].as_str()), (1, Some("bad_token")));
    let get =
        |key: &str| StoreCommand::Get(GetArgs { key: key.into(), store: s.addr.clone(), json: true, timeout_ms: 2000 });
    let (code, j) = run(get("k")).await;
    assert_eq!((code, j["value"].as_str(), j["token"].as_u64()), (0, Some("v34"), Some(34)));
    let (code, j) = run(get("absent")).await;
    assert_eq!((code, j["code"].as_str()), (1, Some("not_found")));
    let addr = s.addr.clone();
    s.stop().await;
    let (code, j) = run(put(&addr, "v", 35, fence("k", 35).signed)).await;
    assert_eq!((code, j["code"].as_str()), (2, Some("unreachable")));
}
