//! The fenced store's HTTP API, end to end in memory: the real router and
//! engine on a `MemDisk`, fed a few fuzzer-built requests (method, path,
//! headers, body) each. Half the inputs go to an unfenced store so that
//! writes get through to the engine and its WAL. Properties: never a panic;
//! never a 5xx (the disk does not fail here); every refusal is a JSON
//! `ErrorBody`; after the requests, the store recovers from its disk to
//! the same objects.
#![no_main]

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::http::Request;
use ed25519_dalek::SigningKey;
use fenced_io::disk::{Disk, MemDisk};
use fenced_io::envelope::ErrorBody;
use fenced_store::config::StoreConfig;
use fenced_store::engine::{EngineOptions, Store};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use tower::ServiceExt;

#[derive(Arbitrary, Debug)]
struct Req {
    method: u8,
    path: String,
    headers: Vec<(u8, String)>,
    body: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    unfenced: bool,
    reqs: Vec<Req>,
}

const METHODS: [&str; 5] = ["GET", "PUT", "DELETE", "POST", "HEAD"];
const HEADERS: [&str; 6] =
    ["fenced-token", "fenced-signed-token", "fenced-client", "fenced-request-id", "if-match", "content-type"];

fuzz_target!(|input: Input| {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut config = StoreConfig::new("127.0.0.1:0", vec![SigningKey::from_bytes(&[7; 32]).verifying_key()]);
    config.unsafe_no_fencing = input.unfenced;
    config.limits.value_len_max = 1024;
    config.limits.body_len_max = 1024;
    config.compact_wal_bytes = 2048;
    let disk = Arc::new(MemDisk::new());
    let opts = EngineOptions::from_config(&config);
    let mut seen = Vec::new();
    rt.block_on(async {
        let (store, writer, _) = Store::open(disk.clone(), opts.clone()).expect("an empty store opens");
        let (_stop, rx) = tokio::sync::watch::channel(false);
        let writer = tokio::spawn(writer.run(rx));
        let router = fenced_store::router(store.clone(), config);
        for r in input.reqs.iter().take(8) {
            // An HTTP/1 server only ever hands the router an origin-form path.
            if !r.path.starts_with('/') {
                continue;
            }
            let method = METHODS[r.method as usize % METHODS.len()];
            let mut b = Request::builder().method(method).uri(&r.path);
            for (h, v) in r.headers.iter().take(8) {
                b = b.header(HEADERS[*h as usize % HEADERS.len()], v.as_str());
            }
            let Ok(req) = b.body(Body::from(r.body.clone())) else { continue };
            let resp = router.clone().oneshot(req).await.expect("infallible");
            let status = resp.status();
            assert!(!status.is_server_error(), "{status} for {r:?}");
            // A response to HEAD has no body, by HTTP's definition.
            if !status.is_success() && method != "HEAD" {
                let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
                if let Err(e) = serde_json::from_slice::<ErrorBody>(&bytes) {
                    panic!("{status} for {r:?} is not an ErrorBody ({e}): {:?}", String::from_utf8_lossy(&bytes));
                }
            }
            if let Some(key) = r.path.strip_prefix("/v1/objects/") {
                seen.push(key.to_string());
            }
        }
        drop(router);
        let before: Vec<_> = seen.iter().map(|k| (store.get(k).ok().flatten(), store.max_token(k).ok())).collect();
        drop(store);
        let _ = writer.await;
        // What the store answered is what it recovers.
        let (again, _, recovery) = Store::open(disk.clone() as Arc<dyn Disk>, opts).expect("the store reopens");
        assert_eq!(recovery.torn_bytes, 0, "a clean shutdown left a torn tail");
        let after: Vec<_> = seen.iter().map(|k| (again.get(k).ok().flatten(), again.max_token(k).ok())).collect();
        assert_eq!(before, after, "recovered state differs from what was served");
    });
});
