//! Bad input against a real replica over TCP: the answer is a 4xx error body,
//! never a 5xx, and corrupt peer frames are refused and counted.

use bytes::Bytes;
use fenced_io::clock::SystemClock;
use fenced_io::disk::FsDisk;
use fenced_io::http::{HttpClient, HttpResponse};
use fenced_io::transport::TcpTransport;
use fenced_replica::config::ReplicaConfig;
use fenced_replica::node::Seams;
use fenced_replica::server::{self, Running};
use hyper::{Method, Request};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

async fn single_replica(dir: &std::path::Path) -> Running {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let peers: BTreeMap<u64, String> = [(1, format!("127.0.0.1:{port}"))].into();
    let seams = Seams {
        transport: Arc::new(TcpTransport),
        disk: Arc::new(FsDisk::open(dir).expect("disk")),
        clock: Arc::new(SystemClock::new()),
        seed: 1,
        key_entropy: [7; 32],
    };
    let r = server::start(ReplicaConfig::new(1, peers[&1].clone(), peers.clone()), seams).await.expect("starts");
    let start = fenced_io::clock::now();
    while r.replica.shared.read(|t| t.public_keys().is_empty()) {
        assert!(fenced_io::clock::now().since(start) < Duration::from_secs(30), "no leader with a signing key");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r
}

async fn post(addr: &str, path: &str, content_type: &str, body: impl Into<Bytes>) -> HttpResponse {
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", content_type)
        .body(body.into())
        .expect("request");
    HttpClient::new(Arc::new(TcpTransport)).send(addr, req, Duration::from_secs(10)).await.expect("answered")
}

fn code(r: &HttpResponse) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("an error body");
    v["code"].as_str().unwrap_or_default().to_string()
}

/// Found by schemathesis: a request id reused for a different kind of request
/// got the first request's stored answer, which the handler turned into a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_reused_for_another_request_is_409_not_500() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = single_replica(dir.path()).await;
    let json = "application/json";
    let grant = post(&r.addr, "/v1/lease/grant", json, r#"{"ttl_ms":5000,"client":"c","request_id":1}"#).await;
    assert_eq!(grant.status, 200);
    let again = post(&r.addr, "/v1/lock/acquire", json, r#"{"lock":"a","lease":1,"client":"c","request_id":1}"#).await;
    assert_eq!((again.status.as_u16(), code(&again).as_str()), (409, "request_id_reused"));
    assert!(r.replica.shared.read(|t| t.lock_status("a").holder.is_none()), "nothing was acquired");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_peer_frames_are_refused_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = single_replica(dir.path()).await;
    let applied = r.replica.shared.read(|t| t.lock_status("a").holder.is_none());
    for path in ["/raft/v1/append", "/raft/v1/vote", "/raft/v1/snapshot", "/raft/v1/propose"] {
        // A frame header promising more than is there, and a bad checksum.
        for body in [&[200u8, 0, 0, 0, 1, 2, 3, 4, 5][..], &[1, 0, 0, 0, 9, 9, 9, 9, 0][..]] {
            let resp = post(&r.addr, path, "application/x-fenced-frame", Bytes::copy_from_slice(body)).await;
            assert_eq!(resp.status, 400, "{path}");
        }
    }
    assert_eq!(r.replica.metrics.peer_frames_rejected.get(), 8);
    assert_eq!(r.replica.shared.read(|t| t.lock_status("a").holder.is_none()), applied);
    r.stop().await;
}

/// A lock may not take the name of a semaphore slot's lock (`pool#0`): in a
/// fenced store it would write that slot's keys. Refused before proposing,
/// with the reason; other names with `#` are fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_named_like_a_semaphore_slot_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = single_replica(dir.path()).await;
    let json = "application/json";
    let grant = post(&r.addr, "/v1/lease/grant", json, r#"{"ttl_ms":5000}"#).await;
    assert_eq!(grant.status, 200);
    let lease: serde_json::Value = serde_json::from_slice(&grant.body).expect("json");
    let lease = lease["lease"].as_u64().expect("lease");
    for (path, body) in [
        ("/v1/lock/acquire", format!(r#"{{"lock":"pool#0","lease":{lease}}}"#)),
        ("/v1/lock/acquire", format!(r#"{{"lock":"pool#12","lease":{lease},"mode":"shared"}}"#)),
        ("/v1/election/campaign", format!(r#"{{"election":"e#3","lease":{lease},"value":"v"}}"#)),
    ] {
        let resp = post(&r.addr, path, json, body.clone()).await;
        assert_eq!((resp.status.as_u16(), code(&resp).as_str()), (400, "invalid_argument"), "{body}");
        let text = String::from_utf8_lossy(&resp.body);
        assert!(text.contains("slot") && text.contains("semaphore"), "{text}");
    }
    assert!(r.replica.shared.read(|t| t.lock_status("pool#0").holder.is_none()), "nothing was acquired");
    for name in ["pool#x", "a#1b", "tag#"] {
        let resp = post(&r.addr, "/v1/lock/acquire", json, format!(r#"{{"lock":"{name}","lease":{lease}}}"#)).await;
        assert_eq!(resp.status, 200, "{name}: {}", String::from_utf8_lossy(&resp.body));
    }
    r.stop().await;
}
