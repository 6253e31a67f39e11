//! A chaos runner killed with `-9` cannot clean up after itself. Its
//! processes die with it (they are started with PR_SET_PDEATHSIG), and its
//! namespaces, which outlive it, are found and removed by the next run at
//! start (`netns::remove_leftovers`, the first thing a run does).
//!
//! Needs root, `ip netns` and `nft`; fails under `CI` without them and is
//! skipped elsewhere. Uses the `fenced` binary next to this test executable.

mod common;

use fenced_chaos::netns;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Children of `pid` (from /proc), with their command lines.
fn children(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for e in dir.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        // `pid (comm) state ppid …`; comm may contain spaces, so split after ')'.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            let cmd = std::fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default().replace('\0', " ");
            out.push((p, cmd));
        }
    }
    out
}

/// Alive and not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next().map(|st| st != "Z")))
        .unwrap_or(false)
}

fn ours(run: u32) -> Vec<String> {
    let prefix = format!("fchaos-{run}-");
    netns::list_namespaces().expect("ip netns list").into_iter().filter(|n| n.starts_with(&prefix)).collect()
}

#[test]
fn a_runner_killed_with_sigkill_leaves_nothing_the_next_run_does_not_remove() {
    if !common::can_run(&[]) {
        return;
    }
    let out = std::env::temp_dir().join(format!("fenced-chaos-leftover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut runner = Command::new(common::fenced_bin())
        .args(["chaos", "--target", "fenced", "--duration", "60s", "--nemesis", "kill", "--seed", "5", "--out"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the chaos runner");
    let run = runner.id();
    // Wait until the workload runs: replicas and client processes exist.
    let t0 = fenced_io::clock::now();
    let started = loop {
        let kids = children(run);
        if kids.iter().any(|(_, c)| c.contains("chaos client")) {
            break kids;
        }
        if fenced_io::clock::now().since(t0) > Duration::from_secs(90) || !running(run) {
            let _ = runner.kill();
            let _ = runner.wait();
            let _ = netns::remove_leftovers();
            panic!("the runner never started its clients (see {})", out.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(started.iter().any(|(_, c)| c.contains(" serve ")), "no replica among {started:?}");
    assert!(!ours(run).is_empty(), "the runner's namespaces should exist");

    // SAFETY: kill(2) on the child this test started.
    unsafe {
        libc::kill(run as libc::pid_t, libc::SIGKILL);
    }
    let _ = runner.wait();

    // Its processes die with it.
    let t1 = fenced_io::clock::now();
    while started.iter().any(|(p, _)| running(*p)) && fenced_io::clock::now().since(t1) < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let survivors: Vec<_> = started.iter().filter(|(p, _)| running(*p)).collect();
    assert!(survivors.is_empty(), "processes of the killed runner survived: {survivors:?}");

    // Its namespaces do not; the next run's start removes them.
    let left = ours(run);
    assert!(!left.is_empty(), "expected the killed runner's namespaces to remain until the next run");
    let removed = netns::remove_leftovers().expect("remove leftovers");
    for ns in &left {
        assert!(removed.contains(ns), "{ns} was not removed (removed: {removed:?})");
    }
    assert!(ours(run).is_empty(), "namespaces left behind: {:?}", ours(run));
    let veth = format!("fc{run}r");
    assert!(netns::run("ip", &["link", "show", &veth]).is_err(), "the root veth {veth} survived");
    let _ = std::fs::remove_dir_all(&out);
}
