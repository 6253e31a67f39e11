//! Real `fenced serve` processes on loopback, for integration tests.
//!
//! Every process is started here and ended here, by its pid; `Drop` kills
//! whatever is left, so a failing test does not leak replicas.

#![allow(dead_code)]

pub mod browser;
pub mod workload;

use fenced_client::{Client, ClientConfig};
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `fenced` binary under test: cargo's, or `FENCED_TEST_BIN` if set (to
/// test a binary copied out of a target directory that other builds share).
pub const BIN: Bin = Bin;

#[derive(Debug, Clone, Copy)]
pub struct Bin;

impl Bin {
    fn path(&self) -> &'static str {
        static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        PATH.get_or_init(|| std::env::var("FENCED_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_fenced").into()))
    }
}

impl AsRef<std::ffi::OsStr> for Bin {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.path().as_ref()
    }
}

impl std::fmt::Display for Bin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path())
    }
}
pub const HEARTBEAT: &str = "50ms";
/// The shortest election timeout; the longest is twice this.
pub const ELECTION_TIMEOUT: Duration = Duration::from_millis(300);

pub struct Cluster {
    pub dir: tempfile::TempDir,
    /// Every replica's address, spares (not started yet) included.
    pub addrs: BTreeMap<u64, String>,
    /// The replicas that created the cluster (`--peers`).
    pub bootstrap: BTreeMap<u64, String>,
    pub procs: BTreeMap<u64, Child>,
}

/// A free `IP:port` on a loopback address of this test process's own.
///
/// Ports picked by binding port 0 on 127.0.0.1 and releasing it can be taken
/// before a replica binds them, or while a killed replica is down, by another
/// test running at the same time or by any outgoing connection (whose source
/// is 127.0.0.1 and an ephemeral port). Each test runs in its own process
/// (nextest), so an address derived from the pid, `127.a.b.c` with `a >= 1`,
/// is shared with no concurrent test, and no outgoing connection ever has it
/// as its source: a replica restarted later can always bind its port again.
fn free_addr() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let pid = std::process::id();
    let nth = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ip = std::net::Ipv4Addr::new(127, 1 + (pid % 250) as u8, ((pid / 250) % 256) as u8, 1 + (nth % 250) as u8);
    let l = std::net::TcpListener::bind((ip, 0)).expect("bind port 0 on a loopback address");
    let port = l.local_addr().expect("local addr").port();
    format!("{ip}:{port}")
}

use fenced_io::process::end;
/// The harness the benchmark and the chaos runner use too.
pub use fenced_io::process::signal;

impl Cluster {
    pub fn start(n: u64) -> Cluster {
        Cluster::start_with_spares(n, 0)
    }

