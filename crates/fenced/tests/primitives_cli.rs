//! `fenced lock acquire --shared` and `fenced sem ...` as a user runs them:
//! real `fenced` processes against a real three-replica cluster
//! (docs/primitives.md). Every process is started and ended here, by pid;
//! every wait is bounded.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;
use support::{Cluster, BIN};

const WITHIN: Duration = Duration::from_secs(30);

/// Runs `fenced ARGS --endpoints ENDPOINTS`; (exit code, stdout and, on
/// failure, stderr).
fn run(cluster: &Cluster, args: &[&str]) -> (i32, String) {
    let eps = cluster.endpoints_arg();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--endpoints", &eps]);
    support::fenced(&all, WITHIN)
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_locks_and_semaphores_from_the_command_line() {
    let cluster = Cluster::start(3);
    support::cluster_key(&cluster, WITHIN).await;
    let eps = cluster.endpoints_arg();

    // Two shared acquires at once, as two processes: both are granted, each
    // with its own token.
    let shared = || {
        Command::new(BIN)
            .args(["lock", "acquire", "doc", "--ttl", "60s", "--shared", "--json", "--endpoints", &eps])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fenced")
    };
    let (a, b) = (shared(), shared());
    let ((ca, oa), (cb, ob)) = (support::wait_output(a, WITHIN), support::wait_output(b, WITHIN));
    assert_eq!((ca, cb), (0, 0), "both shared acquires succeed:\n{oa}\n{ob}");
    let (ga, gb) = (json(&oa), json(&ob));
    assert_eq!((ga["mode"].as_str(), gb["mode"].as_str()), (Some("shared"), Some("shared")));
    let (ta, tb) = (ga["token"].as_u64().expect("token"), gb["token"].as_u64().expect("token"));
    assert!(ta > 0 && tb > 0 && ta != tb, "distinct tokens: {ta}, {tb}");
    assert_ne!(ga["lease"], gb["lease"]);
    // A third shared acquire, later, gets a higher token than both.
    let (code, out) = run(&cluster, &["lock", "acquire", "doc", "--ttl", "60s", "--shared", "--json"]);
    assert_eq!(code, 0, "{out}");
    let tc = json(&out)["token"].as_u64().expect("token");
    assert!(tc > ta.max(tb), "tokens increase: {ta}, {tb}, then {tc}");

    let (code, out) = run(&cluster, &["lock", "status", "doc", "--json"]);
    assert_eq!(code, 0, "{out}");
    let st = json(&out);
    let mut holders: Vec<u64> =
        st["holders"].as_array().expect("holders").iter().filter_map(|h| h["token"].as_u64()).collect();
    holders.sort_unstable();
    let mut want = vec![ta, tb, tc];
    want.sort_unstable();
    assert_eq!(holders, want, "{out}");
    assert!(st["holder"].is_null(), "no exclusive holder: {out}");

    // An exclusive acquire is refused while readers hold, with the reason.
    let (code, out) = run(&cluster, &["lock", "acquire", "doc", "--ttl", "60s"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("busy"), "the refusal says why: {out}");

    // Semaphores: create with 2 permits, take both, a third is refused.
    let (code, out) = run(&cluster, &["sem", "permits", "pool", "--permits", "2"]);
    assert_eq!((code, out.trim()), (0, "pool: 2 permits, 0 held"));
    let take = || {
        let (code, out) = run(&cluster, &["sem", "acquire", "pool", "--ttl", "60s", "--json"]);
        assert_eq!(code, 0, "{out}");
        let g = json(&out);
        assert_eq!(g["mode"].as_str(), Some("permit"), "{out}");
        (g["slot"].as_u64().expect("slot"), g["token"].as_u64().expect("token"))
    };
    let (s1, t1) = take();
    let (s2, t2) = take();
    assert_eq!((s1, s2), (0, 1), "the lowest free slot each time");
    assert!(t2 > t1);
    let (code, out) = run(&cluster, &["sem", "acquire", "pool", "--ttl", "60s"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("busy"), "the refusal says why: {out}");
    let (code, out) = run(&cluster, &["sem", "permits", "pool", "--permits", "2", "--json"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(json(&out)["held"].as_u64(), Some(2), "{out}");

    // Releasing the first permit frees its slot for the next holder, with a
    // higher token.
    let t1s = t1.to_string();
    let (code, out) = run(&cluster, &["lock", "release", "pool", "--token", &t1s]);
    assert_eq!(code, 0, "{out}");
    let (s3, t3) = take();
    assert_eq!(s3, s1, "the freed slot is reused");
    assert!(t3 > t2);
    let (code, out) = run(&cluster, &["sem", "acquire", "pool", "--ttl", "60s", "--wait", "300ms"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("wait_timeout") || out.contains("busy"), "{out}");

    // Refusals print their reason text.
    for (args, needle) in [
        (&["sem", "permits", "pool", "--permits", "10001"][..], "invalid_argument"),
        (&["lock", "acquire", "pool", "--ttl", "60s"][..], "semaphore"),
        (&["lock", "acquire", "pool#0", "--ttl", "60s"][..], "slot 0 of semaphore \"pool\""),
        (&["sem", "permits", "doc", "--permits", "1"][..], "doc"),
    ] {
        let (code, out) = run(&cluster, args);
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(out.contains(needle), "{args:?}: the refusal lacks {needle:?}: {out}");
    }
}
