//! Protection from clients (issue 9), in-process replicas over real TCP:
//! authentication (bearer tokens, mutual TLS), per-prefix ACLs, the peer
//! protocol kept to replicas, per-client rate limits under a flood, and
//! signing-key rotation with a fenced store accepting both keys.
//!
//! Certificates come from the real `fenced certs` command.

mod support;

use bytes::Bytes;
use fenced_client::{Client, ClientConfig, ClientError};
use fenced_core::machine::token::{self, encode_public_key, parse_public_key};
use fenced_io::auth::Policy;
use fenced_io::clock::SystemClock;
use fenced_io::disk::FsDisk;
use fenced_io::http::{HttpClient, HttpResponse};
use fenced_io::tls::{client_config, TlsFiles, TlsTransport};
use fenced_io::transport::{TcpTransport, Transport};
use fenced_replica::config::ReplicaConfig;
use fenced_replica::config::{ClientLimits, Protection};
use fenced_replica::node::Seams;
use fenced_replica::server::{self, Running};
use fenced_store::config::{StoreConfig, StoreSeams};
use hyper::{Method, Request, StatusCode};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_fenced");
const ALICE_TOKEN: &str = "alice-token-0123456789abcdef";
const BOB_TOKEN: &str = "bob-token-0123456789abcdef";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Run `fenced certs` into `dir`.
fn make_certs(dir: &Path) {
    let out = std::process::Command::new(BIN)
        .args(["certs", "--out", &dir.to_string_lossy(), "--replicas", "3", "--clients", "alice,bob,mallory"])
        .output()
        .expect("run fenced certs");
    assert!(out.status.success(), "fenced certs failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// alice may do everything under `a/`, bob under `b/`; mallory is known
/// (her certificate is valid) but has no grants. `admin` administers.
fn policy() -> Policy {
    serde_json::from_value(serde_json::json!({
        "tokens": [
            {"token": ALICE_TOKEN, "identity": "alice"},
            {"token": BOB_TOKEN, "identity": "bob"},
        ],
        "peers": ["replica-1", "replica-2", "replica-3"],
        "admins": ["admin"],
        "acl": [
            {"identity": "alice", "prefix": "a/", "allow": ["acquire", "watch", "release", "write", "read"]},
            {"identity": "bob", "prefix": "b/", "allow": ["acquire", "watch", "release", "write", "read"]},
        ],
    }))
    .expect("policy")
}

struct TestCluster {
    _dir: tempfile::TempDir,
    running: Vec<Running>,
    endpoints: Vec<String>,
}

impl TestCluster {
    /// Three replicas; mutual TLS between them if `certs` is given.
    async fn start(certs: Option<&Path>, protection: Protection) -> TestCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let peers: BTreeMap<u64, String> = (1..=3).map(|i| (i, format!("127.0.0.1:{}", free_port()))).collect();
        let mut running = Vec::new();
        for id in 1..=3u64 {
            let mut config = ReplicaConfig::new(id, peers[&id].clone(), peers.clone());
            config.heartbeat = Duration::from_millis(50);
            config.election_timeout_min = Duration::from_millis(300);
            config.election_timeout_max = Duration::from_millis(600);
            config.protection = protection.clone();
            let transport: Arc<dyn Transport> = match certs {
                Some(c) => {
                    let files = TlsFiles {
                        ca: c.join("ca.pem"),
                        cert: c.join(format!("replica-{id}.pem")),
                        key: c.join(format!("replica-{id}-key.pem")),
                    };
                    Arc::new(TlsTransport::mutual(Arc::new(TcpTransport), &files).expect("replica TLS"))
                }
                None => Arc::new(TcpTransport),
            };
            let seams = Seams {
                transport,
                disk: Arc::new(FsDisk::open(dir.path().join(id.to_string())).expect("disk")),
                clock: Arc::new(SystemClock::new()),
                seed: id,
                key_entropy: [id as u8; 32],
            };
            running.push(server::start(config, seams).await.expect("replica starts"));
        }
        let endpoints = peers.values().cloned().collect();
        TestCluster { _dir: dir, running, endpoints }
    }

    /// Wait (liveness only) until a replica has the signing key.
    async fn wait_ready(&self) {
        let start = fenced_io::clock::now();
        while !self.running.iter().any(|r| r.replica.shared.read(|t| !t.public_keys().is_empty())) {
            assert!(
                fenced_io::clock::now().since(start) < Duration::from_secs(30),
                "no leader and signing key within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn state(&self) -> Vec<(usize, usize)> {
        self.running.iter().map(|r| r.replica.shared.read(|t| (t.leases().count(), t.held_locks().count()))).collect()
    }

    async fn stop(self) {
        for r in self.running {
            r.stop().await;
        }
    }
}

fn tls_client_transport(certs: &Path, who: Option<&str>) -> Arc<dyn Transport> {
    let ca = certs.join("ca.pem");
    let (cert, key): (Option<PathBuf>, Option<PathBuf>) = match who {
        Some(w) => (Some(certs.join(format!("{w}.pem"))), Some(certs.join(format!("{w}-key.pem")))),
        None => (None, None),
    };
    let config = client_config(&ca, cert.as_deref().zip(key.as_deref())).expect("client TLS");
    Arc::new(TlsTransport::new(Arc::new(TcpTransport), None, Some(config)))
}

fn client(endpoints: &[String], transport: Arc<dyn Transport>, token: Option<&str>) -> Client {
    let mut cfg = ClientConfig::new(endpoints.to_vec());
    cfg.request_timeout = Duration::from_secs(2);
    cfg.call_timeout = Duration::from_secs(20);
    cfg.bearer_token = token.map(String::from);
    Client::with_seams(cfg, transport, Arc::new(SystemClock::new())).expect("client")
}

fn api_status(r: Result<impl std::fmt::Debug, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Api { status, body }) => (status, body.code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn raw(
    transport: Arc<dyn Transport>,
    addr: &str,
    method: Method,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let http = HttpClient::new(transport);
    let mut b = Request::builder().method(method).uri(path).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Bytes::from(body.to_string())).expect("request");
    http.send(addr, req, Duration::from_secs(10)).await.expect("response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_or_rights_nothing_changes() {
    let certs = tempfile::tempdir().expect("tempdir");
    make_certs(certs.path());
    let protection = Protection { policy: Some(Arc::new(policy())), limits: ClientLimits::default() };
    let cluster = TestCluster::start(Some(certs.path()), protection).await;
    cluster.wait_ready().await;
    let eps = cluster.endpoints.clone();
    let before = cluster.state();

    // No credentials at all (TLS, no certificate, no token): 401.
    let anon = client(&eps, tls_client_transport(certs.path(), None), None);
    assert_eq!(api_status(anon.grant_lease(Duration::from_secs(5)).await), (401, "unauthenticated".into()));
    assert_eq!(api_status(anon.acquire_on("a/x", 1, Duration::ZERO, "").await), (401, "unauthenticated".into()));
    assert_eq!(api_status(anon.status("a/x").await), (401, "unauthenticated".into()));
    // A wrong bearer token is refused even with a valid certificate.
    let forged = client(&eps, tls_client_transport(certs.path(), Some("alice")), Some("not-a-real-token-at-all"));
    assert_eq!(api_status(forged.grant_lease(Duration::from_secs(5)).await), (401, "bad_credentials".into()));
    // Plaintext to a TLS replica gets no answer at all.
    let mut cfg = ClientConfig::new(eps.clone());
    cfg.call_timeout = Duration::from_secs(2);
    cfg.bearer_token = Some(ALICE_TOKEN.into());
    let plain = Client::new(cfg).expect("client");
    assert!(matches!(plain.grant_lease(Duration::from_secs(5)).await, Err(ClientError::Unavailable(_))));
    assert_eq!(cluster.state(), before, "refused requests changed nothing");

    // alice (client certificate) may use a/, not b/.
    let alice = client(&eps, tls_client_transport(certs.path(), Some("alice")), None);
    let lease = alice.grant_lease(Duration::from_secs(30)).await.expect("alice gets a lease").lease;
    let g = alice.acquire_on("a/x", lease, Duration::ZERO, "").await.expect("alice acquires a/x");
    assert_eq!(g.lock, "a/x");
    assert_eq!(api_status(alice.acquire_on("b/x", lease, Duration::ZERO, "").await), (403, "forbidden".into()));
    assert_eq!(api_status(alice.status("b/x").await), (403, "forbidden".into()));
    assert_eq!(api_status(alice.claim("b/name", "alice", None).await), (403, "forbidden".into()));
    for r in &cluster.running {
        let s = r.replica.shared.read(|t| t.lock_status("b/x"));
        assert!(s.holder.is_none() && s.waiters.is_empty(), "b/x untouched on replica {}", r.replica.config.id);
    }

    // bob (bearer token over TLS) may use b/x, but not alice's lease.
    let bob = client(&eps, tls_client_transport(certs.path(), None), Some(BOB_TOKEN));
    assert_eq!(api_status(bob.acquire_on("b/x", lease, Duration::ZERO, "").await), (403, "not_owner".into()));
    assert_eq!(api_status(bob.revoke(lease).await), (403, "not_owner".into()));
    assert_eq!(api_status(bob.release("a/x", lease, g.token.0).await), (403, "forbidden".into()));
    let held = alice.status("a/x").await.expect("status").holder.expect("still held");
    assert_eq!(held.token, g.token, "bob could not take or free alice's lock");
    let bob_lease = bob.grant_lease(Duration::from_secs(30)).await.expect("bob lease").lease;
    bob.acquire_on("b/x", bob_lease, Duration::ZERO, "").await.expect("bob acquires b/x");

    // mallory has a valid certificate and no grants: 403 everywhere that names a lock.
    let mallory = client(&eps, tls_client_transport(certs.path(), Some("mallory")), None);
    let ml = mallory.grant_lease(Duration::from_secs(5)).await.expect("leases need no grant").lease;
    assert_eq!(api_status(mallory.acquire_on("a/x", ml, Duration::ZERO, "").await), (403, "forbidden".into()));
    // ... nor administer, nor speak the peer protocol.
    assert_eq!(api_status(mallory.rotate_key().await), (403, "not_an_admin".into()));
    assert_eq!(api_status(mallory.transfer_leader(2).await), (403, "not_an_admin".into()));
    let t = tls_client_transport(certs.path(), Some("mallory"));
    let r = raw(t, &eps[0], Method::POST, "/raft/v1/propose", "", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", String::from_utf8_lossy(&r.body));
    // The refusals were counted.
    let m = raw(tls_client_transport(certs.path(), Some("admin")), &eps[0], Method::GET, "/metrics", "", &[]).await;
    let text = String::from_utf8_lossy(&m.body);
    assert!(text.contains("reason=\"forbidden\""), "{text}");
    cluster.stop().await;
}

/// One client sends 100 times the normal rate (1000 requests/s, paced over
/// 8 connections, bounded in count and time) while another acquires and
/// releases at the normal rate (10 requests/s). The flooder is throttled
/// with 429 + Retry-After; the gentle client is never refused and completes
/// everything. Latencies are printed for docs/security.md, not asserted:
/// performance lives in measurements, not tests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_throttled_and_does_not_starve_others() {
    let certs = tempfile::tempdir().expect("tempdir");
    make_certs(certs.path());
    let limits = ClientLimits { rate_per_sec: 50.0, rate_burst: 50.0, ..ClientLimits::default() };
    let protection = Protection { policy: Some(Arc::new(policy())), limits };
    let cluster = TestCluster::start(Some(certs.path()), protection).await;
    cluster.wait_ready().await;
    let eps = cluster.endpoints.clone();
    let tls = tls_client_transport(certs.path(), None);
    let good = client(&eps, tls.clone(), Some(ALICE_TOKEN));

    // The gentle client: 5 acquire/release rounds per second (10 requests/s,
    // under its 50 requests/s), 30 rounds.
    async fn rounds(c: &Client, n: usize) -> Vec<Duration> {
        let lease = c.grant_lease(Duration::from_secs(60)).await.expect("lease").lease;
        let mut lat = Vec::new();
        for _ in 0..n {
            let t = fenced_io::clock::now();
            let g = c.acquire_on("a/gentle", lease, Duration::ZERO, "").await.expect("never refused");
            lat.push(fenced_io::clock::now().since(t));
            c.release("a/gentle", lease, g.token.0).await.expect("release never refused");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        lat
    }
    let unloaded = rounds(&good, 30).await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flooders = Vec::new();
    for _ in 0..8 {
        let (addr, stop, tls) = (eps[0].clone(), stop.clone(), tls.clone());
        flooders.push(tokio::spawn(async move {
            let http = HttpClient::new(tls);
            let (mut ok, mut throttled, mut retry_after_seen) = (0u64, 0u64, false);
            let started = fenced_io::clock::now();
            // 125 requests/s per task; bounded: 8000 requests or 60 s.
            let mut tick = tokio::time::interval(Duration::from_millis(8));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            for _ in 0..8000 {
                tick.tick().await;
                if stop.load(std::sync::atomic::Ordering::Relaxed)
                    || fenced_io::clock::now().since(started) > Duration::from_secs(60)
                {
                    break;
                }
                let req = Request::builder()
                    .uri("/v1/lock/status?lock=b/flood")
                    .header("authorization", format!("Bearer {BOB_TOKEN}"))
                    .body(Bytes::new())
                    .expect("request");
                match http.send(&addr, req, Duration::from_secs(5)).await {
                    Ok(r) if r.status == StatusCode::TOO_MANY_REQUESTS => {
                        throttled += 1;
                        retry_after_seen |= r.headers.contains_key("retry-after");
                    }
                    Ok(_) => ok += 1,
                    Err(_) => {}
                }
            }
            (ok, throttled, retry_after_seen)
        }));
    }
    let loaded_start = fenced_io::clock::now();
    let loaded = rounds(&good, 30).await;
    let loaded_secs = fenced_io::clock::now().since(loaded_start).as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut throttled, mut retry_after) = (0, 0, true);
    for f in flooders {
        let (o, t, r) = f.await.expect("flooder");
        ok += o;
        throttled += t;
        retry_after &= r || t == 0;
    }
    assert!(throttled > 0, "the flooder was never throttled ({ok} ok)");
    assert!(retry_after, "every 429 carries Retry-After");
    assert_eq!(loaded.len(), 30, "the gentle client completed every round");

    let p99 = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v[(v.len() * 99 / 100).min(v.len() - 1)]
    };
    let flood_rate = (ok + throttled) as f64 / loaded_secs;
    println!(
        "flood: {} requests/s from the flooder ({ok} served, {throttled} throttled with 429) vs 10 requests/s from the gentle client",
        flood_rate.round()
    );
    println!(
        "gentle acquire p99: unloaded {:?}, during the flood {:?} (ratio {:.2})",
        p99(&unloaded),
        p99(&loaded),
        p99(&loaded).as_secs_f64() / p99(&unloaded).as_secs_f64()
    );
    let m =
        raw(tls, &eps[0], Method::GET, "/metrics", "", &[("authorization", &format!("Bearer {ALICE_TOKEN}"))]).await;
    let text = String::from_utf8_lossy(&m.body);
    let line = text.lines().find(|l| l.contains("reason=\"rate_limited\"")).expect("rate_limited counter");
    let n: u64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("counter value");
    assert!(n >= throttled, "metrics count every 429 ({n} < {throttled})");
    cluster.stop().await;
}

/// Rotation while the cluster runs: tokens carry the key id; after
/// `rotate-key` new grants are signed by the new key; a running store given
/// both published keys (live, no restart) accepts tokens of either, still
/// rejects a token replayed for another key or lock, and after `retire-keys`
/// and the key update refuses the old key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_key_rotates_while_running_and_the_store_accepts_both_during_the_overlap() {
    let cluster = TestCluster::start(None, Protection::default()).await;
    cluster.wait_ready().await;
    let eps = cluster.endpoints.clone();
    let c = client(&eps, Arc::new(TcpTransport), None);
    let old_key = c.cluster_key().await.expect("key").public_key;
    let lease = c.grant_lease(Duration::from_secs(60)).await.expect("lease").lease;
    let old = c.acquire_on("orders", lease, Duration::ZERO, "").await.expect("acquire");

    // A real fenced store, trusting the cluster's (only) key.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg =
        StoreConfig::new(format!("127.0.0.1:{}", free_port()), vec![parse_public_key(&old_key).expect("key")]);
    cfg.guards.insert("orders/", "orders");
    let seams = StoreSeams {
        transport: Arc::new(TcpTransport),
        disk: Arc::new(FsDisk::open(dir.path()).expect("disk")),
        clock: Arc::new(SystemClock::new()),
    };
    let store = fenced_store::server::start(cfg, seams).await.expect("store");
    let put = |key: &str, token: u64, signed: &str| {
        let (addr, key, signed) = (store.addr.clone(), key.to_string(), signed.to_string());
        async move {
            let h = [("fenced-token", token.to_string()), ("fenced-signed-token", signed)];
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            raw(Arc::new(TcpTransport), &addr, Method::PUT, &format!("/v1/objects/{key}"), "v", &h).await.status
        }
    };
    assert_eq!(put("orders/1", old.token.0, &old.signed).await, StatusCode::OK);

    let rotated = c.rotate_key().await.expect("rotate");
    assert_eq!(rotated.public_keys.len(), 2, "both keys are published during the overlap");
    assert_eq!(rotated.public_keys[0], old_key);
    assert_ne!(rotated.public_key, old_key);
    c.release("orders", lease, old.token.0).await.expect("release");
    let new = c.acquire_on("orders", lease, Duration::ZERO, "").await.expect("acquire again");
    let kid = |s: &str| token::decode(s).expect("decodes").0.key_id;
    let new_key = parse_public_key(&rotated.public_key).expect("key");
    assert_eq!(kid(&new.signed), token::key_id(&new_key), "new grants are signed by the new key");
    assert_ne!(kid(&old.signed), kid(&new.signed));

    // The store does not know the new key yet: refused, as another cluster's key would be.
    assert_eq!(put("orders/1", new.token.0, &new.signed).await, StatusCode::FORBIDDEN);
    // Give it both published keys, without a restart: both accepted.
    store.set_cluster_keys(rotated.public_keys.iter().map(|k| parse_public_key(k).expect("key")).collect());
    assert_eq!(put("orders/2", old.token.0, &old.signed).await, StatusCode::OK, "old key accepted in the overlap");
    assert_eq!(put("orders/1", new.token.0, &new.signed).await, StatusCode::OK, "new key accepted");
    // Replays: a token for lock "orders" on a key guarded by another lock,
    // and another lock's token on an "orders/" key.
    assert_eq!(put("invoices/1", new.token.0, &new.signed).await, StatusCode::FORBIDDEN, "other key");
    let other = c.acquire_on("invoices/1", lease, Duration::ZERO, "").await.expect("acquire invoices/1");
    assert_eq!(put("orders/3", other.token.0, &other.signed).await, StatusCode::FORBIDDEN, "other lock");

    let retired = c.retire_keys().await.expect("retire");
    assert_eq!(retired.public_keys, vec![rotated.public_key.clone()], "only the new key remains published");
    assert_eq!(encode_public_key(&new_key), retired.public_key);
    store.set_cluster_keys(vec![new_key]);
    assert_eq!(put("orders/4", old.token.0, &old.signed).await, StatusCode::FORBIDDEN, "retired key refused");
    assert_eq!(put("orders/4", new.token.0, &new.signed).await, StatusCode::OK);
    store.stop().await;
    cluster.stop().await;
}

/// Limits at the API: every refusal has its status and code, changes
/// nothing, and is counted in /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_limits_are_reported_with_codes_and_counted() {
    let limits = ClientLimits { watches_per_client_max: 2, limit_by_address: true, ..ClientLimits::default() };
    let cluster = TestCluster::start(None, Protection { policy: None, limits }).await;
    cluster.wait_ready().await;
    let eps = cluster.endpoints.clone();
    let t: Arc<dyn Transport> = Arc::new(TcpTransport);
    let c = client(&eps, t.clone(), None);
    let before = cluster.state();
    // Body size.
    let big = format!("{{\"ttl_ms\": 1000, \"pad\": \"{}\"}}", "x".repeat(70_000));
    let r = raw(t.clone(), &eps[0], Method::POST, "/v1/lease/grant", &big, &[]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", String::from_utf8_lossy(&r.body));
    // Maximum TTL (per replica, before proposing).
    assert_eq!(api_status(c.grant_lease(Duration::from_secs(48 * 3600)).await).0, 400);
    // Name length (inside the state machine).
    let lease = c.grant_lease(Duration::from_secs(30)).await.expect("lease").lease;
    let long = "n".repeat(513);
    assert_eq!(api_status(c.acquire_on(&long, lease, Duration::ZERO, "").await), (400, "invalid_argument".into()));
    assert_eq!(cluster.state().iter().map(|s| s.1).sum::<usize>(), before.iter().map(|s| s.1).sum::<usize>());
    // Watches per client: two streams open, the third refused with 429.
    let g = c.acquire_on("w", lease, Duration::ZERO, "").await.expect("acquire");
    let watch = |addr: String| {
        let t = t.clone();
        let path = format!("/v1/lock/watch?lock=w&token={}", g.token.0);
        async move {
            let http = HttpClient::new(t);
            let req = Request::builder().uri(path).body(Bytes::new()).expect("req");
            http.send_streaming(&addr, req, Duration::from_secs(10)).await.expect("watch")
        }
    };
    let w1 = watch(eps[0].clone()).await;
    let w2 = watch(eps[0].clone()).await;
    assert_eq!((w1.status(), w2.status()), (StatusCode::OK, StatusCode::OK));
    let w3 = watch(eps[0].clone()).await;
    assert_eq!(w3.status(), StatusCode::TOO_MANY_REQUESTS);
    // Closing one frees its slot (the stream task notices at its next send).
    drop(w1);
    let start = fenced_io::clock::now();
    loop {
        let w = watch(eps[0].clone()).await;
        if w.status() == StatusCode::OK {
            break;
        }
        assert!(fenced_io::clock::now().since(start) < Duration::from_secs(20), "a closed watch never freed its slot");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let m = raw(t.clone(), &eps[0], Method::GET, "/metrics", "", &[]).await;
    let text = String::from_utf8_lossy(&m.body);
    assert!(text.lines().any(|l| l.contains("reason=\"watches\"") && !l.ends_with(" 0")), "{text}");
    drop(w2);
    cluster.stop().await;
}

/// Issue 17, finding 1, with real `fenced serve` processes set up as
/// `fenced certs` prints (mutual TLS, `--auth`): the three `curl` calls of
/// the finding (alice removes voter 3, bob drains the leader, alice sends a
/// replica the removed-replica drain) answer 403 and change nothing; the
/// administrator's `fenced cluster drain` and `fenced cluster remove` over
/// TLS succeed (they used to speak plaintext: `invalid HTTP version
/// parsed`), and the removed replica is told to drain by the leader, as a
/// peer, over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_changes_membership_or_drains_over_tls() {
    const WITHIN: Duration = Duration::from_secs(30);
    let certs = tempfile::tempdir().expect("tempdir");
    make_certs(certs.path());
    let p = |f: &str| certs.path().join(f).to_string_lossy().into_owned();
    // `fenced certs` names 127.0.0.1 in the replicas' certificates.
    let addrs: BTreeMap<u64, String> = (1..=3).map(|i| (i, format!("127.0.0.1:{}", free_port()))).collect();
    let mut cluster = support::Cluster {
        dir: tempfile::tempdir().expect("tempdir"),
        bootstrap: addrs.clone(),
        addrs: addrs.clone(),
        procs: BTreeMap::new(),
    };
    let peers = addrs.iter().map(|(i, a)| format!("{i}={a}")).collect::<Vec<_>>().join(",");
    for id in 1..=3u64 {
        let (cert, key) = (p(&format!("replica-{id}.pem")), p(&format!("replica-{id}-key.pem")));
        let args = ["--peers", &peers, "--tls-ca", &p("ca.pem"), "--tls-cert", &cert, "--tls-key", &key];
        cluster.spawn_with(id, &[&args[..], &["--auth", &p("auth.json")]].concat());
    }
    let endpoints = cluster.endpoints_arg();
    let creds = |who: &str| {
        vec![
            "--ca".to_string(),
            p("ca.pem"),
            "--cert".into(),
            p(&format!("{who}.pem")),
            "--key".into(),
            p(&format!("{who}-key.pem")),
        ]
    };
    let cli = |args: &[&str], who: &str| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--endpoints".into(), endpoints.clone(), "--json".into()]);
        all.extend(creds(who));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        support::fenced(&all, Duration::from_secs(120))
    };
    // The membership, as the administrator reads it, once there is a leader.
    let members = || {
        let (rc, out) = cli(&["cluster", "members"], "admin");
        let m: Option<serde_json::Value> = (rc == 0).then(|| serde_json::from_str(out.trim()).ok()).flatten();
        m.filter(|m| !m["leader"].is_null())
    };
    let start = support::now();
    let before = loop {
        if let Some(m) = members() {
            break m;
        }
        assert!(support::now().since(start) < WITHIN, "no leader over TLS\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(before["voters"], serde_json::json!([1, 2, 3]));
    let as_ = |who: &str| tls_client_transport(certs.path(), Some(who));
    let draining = |id: u64| {
        let t = as_("admin");
        let addr = addrs[&id].clone();
        async move {
            let r = raw(t, &addr, Method::GET, "/v1/cluster/peers", "", &[]).await;
            serde_json::from_slice::<serde_json::Value>(&r.body).expect("peers report")["draining"] == true
        }
    };

    // The finding's three calls, and the peer message itself, by clients.
    let leader = before["leader"].as_u64().expect("leader");
    let refused = [
        ("alice", 1, "/v1/cluster/members/remove", r#"{"id":3}"#.to_string()),
        ("bob", leader, "/v1/cluster/drain", "{}".into()),
        ("alice", 2, "/v1/cluster/drain", format!(r#"{{"removed_at":{}}}"#, u64::MAX)),
        ("bob", 2, "/raft/v1/drain-removed", String::new()),
    ];
    for (who, id, path, body) in &refused {
        let r = raw(as_(who), &addrs[id], Method::POST, path, body, &[]).await;
        let text = String::from_utf8_lossy(&r.body).into_owned();
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{who} {path}: {text}");
        let code: serde_json::Value = serde_json::from_str(&text).expect("an error body");
        assert!(matches!(code["code"].as_str(), Some("not_an_admin" | "not_a_peer")), "{who} {path}: {text}");
    }
    // alice through the CLI: refused, with the reason and what to do.
    let (rc, out) = cli(&["cluster", "remove", "3"], "alice");
    assert!(rc == 1 && out.contains("not_an_admin") && out.contains("admins"), "{out}");
    let after = members().expect("members");
    assert_eq!((&after["voters"], &after["log_index"]), (&before["voters"], &before["log_index"]), "nothing changed");
    for id in 1..=3 {
        assert!(!draining(id).await, "replica {id} was drained by a client");
    }

    // The administrator removes replica 3 over TLS; the leader tells it to
    // drain with the peer message, as a peer, over TLS.
    let (rc, out) = cli(&["cluster", "remove", "3"], "admin");
    assert_eq!(rc, 0, "fenced cluster remove over TLS: {out}\n{}", cluster.logs());
    let m: serde_json::Value = serde_json::from_str(out.trim()).expect("membership JSON");
    assert_eq!(m["voters"], serde_json::json!([1, 2]), "{out}");
    let start = support::now();
    while !draining(3).await {
        assert!(
            support::now().since(start) < WITHIN,
            "the removed replica was never told to drain\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And drains replica 1 over TLS (one replica, not failed over).
    let (rc, out) = cli(&["cluster", "drain", "1"], "admin");
    assert_eq!(rc, 0, "fenced cluster drain over TLS: {out}\n{}", cluster.logs());
    assert!(draining(1).await && !draining(2).await);
}
