//! A real `fenced store serve` process with an auth policy, plaintext on
//! loopback and then over TLS with client certificates, driven only through
//! the `fenced store put|get` commands (the same credential flags as
//! `fenced lock`). Every refusal is read back: nothing changed.
//!
//! The policy gives alice `a/` and bob `b/`; mallory has a valid certificate
//! and no grants. Certificates come from the real `fenced certs`. Tokens are
//! signed here with a key the store is given, so no lock cluster is needed,
//! except in the last test: the documented secure setup end to end (a TLS
//! cluster and store sharing `fenced certs`' policy, `fenced store put
//! --lock`).

mod support;

use ed25519_dalek::SigningKey;
use fenced_core::machine::token::{encode_public_key, sign, TokenClaims};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{fenced, now, Cluster, BIN};

const ALICE: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdef";
const WITHIN: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// `--token N --signed-token S` for a write of `key` (guarded by the lock
/// of the same name).
fn token_args(key: &str, token: u64) -> Vec<String> {
    let claims = TokenClaims { key_id: 0, lock: key.into(), token, lease: 1, issued_at_ms: 0 };
    vec!["--token".into(), token.to_string(), "--signed-token".into(), sign(&signing_key(), claims)]
}

fn write_policy(dir: &Path) -> PathBuf {
    let policy = serde_json::json!({
        "tokens": [{"token": ALICE, "identity": "alice"}, {"token": BOB, "identity": "bob"}],
        "acl": [
            {"identity": "alice", "prefix": "a/", "allow": ["write", "read"]},
            {"identity": "bob", "prefix": "b/", "allow": ["write", "read"]},
        ],
    });
    let path = dir.join("policy.json");
    std::fs::write(&path, policy.to_string()).expect("write policy");
    path
}

/// A `fenced store serve` child, ended by its pid on drop.
struct Store {
    child: Child,
    addr: String,
    out: PathBuf,
}

impl Store {
    /// A store trusting the test's signing key.
    fn start(dir: &Path, extra: &[&str]) -> Store {
        Store::start_with_key(dir, &encode_public_key(&signing_key().verifying_key()), extra)
    }

