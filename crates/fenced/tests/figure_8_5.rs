//! DDIA Figure 8-5 with real processes: three `fenced serve` replicas, one
//! `fenced store`, and clients that are `fenced` CLI processes. Client 1's
//! writer is SIGSTOPped across its lease's expiry (the "GC pause"); the
//! fenced store rejects its late write, an unfenced store lets it overwrite
//! client 2 (Figure 8-4). Also: forged, foreign and replayed tokens are
//! refused and change nothing. Every wait is bounded.

mod support;

use fenced_client::{AcquireOptions, StoreError};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::now;
use support::{cluster_key, fenced, signal, wait_output, Cluster, StoreProc, BIN};

const CLI: Duration = Duration::from_secs(30);

/// The first line of a command's output as JSON.
fn json(out: &str) -> Value {
    let line = out.lines().next().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// `fenced lock acquire NAME --ttl TTL [--wait W] --json` → (token, signed).
fn acquire(cluster: &Cluster, name: &str, ttl: &str, wait: &str) -> (u64, String) {
    let eps = cluster.endpoints_arg();
    let (code, out) =
        fenced(&["lock", "acquire", name, "--ttl", ttl, "--wait", wait, "--json", "--endpoints", &eps], CLI);
    assert_eq!(code, 0, "acquire {name}: {out}");
    let g = json(&out);
    let token = g["token"].as_u64().unwrap_or_else(|| panic!("no token: {out}"));
    let signed = g["signed"].as_str().unwrap_or_else(|| panic!("no signed token: {out}")).to_string();
    (token, signed)
}

/// `fenced store put KEY VALUE --token T --signed-token S --json` → (exit code, JSON).
fn put(store: &StoreProc, key: &str, value: &str, token: u64, signed: &str) -> (i32, Value) {
    let t = token.to_string();
    let args = ["store", "put", key, value, "--store", &store.addr, "--token", &t, "--signed-token", signed, "--json"];
    let (code, out) = fenced(&args, CLI);
    (code, json(&out))
}

/// `fenced store get KEY --json` → the object (`value`, `version`, `token`).
fn get(store: &StoreProc, key: &str) -> Value {
    let (code, out) = fenced(&["store", "get", key, "--store", &store.addr, "--json"], CLI);
    assert_eq!(code, 0, "get {key}: {out}");
    json(&out)
}

/// Runs the figure against `store` on lock/key `name`. Returns client 1's
/// write result (exit code, JSON), client 2's token, and the final object.
fn figure_8_5(cluster: &Cluster, store: &StoreProc, name: &str) -> (i32, Value, u64, Value) {
    // 1. Client 1 acquires with a 2 s lease that nobody keeps alive ...
    let (t1, s1) = acquire(cluster, name, "2s", "0s");
    // ... and its writer is paused before it can write: a shell that would
    // run `fenced store put` is SIGSTOPped at once (sleep keeps it from
    // racing ahead of the signal).
    let script = format!(
        "sleep 0.3; exec '{BIN}' store put {name} 'client 1' --store {} --token {t1} --signed-token '{s1}' --json",
        store.addr
    );
    let client1 = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client 1");
    signal(client1.id(), libc::SIGSTOP);
    // 2. The lease expires during the pause; client 2 queues for the lock,
    // gets it with a higher token, and writes.
    let paused_at = now();
    let (t2, s2) = acquire(cluster, name, "30s", "20s");
    assert!(t2 > t1, "client 2's token {t2} is not above client 1's {t1}");
    assert!(now().since(paused_at) < Duration::from_secs(20), "client 2 waited too long");
    let (code, ok) = put(store, name, "client 2", t2, &s2);
    assert_eq!(code, 0, "client 2's write: {ok}");
    // 3. Client 1 resumes, unaware, and writes with its old token.
    signal(client1.id(), libc::SIGCONT);
    let (code1, out1) = wait_output(client1, CLI);
    (code1, json(&out1), t2, get(store, name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figure_8_5_fenced_store_rejects_the_paused_client_unfenced_store_does_not() {
    let cluster = Cluster::start(3);
    assert!(cluster.leader(Duration::from_secs(20)).await.is_some(), "no leader\n{}", cluster.logs());
    let key = cluster_key(&cluster, Duration::from_secs(20)).await;
    let fenced_store = StoreProc::start(&cluster.dir.path().join("fenced-store"), Some(&key)).await;
    let unfenced_store = StoreProc::start(&cluster.dir.path().join("unfenced-store"), None).await;

    let (code, r1, t2, obj) = tokio::task::block_in_place(|| figure_8_5(&cluster, &fenced_store, "file"));
    assert_eq!(code, 1, "client 1's stale write must fail: {r1}\n{}", fenced_store.log());
    assert_eq!(r1["code"], "stale_token", "{r1}");
    assert_eq!(r1["current"], t2, "{r1}");
    assert!(r1["presented"].as_u64().is_some_and(|p| p < t2), "{r1}");
    assert_eq!(obj["value"], "client 2", "{obj}");
    assert_eq!(obj["token"], t2, "{obj}");

    // Figure 8-4: the same against an unfenced store corrupts the file.
    let (code, r1, _, obj) = tokio::task::block_in_place(|| figure_8_5(&cluster, &unfenced_store, "file-unfenced"));
    assert_eq!(code, 0, "the unfenced store accepts anything: {r1}");
    assert_eq!(r1["unfenced"], true, "{r1}");
    assert_eq!(obj["value"], "client 1", "client 1 overwrote client 2: {obj}");
}

/// Flips one character of the signature (the last `.`-separated part), so
/// the claims still parse but the signature does not verify.
fn forge(signed: &str) -> String {
    let mut s: Vec<char> = signed.chars().collect();
    let last = s.len() - 2; // not the final char: base64 padding bits may be ignored
    s[last] = if s[last] == 'A' { 'B' } else { 'A' };
    s.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_foreign_and_replayed_tokens_are_rejected_and_change_nothing() {
    let cluster = Cluster::start(3);
    assert!(cluster.leader(Duration::from_secs(20)).await.is_some(), "no leader\n{}", cluster.logs());
    let key = cluster_key(&cluster, Duration::from_secs(20)).await;
    let store = StoreProc::start(&cluster.dir.path().join("store"), Some(&key)).await;
    let eps = cluster.endpoints_arg();

    tokio::task::block_in_place(|| {
        let (ta, sa) = acquire(&cluster, "res", "30s", "0s");
        let (code, ok) = put(&store, "res", "v1", ta, &sa);
        assert_eq!(code, 0, "{ok}");
        let before = get(&store, "res");
        let unchanged = |what: &str| assert_eq!(get(&store, "res"), before, "{what} changed the store");

        // A forged signature.
        let (code, r) = put(&store, "res", "forged", ta, &forge(&sa));
        assert_eq!((code, r["code"].as_str()), (1, Some("bad_token")), "forged signature: {r}");
        unchanged("a forged signature");
        // A genuine signature presented with a higher bare token.
        let (code, r) = put(&store, "res", "forged", ta + 1000, &sa);
        assert_eq!((code, r["code"].as_str()), (1, Some("bad_token")), "token/signature mismatch: {r}");
        unchanged("a token that is not the signed one");
        // A genuine, higher token signed for another lock.
        let (to, so) = acquire(&cluster, "other", "30s", "0s");
        assert!(to > ta);
        let (code, r) = put(&store, "res", "foreign", to, &so);
        assert_eq!((code, r["code"].as_str()), (1, Some("bad_token")), "token of another lock: {r}");
        unchanged("a token signed for another lock");
        // A replayed older token, after a newer holder wrote.
        let (code, out) = fenced(&["lock", "release", "res", "--token", &ta.to_string(), "--endpoints", &eps], CLI);
        assert_eq!(code, 0, "release: {out}");
        let (tb, sb) = acquire(&cluster, "res", "30s", "0s");
        let (code, ok) = put(&store, "res", "v2", tb, &sb);
        assert_eq!(code, 0, "{ok}");
        let after_v2 = get(&store, "res");
        let (code, r) = put(&store, "res", "replayed", ta, &sa);
        assert_eq!((code, r["code"].as_str()), (1, Some("stale_token")), "replayed token: {r}");
        assert_eq!((r["presented"].as_u64(), r["current"].as_u64()), (Some(ta), Some(tb)), "{r}");
        assert_eq!(get(&store, "res"), after_v2, "a replayed token changed the store");
        // A write without a token at all.
        let (code, out) = fenced(&["store", "put", "res", "bare", "--store", &store.addr, "--json"], CLI);
        assert_eq!((code, json(&out)["code"].as_str()), (1, Some("missing_token")), "{out}");
        assert_eq!(get(&store, "res"), after_v2, "a write without a token changed the store");

        // `fenced store put --lock`: acquire, write with both tokens, release.
        let args = ["store", "put", "one-shot", "v", "--lock", "one-shot", "--endpoints", &eps, "--store", &store.addr];
        let (code, out) = fenced(&[&args[..], &["--ttl", "10s", "--wait", "5s", "--json"]].concat(), CLI);
        assert_eq!(code, 0, "{out}");
        let w = json(&out);
        assert_eq!(get(&store, "one-shot")["token"], w["token"], "{out}");
        let (code, out) = fenced(&["lock", "status", "one-shot", "--json", "--endpoints", &eps], CLI);
        assert_eq!(code, 0, "{out}");
        assert!(json(&out)["holder"].is_null(), "the lock was not released: {out}");
    });

    // The client library: Guard::put attaches both tokens and types the rejections.
    let client = cluster.client();
    let sc = store.client();
    let opts = || AcquireOptions::new(Duration::from_secs(10)).wait(Duration::from_secs(10));
    let g1 = client.acquire("guarded", opts()).await.expect("acquire g1");
    g1.put(&sc, "guarded", "g1").await.expect("g1 writes");
    // g1's lease is revoked behind its back (as if it expired in a pause).
    client.revoke(g1.lease()).await.expect("revoke g1's lease");
    let g2 = client.acquire("guarded", opts()).await.expect("acquire g2");
    g2.put(&sc, "guarded", "g2").await.expect("g2 writes");
    match g1.put(&sc, "guarded", "g1 late").await {
        Err(StoreError::StaleToken { presented, current }) => {
            assert_eq!((presented, current), (g1.token(), g2.token()));
        }
        other => panic!("expected StaleToken, got {other:?}"),
    }
    let other = client.acquire("not-guarded", opts()).await.expect("acquire another lock");
    match other.put(&sc, "guarded", "foreign").await {
        Err(StoreError::BadToken { .. }) => {}
        other => panic!("expected BadToken, got {other:?}"),
    }
    let obj = sc.get("guarded").await.expect("get").expect("present");
    assert_eq!((obj.value.as_ref(), obj.token), (&b"g2"[..], g2.token()));
    g2.release().await.expect("release g2");
    other.release().await.expect("release other");
}
