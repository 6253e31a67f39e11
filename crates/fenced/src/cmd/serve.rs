//! `fenced serve`: one replica.

use anyhow::{bail, Context};
use clap::Args;
use fenced_core::token::encode_public_key;
use fenced_io::clock::SystemClock;
use fenced_io::disk::FsDisk;
use fenced_io::transport::TcpTransport;
use fenced_replica::node::{ReplicaConfig, Seams};
use fenced_replica::server;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// This replica's id (a positive integer, unique in the cluster).
    #[arg(long)]
    pub id: u64,
    /// Address to listen on for clients and peers, e.g. 127.0.0.1:7001.
    #[arg(long)]
    pub listen: String,
    /// Every voter including this one: `1=HOST:PORT,2=HOST:PORT,3=HOST:PORT`.
    #[arg(long)]
    pub peers: String,
    /// Where the log and snapshots live. Must survive restarts.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Leader heartbeat interval [default: 100ms, or the --config file's].
    #[arg(long, value_parser = super::parse_duration)]
    pub heartbeat: Option<Duration>,
    /// Shortest election timeout; the longest is twice this [default: 500ms,
    /// or the --config file's].
    #[arg(long, value_parser = super::parse_duration)]
    pub election_timeout: Option<Duration>,
    /// Timing file written by `fenced calibrate --write-config` (flags win).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Longest lease TTL a client may ask for.
    #[arg(long, default_value = "1h", value_parser = super::parse_duration)]
    pub max_ttl: Duration,
}

/// Parse `1=host:port,2=host:port`.
pub fn parse_peers(s: &str) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut peers = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('=').with_context(|| format!("peer {part:?} is not ID=HOST:PORT"))?;
        let id: u64 = id.trim().parse().with_context(|| format!("peer id {id:?} is not a number"))?;
        if peers.insert(id, addr.trim().to_string()).is_some() {
            bail!("peer id {id} appears twice in --peers");
        }
    }
    if peers.is_empty() {
        bail!("--peers is empty; list every voter as ID=HOST:PORT");
    }
    Ok(peers)
}

pub fn config(a: &ServeArgs) -> anyhow::Result<ReplicaConfig> {
    let peers = parse_peers(&a.peers)?;
    if !peers.contains_key(&a.id) {
        bail!("--id {} is not in --peers; a replica must be one of the voters", a.id);
    }
    if a.id == 0 {
        bail!("--id must be positive");
    }
    let mut c = ReplicaConfig::new(a.id, a.listen.clone(), peers);
    let file = match &a.config {
        Some(p) => super::timing_file::TimingFile::read(p)?,
        None => Default::default(),
    };
    c.heartbeat = a.heartbeat.or(file.heartbeat).unwrap_or(Duration::from_millis(100));
    let election = a.election_timeout.or(file.election_timeout).unwrap_or(Duration::from_millis(500));
    c.election_timeout_min = election;
    c.election_timeout_max = election * 2;
    c.max_ttl = a.max_ttl;
    if c.heartbeat * 2 > c.election_timeout_min {
        bail!("--heartbeat must be at most half of --election-timeout");
    }
    Ok(c)
}

pub fn seams(data_dir: &std::path::Path) -> anyhow::Result<Seams> {
    let disk = FsDisk::open(data_dir).with_context(|| format!("cannot open data dir {}", data_dir.display()))?;
    let mut key_entropy = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut key_entropy);
    Ok(Seams {
        transport: Arc::new(TcpTransport),
        disk: Arc::new(disk),
        clock: Arc::new(SystemClock::new()),
        seed: rand::random(),
        key_entropy,
    })
}

pub async fn run(a: ServeArgs) -> anyhow::Result<i32> {
    super::init_logging("info,openraft=warn");
    let config = config(&a)?;
    let running = server::start(config, seams(&a.data_dir)?)
        .await
        .with_context(|| format!("cannot start replica {} on {}", a.id, a.listen))?;
    eprintln!("fenced replica {} serving on {} (data in {})", a.id, running.addr, a.data_dir.display());
    let replica = running.replica.clone();
    tokio::spawn(async move {
        loop {
            if let Some(k) = replica.shared.read(|t| t.public_keys().last().map(encode_public_key)) {
                eprintln!("cluster public key: {k}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")?;
    eprintln!("stopping");
    running.stop().await;
    Ok(0)
}
