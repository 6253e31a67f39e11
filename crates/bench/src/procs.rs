//! Child processes: a 3-replica fenced cluster and a 3-member etcd cluster on
//! loopback, data on the same disk (a tempdir), fsync on. Every child is
//! ended by its own pid when its handle drops.

use crate::error::BenchError;
use fenced_io::process::{self, Owned};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// One child process we started.
pub struct Member {
    /// The client endpoint, `127.0.0.1:PORT`.
    pub endpoint: String,
    /// fenced replica id, or the etcd member's position (1-based).
    pub id: u64,
    /// Ended by its pid when the member drops.
    child: Owned,
}

impl Member {
    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    /// SIGKILL this member (by pid) and reap it.
    pub fn kill(&mut self) {
        self.child.end();
    }

    pub fn alive(&self) -> bool {
        self.child.alive()
    }

    /// Resident set size from `/proc/PID/status` (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        process::rss_kib(self.pid()?)
    }
}

/// A running cluster: its members and the tempdir that holds their data
/// (removed on drop, after the members are killed).
pub struct Cluster {
    pub members: Vec<Member>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.endpoint.clone()).collect()
    }

    pub fn member_mut(&mut self, endpoint: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.endpoint == endpoint)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
    }
}

fn free_ports(n: usize) -> Result<Vec<u16>, BenchError> {
    process::free_loopback_ports(n).map_err(|source| BenchError::Spawn { what: "a loopback listener".into(), source })
}

fn tempdir(prefix: &str) -> Result<tempfile::TempDir, BenchError> {
    // Same disk as the working directory (not tmpfs), so fsync costs what it costs.
    let base = std::env::current_dir().map_err(|source| BenchError::Io { path: ".".into(), source })?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&base)
        .map_err(|source| BenchError::Io { path: base.clone(), source })
}

fn log_file(path: &Path) -> Result<(File, File), BenchError> {
    let f = File::create(path).map_err(|source| BenchError::Io { path: path.to_path_buf(), source })?;
    let g = f.try_clone().map_err(|source| BenchError::Io { path: path.to_path_buf(), source })?;
    Ok((f, g))
}

fn spawn(what: &str, mut cmd: Command, log: &Path) -> Result<Child, BenchError> {
    let (out, err) = log_file(log)?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    cmd.spawn().map_err(|source| BenchError::Spawn { what: what.to_string(), source })
}

/// Start three `fenced serve` replicas (the binary at `fenced`), default
/// heartbeat and election timeouts.
pub fn start_fenced(fenced: &Path) -> Result<Cluster, BenchError> {
    let dir = tempdir(".fenced-bench-")?;
    let ports = free_ports(3)?;
    let peers: Vec<String> = ports.iter().enumerate().map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1)).collect();
    let peers = peers.join(",");
    let mut members = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let id = i as u64 + 1;
        let data: PathBuf = dir.path().join(format!("r{id}"));
        let mut cmd = Command::new(fenced);
        cmd.arg("serve")
            .args(["--id", &id.to_string()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--peers", &peers])
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", "warn");
        let child = spawn(&format!("fenced replica {id}"), cmd, &dir.path().join(format!("r{id}.log")))?;
        members.push(Member { endpoint: format!("127.0.0.1:{port}"), id, child: Owned::new(child) });
    }
    Ok(Cluster { members, _dir: dir })
}

/// Is `etcd` on PATH?
pub fn etcd_available() -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join("etcd").is_file())).unwrap_or(false)
}

/// Start a 3-member etcd cluster (its defaults: fsync on, 100 ms heartbeat,
/// 1 s election timeout).
pub fn start_etcd() -> Result<Cluster, BenchError> {
    if !etcd_available() {
        return Err(BenchError::EtcdMissing);
    }
    let dir = tempdir(".etcd-bench-")?;
    let ports = free_ports(6)?;
    let initial: Vec<String> = (0..3).map(|i| format!("m{}=http://127.0.0.1:{}", i + 1, ports[3 + i])).collect();
    let initial = initial.join(",");
    let mut members = Vec::new();
    for i in 0..3 {
        let name = format!("m{}", i + 1);
        let client = format!("http://127.0.0.1:{}", ports[i]);
        let peer = format!("http://127.0.0.1:{}", ports[3 + i]);
        let mut cmd = Command::new("etcd");
        cmd.args(["--name", &name])
            .arg("--data-dir")
            .arg(dir.path().join(&name))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial, "--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "fenced-bench", "--logger", "zap", "--log-level", "error"]);
        let child = spawn(&format!("etcd member {name}"), cmd, &dir.path().join(format!("{name}.log")))?;
        members.push(Member {
            endpoint: format!("127.0.0.1:{}", ports[i]),
            id: i as u64 + 1,
            child: Owned::new(child),
        });
    }
    Ok(Cluster { members, _dir: dir })
}
