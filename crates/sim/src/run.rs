//! One seed: build the simulated world, run the real code in it under the
//! nemesis, record the history, and judge it.
//!
//! Every host (replicas, store, clients) runs in one current-thread tokio
//! runtime with a paused clock and a seeded scheduler: simulated time jumps
//! from event to event ([`crate::time`]), and the same seed replays the same
//! interleaving. Hosts talk over [`crate::net`]; a crash revokes a host's
//! life there and on its disk ([`crate::disk`]), then stops what is left of it.

use crate::clock::SimClock;
use crate::config::{DisasterKind, Faults, Model, SimConfig};
use crate::disaster::{self, Aftermath};
use crate::disk::{FsyncLatency, HostDisk};
use crate::nemesis::{self, Fault, PartitionKind, Planned};
use crate::net::{Incarnation, Net, SimTransport};
use crate::recorder::Recorder;
use crate::workload::{self, ClientPlan};
use fenced_check::checkers::check_all;
use fenced_check::history::{Event, EventType, History, Process};
use fenced_check::nemesis::{FaultRecord, NemesisEvent};
use fenced_check::readback::{self, Commit, LogEntry, Payload, ReplicaLog};
use fenced_check::verdict::{Options, Verdict};
use fenced_client::{Client, ClientConfig};
use fenced_io::disk::MemDisk;
use fenced_io::http::HttpClient;
use fenced_replica::config::ReplicaConfig;
use fenced_replica::node::{Replica, Seams};
use fenced_replica::storage::log_store::LogStore;
use fenced_store::config::{StoreConfig, StoreSeams};
use fenced_store_client::StoreClient;
use futures::future::BoxFuture;
use openraft::async_runtime::WatchReceiver;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

const RAFT_PORT: u16 = 7000;
const STORE_PORT: u16 = 9000;
/// Simulated time after the workload for the final reads.
const SETTLE: Duration = Duration::from_secs(5);
/// A run still going this long after its final reads were due is stuck.
const OVERTIME: Duration = Duration::from_secs(120);
/// How often the driver looks at the cluster between scheduled events
/// (membership changes to aim faults at, clients that finished).
const POLL: Duration = Duration::from_millis(10);
/// Latency of a healthy link.
const LATENCY_MIN: Duration = Duration::from_millis(1);
const LATENCY_MAX: Duration = Duration::from_millis(5);
/// A replica's fsync latency range (a commodity SSD): with network latencies
/// of the same order, a leader's own fsync can finish after its followers'
/// acknowledgements, and a crash can land while entries it has already sent
/// are not yet durable on its own disk.
const FSYNC_MIN: Duration = Duration::from_micros(100);
const FSYNC_MAX: Duration = Duration::from_millis(4);

/// Why a seed could not be run at all (not a verdict on fenced).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulation failed: {0}")]
    Simulation(String),
    #[error("reading the replicas' logs failed: {0}")]
    Log(String),
    #[error(transparent)]
    Unsupported(#[from] nemesis::Unsupported),
}

/// What one seed produced.
pub struct SeedOutcome {
    pub config: SimConfig,
    pub history: History,
    pub verdicts: Vec<Verdict>,
    /// FNV-1a over the history's JSON Lines: equal hashes, equal histories.
    pub history_hash: u64,
    pub sim_time: Duration,
    pub wall_time: Duration,
    /// Did some client pause for longer than the TTL while holding a lock?
    pub long_pause: bool,
    /// The nemesis schedule that was drawn.
    pub schedule: Vec<Planned>,
    /// Connections the network duplicated (the duplicate fault).
    pub duplicated_connections: u64,
    /// With `--disaster`: what the restore or recovery did, and whether it
    /// kept its promises (a violation is a safety violation of the run).
    pub disaster: Option<disaster::Report>,
}

fn host(i: u64) -> String {
    format!("n{i}")
}

pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

type Live = Arc<Mutex<BTreeMap<u64, Arc<Replica>>>>;
/// What went wrong inside a host that should not have (a seed error).
type Failures = Arc<Mutex<Vec<String>>>;

fn fail(failures: &Failures, what: String) {
    if let Ok(mut f) = failures.lock() {
        f.push(what);
    }
}

/// A started server, kept so that a crash can stop what is left of it.
enum Server {
    Replica(fenced_replica::server::Running),
    Store(fenced_store::server::RunningStore),
}

impl Server {
    async fn stop(self) {
        match self {
            Server::Replica(r) => r.stop().await,
            Server::Store(s) => s.stop().await,
        }
    }
}

/// How to start a replica, again after each crash.
#[derive(Clone)]
struct ReplicaSpec {
    id: u64,
    /// `--cluster-name`: a restore makes a new cluster.
    cluster_name: String,
    spare: bool,
    peers: BTreeMap<u64, String>,
    disk: MemDisk,
    fsync: FsyncLatency,
    clock: SimClock,
    seed: u64,
    key_entropy: [u8; 32],
    rec: Recorder,
    live: Live,
}

