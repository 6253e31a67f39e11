//! The namespaces, veths and bridge of a run, built with `ip` and torn down
//! by name. Only addresses of our own plan are configured; the host's own
//! interfaces and routes are never touched, except for the one veth the root
//! namespace gets on the bridge (and its connected /24 route, which goes
//! away with it).

use crate::error::ChaosError;
use crate::plan::{self, AddressPlan};
use std::io::Write;
use std::process::{Command, Stdio};

/// Run a command, returning its stdout.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, ChaosError> {
    run_stdin(cmd, args, None)
}

/// Run a command with `input` on its stdin.
pub fn run_stdin(cmd: &str, args: &[&str], input: Option<&str>) -> Result<String, ChaosError> {
    let line = format!("{cmd} {}", args.join(" "));
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ChaosError::Spawn { cmd: line.clone(), source })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).map_err(|source| ChaosError::Spawn { cmd: line.clone(), source })?;
    }
    let out = child.wait_with_output().map_err(|source| ChaosError::Spawn { cmd: line.clone(), source })?;
    if !out.status.success() {
        return Err(ChaosError::Command { cmd: line, stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() });
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// Is `tool` on the PATH?
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the pid exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// Every namespace name `ip netns list` shows.
pub fn list_namespaces() -> Result<Vec<String>, ChaosError> {
    let out = run("ip", &["netns", "list"])?;
    Ok(out.lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect())
}

/// Remove what a crashed earlier run left behind: namespaces of ours whose
/// driver pid is dead. Their processes (which that run started) are killed
/// first, since a namespace lives on while a process is in it. Returns the
/// namespaces removed.
pub fn remove_leftovers() -> Result<Vec<String>, ChaosError> {
    let mut removed = Vec::new();
    for ns in list_namespaces()? {
        let Some(run_id) = plan::run_of(&ns) else { continue };
        if run_id == std::process::id() || pid_alive(run_id) {
            continue;
        }
        kill_namespace_pids(&ns);
        let _ = run("ip", &["link", "del", &AddressPlan::new(run_id, 0).root_veth()]);
        if run("ip", &["netns", "del", &ns]).is_ok() {
            removed.push(ns);
        }
    }
    Ok(removed)
}

/// SIGKILL every process inside `ns` (only used on our own namespaces).
fn kill_namespace_pids(ns: &str) {
    if let Ok(out) = run("ip", &["netns", "pids", ns]) {
        for pid in out.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: kill(2) on a process inside one of our namespaces.
            unsafe {
                libc::kill(pid, libc::SIGCONT);
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// The network of one run. Everything created is recorded as it is created,
/// so a half-built network is torn down as completely as a full one.
#[derive(Debug)]
pub struct Net {
    pub plan: AddressPlan,
    namespaces: Vec<String>,
    root_veth: Option<String>,
}

impl Net {
    pub fn new(plan: AddressPlan) -> Self {
        Net { plan, namespaces: Vec::new(), root_veth: None }
    }

    fn add_ns(&mut self, ns: &str) -> Result<(), ChaosError> {
        run("ip", &["netns", "add", ns])?;
        self.namespaces.push(ns.to_string());
        run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Build the bridge namespace, one namespace per member, and the root's
    /// veth onto the bridge.
    pub fn create(&mut self) -> Result<(), ChaosError> {
        let br = self.plan.bridge_ns();
        self.add_ns(&br)?;
        run("ip", &["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &br, "link", "set", "br0", "up"])?;
        for (ns, (member, ip)) in self.plan.members() {
            self.add_ns(&ns)?;
            let port = AddressPlan::bridge_port(&member);
            run("ip", &["-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns", &br])?;
            run("ip", &["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &br, "link", "set", &port, "master", "br0", "up"])?;
        }
        let root = self.plan.root_veth();
        let port = AddressPlan::bridge_port("r");
        run("ip", &["link", "add", &root, "type", "veth", "peer", "name", &port, "netns", &br])?;
        self.root_veth = Some(root.clone());
        run("ip", &["addr", "add", &format!("{}/24", self.plan.root_ip()), "dev", &root])?;
        run("ip", &["link", "set", &root, "up"])?;
        run("ip", &["-n", &br, "link", "set", &port, "master", "br0", "up"])?;
        Ok(())
    }

    /// Tear everything down. Processes must be gone already (see
    /// `procs::Procs::kill_all`); any that are not are killed here, since a
    /// namespace survives `ip netns del` while a process is inside it.
    /// Returns what could not be removed.
    pub fn destroy(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(root) = self.root_veth.take() {
            let _ = run("ip", &["link", "del", &root]);
        }
        for ns in std::mem::take(&mut self.namespaces).into_iter().rev() {
            kill_namespace_pids(&ns);
            if let Err(e) = run("ip", &["netns", "del", &ns]) {
                problems.push(format!("{ns}: {e}"));
            }
        }
        problems
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = self.destroy();
    }
}
