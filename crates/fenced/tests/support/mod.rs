//! Real `fenced serve` processes on loopback, for integration tests.
//!
//! Every process is started here and ended here, by its pid; `Drop` kills
//! whatever is left, so a failing test does not leak replicas.

#![allow(dead_code)]

use fenced_client::{Client, ClientConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_fenced");
pub const HEARTBEAT: &str = "50ms";
/// The shortest election timeout; the longest is twice this.
pub const ELECTION_TIMEOUT: Duration = Duration::from_millis(300);

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub addrs: BTreeMap<u64, String>,
    pub procs: BTreeMap<u64, Child>,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid this test spawned.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

impl Cluster {
    pub fn start(n: u64) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let addrs: BTreeMap<u64, String> = (1..=n).map(|i| (i, format!("127.0.0.1:{}", free_port()))).collect();
        let mut c = Cluster { dir, addrs, procs: BTreeMap::new() };
        for id in 1..=n {
            c.spawn(id);
        }
        c
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("r{id}"))
    }

    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("r{id}.log"))
    }

    pub fn spawn(&mut self, id: u64) {
        let peers: Vec<String> = self.addrs.iter().map(|(i, a)| format!("{i}={a}")).collect();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path(id)).expect("log file");
        let child = Command::new(BIN)
            .args(["serve", "--id", &id.to_string(), "--listen", &self.addrs[&id], "--peers", &peers.join(",")])
            .args(["--data-dir", &self.data_dir(id).to_string_lossy()])
            .args(["--heartbeat", HEARTBEAT, "--election-timeout", "300ms"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn fenced serve");
        self.procs.insert(id, child);
    }

    /// `kill -9`.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.procs.remove(&id) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self, id: u64) -> u32 {
        self.procs[&id].id()
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.addrs.values().cloned().collect()
    }

    pub fn endpoints_arg(&self) -> String {
        self.endpoints().join(",")
    }

    pub fn client(&self) -> Client {
        let mut cfg = ClientConfig::new(self.endpoints());
        cfg.request_timeout = Duration::from_secs(1);
        cfg.call_timeout = Duration::from_secs(15);
        Client::new(cfg).expect("client")
    }

    /// The leader that a majority agrees on, waiting up to `within`.
    pub async fn leader(&self, within: Duration) -> Option<u64> {
        let client = self.client();
        let start = Instant::now();
        while start.elapsed() < within {
            let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
            for ep in self.endpoints() {
                if let Ok(s) = client.cluster_status_of(&ep).await {
                    if let Some(l) = s.leader {
                        *votes.entry(l).or_default() += 1;
                    }
                }
            }
            if let Some((l, _)) = votes.into_iter().find(|(_, n)| n * 2 > self.addrs.len()) {
                if self.procs.contains_key(&l) && client.cluster_key().await.is_ok() {
                    return Some(l);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Every replica's log, as `fenced debug log --json` prints it. The
    /// replicas must be stopped.
    pub fn dump_log(&self, id: u64) -> Vec<serde_json::Value> {
        dump_log(&self.data_dir(id))
    }

    pub fn logs(&self) -> String {
        self.addrs
            .keys()
            .map(|id| format!("--- replica {id}\n{}", std::fs::read_to_string(self.log_path(*id)).unwrap_or_default()))
            .collect()
    }
}

pub fn dump_log(dir: &Path) -> Vec<serde_json::Value> {
    let out = Command::new(BIN)
        .args(["debug", "log", "--json", "--data-dir", &dir.to_string_lossy()])
        .output()
        .expect("run fenced debug log");
    assert!(out.status.success(), "debug log failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.procs) {
            signal(c.id(), libc::SIGCONT);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
