//! `fenced store put` and `get`: one request to a store, its answer printed
//! as a line of text or JSON, and an exit code that says whether the store
//! refused (1) or could not be asked (2).

use super::args::{GetArgs, PutArgs};
use super::{Security, EXIT_OK, EXIT_REJECTED, EXIT_UNREACHABLE};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use fenced_io::http::HttpClient;
use fenced_store_client::wire::ObjectJson;
use fenced_store_client::{Fence, Idem, StoreClient, StoreError};
use serde_json::json;
use std::io::Write;
use std::time::Duration;

fn client(store: &str, timeout_ms: u64, security: &Security) -> anyhow::Result<StoreClient> {
    let c = StoreClient::new(HttpClient::new(security.transport.clone()), store)
        .with_timeout(Duration::from_millis(timeout_ms));
    Ok(match &security.bearer_token {
        Some(t) => c.with_bearer_token(t)?,
        None => c,
    })
}

fn exit_for(e: &StoreError) -> i32 {
    if e.is_rejection() {
        EXIT_REJECTED
    } else {
        EXIT_UNREACHABLE
    }
}

fn print_error(out: &mut (dyn Write + Send), json: bool, e: &StoreError) -> anyhow::Result<i32> {
    let line = if json {
        let mut j = json!({ "ok": false, "code": e.code(), "message": e.to_string() });
        match e {
            StoreError::StaleToken { presented, current } => {
                j["presented"] = json!(presented);
                j["current"] = json!(current);
            }
            StoreError::VersionMismatch { expected, current } => {
                j["expected"] = json!(expected);
                j["current"] = json!(current);
            }
            _ => {}
        }
        j.to_string()
    } else {
        format!("rejected ({}): {e}", e.code())
    };
    writeln!(out, "{line}")?;
    Ok(exit_for(e))
}

/// `fenced store put` with `--token` and `--signed-token`.
pub async fn put(a: PutArgs, security: &Security, out: &mut (dyn Write + Send)) -> anyhow::Result<i32> {
    // A missing half is sent as missing, so the store answers `missing_token`
    // (or, if unfenced, records the bare number).
    let fence = a.token.map(|token| Fence { token, signed: a.signed_token.clone().unwrap_or_default() });
    put_with_fence(a, fence.as_ref(), security, out).await
}

/// `put` with the proof given rather than read from `--token` and
/// `--signed-token`: `fenced store put --lock NAME` acquires the lock and
/// passes its guard's fence here, so both forms write and report alike.
pub async fn put_with_fence(
    a: PutArgs,
    fence: Option<&Fence>,
    security: &Security,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<i32> {
    let idem = a.client.zip(a.request_id).map(|(client, request_id)| Idem { client, request_id });
    let c = client(&a.store, a.timeout_ms, security)?;
    match c.write(&a.key, Some(a.value.into_bytes().into()), fence, idem.as_ref(), a.if_match).await {
        Ok(w) => {
            let line = if a.json {
                json!({ "ok": true, "key": w.ok.key, "version": w.ok.version, "token": w.ok.token, "unfenced": w.unfenced })
                    .to_string()
            } else {
                let warn = if w.unfenced { " (warning: unfenced store)" } else { "" };
                format!("ok: {} version {} token {}{warn}", w.ok.key, w.ok.version, w.ok.token)
            };
            writeln!(out, "{line}")?;
            Ok(EXIT_OK)
        }
        Err(e) => print_error(out, a.json, &e),
    }
}

/// `fenced store get`: the value's bytes, or with `--json` the object.
pub async fn get(a: GetArgs, security: &Security, out: &mut (dyn Write + Send)) -> anyhow::Result<i32> {
    let c = client(&a.store, a.timeout_ms, security)?;
    match c.get(&a.key).await {
        Ok(Some(o)) => {
            if a.json {
                let (value, encoding) = match std::str::from_utf8(&o.value) {
                    Ok(s) => (s.to_string(), "utf8"),
                    Err(_) => (B64.encode(&o.value), "base64"),
                };
                let j = ObjectJson { key: a.key, value, encoding: encoding.into(), version: o.version, token: o.token };
                writeln!(out, "{}", serde_json::to_string(&j)?)?;
            } else {
                out.write_all(&o.value)?;
                writeln!(out)?;
            }
            Ok(EXIT_OK)
        }
        Ok(None) => {
            let line = if a.json {
                json!({ "ok": false, "code": "not_found", "key": a.key }).to_string()
            } else {
                format!("not found: {}", a.key)
            };
            writeln!(out, "{line}")?;
            Ok(EXIT_REJECTED)
        }
        Err(e) => print_error(out, a.json, &e),
    }
}