impl ReplicaSpec {
    async fn start(self, transport: SimTransport) -> std::io::Result<Server> {
        let i = self.id;
        let life = transport.incarnation();
        let disk = HostDisk::new(self.disk.clone(), life.clone(), self.fsync.clone());
        // A restart trusts its data directory, as `fenced serve` without
        // `--peers` does: membership changes may have made the initial peer
        // list stale.
        let peers = match fenced_io::disk::Disk::read(&disk, fenced_replica::storage::log_store::WAL) {
            Ok(Some(_)) => BTreeMap::new(),
            _ => self.peers,
        };
        let mut config = ReplicaConfig::new(i, format!("0.0.0.0:{RAFT_PORT}"), peers);
        config.join = self.spare;
        config.cluster_name = self.cluster_name;
        // Keep the whole log so the checker can read every decision.
        config.snapshot_every_entries = 1_000_000;
        let seams = Seams {
            transport: Arc::new(transport),
            disk: Arc::new(disk),
            clock: Arc::new(self.clock),
            seed: self.seed,
            key_entropy: self.key_entropy,
        };
        let running = fenced_replica::server::start(config, seams).await?;
        // The replica's clock-jump detections go into the history.
        let rec = self.rec;
        running.replica.vitals.timekeeper.on_jump(Box::new(move |jump_ms, _| {
            rec.record_on(
                EventType::Info,
                Process::Named(Process::CLOCK.into()),
                "jump",
                json!({"node": i, "jump_ms": jump_ms}),
                Some(host(i)),
            );
        }));
        // A life that crashed while starting is not live: the driver's view
        // of the cluster (who leads, joint configurations, pauses noticed)
        // must not count it.
        if life.alive() {
            if let Ok(mut l) = self.live.lock() {
                l.insert(i, running.replica.clone());
            }
        }
        Ok(Server::Replica(running))
    }
}

/// How to start the store, again after each crash.
#[derive(Clone)]
struct StoreSpec {
    disk: MemDisk,
    clock: SimClock,
    cluster_key: ed25519_dalek::VerifyingKey,
    unfenced: bool,
    /// `(prefix, lock)` guards (`--guard PREFIX=LOCK`).
    guards: Vec<(String, String)>,
}

impl StoreSpec {
    async fn start(self, transport: SimTransport) -> std::io::Result<Server> {
        let disk = HostDisk::new(self.disk, transport.incarnation(), FsyncLatency::none());
        let mut config = StoreConfig::new(format!("0.0.0.0:{STORE_PORT}"), vec![self.cluster_key]);
        config.unsafe_no_fencing = self.unfenced;
        for (prefix, lock) in self.guards {
            config.guards.insert(prefix, lock);
        }
        let seams = StoreSeams { transport: Arc::new(transport), disk: Arc::new(disk), clock: Arc::new(self.clock) };
        Ok(Server::Store(fenced_store::server::start(config, seams).await?))
    }
}

/// The servers' hosts: start, crash, restart.
struct Hosts {
    net: Arc<Net>,
    replicas: BTreeMap<u64, ReplicaSpec>,
    store: StoreSpec,
    /// Each host's server, once its current life has started it.
    running: Arc<Mutex<BTreeMap<String, Server>>>,
    failures: Failures,
}

impl Hosts {
    fn launch(&self, name: String, life: Arc<Incarnation>, start: BoxFuture<'static, std::io::Result<Server>>) {
        let (running, failures, key) = (self.running.clone(), self.failures.clone(), name);
        // A crash while this start is under way leaves it to finish against
        // the dead life's seams; it then stops what it started (stopping it
        // midway would leave whatever it had spawned with nothing to stop it).
        tokio::spawn(async move {
            match start.await {
                Ok(server) if life.alive() => {
                    if let Ok(mut r) = running.lock() {
                        r.insert(key, server);
                    }
                }
                // Crashed while starting: stop what did start.
                Ok(server) => server.stop().await,
                Err(e) if life.alive() => fail(&failures, format!("{key} failed to start: {e}")),
                Err(_) => {}
            }
        });
    }

    fn start_replica(&mut self, i: u64) {
        if let Some(spec) = self.replicas.get(&i).cloned() {
            let transport = self.net.transport(&host(i));
            self.launch(host(i), transport.incarnation(), Box::pin(spec.start(transport)));
        }
    }

    fn start_store(&mut self) {
        let transport = self.net.transport("store");
        self.launch("store".into(), transport.incarnation(), Box::pin(self.store.clone().start(transport)));
    }

    /// Crash `name`: from now on its life reaches no one and touches no
    /// disk; what is left of its server is stopped in the background.
    fn crash(&mut self, name: &str) {
        self.net.crash(name);
        if let Some(server) = self.running.lock().ok().and_then(|mut r| r.remove(name)) {
            tokio::spawn(server.stop());
        }
    }
}

/// What the driver undoes when a fault ends.
enum Undo {
    Repair(Vec<(String, String)>),
    RepairOneway(Vec<(String, String)>),
    FailRate,
    Duplication,
    Latency,
    LinkLatency(String),
    Restart(u64),
    RestartStore,
    Resume(u64),
    Nothing,
}

struct World<'a> {
    cfg: &'a SimConfig,
    net: Arc<Net>,
    hosts: Hosts,
    live: Live,
    replicas: Vec<String>,
    everyone: Vec<String>,
    clients: Vec<String>,
    rng: ChaCha8Rng,
    crashed: BTreeSet<u64>,
    /// Between a disaster's loss and the restart: no replica runs, and the
    /// driver starts them all when it ends, so a crash now is void (its
    /// restart would start a replica twice).
    outage: bool,
    rec: Recorder,
    /// Every host's clock, replicas first (a paused replica's is frozen).
    clocks: Vec<SimClock>,
}