    fn start_with_key(dir: &Path, key: &str, extra: &[&str]) -> Store {
        let addr = format!("127.0.0.1:{}", free_port());
        let out = dir.join("store.out");
        let data = dir.join("data");
        let child = Command::new(BIN)
            .args(["store", "serve", "--listen", &addr, "--data-dir", &data.to_string_lossy(), "--cluster-key", key])
            .args(extra)
            .stdout(std::fs::File::create(&out).expect("store output"))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn fenced store serve");
        let s = Store { child, addr, out };
        let start = now();
        while !s.output().contains("listening on") {
            assert!(now().since(start) < WITHIN, "store did not start:\n{}", s.output());
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// `fenced store put KEY VALUE --store ADDR <token args> <credentials>`.
    fn put(&self, key: &str, value: &str, token: u64, creds: &[&str]) -> (i32, String) {
        let mut args: Vec<String> =
            ["store", "put", key, value, "--store", &self.addr, "--json"].iter().map(|s| s.to_string()).collect();
        args.extend(token_args(key, token));
        args.extend(creds.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fenced(&args, WITHIN)
    }

    /// `fenced store get KEY --store ADDR --json <credentials>`.
    fn get(&self, key: &str, creds: &[&str]) -> (i32, String) {
        let mut args = vec!["store", "get", key, "--store", &self.addr, "--json", "--timeout-ms", "5000"];
        args.extend_from_slice(creds);
        fenced(&args, WITHIN)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `code` of a `--json` refusal, or `"ok"`.
fn code(out: &str) -> String {
    let line = out.lines().next().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    if v["ok"] == serde_json::json!(true) || v.get("value").is_some() {
        return "ok".into();
    }
    v["code"].as_str().unwrap_or("?").to_string()
}

fn value(out: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap_or_default()).expect("JSON");
    v["value"].as_str().unwrap_or_default().to_string()
}

#[test]
fn plaintext_store_with_a_policy_refuses_without_credentials_or_rights_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = write_policy(dir.path());
    let s = Store::start(dir.path(), &["--auth", &policy.to_string_lossy()]);
    assert!(s.output().contains("plaintext, loopback only; callers authenticated"), "{}", s.output());
    let alice = ["--auth-token", ALICE];
    let bob = ["--auth-token", BOB];

    // No credentials: 401, for writes and reads.
    let (rc, out) = s.put("a/x", "v1", 5, &[]);
    assert_eq!((rc, code(&out)), (1, "unauthenticated".into()), "{out}");
    assert_eq!(code(&s.get("a/x", &[]).1), "unauthenticated");
    // An unknown token: 401.
    let (rc, out) = s.put("a/x", "v1", 5, &["--auth-token", "not-a-known-token-0123456789"]);
    assert_eq!((rc, code(&out)), (1, "bad_credentials".into()), "{out}");
    // alice's grant is `a/`: `b/x` is 403, for writes and reads.
    let (rc, out) = s.put("b/x", "v1", 5, &alice);
    assert_eq!((rc, code(&out)), (1, "forbidden".into()), "{out}");
    assert_eq!(code(&s.get("b/x", &alice).1), "forbidden");
    // Read back with the owners' credentials: nothing was written.
    assert_eq!(s.get("a/x", &alice), (1, "{\"code\":\"not_found\",\"key\":\"a/x\",\"ok\":false}\n".into()));
    assert_eq!(code(&s.get("b/x", &bob).1), "not_found");

    // The right credentials write, and the value reads back.
    let (rc, out) = s.put("a/x", "v1", 5, &alice);
    assert_eq!((rc, code(&out)), (0, "ok".into()), "{out}");
    let (rc, out) = s.get("a/x", &alice);
    assert_eq!((rc, value(&out)), (0, "v1".into()), "{out}");
    // Refused writes after it leave it as it was.
    assert_eq!(code(&s.put("a/x", "v2", 6, &[]).1), "unauthenticated");
    assert_eq!(code(&s.put("a/x", "v2", 6, &bob).1), "forbidden");
    assert_eq!(value(&s.get("a/x", &alice).1), "v1");
}

#[test]
fn tls_store_names_callers_by_their_client_certificates() {
    let (dir, certs, _) = make_certs("alice,bob,mallory");
    let p = |f: &str| certs.join(f).to_string_lossy().into_owned();
    // `fenced certs` makes the store's certificate; the policy is ours (a/, b/).
    for f in ["ca.pem", "store.pem", "store-key.pem"] {
        assert!(certs.join(f).exists(), "fenced certs wrote no {f}");
    }
    let policy = write_policy(dir.path());
    let s = Store::start(dir.path(), &store_tls_args(&certs, None).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(s.output().contains("TLS on; no --auth policy"), "{}", s.output());
    drop(s); // replaced by one with the policy, on the same data directory
    let policy = policy.to_string_lossy();
    let s =
        Store::start(dir.path(), &store_tls_args(&certs, Some(&policy)).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(s.output().contains("TLS on; callers authenticated"), "{}", s.output());
    let (ca, alice_cert, alice_key) = (p("ca.pem"), p("alice.pem"), p("alice-key.pem"));
    let (mallory_cert, mallory_key) = (p("mallory.pem"), p("mallory-key.pem"));
    let alice = ["--ca", &ca, "--cert", &alice_cert, "--key", &alice_key];
    let mallory = ["--ca", &ca, "--cert", &mallory_cert, "--key", &mallory_key];

    // Plaintext to a TLS store: no answer (exit 2), nothing written.
    let (rc, out) = s.put("a/x", "v1", 5, &[]);
    assert_eq!((rc, code(&out)), (2, "unreachable".into()), "{out}");
    // TLS without a certificate or token: 401.
    let (rc, out) = s.put("a/x", "v1", 5, &["--ca", &ca]);
    assert_eq!((rc, code(&out)), (1, "unauthenticated".into()), "{out}");
    // A valid certificate without grants, and alice outside `a/`: 403.
    assert_eq!(code(&s.put("a/x", "v1", 5, &mallory).1), "forbidden");
    assert_eq!(code(&s.get("a/x", &mallory).1), "forbidden");
    assert_eq!(code(&s.put("b/x", "v1", 5, &alice).1), "forbidden");
    assert_eq!(code(&s.get("a/x", &alice).1), "not_found", "refused writes changed nothing");
    assert_eq!(code(&s.get("b/x", &["--ca", &ca, "--auth-token", BOB]).1), "not_found");

    // alice's certificate writes under `a/`; a bearer token over TLS works too.
    let (rc, out) = s.put("a/x", "v1", 5, &alice);
    assert_eq!((rc, code(&out)), (0, "ok".into()), "{out}");
    assert_eq!(value(&s.get("a/x", &["--ca", &ca, "--auth-token", ALICE]).1), "v1");
    assert_eq!(code(&s.put("a/x", "v2", 6, &mallory).1), "forbidden");
    assert_eq!(value(&s.get("a/x", &alice).1), "v1");
}

#[test]
fn a_policy_without_tls_is_refused_off_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = write_policy(dir.path());
    let key = encode_public_key(&signing_key().verifying_key());
    // Refused before binding anything: nothing listens on 0.0.0.0.
    let (rc, out) = fenced(
        &[
            "store",
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
            &dir.path().join("data").to_string_lossy(),
            "--cluster-key",
            &key,
            "--auth",
            &policy.to_string_lossy(),
        ],
        WITHIN,
    );
    assert_eq!(rc, 2, "{out}");
    assert!(out.contains("--auth on 0.0.0.0:0 needs --tls-ca"), "{out}");
}

/// The setup `fenced certs` prints, as processes: three replicas and a store
/// over TLS with its `auth.json` (each client owns `NAME/`), and
/// `fenced store put --lock` sending one client's certificate to both.
#[test]
fn the_fenced_certs_setup_secures_the_cluster_and_the_store_together() {
    let (dir, certs, out) = make_certs("alice,bob");
    assert!(out.contains("fenced store serve") && out.contains("store.pem"), "certs prints the store's command: {out}");
    let p = |f: &str| certs.join(f).to_string_lossy().into_owned();
    let auth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(certs.join("auth.json")).expect("auth.json")).expect("JSON");
    let bob_token = auth["tokens"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["identity"] == "bob"))
        .and_then(|t| t["token"].as_str())
        .expect("bob's token")
        .to_string();

    let addrs: BTreeMap<u64, String> = (1..=3).map(|i| (i, format!("127.0.0.1:{}", free_port()))).collect();
    let mut cluster = Cluster {
        dir: tempfile::tempdir().expect("tempdir"),
        bootstrap: addrs.clone(),
        addrs: addrs.clone(),
        procs: BTreeMap::new(),
    };
    let peers: Vec<String> = addrs.iter().map(|(i, a)| format!("{i}={a}")).collect();
    let peers = peers.join(",");
    for id in 1..=3u64 {
        let (cert, key) = (p(&format!("replica-{id}.pem")), p(&format!("replica-{id}-key.pem")));
        let tls = ["--tls-ca", &p("ca.pem"), "--tls-cert", &cert, "--tls-key", &key, "--auth", &p("auth.json")];
        let mut args = vec!["--peers", &peers];
        args.extend_from_slice(&tls);
        cluster.spawn_with(id, &args);
    }
    // Every replica prints the cluster's public key once it has one.
    let start = now();
    let key = loop {
        let found = (1..=3).find_map(|id| {
            let log = std::fs::read_to_string(cluster.log_path(id)).unwrap_or_default();
            log.lines().find_map(|l| l.strip_prefix("cluster public key: ").map(str::to_string))
        });
        if let Some(k) = found {
            break k;
        }
        assert!(now().since(start) < WITHIN, "no cluster key\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(100));
    };
    let store_dir = dir.path().join("store");
    std::fs::create_dir_all(&store_dir).expect("store dir");
    let auth = p("auth.json");
    let store = Store::start_with_key(
        &store_dir,
        &key,
        &store_tls_args(&certs, Some(&auth)).iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let endpoints = cluster.endpoints_arg();
    let (ca, cert, key) = (p("ca.pem"), p("alice.pem"), p("alice-key.pem"));
    let alice = ["--ca", ca.as_str(), "--cert", cert.as_str(), "--key", key.as_str()];
    let put_locked = |k: &str, v: &str, creds: &[&str]| {
        let mut args = vec!["store", "put", k, v, "--lock", k, "--wait", "10s", "--store", &store.addr];
        args.extend_from_slice(&["--endpoints", &endpoints, "--json"]);
        args.extend_from_slice(creds);
        fenced(&args, WITHIN)
    };
    // alice: the lock service grants `alice/orders`, the store takes its token.
    let (rc, out) = put_locked("alice/orders", "v1", &alice);
    assert_eq!((rc, code(&out)), (0, "ok".into()), "{out}\n{}", cluster.logs());
    assert_eq!(value(&store.get("alice/orders", &alice).1), "v1");
    // alice cannot take bob's lock; bob's token (over TLS) can, and writes.
    let (rc, out) = put_locked("bob/x", "v1", &alice);
    // (The lock CLI's refusal: `{"error": {"code": ...}, "status": 403}`.)
    assert!(rc == 1 && out.contains(r#""code":"forbidden""#) && out.contains(r#""status":403"#), "{out}");
    let bob = ["--ca", ca.as_str(), "--auth-token", bob_token.as_str()];
    assert_eq!(code(&store.get("bob/x", &bob).1), "not_found", "the refused write changed nothing");
    let (rc, out) = put_locked("bob/x", "v2", &bob);
    assert_eq!((rc, code(&out)), (0, "ok".into()), "{out}");
    assert_eq!(value(&store.get("bob/x", &bob).1), "v2");
}

/// `fenced certs` run into a fresh temporary directory's `certs/` for these
/// clients: the directory (removed on drop), the certificates' path, and
/// what the command printed.
fn make_certs(clients: &str) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let (rc, out) = fenced(&["certs", "--out", &certs.to_string_lossy(), "--clients", clients], WITHIN);
    assert_eq!(rc, 0, "fenced certs: {out}");
    (dir, certs, out)
}

/// `fenced store serve`'s TLS flags with the certificates `fenced certs`
/// wrote into `certs`, and the auth policy if given.
fn store_tls_args(certs: &std::path::Path, auth: Option<&str>) -> Vec<String> {
    let p = |f: &str| certs.join(f).to_string_lossy().into_owned();
    let mut args = vec![
        "--tls-ca".into(),
        p("ca.pem"),
        "--tls-cert".into(),
        p("store.pem"),
        "--tls-key".into(),
        p("store-key.pem"),
    ];
    if let Some(auth) = auth {
        args.extend(["--auth".into(), auth.to_string()]);
    }
    args
}
