//! One seed: build the simulated world, run the real code in it under the
//! nemesis, record the history, and judge it.

use crate::clock::SimClock;
use crate::config::{Faults, Model, SimConfig};
use crate::nemesis::{self, Fault, PartitionKind, Planned};
use crate::recorder::Recorder;
use crate::transport::SimTransport;
use crate::workload::{self, ClientPlan};
use fenced_check::checkers::check_all;
use fenced_check::history::{Event, EventType, History, Process};
use fenced_check::verdict::{Options, Verdict};
use fenced_client::{Client, ClientConfig};
use fenced_io::disk::MemDisk;
use fenced_io::http::HttpClient;
use fenced_replica::log_store::LogStore;
use fenced_replica::node::{Replica, ReplicaConfig, Seams};
use fenced_store::client::StoreClient;
use fenced_store::config::{StoreConfig, StoreSeams};
use openraft::async_runtime::WatchReceiver;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

const RAFT_PORT: u16 = 7000;
const STORE_PORT: u16 = 9000;
/// Simulated time after the workload for the final reads.
const SETTLE: Duration = Duration::from_secs(5);

/// Why a seed could not be run at all (not a verdict on fenced).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulation failed: {0}")]
    Turmoil(String),
    #[error("reading the replicas' logs failed: {0}")]
    Log(String),
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

/// What the driver undoes when a fault ends.
enum Undo {
    Repair(Vec<(String, String)>),
    RepairOneway(Vec<(String, String)>),
    FailRate,
    Latency,
    LinkLatency(String),
    Restart(u64),
    RestartStore,
    Release(String),
    Nothing,
}

struct World<'a> {
    cfg: &'a SimConfig,
    disks: BTreeMap<u64, MemDisk>,
    store_disk: MemDisk,
    live: Live,
    replicas: Vec<String>,
    everyone: Vec<String>,
    clients: Vec<String>,
    rng: ChaCha8Rng,
    crashed: BTreeSet<u64>,
    rec: Recorder,
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

    fn cut(&self, sim: &turmoil::Sim, a: &[String], b: &[String]) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for x in a {
            for y in b {
                if x != y {
                    sim.partition(x.as_str(), y.as_str());
                    pairs.push((x.clone(), y.clone()));
                }
            }
        }
        pairs
    }

    fn start(&mut self, sim: &mut turmoil::Sim, f: &Fault) -> Undo {
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
                                    sim.partition(host(i).as_str(), host(j).as_str());
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
                Undo::Repair(self.cut(sim, &a, &b))
            }
            Fault::OneWay { node } => {
                let mut pairs = Vec::new();
                for other in self.everyone.iter().filter(|h| **h != host(*node)) {
                    sim.partition_oneway(host(*node).as_str(), other.as_str());
                    pairs.push((host(*node), other.clone()));
                }
                Undo::RepairOneway(pairs)
            }
            Fault::Loss { rate } => {
                sim.set_fail_rate(*rate);
                Undo::FailRate
            }
            Fault::Delay { max_ms } => {
                sim.set_max_message_latency(Duration::from_millis(*max_ms));
                sim.set_message_latency_curve(3.0);
                Undo::Latency
            }
            Fault::Limp { node } => {
                for other in self.everyone.iter().filter(|h| **h != host(*node)) {
                    sim.set_link_max_message_latency(host(*node).as_str(), other.as_str(), Duration::from_millis(800));
                }
                Undo::LinkLatency(host(*node))
            }
            Fault::LostReplies { node } => {
                let mut pairs = Vec::new();
                for c in &self.clients {
                    sim.partition_oneway(host(*node).as_str(), c.as_str());
                    pairs.push((host(*node), c.clone()));
                }
                Undo::RepairOneway(pairs)
            }
            Fault::Crash { node } => {
                if !self.crashed.insert(*node) {
                    return Undo::Nothing;
                }
                sim.crash(host(*node).as_str());
                if let Some(d) = self.disks.get(node) {
                    d.crash();
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
            Fault::CrashStore => {
                sim.crash("store");
                self.store_disk.crash();
                Undo::RestartStore
            }
            Fault::Pause { node } => {
                for other in self.everyone.iter().filter(|h| **h != host(*node)) {
                    sim.hold(host(*node).as_str(), other.as_str());
                }
                Undo::Release(host(*node))
            }
            Fault::WallJump { .. } => Undo::Nothing,
        }
    }

    fn stop(&mut self, sim: &mut turmoil::Sim, undo: Undo) {
        match undo {
            Undo::Repair(pairs) => {
                for (a, b) in pairs {
                    sim.repair(a.as_str(), b.as_str());
                }
            }
            Undo::RepairOneway(pairs) => {
                for (a, b) in pairs {
                    sim.repair_oneway(a.as_str(), b.as_str());
                }
            }
            Undo::FailRate => sim.set_fail_rate(0.0),
            Undo::Latency => sim.set_max_message_latency(Duration::from_millis(5)),
            Undo::LinkLatency(h) => {
                for other in self.everyone.iter().filter(|o| **o != h) {
                    sim.set_link_max_message_latency(h.as_str(), other.as_str(), Duration::from_millis(5));
                }
            }
            Undo::Restart(node) => {
                if self.crashed.remove(&node) {
                    sim.bounce(host(node).as_str());
                }
            }
            Undo::RestartStore => sim.bounce("store"),
            Undo::Release(h) => {
                for other in self.everyone.iter().filter(|o| **o != h) {
                    sim.release(h.as_str(), other.as_str());
                }
            }
            Undo::Nothing => {}
        }
    }
}

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
    fn next(&mut self, world: &World, now: Duration, gst: Duration) -> Option<(Fault, serde_json::Value, Duration)> {
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
        let mut record = json!(fault);
        record["during"] = json!("joint-configuration");
        record["membership_index"] = json!(index);
        Some((fault, record, end))
    }
}