impl World<'_> {
    fn leader(&self) -> Option<u64> {
        let live = self.live.lock().ok()?;
        let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
        for r in live.values() {
            if let Some(l) = r.raft.metrics().borrow_watched().current_leader {
                *votes.entry(l).or_default() += 1;
            }
        }
        votes.into_iter().max_by_key(|(_, n)| *n).map(|(l, _)| l)
    }

    fn cut(&self, a: &[String], b: &[String]) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for x in a {
            for y in b {
                if x != y {
                    self.net.partition(x, y);
                    pairs.push((x.clone(), y.clone()));
                }
            }
        }
        pairs
    }

    /// Makes `f` happen; a fault the simulator cannot make is an error
    /// (scripts are checked before the run, so this is a second guard).
    fn start(&mut self, f: &Fault) -> Result<Undo, nemesis::Unsupported> {
        nemesis::supported(f)?;
        Ok(self.start_supported(f))
    }

    fn start_supported(&mut self, f: &Fault) -> Undo {
        let n = self.cfg.nodes;
        match f {
            Fault::Partition { kind } => {
                let (a, b) = match kind {
                    PartitionKind::RandomHalves => {
                        let everyone = self.everyone.clone();
                        nemesis::halves(&mut self.rng, &everyone)
                    }
                    PartitionKind::IsolateLeader => {
                        let l = self.leader().unwrap_or(1);
                        (vec![host(l)], self.everyone.iter().filter(|h| **h != host(l)).cloned().collect())
                    }
                    PartitionKind::MajoritiesRing => {
                        // Each replica keeps its two ring neighbours: everyone
                        // sees a majority, no two see the same one.
                        let mut pairs = Vec::new();
                        for i in 1..=n {
                            for j in (i + 1)..=n {
                                let d = (j - i).min(n - (j - i));
                                if d > 1 {
                                    self.net.partition(&host(i), &host(j));
                                    pairs.push((host(i), host(j)));
                                }
                            }
                        }
                        return Undo::Repair(pairs);
                    }
                    PartitionKind::Bridge => {
                        let mid = n.div_ceil(2);
                        let left: Vec<String> = (1..mid).map(host).collect();
                        let right: Vec<String> = ((mid + 1)..=n).map(host).collect();
                        (left, right)
                    }
                };
                Undo::Repair(self.cut(&a, &b))
            }
            Fault::OneWay { node } => {
                let mut pairs = Vec::new();
                for other in self.everyone.iter().filter(|h| **h != host(*node)) {
                    self.net.partition_oneway(&host(*node), other);
                    pairs.push((host(*node), other.clone()));
                }
                Undo::RepairOneway(pairs)
            }
            Fault::Loss { rate } => {
                self.net.set_loss(*rate);
                Undo::FailRate
            }
            Fault::Duplicate { rate } => {
                self.net.set_duplication(*rate);
                Undo::Duplication
            }
            Fault::Delay { max_ms } => {
                self.net.set_max_latency(Duration::from_millis(*max_ms));
                self.net.set_latency_curve(DELAY_CURVE);
                Undo::Latency
            }
            Fault::Limp { node } => {
                for other in self.everyone.iter().filter(|h| **h != host(*node)) {
                    self.net.set_link_max_latency(&host(*node), other, Duration::from_millis(800));
                }
                Undo::LinkLatency(host(*node))
            }
            Fault::LostReplies { node } => {
                let mut pairs = Vec::new();
                for c in &self.clients {
                    self.net.partition_oneway(&host(*node), c);
                    pairs.push((host(*node), c.clone()));
                }
                Undo::RepairOneway(pairs)
            }
            Fault::Crash { node } => {
                // A replica lost for good (recovery from a survivor) has no
                // life left to crash.
                if self.outage || !self.hosts.replicas.contains_key(node) || !self.crashed.insert(*node) {
                    return Undo::Nothing;
                }
                self.hosts.crash(&host(*node));
                if let Some(spec) = self.hosts.replicas.get(node) {
                    spec.disk.crash();
                }
                if let Ok(mut l) = self.live.lock() {
                    l.remove(node);
                }
                if self.cfg.faults == Faults::CrashStop {
                    Undo::Nothing
                } else {
                    Undo::Restart(*node)
                }
            }
            Fault::RestartLeader => match self.leader() {
                Some(node) => self.start_supported(&Fault::Crash { node }),
                None => Undo::Nothing,
            },
            Fault::CrashStore => {
                self.hosts.crash("store");
                self.hosts.store.disk.crash();
                Undo::RestartStore
            }
            Fault::Pause { node } => {
                for other in self.everyone.iter().filter(|h| **h != host(*node)) {
                    self.net.hold(&host(*node), other);
                }
                if let Some(c) = self.clocks.get(*node as usize - 1) {
                    c.freeze();
                }
                Undo::Resume(*node)
            }
            Fault::WallJump { .. } => Undo::Nothing,
            Fault::PauseLeader
            | Fault::ClientPause { .. }
            | Fault::Clock { .. }
            | Fault::Membership { .. }
            | Fault::Disaster
            | Fault::HealAll
            | Fault::Other(_) => Undo::Nothing,
        }
    }

    fn stop(&mut self, undo: Undo) {
        match undo {
            Undo::Repair(pairs) => {
                for (a, b) in pairs {
                    self.net.repair(&a, &b);
                }
            }
            Undo::RepairOneway(pairs) => {
                for (a, b) in pairs {
                    self.net.repair_oneway(&a, &b);
                }
            }
            Undo::FailRate => self.net.set_loss(0.0),
            Undo::Duplication => self.net.set_duplication(0.0),
            Undo::Latency => {
                self.net.set_max_latency(LATENCY_MAX);
                self.net.set_latency_curve(HEALTHY_CURVE);
            }
            Undo::LinkLatency(h) => {
                for other in self.everyone.iter().filter(|o| **o != h) {
                    self.net.set_link_max_latency(&h, other, LATENCY_MAX);
                }
            }
            Undo::Restart(node) => {
                if self.crashed.remove(&node) {
                    self.hosts.start_replica(node);
                }
            }
            Undo::RestartStore => self.hosts.start_store(),
            Undo::Resume(node) => {
                if let Some(c) = self.clocks.get(node as usize - 1) {
                    c.thaw();
                }
                let h = host(node);
                for other in self.everyone.iter().filter(|o| **o != h) {
                    self.net.release(&h, other);
                }
            }
            Undo::Nothing => {}
        }
    }
}

/// The spread of latencies on healthy links and under the delay fault (the
/// rate of an exponential: lower means a heavier tail).
const HEALTHY_CURVE: f64 = 5.0;
const DELAY_CURVE: f64 = 3.0;

