//! Every route of a replica, from its declaration table
//! (`fenced_replica::http::routes::ROUTES`), tried by every kind of caller against
//! a replica with an auth policy (issue 17): no credentials, a client with
//! rights on the names used (`alice`), another client (`bob`), an
//! administrator and a peer. A refused request answers 401 or 403 and
//! changes nothing; an admitted one gets past the right (a probe with an
//! unknown field, so that it is refused afterwards as bad input and changes
//! nothing either). A new route fails `every_route_applies_its_right` until
//! this test states the right it must need (independently of the table, so
//! that a wrong declaration fails too) and an example request.
//!
//! Also: no route but the holder's own acquire or campaign shows a signed
//! token; `rotate-key` is deduplicated; 405 and 404 have error bodies.

use bytes::Bytes;
use fenced_io::auth::{Op, Policy};
use fenced_io::clock::SystemClock;
use fenced_io::disk::FsDisk;
use fenced_io::http::{HttpClient, HttpResponse};
use fenced_io::transport::TcpTransport;
use fenced_replica::config::ReplicaConfig;
use fenced_replica::config::{ClientLimits, Protection};
use fenced_replica::http::routes::{Right, Verb, ROUTES};
use fenced_replica::node::Seams;
use fenced_replica::server::{self, Running};
use hyper::{Method, Request};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";
const CAROL: &str = "carol-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";
const PEER: &str = "replica-1-token-0123456789";

/// alice may do everything on `a/` and her elections `election:a/`; bob on
/// `b/`; carol may only watch `a/` and `election:a/` (an observer).
fn policy() -> Policy {
    serde_json::from_value(json!({
        "tokens": [
            {"token": ALICE, "identity": "alice"},
            {"token": BOB, "identity": "bob"},
            {"token": CAROL, "identity": "carol"},
            {"token": ADMIN, "identity": "admin"},
            {"token": PEER, "identity": "replica-1"},
        ],
        "peers": ["replica-1"],
        "admins": ["admin"],
        "acl": [
            {"identity": "alice", "prefix": "a/", "allow": ["acquire", "watch", "release"]},
            {"identity": "alice", "prefix": "election:a/", "allow": ["acquire", "watch", "release"]},
            {"identity": "bob", "prefix": "b/", "allow": ["acquire", "watch", "release"]},
            {"identity": "carol", "prefix": "a/", "allow": ["watch"]},
            {"identity": "carol", "prefix": "election:a/", "allow": ["watch"]},
        ],
    }))
    .expect("policy")
}