    /// `n` replicas that create the cluster, and addresses for `spares` more
    /// (ids `n+1..`), to be started with [`Cluster::spawn_with`] and `--join`.
    pub fn start_with_spares(n: u64, spares: u64) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let addrs: BTreeMap<u64, String> = (1..=n + spares).map(|i| (i, free_addr())).collect();
        // `n` may be 0: addresses only, for a cluster started by other means (a restore).
        let bootstrap = addrs.iter().filter(|(i, _)| **i <= n).map(|(i, a)| (*i, a.clone())).collect();
        let mut c = Cluster { dir, addrs, bootstrap, procs: BTreeMap::new() };
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
        let peers: Vec<String> = self.bootstrap.iter().map(|(i, a)| format!("{i}={a}")).collect();
        self.spawn_with(id, &["--peers", &peers.join(",")]);
    }

    /// Start replica `id` with `extra` flags (`--join`, `--peers …`, or
    /// nothing: a restart that trusts its data directory).
    pub fn spawn_with(&mut self, id: u64, extra: &[&str]) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path(id)).expect("log file");
        let child = Command::new(BIN)
            .args(["serve", "--id", &id.to_string(), "--listen", &self.addrs[&id]])
            .args(extra)
            .args(["--data-dir", &self.data_dir(id).to_string_lossy()])
            .args(["--heartbeat", HEARTBEAT, "--election-timeout", "300ms"])
            // The checkers read every decision back from the whole log, as the
            // chaos runner's replicas keep it; an optimised build grants fast
            // enough to pass the default 10 000 entries within one test.
            .args(["--snapshot-every", fenced_chaos::procs::SNAPSHOT_EVERY])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn fenced serve");
        self.procs.insert(id, child);
    }

    /// `kill -9`.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.procs.remove(&id) {
            end(&mut c);
        }
    }

    /// SIGTERM (`fenced serve` drains, then stops), and reap it. Returns its
    /// exit code, or `None` if it had to be killed after `within`.
    pub fn terminate(&mut self, id: u64, within: Duration) -> Option<i32> {
        let mut c = self.procs.remove(&id)?;
        signal(c.id(), libc::SIGTERM);
        let start = now();
        while now().since(start) < within {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        end(&mut c);
        None
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
        let start = now();
        while now().since(start) < within {
            let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
            for ep in self.endpoints() {
                if let Ok(s) = client.cluster_status_of(&ep).await {
                    if let Some(l) = s.leader {
                        *votes.entry(l).or_default() += 1;
                    }
                }
            }
            if let Some((l, _)) = votes.into_iter().find(|(_, n)| n * 2 > self.bootstrap.len()) {
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
            end(&mut c);
        }
    }
}

/// The cluster's public key (`ed25519:…`), for `fenced store --cluster-key`,
/// asked of the cluster itself so that the store trusts exactly what it signs.
pub async fn cluster_key(cluster: &Cluster, within: Duration) -> String {
    let client = cluster.client();
    let start = now();
    loop {
        match client.cluster_key().await {
            Ok(k) => return k.public_key,
            Err(e) if now().since(start) > within => {
                panic!("no cluster key within {within:?}: {e}\n{}", cluster.logs())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// One real `fenced store serve` process, restartable on the same address
/// and data directory (for `kill -9` tests). Ended by its pid on drop.
pub struct StoreProc {
    pub addr: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    /// `None` for `--unsafe-no-fencing`.
    pub cluster_key: Option<String>,
    pub child: Option<Child>,
}

impl StoreProc {
    /// Starts a store under `dir` (data in `dir/data`, log in `dir/store.log`)
    /// and waits until it answers. `cluster_key: None` runs it unfenced.
    pub async fn start(dir: &Path, cluster_key: Option<&str>) -> StoreProc {
        std::fs::create_dir_all(dir).expect("store dir");
        let mut s = StoreProc {
            addr: free_addr(),
            data_dir: dir.join("data"),
            log_path: dir.join("store.log"),
            cluster_key: cluster_key.map(String::from),
            child: None,
        };
        s.spawn();
        s.wait_ready(Duration::from_secs(20)).await;
        s
    }

    /// Spawns the process (again, after [`StoreProc::kill9`]).
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "store already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path).expect("store log");
        let mut cmd = Command::new(BIN);
        cmd.args(["store", "serve", "--listen", &self.addr, "--data-dir", &self.data_dir.to_string_lossy()]);
        match &self.cluster_key {
            Some(k) => cmd.args(["--cluster-key", k]),
            None => cmd.arg("--unsafe-no-fencing"),
        };
        let child = cmd.stdout(Stdio::null()).stderr(log).spawn().expect("spawn fenced store serve");
        self.child = Some(child);
    }

    /// Waits until a read succeeds; panics with the log after `within`.
    pub async fn wait_ready(&self, within: Duration) {
        let client = self.client();
        let start = now();
        while now().since(start) < within {
            if client.get("readiness-probe").await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("store at {} not ready within {within:?}\n{}", self.addr, self.log());
    }

    /// `kill -9`, and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            end(&mut c);
        }
    }

    /// A typed client with a short timeout, so that a write to a dead store
    /// fails fast instead of holding a test loop.
    pub fn client(&self) -> fenced_store::StoreClient {
        let http = fenced_io::http::HttpClient::new(std::sync::Arc::new(fenced_io::transport::TcpTransport));
        fenced_store::StoreClient::new(http, self.addr.clone()).with_timeout(Duration::from_secs(2))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for StoreProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs `fenced ARGS` to completion (bounded by `within`: killed after it)
/// and returns its exit code and standard output.
pub fn fenced(args: &[&str], within: Duration) -> (i32, String) {
    let child =
        Command::new(BIN).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn fenced");
    wait_output(child, within)
}

/// Waits for `child` up to `within` (then kills it by pid) and returns its
/// exit code (-1 if killed by a signal) and standard output. Standard error
/// is appended to the output on failure, for the assertion message.
pub fn wait_output(child: Child, within: Duration) -> (i32, String) {
    let (code, mut text, err) = wait_output_all(child, within);
    if code != 0 {
        text.push_str(&err);
    }
    (code, text)
}

/// Waits for `child` up to `within` (then kills it by pid) and returns its
/// exit code (-1 if killed by a signal), standard output and standard error.
/// Both pipes are drained while it runs, so a chatty child cannot block.
pub fn wait_output_all(child: Child, within: Duration) -> (i32, String, String) {
    let (code, out) = fenced_io::process::wait_output(child, within).expect("wait for the child");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (code.unwrap_or(-1), text(out.stdout), text(out.stderr))
}

/// One acknowledged grant, with real-time bounds of its request.
#[derive(Debug, Clone)]
pub struct Acked {
    pub lock: String,
    pub token: u64,
    pub invoked: fenced_core::toolbox::clock::Mono,
    pub completed: fenced_core::toolbox::clock::Mono,
}

/// The grants one replica's whole log decided (committed or not), read back
/// as the simulator and the chaos runner read logs (`fenced_check::readback`:
/// replayed through the real state machine) and judged by the same checker of
/// exclusion (S4). Panics with the verdict if the log breaks it, and if it
/// cannot be read back whole (compacted, or a request that does not decode).
pub fn grants_in_log(entries: &[serde_json::Value]) -> BTreeSet<(String, u64)> {
    use fenced_check::history::History;
    use fenced_check::readback::{read_back, Commit};
    // One replica's whole log: every entry it holds is a "majority" of one.
    let log = fenced_chaos::run::replica_log(1, entries);
    let read = read_back(&[log], Commit::Majority { voters: 1 }, 0);
    assert!(read.notes.is_empty(), "the log could not be read back whole: {:?}", read.notes);
    let history = History::new(read.events);
    let verdict = fenced_check::checkers::s4::check(&history, &Default::default());
    assert_eq!(verdict.status, fenced_check::verdict::Status::Valid, "{verdict:?}");
    let grants = history.events.iter().filter(|e| e.f == "grant");
    grants
        .map(|e| {
            let (lock, token, index) = (e.value["lock"].as_str(), e.value["token"].as_u64(), e.value["index"].as_u64());
            let (Some(lock), Some(token)) = (lock, token) else { panic!("a grant without lock or token: {e:?}") };
            assert_eq!(Some(token), index, "token {token} is not its granting entry's index {index:?}");
            (lock.to_string(), token)
        })
        .collect()
}

/// Monotonic time for tests, through the clock seam.
pub fn now() -> fenced_core::toolbox::clock::Mono {
    fenced_io::clock::now()
}

/// `fenced lock hold job --ttl TTL -- sleep 60` against `cluster`, with its
/// stderr lines delivered on the returned channel.
pub fn spawn_hold(cluster: &Cluster, ttl: &str) -> (Child, std::sync::mpsc::Receiver<String>) {
    spawn_hold_running(cluster, ttl, &["sleep", "60"])
}

/// `fenced lock hold job --ttl TTL -- CMD…`, as [`spawn_hold`].
pub fn spawn_hold_running(cluster: &Cluster, ttl: &str, cmd: &[&str]) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut hold = Command::new(BIN)
        .args(["lock", "hold", "job", "--ttl", ttl, "--endpoints", &cluster.endpoints_arg(), "--"])
        .args(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hold");
    let stderr = hold.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (hold, rx)
}

/// S1 and S2 on acknowledged grants: tokens are unique, and a grant that
/// completed before another began has the smaller token.
pub fn assert_unique_and_monotonic(acked: &[Acked]) {
    let tokens: std::collections::BTreeSet<u64> = acked.iter().map(|a| a.token).collect();
    assert_eq!(tokens.len(), acked.len(), "a token was granted twice");
    for x in acked {
        for y in acked {
            if x.completed < y.invoked {
                assert!(x.token < y.token, "grant {x:?} completed before {y:?} began, yet its token is not smaller");
            }
        }
    }
}

/// One client of a lock workload: up to `cycles` times, acquire one of two
/// locks (queueing up to `wait`), record the acknowledged grant, release.
/// An unknown outcome gives the lease up and starts over with a new one.
/// Stops early when `stop` is set; counts finished cycles in `done`.
pub async fn lock_worker(
    client: Client,
    w: usize,
    cycles: usize,
    wait: Duration,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    done: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    acked: std::sync::Arc<std::sync::Mutex<Vec<Acked>>>,
) {
    use std::sync::atomic::Ordering;
    let Ok(l) = client.grant_lease(Duration::from_secs(10)).await else { return };
    let mut lease = l.lease;
    for i in 0..cycles {
        if stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        let lock = format!("lock-{}", (w + i) % 2);
        let invoked = now();
        let renew = match client.acquire_on(&lock, lease, wait, "").await {
            Ok(g) => {
                let completed = now();
                acked.lock().expect("lock").push(Acked { lock: lock.clone(), token: g.token.0, invoked, completed });
                // A lost release reply is fine: the retry inside the client
                // reuses the request id.
                client.release(&lock, lease, g.token.0).await.is_err()
            }
            // Unknown outcome: the lease might hold the lock.
            Err(_) => true,
        };
        if renew {
            let _ = client.revoke(lease).await;
            let Ok(l) = client.grant_lease(Duration::from_secs(10)).await else { return };
            lease = l.lease;
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    let _ = client.revoke(lease).await;
}
