//! `fenced lock hold` on real processes: it ends its command only when the
//! lock is lost for good (a pause it re-confirms is not), and whenever it
//! ends its command the lock is free afterwards, not held until its TTL.
//! Bounded in time; every process is ended by pid.

mod support;

use std::process::Child;
use std::sync::mpsc::Receiver;
use std::time::Duration;
use support::{now, signal, Cluster};

/// Collect `hold`'s stderr until a line contains `what` (or `within` passes).
fn wait_line(rx: &Receiver<String>, lines: &mut Vec<String>, what: &str, within: Duration) -> Option<String> {
    let start = now();
    while now().since(start) < within {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(line.clone());
            if line.contains(what) {
                return Some(line);
            }
        }
    }
    None
}

/// Wait up to `within` for `hold` to exit; kill it (by pid) if it does not.
async fn exit_code(hold: &mut Child, within: Duration) -> Option<i32> {
    let start = now();
    let mut code = None;
    while now().since(start) < within {
        if let Some(s) = hold.try_wait().expect("try_wait") {
            code = Some(s.code().unwrap_or(-1));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if code.is_none() {
        signal(hold.id(), libc::SIGCONT);
        let _ = hold.kill();
    }
    let _ = hold.wait();
    code
}

/// The lock `job`'s holder as `fenced lock status` prints it.
fn status_line(cluster: &Cluster) -> String {
    let (code, out) =
        support::fenced(&["lock", "status", "job", "--endpoints", &cluster.endpoints_arg()], Duration::from_secs(20));
    assert_eq!(code, 0, "lock status failed: {out}");
    out
}

fn drain(rx: &Receiver<String>, lines: &mut Vec<String>) {
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        lines.push(line);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_shorter_than_the_ttl_is_reconfirmed_and_the_command_finishes() {
    let cluster = Cluster::start(3);
    cluster.leader(Duration::from_secs(20)).await.expect("leader");
    let (mut hold, rx) = support::spawn_hold_running(&cluster, "10s", &["sleep", "4"]);
    let mut lines = Vec::new();
    assert!(wait_line(&rx, &mut lines, " as pid ", Duration::from_secs(20)).is_some(), "no command: {lines:?}");
    // 1 s: far over the 200 ms margin, far under the 10 s TTL.
    signal(hold.id(), libc::SIGSTOP);
    tokio::time::sleep(Duration::from_secs(1)).await;
    signal(hold.id(), libc::SIGCONT);
    let code = exit_code(&mut hold, Duration::from_secs(15)).await;
    drain(&rx, &mut lines);
    assert_eq!(code, Some(0), "the command must run to its end after a re-confirmed pause: {lines:?}");
    assert!(lines.iter().any(|l| l.contains("paused")), "hold noticed the pause: {lines:?}");
    assert!(lines.iter().any(|l| l.contains("re-confirmed")), "and re-confirmed the lock: {lines:?}");
    assert!(!lines.iter().any(|l| l.contains("terminating")), "and never ended the command: {lines:?}");
    let status = status_line(&cluster);
    assert!(status.contains("job: free"), "released when the command ended: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_hold_ends_its_command_and_frees_the_lock_at_once() {
    let cluster = Cluster::start(3);
    cluster.leader(Duration::from_secs(20)).await.expect("leader");
    let (mut hold, rx) = support::spawn_hold_running(&cluster, "60s", &["sleep", "60"]);
    let mut lines = Vec::new();
    let line = wait_line(&rx, &mut lines, " as pid ", Duration::from_secs(20)).expect("hold started its command");
    let child: u32 = line.split(" as pid ").nth(1).and_then(|p| p.trim().parse().ok()).expect("child pid");
    assert!(status_line(&cluster).contains("held by lease"), "held while the command runs");
    signal(hold.id(), libc::SIGTERM);
    let code = exit_code(&mut hold, Duration::from_secs(15)).await;
    drain(&rx, &mut lines);
    assert_eq!(code, Some(128 + libc::SIGTERM), "{lines:?}");
    assert!(!std::path::Path::new(&format!("/proc/{child}")).exists(), "the command (pid {child}) still runs");
    // Long before the 60 s TTL: the lock was released, not left to expire.
    let status = status_line(&cluster);
    assert!(status.contains("job: free"), "the lock must be free once hold ended its command: {status}\n{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_lost_for_good_ends_the_command_and_leaves_the_lock_free() {
    let cluster = Cluster::start(3);
    cluster.leader(Duration::from_secs(20)).await.expect("leader");
    let (mut hold, rx) = support::spawn_hold_running(&cluster, "60s", &["sleep", "60"]);
    let mut lines = Vec::new();
    let line = wait_line(&rx, &mut lines, "(lease ", Duration::from_secs(20)).expect("hold took the lock");
    let lease: u64 = line
        .rsplit("(lease ")
        .next()
        .and_then(|l| l.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no lease in {line:?}"));
    assert!(wait_line(&rx, &mut lines, " as pid ", Duration::from_secs(20)).is_some(), "no command: {lines:?}");
    // An operator revokes the lease: the cluster ends the lock for good.
    cluster.client().revoke(lease).await.expect("revoke");
    let code = exit_code(&mut hold, Duration::from_secs(15)).await;
    drain(&rx, &mut lines);
    assert_eq!(code, Some(75), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("terminating the command")), "{lines:?}");
    let status = status_line(&cluster);
    assert!(status.contains("job: free"), "{status}");
}
