//! DDIA Figure 8-5 at the storage level: a client whose lease expired while
//! it was paused writes with its old token after a newer holder wrote.
//! The fenced store rejects it (409); an unfenced store lets it overwrite
//! (Figure 8-4's corruption).

mod common;

use common::*;
use fenced_store::StoreError;
use std::sync::Arc;
use tokio::sync::Notify;

/// Client 1 (token 33) pauses before writing; client 2 (token 34) writes;
/// client 1 resumes and writes. Returns client 1's result and the final value.
async fn scenario(unsafe_no_fencing: bool) -> (Result<(), StoreError>, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_dir(dir.path(), config(unsafe_no_fencing)).await;
    // The lock service granted token 33 to client 1, then (after its lease
    // expired during the pause) token 34 to client 2.
    let (t33, t34) = (fence("file", 33), fence("file", 34));
    let resume = Arc::new(Notify::new());
    let client1 = {
        let (addr, resume) = (s.addr.clone(), resume.clone());
        tokio::spawn(async move {
            resume.notified().await; // the GC pause
            client(&addr).put("file", "client 1 (stale)", t33.token, &t33.signed, None).await.map(|_| ())
        })
    };
    let c2 = client(&s.addr);
    c2.put("file", "client 2", t34.token, &t34.signed, None).await.expect("client 2 writes with 34");
    resume.notify_one();
    let r1 = client1.await.expect("client 1 task");
    let value = c2.get("file").await.expect("get").expect("present").value.to_vec();
    s.stop().await;
    (r1, value)
}

#[tokio::test]
async fn fenced_store_rejects_the_paused_client() {
    let (r1, value) = scenario(false).await;
    assert!(matches!(r1, Err(StoreError::StaleToken { presented: 33, current: 34 })), "{r1:?}");
    assert_eq!(value, b"client 2");
}

#[tokio::test]
async fn unfenced_store_lets_the_paused_client_overwrite() {
    let (r1, value) = scenario(true).await;
    assert!(r1.is_ok(), "{r1:?}");
    assert_eq!(value, b"client 1 (stale)", "the Figure 8-4 corruption");
}