/// The log events (grants, releases, expiries) as the committed log decided
/// them, replayed through the real state machine.
fn log_events(disks: &BTreeMap<u64, MemDisk>, at: u64) -> Result<Vec<Event>, SimError> {
    let mut best: Option<(u64, Vec<fenced_replica::types::Entry>)> = None;
    for d in disks.values() {
        let log = LogStore::open(Arc::new(d.clone())).map_err(|e| SimError::Log(e.to_string()))?;
        let committed = log.committed_index().map_err(|e| SimError::Log(e.to_string()))?.unwrap_or(0);
        if best.as_ref().is_none_or(|(c, _)| committed > *c) {
            let entries = log.entries().map_err(|e| SimError::Log(e.to_string()))?;
            best = Some((committed, entries));
        }
    }
    let Some((committed, entries)) = best else { return Ok(Vec::new()) };
    let requests = entries.iter().filter(|e| e.log_id.index <= committed).filter_map(|e| match &e.payload {
        openraft::EntryPayload::Normal(req) => Some((e.log_id.index, req)),
        _ => None,
    });
    let out = fenced_core::audit::replay(requests)
        .into_iter()
        .map(|d| Event::from_log(d.kind, serde_json::to_value(&d).unwrap_or_default(), at))
        .collect();
    Ok(out)
}

