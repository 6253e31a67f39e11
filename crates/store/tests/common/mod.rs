//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use axum::http::{Method, Request};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use bytes::Bytes;
use ed25519_dalek::{SigningKey, VerifyingKey};
use fenced_core::machine::token::{sign, TokenClaims};
use fenced_io::clock::SystemClock;
use fenced_io::disk::{Disk, FsDisk};
use fenced_io::http::{HttpClient, HttpResponse};
use fenced_io::transport::TcpTransport;
use fenced_store::{RunningStore, StoreClient, StoreConfig, StoreSeams};
use fenced_store_client::Fence;
use std::sync::Arc;
use std::time::Duration;

pub fn signing_key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

pub fn cluster_key() -> VerifyingKey {
    signing_key(1).verifying_key()
}

/// A token signed by key `n` for `lock`.
pub fn signed_by(n: u8, lock: &str, token: u64) -> String {
    sign(&signing_key(n), TokenClaims { key_id: 0, lock: lock.into(), token, lease: 9, issued_at_ms: 0 })
}

/// A token signed by the cluster key for `lock`.
pub fn fence(lock: &str, token: u64) -> Fence {
    Fence { token, signed: signed_by(1, lock, token) }
}

/// A token whose payload claims `token` but whose signature is for `token - 1`.
pub fn forged(lock: &str, token: u64) -> String {
    let real = signed_by(1, lock, token - 1);
    let (claims, _, sig) = fenced_core::machine::token::decode(&real).expect("decodes");
    let genuine = signed_by(1, lock, token);
    let (_, payload, _) = fenced_core::machine::token::decode(&genuine).expect("decodes");
    assert_eq!(claims.token, token - 1);
    format!("fenced1.{}.{}", B64.encode(payload), B64.encode(sig.to_bytes()))
}

pub fn config(unsafe_no_fencing: bool) -> StoreConfig {
    let mut c = StoreConfig::new("127.0.0.1:0", vec![cluster_key()]);
    c.unsafe_no_fencing = unsafe_no_fencing;
    c
}

pub async fn start_on(disk: Arc<dyn Disk>, config: StoreConfig) -> RunningStore {
    let seams = StoreSeams { transport: Arc::new(TcpTransport), disk, clock: Arc::new(SystemClock::new()) };
    fenced_store::start(config, seams).await.expect("store starts")
}

pub async fn start_dir(dir: &std::path::Path, config: StoreConfig) -> RunningStore {
    start_on(Arc::new(FsDisk::open(dir).expect("disk")), config).await
}

pub fn http() -> HttpClient {
    HttpClient::new(Arc::new(TcpTransport))
}

pub fn client(addr: &str) -> StoreClient {
    StoreClient::new(http(), addr).with_timeout(Duration::from_secs(5))
}

/// A raw request, for status codes and headers the typed client hides.
pub async fn raw(addr: &str, method: Method, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Bytes::copy_from_slice(body)).expect("request");
    http().send(addr, req, Duration::from_secs(5)).await.expect("response")
}

pub fn json(resp: &HttpResponse) -> serde_json::Value {
    serde_json::from_slice(&resp.body).expect("JSON body")
}