/// Faults aimed at membership changes (`--membership` with the nemesis on):
/// whenever a live replica holds a joint configuration (`C_old,new`) not
/// seen before, crash a voter (the leader half of the time) or cut the
/// leader off, for up to three seconds: a crash in the middle of a joint
/// configuration, a partition during a change. Drawn from the seed.
struct JointFaults {
    on: bool,
    crash: bool,
    rng: ChaCha8Rng,
    /// The membership log index of the last joint configuration acted on.
    seen: u64,
}

impl JointFaults {
    fn new(cfg: &SimConfig) -> Self {
        JointFaults {
            on: cfg.membership && cfg.nemesis && cfg.script.is_none(),
            crash: cfg.faults == Faults::CrashRecovery,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x006a_6f69_6e74),
            seen: 0,
        }
    }

    /// A joint configuration a live replica holds: its log index and its
    /// voters (both halves).
    fn joint_now(world: &World) -> Option<(u64, BTreeSet<u64>)> {
        let live = world.live.lock().ok()?;
        live.values().find_map(|r| {
            let m = r.raft.metrics().borrow_watched().membership_config.clone();
            let configs = m.membership().get_joint_config();
            let index = m.log_id().as_ref().map(|l| l.index)?;
            (configs.len() > 1).then(|| (index, configs.iter().flatten().copied().collect()))
        })
    }

    /// The fault to start now, with its history record and its end.
    fn next(&mut self, world: &World, now: Duration, gst: Duration) -> Option<(Fault, FaultRecord, Duration)> {
        if !self.on {
            return None;
        }
        let (index, voters) = Self::joint_now(world)?;
        if index <= self.seen {
            return None;
        }
        self.seen = index;
        let end = (now + Duration::from_millis(self.rng.gen_range(200..3000))).min(gst);
        let leader = world.leader();
        let voters: Vec<u64> = voters.into_iter().collect();
        let fault = match self.rng.gen_range(0..4) {
            0 | 1 if self.crash => {
                let node = match leader.filter(|_| self.rng.gen_bool(0.5)) {
                    Some(l) => l,
                    None => voters[self.rng.gen_range(0..voters.len())],
                };
                Fault::Crash { node }
            }
            2 => Fault::Partition { kind: PartitionKind::RandomHalves },
            _ => Fault::Partition { kind: PartitionKind::IsolateLeader },
        };
        let record = FaultRecord::new(fault.clone())
            .with("during", json!("joint-configuration"))
            .with("membership_index", json!(index));
        Some((fault, record, end))
    }
}

/// The log events (grants, releases, expiries) as the committed log decided
/// them, replayed through the real state machine; and a `diverged` record
/// for each index where two replicas hold different committed entries
/// ([`fenced_check::readback`]). Each replica vouches for its log up to its
/// own committed index (a lagging one may hold entries above it that a
/// leader will overwrite).
fn log_events(disks: &BTreeMap<u64, MemDisk>, at: u64) -> Result<Vec<Event>, SimError> {
    let mut logs = Vec::new();
    for (id, d) in disks {
        let log = LogStore::open(Arc::new(d.clone())).map_err(|e| SimError::Log(e.to_string()))?;
        let committed = log.committed_index().map_err(|e| SimError::Log(e.to_string()))?;
        let entries = log.entries().map_err(|e| SimError::Log(e.to_string()))?;
        let entries = entries
            .into_iter()
            .map(|e| LogEntry {
                index: e.log_id.index,
                term: e.log_id.leader_id.term,
                payload: serde_json::to_string(&e.payload).unwrap_or_default(),
                request: match e.payload {
                    openraft::EntryPayload::Normal(req) => Payload::Request(req),
                    _ => Payload::Other,
                },
            })
            .collect();
        logs.push(ReplicaLog { id: *id, committed, entries });
    }
    // No notes to keep: the replicas keep their whole logs
    // (`snapshot_every_entries`) and every request is typed.
    Ok(readback::read_back(&logs, Commit::Vouched, at).events)
}

/// Run one seed.
pub fn run_seed(cfg: &SimConfig) -> Result<SeedOutcome, SimError> {
    // Real time the run took (not simulated time): the production clock.
    let wall = fenced_io::clock::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        // tokio's own choices (which `select!` branch first) from the seed.
        .rng_seed(tokio::runtime::RngSeed::from_bytes(&cfg.seed.to_le_bytes()))
        .build()
        .map_err(|e| SimError::Simulation(format!("building the runtime: {e}")))?;
    let (events, disks, sim_time, schedule, duplicated_connections, aftermath) = runtime.block_on(drive(cfg))?;
    // Whatever is still running (clients' idle connections, crashed hosts'
    // leftovers) ends with the runtime.
    drop(runtime);
    let end = events.last().map(|e| e.time).unwrap_or(0);
    let mut events = events;
    let mut report = None;
    match &aftermath {
        None => events.extend(log_events(&disks, end)?),
        Some(a) => {
            let mut new = BTreeMap::new();
            for (id, d) in &disks {
                new.insert(*id, disaster::read_log(d).map_err(SimError::Log)?);
            }
            let (log, r) = disaster::judge(a, &new, end);
            events.extend(log);
            events.push(Event {
                kind: EventType::Info,
                process: Process::Named(Process::NEMESIS.into()),
                f: "disaster-judged".into(),
                value: serde_json::to_value(&r).unwrap_or_default(),
                time: end,
                node: None,
                wall: None,
            });
            report = Some(r);
        }
    }
    let history = History::new(events);
    let long_pause = had_long_pause(&history, cfg.ttl);
    let opts = Options { l1_bound: cfg.l1_bound, l1_grace: Duration::from_secs(3), ..Default::default() };
    let mut verdicts = check_all(&history, &opts);
    if cfg.model == Model::Async {
        verdicts.retain(|v| v.property != fenced_check::verdict::Property::L1);
    }
    let history_hash = fnv1a(history.to_jsonl().as_bytes());
    Ok(SeedOutcome {
        config: cfg.clone(),
        history,
        verdicts,
        history_hash,
        sim_time,
        wall_time: fenced_io::clock::now().since(wall),
        long_pause,
        schedule,
        duplicated_connections,
        disaster: report,
    })
}