/// Run one seed.
pub fn run_seed(cfg: &SimConfig) -> Result<SeedOutcome, SimError> {
    // Real time the run took (not simulated time): the production clock.
    let wall = fenced_io::clock::now();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let key_entropy: [u8; 32] = rng.gen();
    let cluster_key = fenced_core::token::public_key_from_entropy(&key_entropy);
    let epoch = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut sim = turmoil::Builder::new()
        .rng_seed(cfg.seed)
        .epoch(epoch)
        .simulation_duration(cfg.duration + SETTLE + Duration::from_secs(120))
        .tick_duration(cfg.tick)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(5))
        // A held or partitioned host can have many connection attempts queued.
        .tcp_capacity(1 << 16)
        .build();
    let rec = Recorder::default();
    let live: Live = Arc::default();
    let peers: BTreeMap<u64, String> = (1..=cfg.nodes).map(|i| (i, format!("{}:{RAFT_PORT}", host(i)))).collect();
    // Replicas, store, clients, the final reader, and a spare replica's clock.
    let nhosts = (cfg.nodes + cfg.clients + 3) as usize;
    let drifts = nemesis::drifts(cfg, nhosts);
    let epoch_ms = 1_800_000_000_000u64;
    let clocks: Vec<SimClock> = (0..nhosts).map(|_| SimClock::new(epoch_ms)).collect();
    let mut disks = BTreeMap::new();
    // With membership changes, one spare replica starts empty and waits to
    // be added (`fenced serve --join`): `replace` puts it in a voter's place.
    let spare = cfg.membership.then_some(cfg.nodes + 1);
    for i in (1..=cfg.nodes).chain(spare) {
        let disk = MemDisk::new();
        disks.insert(i, disk.clone());
        let clock = clocks[if Some(i) == spare { nhosts - 1 } else { i as usize - 1 }].clone();
        let (peers, live) = (if Some(i) == spare { BTreeMap::new() } else { peers.clone() }, live.clone());
        let seed = cfg.seed.wrapping_mul(31).wrapping_add(i);
        let rec = rec.on_host(Arc::new(clock.clone()));
        sim.host(host(i).as_str(), move || {
            let (peers, live, clock, disk, rec) =
                (peers.clone(), live.clone(), clock.clone(), disk.clone(), rec.clone());
            async move {
                // A restart trusts its data directory, as `fenced serve`
                // without `--peers` does: membership changes may have made
                // the initial peer list stale.
                let peers = match fenced_io::disk::Disk::read(&disk, fenced_replica::log_store::WAL) {
                    Ok(Some(_)) => BTreeMap::new(),
                    _ => peers,
                };
                let mut config = ReplicaConfig::new(i, format!("0.0.0.0:{RAFT_PORT}"), peers);
                config.join = Some(i) == spare;
                // Keep the whole log so the checker can read every decision.
                config.snapshot_every_entries = 1_000_000;
                let seams = Seams {
                    transport: Arc::new(SimTransport),
                    disk: Arc::new(disk),
                    clock: Arc::new(clock),
                    seed,
                    key_entropy,
                };
                let running = fenced_replica::server::start(config, seams).await?;
                // The replica's clock-jump detections go into the history.
                running.replica.vitals.timekeeper.on_jump(Box::new(move |jump_ms, _| {
                    rec.record_on(
                        EventType::Info,
                        Process::Named(Process::CLOCK.into()),
                        "jump",
                        json!({"node": i, "jump_ms": jump_ms}),
                        Some(host(i)),
                    );
                }));
                if let Ok(mut l) = live.lock() {
                    l.insert(i, running.replica.clone());
                }
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }
    let store_disk = MemDisk::new();
    {
        let (disk, clock, unfenced) = (store_disk.clone(), clocks[cfg.nodes as usize].clone(), cfg.unfenced);
        sim.host("store", move || {
            let (disk, clock) = (disk.clone(), clock.clone());
            async move {
                let mut config = StoreConfig::new(format!("0.0.0.0:{STORE_PORT}"), vec![cluster_key]);
                config.unsafe_no_fencing = unfenced;
                let seams =
                    StoreSeams { transport: Arc::new(SimTransport), disk: Arc::new(disk), clock: Arc::new(clock) };
                let _running = fenced_store::server::start(config, seams).await?;
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }
    let endpoints: Vec<String> = peers.values().cloned().collect();
    let mut client_peers: Vec<String> = (1..=cfg.nodes).map(host).collect();
    client_peers.push("store".into());
    // Clients still running; the final reads wait for all of them.
    let running = Arc::new(std::sync::atomic::AtomicU64::new(cfg.clients));
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
            peers: client_peers.clone(),
            pauses_until: cfg.gst(),
            process: c,
            seed: cfg.seed.wrapping_mul(7919).wrapping_add(c),
            locks: cfg.locks,
            ttl: cfg.ttl,
            wait: cfg.acquire_wait,
            until: cfg.duration,
            pause_rate: if cfg.model == Model::Sync { 0.0 } else { cfg.client_pause_rate },
            pause_max: cfg.ttl * 3,
            byzantine,
        };
        let (rec, store_addr, running) = (rec.on_host(Arc::new(clock.clone())), store_addr.clone(), running.clone());
        sim.client(name.as_str(), async move {
            let client = Client::with_seams(ccfg, Arc::new(SimTransport), Arc::new(clock))?;
            let store = StoreClient::new(HttpClient::new(Arc::new(SimTransport)), store_addr)
                .with_timeout(Duration::from_secs(2));
            if plan.byzantine {
                workload::byzantine(plan, client, store, rec).await;
            } else {
                workload::honest(plan, client, store, rec).await;
            }
            running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
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
        sim.client("operator", async move {
            let client = Client::with_seams(acfg, Arc::new(SimTransport), Arc::new(clock))?;
            crate::membership::drive(all, voters, client, rec, until, deadline, seed).await;
            Ok(())
        });
    }
    // The final reader keeps true time (no drift, no jumps). It joins only
    // when it has work: once the store has settled and every client is done
    // (a client paused mid-write may still be writing). Joining from the
    // start made it one more host that turmoil steps every tick and scans
    // every link for: about 5 % of a 5x10 seed's instructions.
    let final_at = cfg.duration + SETTLE;
    let mut final_reader = Some({
        let rec = rec.on_host(Arc::new(SimClock::new(epoch_ms)));
        let locks = cfg.locks;
        move |sim: &mut turmoil::Sim| {
            sim.client("final", async move {
                let store = StoreClient::new(HttpClient::new(Arc::new(SimTransport)), store_addr)
                    .with_timeout(Duration::from_secs(2));
                workload::final_reads(locks, store, rec).await;
                Ok(())
            });
        }
    });

    let schedule = nemesis::schedule(cfg);
    let replicas: Vec<String> = (1..=cfg.nodes).map(host).collect();
    let mut everyone = replicas.clone();
    everyone.push("store".into());
    everyone.extend(clients.iter().cloned());
    everyone.extend(spare.map(host));
    let mut world = World {
        cfg,
        disks,
        store_disk,
        live,
        replicas,
        everyone,
        clients,
        rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x7061_7274),
        crashed: BTreeSet::new(),
        rec: rec.clone(),
    };
    // Clock drift for the whole run; wall jumps come from the schedule.
    for (i, c) in clocks.iter().enumerate() {
        c.set_drift(drifts[i], Duration::ZERO);
    }
    let mut next = 0usize;
    // Active faults: when each ends, its history record, and how to undo it.
    let mut active: Vec<(Duration, serde_json::Value, Undo)> = Vec::new();
    let mut healed = false;
    let gst = cfg.gst();
    let mut joint = JointFaults::new(cfg);
    loop {
        let now = sim.elapsed();
        while next < schedule.len() && schedule[next].start <= now {
            let p = &schedule[next];
            if let Fault::WallJump { node, ms } = p.fault {
                clocks[node as usize - 1].jump_wall(ms);
            }
            // A crash record says whether it took the leader out: failover
            // measurements (and readers of the report) need to know.
            let mut record = json!(p);
            if let Fault::Crash { node } = p.fault {
                record["leader"] = json!(world.leader() == Some(node));
            }
            let undo = world.start(&mut sim, &p.fault);
            world.rec.nemesis("start", record.clone(), now);
            active.push((p.end, record, undo));
            next += 1;
        }
        if now < gst {
            if let Some((fault, record, end)) = joint.next(&world, now, gst) {
                let undo = world.start(&mut sim, &fault);
                world.rec.nemesis("start", record.clone(), now);
                active.push((end, record, undo));
            }
        }
        let mut i = 0;
        while i < active.len() {
            if active[i].0 <= now {
                let (_, record, undo) = active.remove(i);
                world.stop(&mut sim, undo);
                world.rec.nemesis("stop", record, now);
            } else {
                i += 1;
            }
        }
        if !healed && now >= gst && cfg.model != Model::Async {
            healed = true;
            for (_, record, undo) in std::mem::take(&mut active) {
                world.stop(&mut sim, undo);
                world.rec.nemesis("stop", record, now);
            }
            let majority_up = world.crashed.len() * 2 < world.replicas.len();
            world.rec.nemesis("stop", json!({"fault": "heal-all", "majority_up": majority_up}), now);
        }
        if now >= final_at && running.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            if let Some(join) = final_reader.take() {
                join(&mut sim);
            }
        }
        match sim.step() {
            // Every client is done, and the final reader has joined.
            Ok(true) if final_reader.is_none() => break,
            Ok(_) => {}
            Err(e) => return Err(SimError::Turmoil(e.to_string())),
        }
    }
    let sim_time = sim.elapsed();
    let mut events = rec.take();
    events.sort_by_key(|e| e.time);
    let end = events.last().map(|e| e.time).unwrap_or(0);
    events.extend(log_events(&world.disks, end)?);
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
    })
}

/// Did some client pause for longer than the TTL while holding a lock? That
/// is the window in which an unfenced store can be corrupted.
fn had_long_pause(h: &History, ttl: Duration) -> bool {
    h.events.iter().any(|e| {
        e.process.is_named("nemesis")
            && e.f == "start"
            && e.value["fault"] == "client-pause"
            && e.value["ms"].as_u64().is_some_and(|ms| ms > ttl.as_millis() as u64)
    })
}