async fn secured_replica(dir: &std::path::Path) -> Running {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let peers: BTreeMap<u64, String> = [(1, format!("127.0.0.1:{port}"))].into();
    let mut config = ReplicaConfig::new(1, peers[&1].clone(), peers.clone());
    // No checkpoints while the test runs: the log moves only when asked.
    config.checkpoint_interval = Duration::from_secs(3600);
    config.protection = Protection { policy: Some(Arc::new(policy())), limits: ClientLimits::default() };
    let seams = Seams {
        transport: Arc::new(TcpTransport),
        disk: Arc::new(FsDisk::open(dir).expect("disk")),
        clock: Arc::new(SystemClock::new()),
        seed: 1,
        key_entropy: [7; 32],
    };
    let r = server::start(config, seams).await.expect("starts");
    let start = fenced_io::clock::now();
    while r.replica.shared.read(|t| t.public_keys().is_empty()) {
        assert!(fenced_io::clock::now().since(start) < Duration::from_secs(30), "no leader with a signing key");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r
}

async fn call(addr: &str, method: Method, path: &str, auth: Option<&str>, body: impl Into<Bytes>) -> HttpResponse {
    let mut b = Request::builder().method(method).uri(path).header("content-type", "application/json");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    let req = b.body(body.into()).expect("request");
    HttpClient::new(Arc::new(TcpTransport)).send(addr, req, Duration::from_secs(10)).await.expect("answered")
}

fn json_of(r: &HttpResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: not JSON: {}", String::from_utf8_lossy(&r.body)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Alice,
    Bob,
    Admin,
    Peer,
}

impl Who {
    /// The `Authorization` header. alice writes the scheme in lower case:
    /// it is case-insensitive (RFC 7235).
    fn auth(self) -> Option<String> {
        match self {
            Who::Anonymous => None,
            Who::Alice => Some(format!("bearer {ALICE}")),
            Who::Bob => Some(format!("Bearer {BOB}")),
            Who::Admin => Some(format!("Bearer {ADMIN}")),
            Who::Peer => Some(format!("Bearer {PEER}")),
        }
    }
}

/// What the cluster is: anything a wrongly admitted request would change.
fn state(r: &Running) -> String {
    let m = fenced_replica::duties::members::view(&r.replica);
    let t = r.replica.shared.read(|t| {
        let leases: Vec<_> = t.leases().map(|l| format!("{l:?}")).collect();
        let mut held: Vec<_> = t.all_holders().map(|l| format!("{l:?}")).collect();
        held.push(format!("{:?}", t.sem_status("a/s")));
        (t.public_keys().len(), leases, held)
    });
    format!(
        "applied {} members {:?} leader {:?} draining {} keys/leases/held {:?}",
        r.replica.shared.applied_index(),
        m.nodes,
        m.leader,
        r.replica.drain.is_draining(),
        t
    )
}

/// The table's view of alice's lock and lease only: what a refusal inside
/// the state machine (lease owner) must leave as it was. Such a refusal is
/// itself a log entry, so the applied index moves.
fn owned_state(r: &Running, lease: u64) -> String {
    r.replica.shared.read(|t| {
        format!(
            "{:?} {:?} {:?}",
            t.lease(fenced_core::LeaseId(lease)).is_some(),
            t.lock_status("a/x"),
            t.leases().count()
        )
    })
}

/// The right each route must declare, written here independently of the
/// declaration table, and an example request for it: valid and acting on
/// alice's things, so that it would change something if a refused caller
/// got through. `None` for a route this test does not know: the test fails.
fn expected(path: &str, lease: u64, token: u64) -> Option<(Right, String)> {
    let id = "\"client\": \"c\", \"request_id\": 900";
    let on = |op, field| Right::Prefix { op, field, prefix: "" };
    let election = |op| Right::Prefix { op, field: "election", prefix: "election:" };
    Some(match path {
        "/v1/ping" | "/v1/ready" => (Right::None, String::new()),
        // The console's page and assets: no data in them.
        "/ui" | "/ui/console.js" | "/ui/common.js" | "/ui/console.css" => (Right::None, String::new()),
        // Listings and events show each caller only the names it may watch
        // (`the_console_shows_each_caller_only_what_it_may_watch`).
        "/v1/locks" | "/v1/claims" | "/v1/events" => (Right::Read, "prefix=a/".into()),
        "/v1/cluster/snapshot" => (Right::Admin, String::new()),
        "/v1/cluster/status" | "/v1/cluster/key" | "/v1/cluster/members" | "/v1/cluster/peers" | "/metrics" => {
            (Right::Read, String::new())
        }
        "/v1/lease/grant" => (Right::Owner, format!("{{\"ttl_ms\": 60000, {id}}}")),
        "/v1/lease/keepalive" | "/v1/lease/revoke" => (Right::Owner, format!("{{\"lease\": {lease}, {id}}}")),
        "/v1/lock/acquire" => (on(Op::Acquire, "lock"), format!("{{\"lock\": \"a/y\", \"lease\": {lease}, {id}}}")),
        "/v1/lock/release" => {
            (on(Op::Release, "lock"), format!("{{\"lock\": \"a/x\", \"lease\": {lease}, \"token\": {token}, {id}}}"))
        }
        "/v1/lock/status" => (on(Op::Watch, "lock"), "lock=a/x".into()),
        "/v1/lock/watch" => (on(Op::Watch, "lock"), format!("lock=a/x&token={token}")),
        // A semaphore's name takes the same rights as a lock's.
        "/v1/sem/permits" => (on(Op::Acquire, "name"), format!("{{\"name\": \"a/s\", \"permits\": 2, {id}}}")),
        "/v1/sem/acquire" => (on(Op::Acquire, "name"), format!("{{\"name\": \"a/s\", \"lease\": {lease}, {id}}}")),
        "/v1/claim" => (on(Op::Acquire, "name"), format!("{{\"name\": \"a/claimed\", \"owner\": \"o\", {id}}}")),
        // Whoever may claim a name may release its own claim; whose claim it
        // is, the state machine decides (admins may release any).
        "/v1/claim/release" => {
            (on(Op::Acquire, "name"), format!("{{\"name\": \"a/claimed\", \"owner\": \"o\", {id}}}"))
        }
        "/v1/election/campaign" => {
            (election(Op::Acquire), format!("{{\"election\": \"a/e\", \"lease\": {lease}, {id}}}"))
        }
        "/v1/election/resign" => {
            (election(Op::Release), format!("{{\"election\": \"a/x\", \"lease\": {lease}, \"token\": {token}, {id}}}"))
        }
        "/v1/election/observe" => (election(Op::Watch), "election=a/e".into()),
        "/v1/cluster/transfer-leader" => (Right::Admin, "{\"to\": 1}".into()),
        "/v1/cluster/rotate-key" | "/v1/cluster/retire-keys" => (Right::Admin, format!("{{{id}}}")),
        "/v1/cluster/members/add" => (Right::Admin, "{\"id\": 9, \"addr\": \"127.0.0.1:9\", \"force\": true}".into()),
        "/v1/cluster/members/remove" => (Right::Admin, "{\"id\": 1, \"force\": true}".into()),
        "/v1/cluster/members/replace" => {
            (Right::Admin, "{\"old\": 1, \"new\": 9, \"addr\": \"127.0.0.1:9\", \"force\": true}".into())
        }
        "/v1/cluster/drain" => (Right::Admin, String::new()),
        // Peer messages: not a frame. A peer is refused as bad input; only
        // a peer gets that far.
        p if p.starts_with("/raft/v1/") => (Right::Peer, "not a frame".into()),
        _ => return None,
    })
}

/// The same request with an unknown field: admitted callers get past the
/// right and are then refused as bad input, so nothing runs.
fn probe(verb: Verb, example: &str) -> String {
    match verb {
        Verb::Get if example.is_empty() => String::new(),
        Verb::Get => format!("{example}&x_probe=1"),
        Verb::Post if example.starts_with('{') => format!("{{\"x_probe\": 1, {}", &example[1..]),
        Verb::Post if example.is_empty() => "{\"x_probe\": 1}".into(),
        Verb::Post => example.into(),
    }
}

/// Does `right` admit `who` at the router?
fn admits(right: Right, who: Who) -> bool {
    match (right, who) {
        (Right::None, _) => true,
        (_, Who::Anonymous) => false,
        (Right::Read | Right::Owner, _) => true,
        // Every name in the examples is alice's.
        (Right::Prefix { .. }, w) => w != Who::Bob,
        (Right::Admin, w) => matches!(w, Who::Admin | Who::Peer),
        (Right::Peer, w) => w == Who::Peer,
    }
}

async fn send(r: &Running, verb: Verb, path: &str, who: Who, body: &str) -> HttpResponse {
    let auth = who.auth();
    match verb {
        Verb::Get => {
            let uri = if body.is_empty() { path.to_string() } else { format!("{path}?{body}") };
            call(&r.addr, Method::GET, &uri, auth.as_deref(), Bytes::new()).await
        }
        Verb::Post => call(&r.addr, Method::POST, path, auth.as_deref(), body.to_string()).await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_applies_its_right() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = secured_replica(dir.path()).await;
    // alice holds a/x on her lease.
    let alice = Who::Alice.auth();
    let grant = call(
        &r.addr,
        Method::POST,
        "/v1/lease/grant",
        alice.as_deref(),
        r#"{"ttl_ms":60000,"client":"c","request_id":1}"#,
    )
    .await;
    assert_eq!(grant.status, 200, "{}", String::from_utf8_lossy(&grant.body));
    let lease = json_of(&grant)["lease"].as_u64().expect("lease");
    let body = format!(r#"{{"lock":"a/x","lease":{lease},"client":"c","request_id":2}}"#);
    let acquired = call(&r.addr, Method::POST, "/v1/lock/acquire", alice.as_deref(), body).await;
    assert_eq!(acquired.status, 200, "{}", String::from_utf8_lossy(&acquired.body));
    let token = json_of(&acquired)["token"].as_u64().expect("token");

    let mut tried = 0;
    for route in ROUTES {
        let (right, example) = expected(route.path, lease, token)
            .unwrap_or_else(|| panic!("{route:?} has no expected right and example request in this test: add them"));
        assert_eq!(route.right, right, "{route:?} declares another right than this test expects");
        for who in [Who::Anonymous, Who::Bob, Who::Alice, Who::Admin, Who::Peer] {
            let before = state(&r);
            let owned_before = owned_state(&r, lease);
            tried += 1;
            if admits(route.right, who) {
                // bob may grant himself a lease, but not use alice's: the
                // state machine refuses him as not the lease's owner.
                if route.right == Right::Owner && who == Who::Bob && route.path != "/v1/lease/grant" {
                    let resp = send(&r, route.verb, route.path, who, &example).await;
                    assert_eq!(
                        (resp.status.as_u16(), json_of(&resp)["code"].as_str()),
                        (403, Some("not_owner")),
                        "{route:?} as {who:?}"
                    );
                    assert_eq!(owned_state(&r, lease), owned_before, "{route:?} as {who:?} changed alice's lease");
                    continue;
                }
                let resp = send(&r, route.verb, route.path, who, &probe(route.verb, &example)).await;
                let s = resp.status.as_u16();
                assert!(
                    s != 401 && s != 403 && s < 500,
                    "{route:?} as {who:?}: {s} {}",
                    String::from_utf8_lossy(&resp.body)
                );
            } else {
                let resp = send(&r, route.verb, route.path, who, &example).await;
                let expected = if who == Who::Anonymous { 401 } else { 403 };
                assert_eq!(resp.status.as_u16(), expected, "{route:?} as {who:?}");
                let code = json_of(&resp)["code"].as_str().unwrap_or_default().to_string();
                assert!(!code.is_empty(), "{route:?} as {who:?}: an error body with a code");
            }
            assert_eq!(state(&r), before, "{route:?} as {who:?} changed the cluster");
        }
    }
    assert_eq!(tried, ROUTES.len() * 5);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_method_is_405_and_an_unknown_path_404_with_error_bodies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = secured_replica(dir.path()).await;
    let admin = Who::Admin.auth();
    for route in ROUTES {
        let (other, allow) = match route.verb {
            Verb::Get => (Method::POST, "GET"),
            Verb::Post => (Method::GET, "POST"),
        };
        let resp = call(&r.addr, other, route.path, admin.as_deref(), Bytes::new()).await;
        assert_eq!(resp.status, 405, "{route:?}");
        assert_eq!(json_of(&resp)["code"], "method_not_allowed", "{route:?}");
        assert_eq!(resp.headers.get("allow").and_then(|v| v.to_str().ok()), Some(allow), "{route:?}");
    }
    let resp = call(&r.addr, Method::GET, "/v1/no/such/thing", admin.as_deref(), Bytes::new()).await;
    assert_eq!((resp.status.as_u16(), json_of(&resp)["code"].as_str()), (404, Some("not_found")));
    r.stop().await;
}

/// Issue 17, finding 2: an observer allowed to watch a lock or election got
/// its holder's signed token, which a fenced store accepts as a write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_holder_ever_sees_its_signed_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = secured_replica(dir.path()).await;
    let alice = Who::Alice.auth();
    let carol = Some(format!("Bearer {CAROL}"));
    let grant = call(
        &r.addr,
        Method::POST,
        "/v1/lease/grant",
        alice.as_deref(),
        r#"{"ttl_ms":60000,"client":"c","request_id":1}"#,
    )
    .await;
    let lease = json_of(&grant)["lease"].as_u64().expect("lease");
    let acquire = format!(r#"{{"lock":"a/x","lease":{lease},"client":"c","request_id":2}}"#);
    let held = call(&r.addr, Method::POST, "/v1/lock/acquire", alice.as_deref(), acquire.clone()).await;
    let campaign = format!(r#"{{"election":"a/e","lease":{lease},"value":"me","client":"c","request_id":3}}"#);
    let leader = call(&r.addr, Method::POST, "/v1/election/campaign", alice.as_deref(), campaign).await;
    let (held, leader) = (json_of(&held), json_of(&leader));
    let signed = [
        held["signed"].as_str().expect("the holder gets its signed token"),
        leader["signed"].as_str().expect("the leader too"),
    ];
    assert!(signed.iter().all(|s| s.starts_with("fenced1.")), "{signed:?}");
    // The holder's retry (same client and request id) is answered the same.
    let again = json_of(&call(&r.addr, Method::POST, "/v1/lock/acquire", alice.as_deref(), acquire).await);
    assert_eq!(again["signed"], held["signed"]);

    let token = held["token"].as_u64().expect("token");
    // Every read, by the observer carol and by alice herself.
    for who in [carol.as_deref(), alice.as_deref()] {
        for uri in ["/v1/lock/status?lock=a/x", "/v1/election/observe?election=a/e"] {
            let resp = call(&r.addr, Method::GET, uri, who, Bytes::new()).await;
            assert_eq!(resp.status, 200, "{uri}");
            let v = json_of(&resp);
            assert!(v["holder"]["token"].as_u64().is_some(), "{uri}: the token number is shown: {v}");
            let text = String::from_utf8_lossy(&resp.body);
            assert!(!text.contains("signed") && signed.iter().all(|s| !text.contains(s)), "{uri} leaks: {text}");
        }
    }
    // The watch stream, read to its end: alice releases while carol watches.
    let addr = r.addr.clone();
    let watch = tokio::spawn(async move {
        call(&addr, Method::GET, &format!("/v1/lock/watch?lock=a/x&token={token}"), carol.as_deref(), Bytes::new())
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let release = format!(r#"{{"lock":"a/x","lease":{lease},"token":{token},"client":"c","request_id":4}}"#);
    assert_eq!(call(&r.addr, Method::POST, "/v1/lock/release", alice.as_deref(), release).await.status, 200);
    let events = tokio::time::timeout(Duration::from_secs(10), watch).await.expect("the watch ends").expect("task");
    let text = String::from_utf8_lossy(&events.body);
    assert!(text.contains("event: held") && text.contains("event: lost"), "{text}");
    assert!(!text.contains("signed") && signed.iter().all(|s| !text.contains(s)), "the watch leaks: {text}");
    r.stop().await;
}

/// `rotate-key` is deduplicated by client and request id: a retry after a
/// lost reply gets the original answer, not "a rotation is in progress".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_rotation_gets_the_original_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = secured_replica(dir.path()).await;
    let admin = Who::Admin.auth();
    let body = r#"{"client":"ops","request_id":1}"#;
    let first = call(&r.addr, Method::POST, "/v1/cluster/rotate-key", admin.as_deref(), body).await;
    assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&first.body));
    let applied = r.replica.shared.applied_index();
    let retry = call(&r.addr, Method::POST, "/v1/cluster/rotate-key", admin.as_deref(), body).await;
    assert_eq!(retry.status, 200, "{}", String::from_utf8_lossy(&retry.body));
    assert_eq!(json_of(&retry)["public_keys"], json_of(&first)["public_keys"], "rotated once");
    assert_eq!(r.replica.shared.read(|t| t.public_keys().len()), 2);
    // A new request is a second rotation, refused while one is in progress.
    let second = r#"{"client":"ops","request_id":2}"#;
    let refused = call(&r.addr, Method::POST, "/v1/cluster/rotate-key", admin.as_deref(), second).await;
    assert_eq!((refused.status.as_u16(), json_of(&refused)["code"].as_str()), (400, Some("invalid_argument")));
    assert!(r.replica.shared.applied_index() > applied);
    r.stop().await;
}

/// The console's listings and event stream show a caller only the names it
/// may watch, the token number but never the signed token, and refusals to
/// administrators only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_each_caller_only_what_it_may_watch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = secured_replica(dir.path()).await;
    let (alice, bob, carol, admin) =
        (Who::Alice.auth(), Who::Bob.auth(), Some(format!("Bearer {CAROL}")), Who::Admin.auth());
    let mut lease_of = BTreeMap::new();
    for (who, auth, lock) in [("alice", &alice, "a/x"), ("bob", &bob, "b/x")] {
        let grant = call(
            &r.addr,
            Method::POST,
            "/v1/lease/grant",
            auth.as_deref(),
            r#"{"ttl_ms":60000,"client":"c","request_id":1}"#,
        )
        .await;
        let lease = json_of(&grant)["lease"].as_u64().expect("lease");
        let body = format!(r#"{{"lock":"{lock}","lease":{lease},"client":"c","request_id":2}}"#);
        let held = call(&r.addr, Method::POST, "/v1/lock/acquire", auth.as_deref(), body).await;
        assert_eq!(held.status, 200, "{who}: {}", String::from_utf8_lossy(&held.body));
        lease_of.insert(lock, (lease, json_of(&held)["token"].as_u64().expect("token")));
    }
    let names = |v: &Value| -> Vec<String> {
        v["locks"]
            .as_array()
            .expect("locks")
            .iter()
            .map(|l| l["lock"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    for (who, auth, expected) in
        [("carol", &carol, vec!["a/x"]), ("bob", &bob, vec!["b/x"]), ("admin", &admin, vec!["a/x", "b/x"])]
    {
        let resp = call(&r.addr, Method::GET, "/v1/locks", auth.as_deref(), Bytes::new()).await;
        assert_eq!(resp.status, 200, "{who}: {}", String::from_utf8_lossy(&resp.body));
        let v = json_of(&resp);
        assert_eq!(names(&v), expected, "{who} sees only what it may watch");
        assert_eq!(v["total"].as_u64(), Some(expected.len() as u64), "{who}: the count hides the rest too");
        let text = String::from_utf8_lossy(&resp.body);
        assert!(
            !text.contains("signed") && !text.contains("fenced1."),
            "{who}: a listing leaks a signed token: {text}"
        );
    }
    let v = json_of(&call(&r.addr, Method::GET, "/v1/locks", carol.as_deref(), Bytes::new()).await);
    let (lease, token) = lease_of["a/x"];
    assert_eq!(
        (v["locks"][0]["holder"]["token"].as_u64(), v["locks"][0]["holder"]["lease"].as_u64()),
        (Some(token), Some(lease))
    );
    let left = v["locks"][0]["lease_left_ms"].as_u64().expect("time left");
    assert!(left > 0 && left <= 60_000, "{left}");
    assert_eq!(v["replica"], 1, "says whose view it is");
    // Paging: a bounded page size, and a cursor past the end is an empty page.
    let resp = call(&r.addr, Method::GET, "/v1/locks?limit=100000", admin.as_deref(), Bytes::new()).await;
    assert_eq!((resp.status.as_u16(), json_of(&resp)["code"].as_str()), (400, Some("bad_request")));
    let v = json_of(&call(&r.addr, Method::GET, "/v1/locks?limit=1", admin.as_deref(), Bytes::new()).await);
    assert_eq!((names(&v), v["next"].as_str()), (vec!["a/x".to_string()], Some("a/x")));
    let v = json_of(&call(&r.addr, Method::GET, "/v1/locks?limit=1&after=a/x", admin.as_deref(), Bytes::new()).await);
    assert_eq!((names(&v), v["next"].as_str()), (vec!["b/x".to_string()], None));

    // Events: carol and the admin each open a stream; bob is refused a
    // release of alice's lock (403), then alice releases it.
    let stream = |auth: Option<String>| {
        let addr = r.addr.clone();
        tokio::spawn(async move {
            let mut req = hyper::Request::builder().uri("/v1/events");
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let req = req.body(Bytes::new()).expect("request");
            let client = HttpClient::new(Arc::new(TcpTransport));
            let resp = client.send_streaming(&addr, req, Duration::from_secs(5)).await.expect("a stream");
            assert_eq!(resp.status(), 200);
            // The stream never ends: read it for a while, then compare.
            let mut body = resp.into_body();
            let mut text = String::new();
            let started = fenced_io::clock::now();
            let read_for = Duration::from_secs(3);
            loop {
                let left = read_for.saturating_sub(fenced_io::clock::now().since(started));
                match tokio::time::timeout(left, next_frame(&mut body)).await {
                    Ok(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            text.push_str(&String::from_utf8_lossy(&data));
                        }
                    }
                    _ => break,
                }
            }
            text
        })
    };
    let (carol_events, admin_events) = (stream(carol.clone()), stream(admin.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (lease, token) = lease_of["a/x"];
    let release = format!(r#"{{"lock":"a/x","lease":{lease},"token":{token},"client":"c","request_id":3}}"#);
    assert_eq!(call(&r.addr, Method::POST, "/v1/lock/release", bob.as_deref(), release.clone()).await.status, 403);
    assert_eq!(call(&r.addr, Method::POST, "/v1/lock/release", alice.as_deref(), release).await.status, 200);
    let (lease_b, token_b) = lease_of["b/x"];
    let release_b = format!(r#"{{"lock":"b/x","lease":{lease_b},"token":{token_b},"client":"c","request_id":3}}"#);
    assert_eq!(call(&r.addr, Method::POST, "/v1/lock/release", bob.as_deref(), release_b).await.status, 200);
    let rotate = r#"{"client":"ops","request_id":7}"#;
    assert_eq!(call(&r.addr, Method::POST, "/v1/cluster/rotate-key", admin.as_deref(), rotate).await.status, 200);
    let carol_text = carol_events.await.expect("task");
    let admin_text = admin_events.await.expect("task");
    assert!(carol_text.contains("event: hello") && carol_text.contains("\"replica\":1"), "{carol_text}");
    assert!(carol_text.contains("event: released") && carol_text.contains("\"lock\":\"a/x\""), "{carol_text}");
    assert!(!carol_text.contains("b/x"), "carol may not watch b/x: {carol_text}");
    assert!(!carol_text.contains("event: refused"), "refusals are for administrators: {carol_text}");
    assert!(admin_text.contains("event: refused") && admin_text.contains("\"status\":403"), "{admin_text}");
    assert!(admin_text.contains("b/x"), "{admin_text}");
    assert!(carol_text.contains("event: key_rotated"), "key rotations are for every reader: {carol_text}");
    r.stop().await;
}

/// The next frame of a streaming body.
async fn next_frame(b: &mut hyper::body::Incoming) -> Option<Result<hyper::body::Frame<Bytes>, hyper::Error>> {
    std::future::poll_fn(|cx| hyper::body::Body::poll_frame(std::pin::Pin::new(&mut *b), cx)).await
}
