//! `fenced bench`: fenced and etcd side by side, same machine, same run,
//! same Rust load generator.
//!
//! - [`procs`]: the child clusters (real processes on loopback, data on the
//!   working directory's disk, fsync on), killed by pid and removed on drop;
//! - [`system`]: one client interface over both systems;
//! - [`workload`]: uncontended, contended, lease keepalive, failover, memory;
//! - [`stats`]: percentiles and Jain's fairness index (pure, tested);
//! - [`report`]: text, JSON and the `docs/benchmarks.md` section.

pub mod error;
pub mod procs;
pub mod report;
pub mod stats;
pub mod system;
pub mod workload;

pub use error::BenchError;
pub use report::Report;

use fenced_io::clock::now;
use procs::Cluster;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use system::{leader_endpoint, Etcd, Fenced, Kind, LockSystem};
use workload::WorkloadResult;

/// What to run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Config {
    /// The `fenced` binary to start replicas from.
    #[serde(skip)]
    pub fenced_bin: PathBuf,
    pub vs_etcd: bool,
    /// Clients for the uncontended, keepalive, failover and memory workloads.
    pub clients: usize,
    /// Clients competing for the one lock of the contended workload.
    pub contended_clients: usize,
    /// Length of each timed workload.
    #[serde(serialize_with = "ser_secs")]
    pub duration: Duration,
    /// Leases kept alive by the keepalive workload.
    pub leases: usize,
    /// Locks (each on its own lease) held for the memory measurement.
    pub mem_locks: usize,
    /// Longest time spent taking them.
    #[serde(serialize_with = "ser_secs")]
    pub mem_limit: Duration,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Wait until `kind`'s cluster has a leader that grants a lease.
async fn wait_ready(kind: Kind, cluster: &Cluster) -> Result<String, BenchError> {
    let endpoints = cluster.endpoints();
    let t0 = now();
    while now().since(t0) < Duration::from_secs(30) {
        if let Some(leader) = leader_endpoint(kind, &endpoints).await {
            let ok = match kind {
                Kind::Fenced => match Fenced::new(endpoints.clone()) {
                    Ok(f) => f.grant_lease(Duration::from_secs(10)).await.is_ok(),
                    Err(_) => false,
                },
                Kind::Etcd => {
                    Etcd::new(Arc::new(endpoints.clone()), 0).grant_lease(Duration::from_secs(10)).await.is_ok()
                }
            };
            if ok {
                return Ok(leader);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(BenchError::Cluster(format!("the {} cluster elected no working leader within 30 s", kind.name())))
}

/// RSS of every live member, KiB, keyed `rss_kib_<id>`, plus the max.
fn rss(cluster: &Cluster, prefix: &str, into: &mut std::collections::BTreeMap<String, f64>) {
    let mut max = 0u64;
    for m in cluster.members.iter().filter(|m| m.alive()) {
        if let Some(k) = m.rss_kib() {
            into.insert(format!("{prefix}rss_kib_{}", m.id), k as f64);
            max = max.max(k);
        }
    }
    into.insert(format!("{prefix}rss_kib_max"), max as f64);
}

async fn run_system<S: LockSystem>(
    kind: Kind,
    cfg: &Config,
    mut cluster: Cluster,
    make: impl Fn(usize) -> Result<S, error::OpError>,
) -> Result<Vec<WorkloadResult>, BenchError> {
    let name = kind.name();
    let mut baseline = std::collections::BTreeMap::new();
    rss(&cluster, "idle_", &mut baseline);
    let client_err = |e: error::OpError| BenchError::Cluster(format!("cannot make a {name} client: {e}"));
    let clients: Vec<Arc<S>> =
        (0..cfg.clients.max(1)).map(|i| make(i).map(Arc::new)).collect::<Result<_, _>>().map_err(client_err)?;
    let contenders: Vec<Arc<S>> = (0..cfg.contended_clients.max(2))
        .map(|i| make(i).map(Arc::new))
        .collect::<Result<_, _>>()
        .map_err(client_err)?;
    let mut out = Vec::new();

    eprintln!("[{name}] uncontended: {} clients, {:?}", clients.len(), cfg.duration);
    out.push(workload::uncontended(name, &clients, cfg.duration).await);
    eprintln!("[{name}] contended: {} clients on one lock, {:?}", contenders.len(), cfg.duration);
    out.push(workload::contended(name, &contenders, cfg.duration).await);
    eprintln!("[{name}] keepalive: {} leases, {:?}", cfg.leases, cfg.duration);
    let (g, k) = workload::keepalive(name, &clients, cfg.leases, cfg.duration).await;
    out.push(g);
    out.push(k);

    eprintln!("[{name}] memory: {} held locks (limit {:?})", cfg.mem_locks, cfg.mem_limit);
    let mut mem = workload::hold_many(name, &clients, cfg.mem_locks, cfg.mem_limit).await;
    mem.extra.extend(baseline);
    mem.extra.insert("held".into(), mem.ops as f64);
    // Let followers apply what the leader acked before sampling.
    tokio::time::sleep(Duration::from_secs(1)).await;
    rss(&cluster, "", &mut mem.extra);
    out.push(mem);

    eprintln!("[{name}] failover: SIGKILL the leader under load");
    let endpoints = cluster.endpoints();
    let warmup = (cfg.duration / 3).max(Duration::from_secs(2));
    let after = cfg.duration.max(Duration::from_secs(6));
    let cluster_ref = &mut cluster;
    let kill = async move {
        match leader_endpoint(kind, &endpoints).await {
            Some(ep) => match cluster_ref.member_mut(&ep) {
                Some(m) => {
                    m.kill();
                    true
                }
                None => false,
            },
            None => false,
        }
    };
    out.push(workload::failover(name, &clients, warmup, after, kill).await);
    drop(cluster);
    Ok(out)
}

/// Run everything `cfg` asks for. Progress goes to stderr.
pub async fn run(cfg: &Config) -> Result<Report, BenchError> {
    if cfg.vs_etcd && !procs::etcd_available() {
        return Err(BenchError::EtcdMissing);
    }
    let mut results = Vec::new();

    eprintln!("starting 3 fenced replicas ({})", cfg.fenced_bin.display());
    let cluster = procs::start_fenced(&cfg.fenced_bin)?;
    let leader = wait_ready(Kind::Fenced, &cluster).await?;
    eprintln!("fenced leader: {leader}");
    let endpoints = cluster.endpoints();
    // Each client starts at the leader, as a settled fenced client would.
    let mut ordered = vec![leader.clone()];
    ordered.extend(endpoints.iter().filter(|e| **e != leader).cloned());
    results.extend(run_system(Kind::Fenced, cfg, cluster, |_| Fenced::new(ordered.clone())).await?);

    if cfg.vs_etcd {
        eprintln!("starting 3 etcd members");
        let cluster = procs::start_etcd()?;
        let leader = wait_ready(Kind::Etcd, &cluster).await?;
        eprintln!("etcd leader: {leader}");
        let endpoints = Arc::new(cluster.endpoints());
        let li = endpoints.iter().position(|e| *e == leader).unwrap_or(0);
        results.extend(run_system(Kind::Etcd, cfg, cluster, |_| Ok(Etcd::new(endpoints.clone(), li))).await?);
    }
    Ok(Report::new(cfg.clone(), results))
}
