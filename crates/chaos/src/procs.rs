//! Every process a run starts, by pid: replicas and the store inside their
//! namespaces (`ip netns exec` execs the binary, so the child's pid is the
//! server's pid), and the client processes in the root namespace. Whatever
//! happens, [`Procs::kill_all`] (also run on drop) ends exactly these.

use crate::error::ChaosError;
use crate::plan::{AddressPlan, ETCD_PEER_PORT, REPLICA_PORT};
use crate::target::{StoreMode, Target};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// Where Debian's `faketime` package puts the multi-threaded preload library.
const FAKETIME_LIBS: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
];

/// The libfaketime preload library, if installed.
pub fn faketime_lib() -> Option<PathBuf> {
    FAKETIME_LIBS.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Every child gets SIGKILL when the thread that started it dies
/// ([`die_with_parent`]), so that a chaos runner killed with `-9` takes its
/// processes with it (the next run's leftover sweep only finds what lives
/// inside namespaces). The driver starts processes from the thread that runs
/// its future, which lives as long as the run.
pub use fenced_io::process::{die_with_parent, signal};

/// Timing of the replicas: a real network with up to 200 ms of netem delay
/// needs more room than loopback.
pub const HEARTBEAT: &str = "100ms";
pub const ELECTION_TIMEOUT: &str = "1s";
/// [`ELECTION_TIMEOUT`] as a duration (`fenced serve` makes the longest
/// election timeout twice the shortest).
pub const ELECTION_TIMEOUT_MIN: Duration = Duration::from_secs(1);

/// The lease TTLs the chaos cluster's fenced replicas accept: the shortest is
/// what `fenced serve` derives from [`ELECTION_TIMEOUT`] (a lease must
/// outlive a failover), the longest its default. A TTL outside it is refused
/// by every acquire, so a run with it would judge nothing but refusals.
pub fn fenced_ttl_range() -> (Duration, Duration) {
    let min = fenced_replica::config::check::safe_min_ttl(ELECTION_TIMEOUT_MIN, ELECTION_TIMEOUT_MIN * 2);
    let max = fenced_replica::config::ReplicaConfig::new(1, String::new(), BTreeMap::new()).max_ttl;
    (min, max)
}
/// Log entries between snapshots: far more than a long run writes (a
/// 10-minute run writes a few hundred thousand).
pub const SNAPSHOT_EVERY: &str = "100000000";

pub struct Procs {
    pub bin: PathBuf,
    pub target: Target,
    pub dir: PathBuf,
    pub plan: AddressPlan,
    /// The libfaketime library replicas are started with, if any.
    pub faketime: Option<PathBuf>,
    replicas: BTreeMap<u64, Child>,
    store: Option<Child>,
    clients: BTreeMap<u64, Child>,
}

fn log_file(path: &Path) -> Result<File, ChaosError> {
    fenced_io::process::append_log(path).map_err(|source| ChaosError::Write { path: path.to_path_buf(), source })
}

fn reap(mut c: Child) {
    fenced_io::process::end(&mut c);
}

impl Procs {
    pub fn new(bin: PathBuf, target: Target, dir: PathBuf, plan: AddressPlan, faketime: Option<PathBuf>) -> Self {
        Procs { bin, target, dir, plan, faketime, replicas: BTreeMap::new(), store: None, clients: BTreeMap::new() }
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.join("data").join(format!("n{id}"))
    }

    pub fn faketime_file(&self, id: u64) -> PathBuf {
        self.dir.join("data").join(format!("n{id}.faketime"))
    }

    /// The command line of node `id`'s server for this run's target. A
    /// joining fenced replica starts empty and waits to be added (`--join`,
    /// no `--peers`).
    fn server_command(&self, id: u64, join: bool) -> Command {
        let ns = self.plan.node_ns(id);
        let ip = self.plan.node_ip(id);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns]);
        match self.target {
            Target::Fenced => {
                cmd.arg(&self.bin)
                    .args(["serve", "--id", &id.to_string(), "--listen", &self.plan.node_addr(id)])
                    .args(if join { vec!["--join".to_string()] } else { vec!["--peers".into(), self.plan.peers_arg()] })
                    .arg("--data-dir")
                    .arg(self.data_dir(id))
                    .args(["--heartbeat", HEARTBEAT, "--election-timeout", ELECTION_TIMEOUT])
                    // Keep the whole log for the read-back (S4, S5, S7):
                    // a snapshot would purge its start.
                    .args(["--snapshot-every", SNAPSHOT_EVERY]);
            }
            Target::Etcd | Target::EtcdNoToken => {
                // The same heartbeat and election timeout as the fenced
                // replicas (they are also etcd's defaults). On a restart the
                // data directory exists and the --initial-* flags are ignored.
                let client = format!("http://{ip}:{REPLICA_PORT}");
                let peer = format!("http://{ip}:{ETCD_PEER_PORT}");
                cmd.arg("etcd")
                    .args(["--name", &format!("n{id}")])
                    .arg("--data-dir")
                    .arg(self.data_dir(id))
                    .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
                    .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
                    .args(["--initial-cluster", &self.plan.etcd_initial_cluster()])
                    .args(["--initial-cluster-state", "new", "--initial-cluster-token", &self.plan.prefix()])
                    .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
                    .args(["--logger", "zap", "--log-level", "warn"]);
            }
            Target::Redlock => {
                // As Redlock is commonly deployed: no persistence, so a
                // restarted node has forgotten every lock (the Redlock
                // page asks for fsync'ed AOF or delayed restarts instead).
                cmd.arg("redis-server")
                    .args(["--bind", &ip.to_string(), "--port", &REPLICA_PORT.to_string()])
                    .args(["--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no"])
                    .arg("--dir")
                    .arg(self.data_dir(id));
            }
        }
        cmd
    }

    /// Start (or restart, after a kill) node `id`'s server in its namespace.
    pub fn spawn_replica(&mut self, id: u64) -> Result<u32, ChaosError> {
        self.spawn_server(id, false)
    }

    /// Start node `id` as a new, empty fenced replica that waits to be added
    /// (`fenced serve --join`): its data directory is deleted first, as a
    /// fresh machine's would be empty.
    pub fn spawn_joining_replica(&mut self, id: u64) -> Result<u32, ChaosError> {
        self.kill_replica(id);
        let dir = self.data_dir(id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|source| ChaosError::Write { path: dir.clone(), source })?;
        }
        self.spawn_server(id, true)
    }

    fn spawn_server(&mut self, id: u64, join: bool) -> Result<u32, ChaosError> {
        let ns = self.plan.node_ns(id);
        let log = log_file(&self.dir.join(format!("n{id}.log")))?;
        let dir = self.data_dir(id);
        std::fs::create_dir_all(&dir).map_err(|source| ChaosError::Write { path: dir.clone(), source })?;
        let mut cmd = self.server_command(id, join);
        cmd.stdin(Stdio::null()).stdout(
            log.try_clone()
                .map_err(|source| ChaosError::Write { path: self.dir.join(format!("n{id}.log")), source })?,
        );
        cmd.stderr(log);
        die_with_parent(&mut cmd);
        if let Some(lib) = &self.faketime {
            // Only the wall clock is shifted: leases run on the monotonic
            // clock, which must not see the skew at all.
            let file = self.faketime_file(id);
            if !file.exists() {
                std::fs::write(&file, crate::nemesis::faketime_offset(0))
                    .map_err(|source| ChaosError::Write { path: file.clone(), source })?;
            }
            cmd.env("LD_PRELOAD", lib)
                .env("FAKETIME_TIMESTAMP_FILE", &file)
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_CACHE_DURATION", "1");
        }
        let child = cmd.spawn().map_err(|source| ChaosError::Spawn {
            cmd: format!("ip netns exec {ns} {}", self.target.name()),
            source,
        })?;
        let pid = child.id();
        if let Some(old) = self.replicas.insert(id, child) {
            reap(old);
        }
        Ok(pid)
    }

    pub fn replica_pid(&self, id: u64) -> Option<u32> {
        self.replicas.get(&id).map(Child::id)
    }

    /// `kill -9` replica `id` and reap it.
    pub fn kill_replica(&mut self, id: u64) {
        if let Some(c) = self.replicas.remove(&id) {
            reap(c);
        }
    }

    pub fn spawn_store(&mut self, mode: StoreMode, cluster_keys: &[String]) -> Result<u32, ChaosError> {
        let ns = self.plan.store_ns();
        let log = log_file(&self.dir.join("store.log"))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns])
            .arg(&self.bin)
            .args(["store", "serve", "--listen", &self.plan.store_addr(), "--data-dir"])
            .arg(self.dir.join("data").join("store"));
        for k in cluster_keys {
            cmd.args(["--cluster-key", k]);
        }
        cmd.args(mode.flags());
        die_with_parent(&mut cmd);
        let child =
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().map_err(|source| ChaosError::Spawn {
                cmd: format!("ip netns exec {ns} fenced store serve"),
                source,
            })?;
        let pid = child.id();
        self.store = Some(child);
        Ok(pid)
    }

    /// Start a client process; its stdout carries its events.
    pub fn spawn_client(&mut self, process: u64, args: &[String]) -> Result<(u32, ChildStdout), ChaosError> {
        let log = log_file(&self.dir.join(format!("client{process}.log")))?;
        let mut cmd = Command::new(&self.bin);
        die_with_parent(&mut cmd);
        let mut child = cmd
            .args(["chaos", "client"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|source| ChaosError::Spawn { cmd: "fenced chaos client".into(), source })?;
        let out = child.stdout.take().ok_or_else(|| ChaosError::Spawn {
            cmd: "fenced chaos client".into(),
            source: std::io::Error::other("no stdout pipe"),
        })?;
        let pid = child.id();
        self.clients.insert(process, child);
        Ok((pid, out))
    }

    pub fn client_pid(&self, process: u64) -> Option<u32> {
        self.clients.get(&process).map(Child::id)
    }

    /// Have all clients exited? Reaps those that have.
    pub fn clients_done(&mut self) -> bool {
        self.clients.retain(|_, c| !matches!(c.try_wait(), Ok(Some(_))));
        self.clients.is_empty()
    }

    pub fn kill_clients(&mut self) {
        for (_, c) in std::mem::take(&mut self.clients) {
            reap(c);
        }
    }

    /// Stop the servers (replicas and store), e.g. before reading the logs.
    pub fn kill_servers(&mut self) {
        for (_, c) in std::mem::take(&mut self.replicas) {
            reap(c);
        }
        if let Some(c) = self.store.take() {
            reap(c);
        }
    }

    /// End every process this run started (SIGCONT first: a stopped
    /// process must not survive its run).
    pub fn kill_all(&mut self) {
        self.kill_clients();
        self.kill_servers();
    }

    /// The pids still owned (for the leftover check).
    pub fn pids(&self) -> Vec<u32> {
        self.replicas.values().chain(self.clients.values()).chain(self.store.iter()).map(Child::id).collect()
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.kill_all();
    }
}