type Driven = (Vec<Event>, BTreeMap<u64, MemDisk>, Duration, Vec<Planned>, u64, Option<Aftermath>);

/// The run inside the simulated runtime: start every host, apply the
/// schedule, wait for the clients and the final reads.
async fn drive(cfg: &SimConfig) -> Result<Driven, SimError> {
    crate::time::start();
    if cfg.disaster.is_some() && cfg.membership {
        return Err(SimError::Simulation(
            "--disaster and --membership together are not modelled: a restore needs a fixed membership".into(),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let key_entropy: [u8; 32] = rng.gen();
    let cluster_key = fenced_core::machine::token::public_key_from_entropy(&key_entropy);
    let net = Net::new(cfg.seed, LATENCY_MIN, LATENCY_MAX);
    let rec = Recorder::default();
    let live: Live = Arc::default();
    let failures: Failures = Arc::default();
    let peers: BTreeMap<u64, String> = (1..=cfg.nodes).map(|i| (i, format!("{}:{RAFT_PORT}", host(i)))).collect();
    // Replicas, store, clients, the final reader, and a spare replica's clock.
    let nhosts = (cfg.nodes + cfg.clients + 3) as usize;
    let drifts = nemesis::drifts(cfg, nhosts);
    let epoch_ms = 1_800_000_000_000u64;
    let clocks: Vec<SimClock> = (0..nhosts).map(|_| SimClock::new(epoch_ms)).collect();
    // Clock drift for the whole run; wall jumps come from the schedule.
    for (i, c) in clocks.iter().enumerate() {
        c.set_drift(drifts[i], Duration::ZERO);
    }
    // With membership changes, one spare replica starts empty and waits to
    // be added (`fenced serve --join`): `replace` puts it in a voter's place.
    let spare = cfg.membership.then_some(cfg.nodes + 1);
    let mut replicas = BTreeMap::new();
    for i in (1..=cfg.nodes).chain(spare) {
        let clock = clocks[if Some(i) == spare { nhosts - 1 } else { i as usize - 1 }].clone();
        replicas.insert(
            i,
            ReplicaSpec {
                id: i,
                cluster_name: "fenced".into(),
                spare: Some(i) == spare,
                peers: if Some(i) == spare { BTreeMap::new() } else { peers.clone() },
                disk: MemDisk::new(),
                fsync: FsyncLatency::new(cfg.seed.wrapping_mul(0x9e37_79b9).wrapping_add(i), FSYNC_MIN, FSYNC_MAX),
                rec: rec.on_host(Arc::new(clock.clone())),
                clock,
                seed: cfg.seed.wrapping_mul(31).wrapping_add(i),
                key_entropy,
                live: live.clone(),
            },
        );
    }
    let store = StoreSpec {
        disk: MemDisk::new(),
        clock: clocks[cfg.nodes as usize].clone(),
        cluster_key,
        unfenced: cfg.unfenced,
        guards: {
            let mut g: Vec<(String, String)> = Vec::new();
            if cfg.guarded {
                g.extend((0..cfg.locks).map(|i| (format!("k{i}/"), format!("k{i}"))));
            }
            // Only under --primitives, so that other seeds replay as before.
            if cfg.primitives {
                g.extend(workload::slot_guards());
            }
            g
        },
    };
    let mut hosts = Hosts { net: net.clone(), replicas, store, running: Arc::default(), failures: failures.clone() };
    let ids: Vec<u64> = hosts.replicas.keys().copied().collect();
    for i in ids {
        hosts.start_replica(i);
    }
    hosts.start_store();

    let endpoints: Vec<String> = peers.values().cloned().collect();
    let mut client_peers: Vec<String> = (1..=cfg.nodes).map(host).collect();
    client_peers.push("store".into());
    // Clients still running; the final reads wait for all of them.
    let running = Arc::new(AtomicU64::new(cfg.clients));
    let store_addr = format!("store:{STORE_PORT}");
    let mut clients = Vec::new();
    for c in 1..=cfg.clients {
        let name = format!("c{c}");
        clients.push(name.clone());
        let clock = clocks[(cfg.nodes + c) as usize].clone();
        let mut ccfg = ClientConfig::new(endpoints.clone());
        ccfg.client_id = format!("sim-client-{c}");
        ccfg.request_timeout = Duration::from_secs(1);
        ccfg.call_timeout = Duration::from_secs(5);
        let byzantine = cfg.byzantine_clients && c == cfg.clients;
        let plan = ClientPlan {
            host: name.clone(),
            net: net.clone(),
            peers: client_peers.clone(),
            pauses_until: cfg.gst(),
            process: c,
            seed: cfg.seed.wrapping_mul(7919).wrapping_add(c),
            locks: cfg.locks,
            guarded: cfg.guarded,
            primitives: cfg.primitives,
            ttl: cfg.ttl,
            wait: cfg.acquire_wait,
            until: cfg.duration,
            pause_rate: if cfg.model == Model::Sync { 0.0 } else { cfg.client_pause_rate },
            pause_max: cfg.ttl * 3,
            byzantine,
        };
        let transport = Arc::new(net.transport(&name));
        let (rec, store_addr, running, failures) =
            (rec.on_host(Arc::new(clock.clone())), store_addr.clone(), running.clone(), failures.clone());
        tokio::spawn(async move {
            match Client::with_seams(ccfg, transport.clone(), Arc::new(clock)) {
                Ok(client) => {
                    let store =
                        StoreClient::new(HttpClient::new(transport), store_addr).with_timeout(Duration::from_secs(2));
                    if plan.byzantine {
                        workload::byzantine(plan, client, store, rec).await;
                    } else {
                        workload::honest(plan, client, store, rec).await;
                    }
                }
                Err(e) => fail(&failures, format!("client {c}: {e}")),
            }
            running.fetch_sub(1, Ordering::SeqCst);
        });
    }
    if cfg.membership {
        let mut acfg = ClientConfig::new(endpoints.clone());
        acfg.client_id = "sim-operator".into();
        acfg.request_timeout = Duration::from_secs(1);
        acfg.call_timeout = Duration::from_secs(5);
        let clock = SimClock::new(epoch_ms);
        let mut all = peers.clone();
        all.extend(spare.map(|s| (s, format!("{}:{RAFT_PORT}", host(s)))));
        let (rec, seed, voters) = (rec.on_host(Arc::new(clock.clone())), cfg.seed, cfg.nodes as usize);
        let until = cfg.gst().saturating_sub(Duration::from_secs(2));
        let deadline = cfg.gst() + Duration::from_secs(5);
        let (transport, failures) = (Arc::new(net.transport("operator")), failures.clone());
        tokio::spawn(async move {
            match Client::with_seams(acfg, transport, Arc::new(clock)) {
                Ok(client) => crate::membership::drive(all, voters, client, rec, until, deadline, seed).await,
                Err(e) => fail(&failures, format!("operator: {e}")),
            }
        });
    }
    // The final reader keeps true time (no drift, no jumps). It starts once
    // the store has settled and every client is done (a client paused
    // mid-write may still be writing).
    let final_at = cfg.duration + SETTLE;
    let mut final_reader = Some({
        let rec = rec.on_host(Arc::new(SimClock::new(epoch_ms)));
        let (keys, transport) =
            (workload::store_keys(cfg.locks, cfg.guarded, cfg.primitives), Arc::new(net.transport("final")));
        async move {
            let store = StoreClient::new(HttpClient::new(transport), store_addr).with_timeout(Duration::from_secs(2));
            workload::final_reads(keys, store, rec).await;
        }
    });
    let mut final_task: Option<JoinHandle<()>> = None;

    let schedule = nemesis::schedule(cfg);
    for p in &schedule {
        nemesis::supported(&p.fault)?;
    }
    let replica_names: Vec<String> = (1..=cfg.nodes).map(host).collect();
    let mut everyone = replica_names.clone();
    everyone.push("store".into());
    everyone.extend(clients.iter().cloned());
    everyone.extend(spare.map(host));
    let mut world = World {
        cfg,
        net,
        hosts,
        live,
        replicas: replica_names,
        everyone,
        clients,
        rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x7061_7274),
        crashed: BTreeSet::new(),
        outage: false,
        rec: rec.clone(),
        clocks: clocks.clone(),
    };
    let mut next = 0usize;
    // Active faults: when each ends, its history record, and how to undo it.
    let mut active: Vec<(Duration, FaultRecord, Undo)> = Vec::new();
    let mut healed = false;
    let gst = cfg.gst();
    let mut joint = JointFaults::new(cfg);
    let mut disaster = cfg.disaster.map(|d| DisasterDriver::new(cfg, d, &endpoints, epoch_ms));
    loop {
        let now = crate::time::elapsed();
        if let Some(d) = &mut disaster {
            d.step(&mut world, now, &peers)?;
        }
        while next < schedule.len() && schedule[next].start <= now {
            let p = &schedule[next];
            if let Fault::WallJump { node, ms } = p.fault {
                clocks[node as usize - 1].jump_wall(ms);
            }
            // A crash record says whether it took the leader out: failover
            // measurements (and readers of the report) need to know.
            let mut record = FaultRecord::new(p.fault.clone());
            if let Fault::Crash { node } = p.fault {
                record = record.with("leader", json!(world.leader() == Some(node)));
            }
            if p.fault == Fault::RestartLeader {
                record = record.with("node", json!(world.leader()));
            }
            let undo = world.start(&p.fault)?;
            world.rec.nemesis(NemesisEvent::Start(record.clone()), now);
            active.push((p.end, record, undo));
            next += 1;
        }
        if now < gst {
            if let Some((fault, record, end)) = joint.next(&world, now, gst) {
                let undo = world.start(&fault)?;
                world.rec.nemesis(NemesisEvent::Start(record.clone()), now);
                active.push((end, record, undo));
            }
        }
        let mut i = 0;
        while i < active.len() {
            if active[i].0 <= now {
                let (_, record, undo) = active.remove(i);
                world.stop(undo);
                world.rec.nemesis(NemesisEvent::Stop(record), now);
            } else {
                i += 1;
            }
        }
        if !healed && now >= gst && cfg.model != Model::Async {
            healed = true;
            for (_, record, undo) in std::mem::take(&mut active) {
                world.stop(undo);
                world.rec.nemesis(NemesisEvent::Stop(record), now);
            }
            let majority_up = world.crashed.len() * 2 < world.replicas.len();
            let heal = FaultRecord { majority_up: Some(majority_up), ..FaultRecord::new(Fault::HealAll) };
            world.rec.nemesis(NemesisEvent::Stop(heal), now);
        }
        if now >= final_at && running.load(Ordering::SeqCst) == 0 {
            if let Some(reads) = final_reader.take() {
                final_task = Some(tokio::spawn(reads));
            }
        }
        if final_task.as_ref().is_some_and(|t| t.is_finished()) {
            break;
        }
        if let Some(e) = failures.lock().ok().and_then(|f| f.first().cloned()) {
            return Err(SimError::Simulation(e));
        }
        if now > final_at + OVERTIME {
            return Err(SimError::Simulation(format!(
                "still running at {:.1} s of simulated time, {} s after the final reads were due: \
                 a client or the final reader is stuck",
                now.as_secs_f64(),
                OVERTIME.as_secs()
            )));
        }
        // Sleep until the next scheduled change, looking in now and then.
        let mut wake = now + POLL;
        if let Some(p) = schedule.get(next) {
            wake = wake.min(p.start);
        }
        if let Some(end) = active.iter().map(|a| a.0).min() {
            wake = wake.min(end);
        }
        if !healed && cfg.model != Model::Async {
            wake = wake.min(gst.max(now));
        }
        tokio::time::sleep(wake.saturating_sub(now).max(Duration::from_millis(1))).await;
    }
    let sim_time = crate::time::elapsed();
    // The pauses each replica's timekeeper noticed (a paused replica's clock
    // is frozen, so it sees the whole pause at once when it wakes), for the
    // history's readers: the zombie leader of the seed's GC story knows it
    // was paused.
    let live: Vec<(u64, Arc<Replica>)> =
        world.live.lock().map(|l| l.iter().map(|(i, r)| (*i, r.clone())).collect()).unwrap_or_default();
    for (i, r) in live {
        let h = r.vitals.timekeeper.health();
        if h.pauses > 0 {
            rec.record_on(
                EventType::Info,
                Process::Named(Process::CLOCK.into()),
                "pauses",
                json!({"node": i, "pauses": h.pauses, "pause_stepdowns": h.pause_stepdowns}),
                Some(host(i)),
            );
        }
    }
    let mut events = rec.take();
    events.sort_by_key(|e| e.time);
    let disks = world.hosts.replicas.iter().map(|(i, s)| (*i, s.disk.clone())).collect();
    let aftermath = disaster.and_then(|d| d.aftermath);
    Ok((events, disks, sim_time, schedule, world.net.duplicated_connections(), aftermath))
}

/// How long the cluster is gone between the loss and the restarted replicas.
const OUTAGE: Duration = Duration::from_secs(1);

/// Drives `--disaster`: a backup through the leader (restore), the loss of
/// every replica (or every one but a survivor), the real restore or
/// recovery on the disks, and the restart. See [`crate::disaster`].
struct DisasterDriver {
    d: crate::config::Disaster,
    backup_at: Duration,
    lose_at: Duration,
    /// A backup is given up after this: the seed fails, saying so.
    backup_deadline: Duration,
    client_cfg: ClientConfig,
    epoch_ms: u64,
    backup_task: Option<JoinHandle<()>>,
    backup: BackupSlot,
    back_at: Option<Duration>,
    restarted: bool,
    aftermath: Option<Aftermath>,
    /// Recover: the lost replicas, back on empty disks (`fenced serve
    /// --join`), for the operator to add to the survivor's cluster.
    rejoin: Vec<u64>,
    rng: ChaCha8Rng,
}

type BackupSlot = Arc<Mutex<Option<Result<fenced_replica::storage::backup::Backup, String>>>>;

impl DisasterDriver {
    fn new(cfg: &SimConfig, d: crate::config::Disaster, endpoints: &[String], epoch_ms: u64) -> Self {
        let mut client_cfg = ClientConfig::new(endpoints.to_vec());
        client_cfg.client_id = "sim-operator".into();
        client_cfg.request_timeout = Duration::from_secs(1);
        client_cfg.call_timeout = Duration::from_secs(5);
        // Before GST, so that faults hit the restored cluster too and L1
        // judges it after the heal.
        let gst = cfg.gst();
        DisasterDriver {
            d,
            backup_at: gst.mul_f64(0.25),
            lose_at: gst.mul_f64(0.5),
            backup_deadline: gst.mul_f64(0.85),
            client_cfg,
            epoch_ms,
            backup_task: None,
            backup: Arc::default(),
            back_at: None,
            restarted: false,
            aftermath: None,
            rejoin: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x6469_7361_7374),
        }
    }

    /// The operator's backup: `GET /v1/cluster/snapshot` until a leader
    /// answers, decoded as `fenced cluster snapshot save` decodes it.
    fn start_backup(&mut self, world: &World) {
        let (transport, clock) = (Arc::new(world.net.transport("operator")), SimClock::new(self.epoch_ms));
        let (cfg, slot, rec) = (self.client_cfg.clone(), self.backup.clone(), world.rec.clone());
        let deadline = self.backup_deadline;
        self.backup_task = Some(tokio::spawn(async move {
            let put = |r| {
                if let Ok(mut s) = slot.lock() {
                    *s = Some(r);
                }
            };
            let client = match Client::with_seams(cfg, transport, Arc::new(clock)) {
                Ok(c) => c,
                Err(e) => return put(Err(format!("operator: {e}"))),
            };
            while crate::time::elapsed() < deadline {
                match client.snapshot().await {
                    Ok(export) => {
                        let decoded = fenced_replica::storage::backup::decode_export(&export)
                            .and_then(|bytes| fenced_replica::storage::backup::decode(&bytes))
                            .map_err(|e| format!("the backup does not decode: {e}"));
                        if let Ok(b) = &decoded {
                            let backup = NemesisEvent::Backup {
                                index: b.index(),
                                highest_token: b.table.highest_token(),
                                locks: b.table.held_locks().count() as u64,
                            };
                            rec.nemesis(backup, crate::time::elapsed());
                        }
                        return put(decoded);
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            put(Err(format!("no leader answered a backup before {:.1} s", deadline.as_secs_f64())));
        }));
    }

    fn step(&mut self, world: &mut World<'_>, now: Duration, peers: &BTreeMap<u64, String>) -> Result<(), SimError> {
        let restore = self.d.kind == DisasterKind::Restore;
        if restore && self.backup_task.is_none() && now >= self.backup_at {
            self.start_backup(world);
        }
        if self.back_at.is_none() && now >= self.lose_at {
            let backup = match self.backup.lock().ok().and_then(|mut b| b.take()) {
                Some(Ok(b)) => Some(b),
                Some(Err(e)) => return Err(SimError::Simulation(format!("disaster: {e}"))),
                None if restore => return Ok(()),
                None => None,
            };
            self.lose(world, now, peers, backup)?;
        }
        if let Some(at) = self.back_at {
            if !self.restarted && now >= at {
                self.restarted = true;
                world.outage = false;
                let ids: Vec<u64> = world.hosts.replicas.keys().copied().collect();
                for id in ids {
                    // A replica crashed since the loss comes back when its crash ends.
                    if !world.crashed.contains(&id) {
                        world.hosts.start_replica(id);
                    }
                }
                let back = FaultRecord { majority_up: Some(true), ..FaultRecord::new(Fault::Disaster) };
                world.rec.nemesis(NemesisEvent::Stop(back), now);
                if !self.rejoin.is_empty() {
                    self.add_back(world, peers);
                }
            }
        }
        Ok(())
    }

    /// The operator adds the lost replicas back to the recovered cluster, one
    /// at a time (`fenced cluster add`), retrying until each is a voter or
    /// the faults stop.
    fn add_back(&self, world: &World, peers: &BTreeMap<u64, String>) {
        let (transport, clock) = (Arc::new(world.net.transport("operator")), SimClock::new(self.epoch_ms));
        let (cfg, rec, deadline) = (self.client_cfg.clone(), world.rec.clone(), world.cfg.gst());
        let ids: Vec<(u64, String)> = self.rejoin.iter().filter_map(|i| Some((*i, peers.get(i)?.clone()))).collect();
        tokio::spawn(async move {
            let Ok(client) = Client::with_seams(cfg, transport, Arc::new(clock)) else { return };
            for (id, addr) in ids {
                while crate::time::elapsed() < deadline {
                    match client.add_member(id, &addr, false).await {
                        Ok(m) => {
                            rec.nemesis(NemesisEvent::AddedBack { node: id, voters: m.voters }, crate::time::elapsed());
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
                    }
                }
            }
        });
    }

    /// Lose every replica (and its disk, but the survivor's), then run the
    /// real restore or recovery on the disks.
    fn lose(
        &mut self,
        world: &mut World<'_>,
        now: Duration,
        peers: &BTreeMap<u64, String>,
        backup: Option<fenced_replica::storage::backup::Backup>,
    ) -> Result<(), SimError> {
        let ids: Vec<u64> = world.hosts.replicas.keys().copied().collect();
        let mut old = BTreeMap::new();
        for id in &ids {
            world.hosts.crash(&host(*id));
            if let Some(spec) = world.hosts.replicas.get(id) {
                spec.disk.crash();
                old.insert(*id, disaster::read_log(&spec.disk).map_err(SimError::Log)?);
            }
        }
        if let Ok(mut l) = world.live.lock() {
            l.clear();
        }
        // Crashes in progress end with the cluster: their restarts are void.
        world.crashed.clear();
        world.outage = true;
        let err = |e: String| SimError::Simulation(format!("disaster: {e}"));
        let (started, start_table, survivor) = match (self.d.kind, &backup) {
            (DisasterKind::Restore, Some(b)) => {
                let (disks, started, table) = disaster::restore_all(b, peers, self.d.bump).map_err(err)?;
                for (id, disk) in disks {
                    if let Some(spec) = world.hosts.replicas.get_mut(&id) {
                        spec.disk = disk;
                        spec.cluster_name = disaster::RESTORED_CLUSTER.into();
                    }
                }
                (started, table, None)
            }
            _ => {
                let s = ids[self.rng.gen_range(0..ids.len())];
                // The others come back as new machines with empty disks,
                // waiting to be added (`fenced serve --join`).
                for (id, spec) in world.hosts.replicas.iter_mut().filter(|(id, _)| **id != s) {
                    spec.disk = MemDisk::new();
                    spec.spare = true;
                    spec.peers = BTreeMap::new();
                    self.rejoin.push(*id);
                }
                let disk = world
                    .hosts
                    .replicas
                    .get(&s)
                    .map(|spec| spec.disk.clone())
                    .ok_or_else(|| err("no survivor".into()))?;
                let (started, table) = disaster::recover(&disk, s, self.d.bump).map_err(err)?;
                (started, table, Some(s))
            }
        };
        let lost = FaultRecord::new(Fault::Disaster)
            .with("kind", json!(if survivor.is_some() { "recover" } else { "restore" }))
            .with("survivor", json!(survivor))
            .with("floor", json!(started.floor))
            .with("known_index", json!(started.known_index))
            .with("locks_freed", json!(started.locks_freed))
            .with("leases_ended", json!(started.leases_ended));
        world.rec.nemesis(NemesisEvent::Start(lost), now);
        self.aftermath = Some(Aftermath { kind: self.d.kind, old, backup, survivor, started, start_table });
        self.back_at = Some(now + OUTAGE);
        Ok(())
    }
}

/// Did some client pause for longer than the TTL while holding a lock? That
/// is the window in which an unfenced store can be corrupted.
fn had_long_pause(h: &History, ttl: Duration) -> bool {
    h.events.iter().filter(|e| e.process.is_named(Process::NEMESIS)).any(|e| {
        matches!(NemesisEvent::from_event(e), Ok(NemesisEvent::Start(FaultRecord { fault: Fault::ClientPause { ms: Some(ms), .. }, .. }))
            if ms > ttl.as_millis() as u64)
    })
}
