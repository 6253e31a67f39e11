//! The driver: build the network, start the cluster, the store and the
//! clients, apply the nemesis schedule, heal, read back, judge, write the
//! report, and clean up whatever happens (including Ctrl-C).

use crate::error::ChaosError;
use crate::metrics::{self, Metrics};
use crate::nemesis::{self, Fault, Kind, MembershipOp, Planned};
use crate::netns::{self, Net};
use crate::plan::{AddressPlan, NS_PREFIX};
use crate::procs::{self, Procs};
use crate::redlock::Redlock;
use crate::target::Target;
use crate::worker::mono_ns;
use fenced_bench::system::{Etcd, LockSystem};
use fenced_check::checkers::check_all;
use fenced_check::final_read;
use fenced_check::history::{Event, EventType, History, Process};
use fenced_check::nemesis::{FaultRecord, NemesisEvent};
use fenced_check::readback::{self, Commit, LogEntry, Payload, ReplicaLog};
use fenced_check::verdict::{Options, Status, Verdict};
use fenced_client::{Client, ClientConfig};
use fenced_core::machine::command::Request;
use fenced_io::http::HttpClient;
use fenced_io::transport::TcpTransport;
use fenced_store_client::StoreClient;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `fenced` binary to start replicas, the store and clients from.
    pub bin: PathBuf,
    pub target: Target,
    pub nodes: u64,
    pub clients: u64,
    pub duration: Duration,
    pub kinds: BTreeSet<Kind>,
    pub seed: u64,
    pub out: PathBuf,
    pub locks: usize,
    pub ttl: Duration,
    /// Print progress lines on stderr.
    pub progress: bool,
}

impl Config {
    /// Refuse a TTL the system under test cannot honour before anything
    /// starts: every acquire would be refused, and the run would judge only
    /// refusals (fenced with 0 operations beside a working etcd).
    pub fn check_ttl(&self) -> Result<(), ChaosError> {
        check_ttl(self.target, self.ttl)
    }
}

/// See [`Config::check_ttl`]. Only fenced has a floor: etcd and Redlock take
/// any TTL and their runs show what it costs them.
pub fn check_ttl(target: Target, ttl: Duration) -> Result<(), ChaosError> {
    if target != Target::Fenced {
        return Ok(());
    }
    let (min, max) = crate::procs::fenced_ttl_range();
    let secs = |d: Duration| humantime::format_duration(d).to_string();
    if ttl < min {
        return Err(ChaosError::Usage(format!(
            "--ttl {} is below {}, the shortest lease the chaos cluster's fenced replicas can honour: their \
             election timeout is {}..{}, and a lease must outlive a failover (the longest election timeout to \
             notice the leader is gone plus the shortest to elect a new one). Every acquire would be refused \
             with invalid_argument. Use --ttl {} or more (e.g. --ttl {})",
            secs(ttl),
            secs(min),
            secs(crate::procs::ELECTION_TIMEOUT_MIN),
            secs(crate::procs::ELECTION_TIMEOUT_MIN * 2),
            secs(min),
            secs(min + Duration::from_secs(1)),
        )));
    }
    if ttl > max {
        return Err(ChaosError::Usage(format!(
            "--ttl {} is above {}, the longest lease the chaos cluster's fenced replicas grant; use --ttl {} or less",
            secs(ttl),
            secs(max),
            secs(max)
        )));
    }
    Ok(())
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub target: Target,
    pub history: History,
    pub metrics: Metrics,
    pub verdicts: Vec<Verdict>,
    pub schedule: Vec<Planned>,
    /// Things the reader must know: skipped nemeses, leftovers removed.
    pub notes: Vec<String>,
    pub leftovers_after: Vec<String>,
}

impl Outcome {
    pub fn status(&self) -> Status {
        fenced_check::verdict::overall(&self.verdicts)
    }

    /// Counts of client completions by type.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for e in self.history.events.iter().filter(|e| matches!(e.process, Process::Client(_))) {
            *m.entry(e.kind.as_str()).or_default() += 1;
        }
        m
    }
}

/// The run's resources, shared with the signal path so that an interrupt can
/// clean up exactly what was created.
#[derive(Default)]
struct Resources {
    net: Option<Net>,
    procs: Option<Procs>,
}

type Shared = Arc<Mutex<Resources>>;

fn with_procs<T>(r: &Shared, f: impl FnOnce(&mut Procs) -> T) -> Option<T> {
    r.lock().ok().and_then(|mut g| g.procs.as_mut().map(f))
}

fn progress(cfg: &Config, msg: &str) {
    if cfg.progress {
        eprintln!("[chaos] {msg}");
    }
}

/// Faults start this long into the workload.
pub const FAULTS_FROM: Duration = Duration::from_secs(2);

/// When the final heal happens: the last quarter of the run (at least 5 s)
/// is fault-free, so that L1 can judge availability after it.
pub fn heal_at(duration: Duration) -> Duration {
    duration.saturating_sub((duration / 4).max(Duration::from_secs(5)))
}

/// Run, and always clean up: on success, on error, and on Ctrl-C/SIGTERM.
pub async fn run(cfg: Config) -> Result<Outcome, ChaosError> {
    cfg.check_ttl()?;
    let res: Shared = Arc::default();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| ChaosError::Spawn { cmd: "install SIGTERM handler".into(), source })?;
    let result = tokio::select! {
        r = drive(&cfg, res.clone()) => r,
        _ = tokio::signal::ctrl_c() => Err(ChaosError::Interrupted),
        _ = sigterm.recv() => Err(ChaosError::Interrupted),
    };
    let problems = teardown(&res);
    let leftovers: Vec<String> = netns::list_namespaces()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{NS_PREFIX}{}-", std::process::id())))
        .collect();
    match result {
        Ok(mut o) => {
            o.notes.extend(problems);
            o.leftovers_after = leftovers;
            Ok(o)
        }
        Err(e) => Err(e),
    }
}

fn teardown(res: &Shared) -> Vec<String> {
    let Ok(mut g) = res.lock() else { return vec!["cleanup: resource lock poisoned".into()] };
    if let Some(mut p) = g.procs.take() {
        p.kill_all();
    }
    g.net.take().map(|mut n| n.destroy()).unwrap_or_default()
}

/// What the machine allows: the nemeses that can run, notes on the ones
/// that cannot, and the libfaketime library, if installed.
type Preflight = (BTreeSet<Kind>, Vec<String>, Option<PathBuf>);

/// Check that the machine can run what was asked.
fn preflight(cfg: &Config) -> Result<Preflight, ChaosError> {
    if !netns::is_root() {
        return Err(ChaosError::NotRoot);
    }
    for (tool, pkg) in [("ip", "iproute2"), ("nft", "nftables")] {
        if !netns::have(tool) {
            return Err(ChaosError::MissingTool { tool: tool.into(), hint: format!("apt-get install -y {pkg}") });
        }
    }
    if let Some((tool, pkg)) = cfg.target.server_tool() {
        if !netns::have(tool) {
            return Err(ChaosError::MissingTool { tool: tool.into(), hint: format!("apt-get install -y {pkg}") });
        }
    }
    if !cfg.bin.exists() {
        return Err(ChaosError::NoBinary(cfg.bin.clone()));
    }
    if cfg.nodes != 3 && cfg.nodes != 5 {
        return Err(ChaosError::Usage("--nodes must be 3 or 5".into()));
    }
    let mut kinds = cfg.kinds.clone();
    let mut notes = Vec::new();
    let faketime = procs::faketime_lib();
    if kinds.contains(&Kind::Clock) && faketime.is_none() {
        kinds.remove(&Kind::Clock);
        notes.push("clock nemesis skipped: libfaketime is not installed (apt-get install -y faketime)".into());
    }
    let faketime = match (kinds.contains(&Kind::Clock), cfg.target) {
        (_, Target::Fenced) => faketime,
        (false, _) => None,
        (true, Target::Etcd | Target::EtcdNoToken) => {
            notes.push(
                "clock nemesis skipped on etcd: etcd is a Go binary, which reads the clock through the vDSO, \
                 not libc, so libfaketime cannot reach it"
                    .into(),
            );
            None
        }
        (true, Target::Redlock) => {
            notes.push(
                "clock nemesis skipped on redis: libfaketime cannot be preloaded into redis-server (its jemalloc \
                 calls clock_gettime while libfaketime initialises, and the server aborts)"
                    .into(),
            );
            None
        }
    };
    if kinds.contains(&Kind::Membership) && cfg.target != Target::Fenced {
        kinds.remove(&Kind::Membership);
        notes.push(format!(
            "membership nemesis skipped on {}: membership changes are driven through fenced's maintenance API only",
            cfg.target.name()
        ));
    }
    if kinds.contains(&Kind::Limp) && !netns::have("tc") {
        kinds.remove(&Kind::Limp);
        notes.push("limp nemesis skipped: `tc` is not installed (apt-get install -y iproute2)".into());
    }
    Ok((kinds, notes, faketime))
}

/// The leader a majority of nodes names, asking each for its status (`None`
/// for Redlock, whose nodes are independent).
async fn leader(target: Target, client: Option<&Client>, plan: &AddressPlan) -> Option<u64> {
    let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
    let mut node_of: BTreeMap<u64, u64> = BTreeMap::new();
    match target {
        Target::Fenced => {
            let client = client?;
            for ep in plan.endpoints() {
                if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(700), client.cluster_status_of(&ep)).await
                {
                    if let Some(l) = s.leader {
                        *votes.entry(l).or_default() += 1;
                    }
                }
            }
        }
        Target::Etcd | Target::EtcdNoToken => {
            for id in plan.ids() {
                if let Some((me, l)) = Etcd::member_status(&plan.node_addr(id), Duration::from_millis(700)).await {
                    node_of.insert(me, id);
                    if l != 0 {
                        *votes.entry(l).or_default() += 1;
                    }
                }
            }
        }
        Target::Redlock => return None,
    }
    let l = votes.into_iter().find(|(_, n)| *n as u64 * 2 > plan.nodes).map(|(l, _)| l)?;
    if target == Target::Fenced {
        Some(l)
    } else {
        node_of.get(&l).copied()
    }
}

/// What undoes an active fault.
enum Undo {
    Nft(Vec<u64>),
    Cont(u32),
    Restart(u64),
    Clock(u64),
    Limp(u64),
    /// Bring a removed replica back as a new machine and add it.
    Readd(u64),
    /// Replace the spare `new` by a new, empty `old`.
    ReplaceBack {
        old: u64,
        new: u64,
    },
    Nothing,
}

/// How long one membership change may take (a learner's catch-up included).
const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// One admin call, bounded; the membership's voters, or the error.
async fn change<F>(f: F) -> Result<BTreeSet<u64>, String>
where
    F: std::future::Future<Output = Result<fenced_core::admin::Membership, fenced_client::ClientError>>,
{
    match tokio::time::timeout(CHANGE_TIMEOUT, f).await {
        Ok(Ok(m)) => Ok(m.voters),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CHANGE_TIMEOUT:?}")),
    }
}

fn outcome(r: &Result<BTreeSet<u64>, String>) -> Value {
    match r {
        Ok(voters) => json!({"voters": voters}),
        Err(e) => json!({"error": e}),
    }
}

struct Nemesis<'a> {
    cfg: &'a Config,
    plan: AddressPlan,
    res: Shared,
    client: Option<Client>,
    holders: Arc<Mutex<BTreeMap<u64, bool>>>,
    seq: u64,
}

impl Nemesis<'_> {
    fn nft(&self, node: u64, script: &str) -> Result<(), ChaosError> {
        let ns = self.plan.node_ns(node);
        netns::run_stdin("ip", &["netns", "exec", &ns, "nft", "-f", "-"], Some(script)).map(|_| ())
    }

    /// Start a fault; returns what it did (for the history) and its undo.
    async fn start(&mut self, f: &Fault) -> Result<(FaultRecord, Undo), ChaosError> {
        self.seq += 1;
        nemesis::kind(f)?;
        let mut v = FaultRecord::new(f.clone());
        let undo = match f {
            Fault::Partition { kind } => {
                let l = leader(self.cfg.target, self.client.as_ref(), &self.plan).await;
                let drops = nemesis::partition_drops(*kind, self.plan.nodes, l, self.cfg.seed ^ self.seq);
                for (node, from) in &drops {
                    let ips: Vec<_> = from.iter().map(|n| self.plan.node_ip(*n)).collect();
                    self.nft(*node, &nemesis::nft_script(&ips, None))?;
                }
                let groups: BTreeMap<String, Vec<u64>> =
                    drops.iter().map(|(n, s)| (n.to_string(), s.iter().copied().collect())).collect();
                v.set("drops", json!(groups));
                v.set("targets", json!(drops.keys().collect::<Vec<_>>()));
                Undo::Nft(drops.keys().copied().collect())
            }
            Fault::OneWay { node } => {
                self.nft(*node, &nemesis::nft_script(&[], Some(&self.plan.cidr())))?;
                v.set("targets", json!([node]));
                Undo::Nft(vec![*node])
            }
            Fault::Pause { node } => self.pause_replica(*node, &mut v),
            Fault::PauseLeader => match leader(self.cfg.target, self.client.as_ref(), &self.plan).await {
                Some(l) => self.pause_replica(l, &mut v),
                None => {
                    v.set("skipped", json!("no leader"));
                    Undo::Nothing
                }
            },
            Fault::ClientPause { .. } => {
                let holding: Vec<u64> = self
                    .holders
                    .lock()
                    .map(|h| h.iter().filter(|(_, held)| **held).map(|(p, _)| *p).collect())
                    .unwrap_or_default();
                let pick = holding.first().copied().unwrap_or(1 + self.seq % self.cfg.clients.max(1));
                v.set("targets", json!([pick]));
                v.set("holding", json!(holding.contains(&pick)));
                match with_procs(&self.res, |p| p.client_pid(pick)).flatten() {
                    Some(pid) => {
                        procs::signal(pid, libc::SIGSTOP);
                        Undo::Cont(pid)
                    }
                    None => Undo::Nothing,
                }
            }
            Fault::Crash { node } => {
                with_procs(&self.res, |p| p.kill_replica(*node));
                v.set("targets", json!([node]));
                Undo::Restart(*node)
            }
            Fault::RestartLeader => match leader(self.cfg.target, self.client.as_ref(), &self.plan).await {
                Some(l) => {
                    with_procs(&self.res, |p| p.kill_replica(l));
                    v.set("targets", json!([l]));
                    Undo::Restart(l)
                }
                None => {
                    v.set("skipped", json!("no leader"));
                    Undo::Nothing
                }
            },
            Fault::Clock { node, offset_s } => {
                let file = with_procs(&self.res, |p| p.faketime.is_some().then(|| p.faketime_file(*node))).flatten();
                v.set("targets", json!([node]));
                match file {
                    Some(file) => {
                        std::fs::write(&file, nemesis::faketime_offset(*offset_s))
                            .map_err(|source| ChaosError::Write { path: file, source })?;
                        Undo::Clock(*node)
                    }
                    None => {
                        v.set("skipped", json!(format!("no libfaketime in {}'s servers", self.cfg.target.name())));
                        Undo::Nothing
                    }
                }
            }
            Fault::Membership { op } => self.membership(*op, &mut v).await?,
            Fault::Limp { node } => {
                let ns = self.plan.node_ns(*node);
                let args = ["-n", &ns, "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "200ms"];
                v.set("targets", json!([node]));
                match netns::run("tc", &args) {
                    Ok(_) => Undo::Limp(*node),
                    Err(e) => {
                        v.set("skipped", json!(format!("netem unavailable: {e}")));
                        Undo::Nothing
                    }
                }
            }
            Fault::Loss { .. }
            | Fault::Duplicate { .. }
            | Fault::Delay { .. }
            | Fault::LostReplies { .. }
            | Fault::CrashStore
            | Fault::WallJump { .. }
            | Fault::Disaster
            | Fault::HealAll
            | Fault::Other(_) => return Err(nemesis::Unsupported(f.name().to_string()).into()),
        };
        Ok((v, undo))
    }

    /// Start a membership change (the admin API `fenced cluster` uses).
    async fn membership(&mut self, op: MembershipOp, v: &mut FaultRecord) -> Result<Undo, ChaosError> {
        let Some(client) = self.client.clone() else {
            v.set("skipped", json!("no fenced client"));
            return Ok(Undo::Nothing);
        };
        let node = match op {
            MembershipOp::Remove { node } | MembershipOp::ReplaceKilled { node } => node,
            MembershipOp::Add { .. } | MembershipOp::Replace { .. } => {
                return Err(nemesis::Unsupported(Fault::Membership { op }.name().to_string()).into());
            }
            MembershipOp::RemoveLeader => match leader(self.cfg.target, Some(&client), &self.plan).await {
                Some(l) => l,
                None => {
                    v.set("skipped", json!("no leader"));
                    return Ok(Undo::Nothing);
                }
            },
        };
        v.set("targets", json!([node]));
        match op {
            MembershipOp::Remove { .. } | MembershipOp::RemoveLeader => {
                let r = change(client.remove_member(node, false)).await;
                v.set("outcome", outcome(&r));
                if r.is_err() {
                    return Ok(Undo::Nothing);
                }
                // The removed machine is switched off; it returns empty.
                with_procs(&self.res, |p| p.kill_replica(node));
                Ok(Undo::Readd(node))
            }
            MembershipOp::ReplaceKilled { .. } => {
                let Some(spare) = self.plan.spare_ids().next() else {
                    v.set("skipped", json!("no spare namespace"));
                    return Ok(Undo::Nothing);
                };
                with_procs(&self.res, |p| p.kill_replica(node));
                with_procs(&self.res, |p| p.spawn_joining_replica(spare)).transpose()?;
                v.set("new", json!(spare));
                let r = change(client.replace_member(node, spare, &self.plan.node_addr(spare), false)).await;
                v.set("outcome", outcome(&r));
                if r.is_err() {
                    // Still a voter: it restarts as after a kill.
                    with_procs(&self.res, |p| p.kill_replica(spare));
                    return Ok(Undo::Restart(node));
                }
                Ok(Undo::ReplaceBack { old: node, new: spare })
            }
            MembershipOp::Add { .. } | MembershipOp::Replace { .. } => {
                Err(nemesis::Unsupported(Fault::Membership { op }.name().to_string()).into())
            }
        }
    }

    /// Undo a membership change: what was done, for the history.
    async fn membership_back(&mut self, undo: Undo) -> Result<Value, ChaosError> {
        let Some(client) = self.client.clone() else { return Ok(Value::Null) };
        match undo {
            Undo::Readd(node) => {
                with_procs(&self.res, |p| p.spawn_joining_replica(node)).transpose()?;
                let r = change(client.add_member(node, &self.plan.node_addr(node), false)).await;
                Ok(json!({"op": "add", "node": node, "outcome": outcome(&r)}))
            }
            Undo::ReplaceBack { old, new } => {
                with_procs(&self.res, |p| p.spawn_joining_replica(old)).transpose()?;
                let r = change(client.replace_member(new, old, &self.plan.node_addr(old), false)).await;
                if r.is_ok() {
                    with_procs(&self.res, |p| p.kill_replica(new));
                }
                Ok(json!({"op": "replace", "node": new, "new": old, "outcome": outcome(&r)}))
            }
            _ => Ok(Value::Null),
        }
    }

    fn pause_replica(&self, node: u64, v: &mut FaultRecord) -> Undo {
        v.set("targets", json!([node]));
        match with_procs(&self.res, |p| p.replica_pid(node)).flatten() {
            Some(pid) => {
                procs::signal(pid, libc::SIGSTOP);
                Undo::Cont(pid)
            }
            None => Undo::Nothing,
        }
    }

    /// End a fault; what the undo did, for the history (or null).
    async fn stop(&mut self, undo: Undo) -> Result<Value, ChaosError> {
        match undo {
            Undo::Readd(_) | Undo::ReplaceBack { .. } => return self.membership_back(undo).await,
            Undo::Nft(nodes) => {
                for n in nodes {
                    self.nft(n, &nemesis::nft_heal_script())?;
                }
            }
            Undo::Cont(pid) => procs::signal(pid, libc::SIGCONT),
            Undo::Restart(node) => {
                if let Some(r) = with_procs(&self.res, |p| p.spawn_replica(node)) {
                    r?;
                }
            }
            Undo::Clock(node) => {
                if let Some(file) = with_procs(&self.res, |p| p.faketime_file(node)) {
                    std::fs::write(&file, nemesis::faketime_offset(0))
                        .map_err(|source| ChaosError::Write { path: file, source })?;
                }
            }
            Undo::Limp(node) => {
                let ns = self.plan.node_ns(node);
                netns::run("tc", &["-n", &ns, "qdisc", "del", "dev", "eth0", "root"])?;
            }
            Undo::Nothing => {}
        }
        Ok(Value::Null)
    }
}

fn nemesis_event(e: NemesisEvent, epoch: u64) -> Event {
    Event { wall: Some(crate::worker::wall_now()), ..e.to_event(mono_ns().saturating_sub(epoch)) }
}

/// Wait until the target serves: a leader that answers (and, for fenced,
/// the cluster's signing keys, which the store needs); for Redlock, every
/// redis node answering PING. Returns the keys.
async fn wait_ready(target: Target, client: Option<&Client>, plan: &AddressPlan) -> Result<Vec<String>, ChaosError> {
    for _ in 0..60 {
        match target {
            Target::Fenced => {
                if let Some(c) = client {
                    if leader(target, client, plan).await.is_some() {
                        if let Ok(k) = c.cluster_key().await {
                            return Ok(k.public_keys);
                        }
                    }
                }
            }
            Target::Etcd | Target::EtcdNoToken => {
                if leader(target, None, plan).await.is_some() {
                    let etcd = Etcd::new(Arc::new(plan.endpoints()), 0)
                        .with_timeouts(Duration::from_secs(1), Duration::from_secs(2));
                    if let Ok(lease) = etcd.grant_lease(Duration::from_secs(5)).await {
                        let _ = etcd.revoke(lease).await;
                        return Ok(Vec::new());
                    }
                }
            }
            Target::Redlock => {
                let r = Redlock::new(Arc::new(TcpTransport), &plan.endpoints(), Duration::from_millis(500));
                if r.ping().await as u64 == plan.nodes {
                    return Ok(Vec::new());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(ChaosError::NotReady(format!("{} had no leader (or a node did not answer) within 30 s", target.name())))
}

async fn drive(cfg: &Config, res: Shared) -> Result<Outcome, ChaosError> {
    let (kinds, mut notes, faketime) = preflight(cfg)?;
    let removed = netns::remove_leftovers()?;
    if !removed.is_empty() {
        notes.push(format!("removed leftovers of a crashed earlier run: {}", removed.join(", ")));
        progress(cfg, &notes[notes.len() - 1]);
    }
    let out = cfg.out.clone();
    std::fs::create_dir_all(out.join("data")).map_err(|source| ChaosError::Write { path: out.clone(), source })?;
    // A membership nemesis replaces replicas by a spare machine.
    let spares = u64::from(kinds.contains(&Kind::Membership));
    let plan = AddressPlan::new(std::process::id(), cfg.nodes).with_spares(spares);
    progress(
        cfg,
        &format!("network: {} namespaces under {} ({})", plan.members().len() + 1, plan.prefix(), plan.cidr()),
    );
    if let Ok(mut g) = res.lock() {
        g.net = Some(Net::new(plan.clone()));
        g.procs = Some(Procs::new(cfg.bin.clone(), cfg.target, out.clone(), plan.clone(), faketime));
    }
    if let Ok(mut g) = res.lock() {
        if let Some(net) = g.net.as_mut() {
            net.create()?;
        }
    }
    for id in plan.ids() {
        with_procs(&res, |p| p.spawn_replica(id)).transpose()?;
    }
    let client = match cfg.target {
        Target::Fenced => {
            let mut ccfg = ClientConfig::new(plan.endpoints());
            ccfg.request_timeout = Duration::from_millis(700);
            ccfg.call_timeout = Duration::from_secs(3);
            Some(Client::new(ccfg).map_err(|e| ChaosError::NotReady(e.to_string()))?)
        }
        _ => None,
    };
    let keys = wait_ready(cfg.target, client.as_ref(), &plan).await?;
    progress(cfg, &format!("{} up; starting the store ({:?})", cfg.target.name(), cfg.target.store_mode()));
    with_procs(&res, |p| p.spawn_store(cfg.target.store_mode(), &keys)).transpose()?;
    let store = StoreClient::new(HttpClient::new(Arc::new(TcpTransport)), plan.store_addr())
        .with_timeout(Duration::from_secs(2));
    let mut store_up = false;
    for _ in 0..50 {
        if store.get("k0").await.is_ok() {
            store_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !store_up {
        return Err(ChaosError::NotReady("the store did not answer within 10 s".into()));
    }

    // The workload.
    let epoch = mono_ns();
    let until = cfg.duration;
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    for c in 1..=cfg.clients {
        let args: Vec<String> = vec![
            "--process".into(),
            c.to_string(),
            "--endpoints".into(),
            plan.endpoints().join(","),
            "--store".into(),
            plan.store_addr(),
            "--epoch-ns".into(),
            epoch.to_string(),
            "--until-ns".into(),
            (until.as_nanos() as u64).to_string(),
            "--locks".into(),
            cfg.locks.to_string(),
            "--ttl-ms".into(),
            (cfg.ttl.as_millis() as u64).to_string(),
            "--seed".into(),
            cfg.seed.to_string(),
            "--target".into(),
            cfg.target.name().into(),
        ];
        let (_, stdout) = with_procs(&res, |p| p.spawn_client(c, &args))
            .transpose()?
            .ok_or_else(|| ChaosError::NotReady("no process table".into()))?;
        let tx = tx.clone();
        // A blocking reader per client: its pipe, its thread.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(e) = serde_json::from_str::<Event>(&line) {
                    if tx.send(e).is_err() {
                        break;
                    }
                }
            }
        });
    }
    // Replicas' clock-jump detections, as `clock` events (fenced only).
    let jump_watch =
        client.clone().map(|c| crate::jumps::spawn(c, plan.ids().zip(plan.endpoints()).collect(), epoch, tx.clone()));
    drop(tx);

    // Faults run in [2 s, heal); the rest of the run is healed, so that L1
    // can judge availability after the heal.
    let heal_at = heal_at(cfg.duration);
    let schedule = nemesis::schedule(cfg.seed, cfg.nodes, &kinds, FAULTS_FROM, heal_at);
    progress(
        cfg,
        &format!(
            "workload: {} clients for {:?}; {} faults until {:?}",
            cfg.clients,
            cfg.duration,
            schedule.len(),
            heal_at
        ),
    );
    let holders: Arc<Mutex<BTreeMap<u64, bool>>> = Arc::default();
    let mut nem =
        Nemesis { cfg, plan: plan.clone(), res: res.clone(), client: client.clone(), holders: holders.clone(), seq: 0 };

    let mut events: Vec<Event> = Vec::new();
    let mut next = 0usize;
    let mut active: Option<(usize, FaultRecord, Undo)> = None;
    let mut healed = false;
    let mut last_progress = Duration::ZERO;
    let hard_stop = cfg.duration + Duration::from_secs(30);
    loop {
        let now = Duration::from_nanos(mono_ns().saturating_sub(epoch));
        while let Ok(e) = rx.try_recv() {
            if let Process::Client(p) = e.process {
                if let Ok(mut h) = holders.lock() {
                    match (e.kind, e.f.as_str()) {
                        (EventType::Ok, "acquire") => {
                            h.insert(p, true);
                        }
                        (EventType::Invoke, "release") => {
                            h.insert(p, false);
                        }
                        _ => {}
                    }
                }
            }
            events.push(e);
        }
        if let Some((idx, v, _)) = &active {
            if schedule[*idx].end <= now || now >= heal_at {
                let mut v = v.clone();
                if let Some((_, _, undo)) = active.take() {
                    let undone = nem.stop(undo).await?;
                    if !undone.is_null() {
                        progress(cfg, &format!("{:>6.1}s undo {undone}", now.as_secs_f64()));
                        v.set("undo", undone);
                    }
                }
                events.push(nemesis_event(NemesisEvent::Stop(v), epoch));
            }
        }
        if active.is_none() && !healed && next < schedule.len() && schedule[next].start <= now {
            // The fault began when its action did (a membership change
            // takes seconds before `start` returns).
            let began = mono_ns().saturating_sub(epoch);
            let (v, undo) = nem.start(&schedule[next].fault).await?;
            progress(cfg, &format!("{:>6.1}s start {}", now.as_secs_f64(), v.to_value()));
            if let Some(why) = v.detail.get("skipped").and_then(Value::as_str) {
                let kind = nemesis::kind(&schedule[next].fault)?;
                let note = format!("{kind} skipped: {why}");
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
            events.push(Event { time: began, ..nemesis_event(NemesisEvent::Start(v.clone()), epoch) });
            active = Some((next, v, undo));
            next += 1;
        }
        if !healed && now >= heal_at && active.is_none() {
            healed = true;
            let heal = FaultRecord { majority_up: Some(true), ..FaultRecord::new(Fault::HealAll) };
            events.push(nemesis_event(NemesisEvent::Stop(heal), epoch));
            progress(cfg, &format!("{:>6.1}s heal-all", now.as_secs_f64()));
        }
        if now >= last_progress + Duration::from_secs(5) {
            last_progress = now;
            let oks = events.iter().filter(|e| e.kind == EventType::Ok).count();
            progress(cfg, &format!("{:>6.1}s events {} (ok {oks})", now.as_secs_f64(), events.len()));
        }
        if now >= until && with_procs(&res, |p| p.clients_done()).unwrap_or(true) {
            break;
        }
        if now >= hard_stop {
            notes.push(
                "some client did not finish within 30 s of the end; killed (its last operation stays pending)".into(),
            );
            with_procs(&res, |p| p.kill_clients());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The reader threads end with their pipes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    if let Some(j) = jump_watch {
        j.abort();
    }
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    events.sort_by_key(|e| e.time);

    // Final reads, the commit index, then the log read-back.
    events.extend(final_reads(&store, cfg.locks, epoch).await);
    if let Some(client) = &client {
        let mut commit = 0u64;
        for ep in plan.endpoints() {
            if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(1), client.cluster_status_of(&ep)).await {
                commit = commit.max(s.commit_index);
            }
        }
        with_procs(&res, |p| p.kill_servers());
        let at = mono_ns().saturating_sub(epoch);
        let (log, log_notes) = read_back(cfg, &plan, commit, at)?;
        notes.extend(log_notes);
        events.extend(log);
    } else {
        with_procs(&res, |p| p.kill_servers());
        notes.push(format!(
            "{} keeps no log of grants that could be read back, so S4, S7 and part of S5 are unknown; token: {}",
            cfg.target.name(),
            cfg.target.token_meaning()
        ));
    }

    let history = History::new(events);
    let opts = Options { l1_grace: Duration::from_secs(3), ..Default::default() };
    let verdicts = check_all(&history, &opts);
    let metrics = metrics::measure(&history);
    write_reports(&out, cfg.target, &history, &verdicts, &metrics, &schedule, &notes)?;
    Ok(Outcome { target: cfg.target, history, metrics, verdicts, schedule, notes, leftovers_after: Vec::new() })
}

/// Read every replica's log with `fenced debug log --json`, keep the
/// committed prefix of the most up-to-date one, and replay it through the
/// real state machine to get the grants, releases and expiries.
fn read_back(cfg: &Config, plan: &AddressPlan, commit: u64, at: u64) -> Result<(Vec<Event>, Vec<String>), ChaosError> {
    let dirs: Vec<(u64, PathBuf)> = plan.ids().map(|id| (id, cfg.out.join("data").join(format!("n{id}")))).collect();
    read_back_dirs(&cfg.bin, &dirs, Some(&cfg.out), commit, plan.nodes, at)
}

/// The final read of every key `k0…` from the store (process `final`), for
/// S5: each acknowledged write must be visible to it.
pub async fn final_reads(store: &StoreClient, locks: usize, epoch: u64) -> Vec<Event> {
    let mut events = Vec::new();
    let read = |key: String| async move {
        let obj = store.get(&key).await?;
        Ok::<_, fenced_store_client::StoreError>(final_read::read_value(
            &key,
            obj.as_ref().map(|o| (&o.value[..], o.version, o.token)),
        ))
    };
    let record = |value| {
        events.push(Event {
            kind: EventType::Ok,
            process: Process::Named(final_read::PROCESS.into()),
            f: "read".into(),
            value,
            time: mono_ns().saturating_sub(epoch),
            node: None,
            wall: Some(crate::worker::wall_now()),
        })
    };
    final_read::final_reads((0..locks).map(|i| format!("k{i}")), read, tokio::time::sleep, record).await;
    events
}

/// [`read_back`] for any replicas' data directories (`(id, dir)`, the
/// voters at the end of the run): `nodes` is how many voters a majority is
/// counted of; the logs are saved as `n<id>.raftlog.jsonl` in `save_to`.
/// Entries up to `commit` (the commit index a replica reported) are
/// committed; with none reported (0), those a majority holds with the same
/// index and term ([`fenced_check::readback`]).
pub fn read_back_dirs(
    bin: &Path,
    dirs: &[(u64, PathBuf)],
    save_to: Option<&Path>,
    commit: u64,
    nodes: u64,
    at: u64,
) -> Result<(Vec<Event>, Vec<String>), ChaosError> {
    let mut notes = Vec::new();
    let mut logs = Vec::new();
    for (id, dir) in dirs {
        let out = std::process::Command::new(bin)
            .args(["debug", "log", "--json", "--data-dir"])
            .arg(dir)
            .output()
            .map_err(|source| ChaosError::Spawn { cmd: "fenced debug log".into(), source })?;
        if !out.status.success() {
            notes.push(format!("log of n{id} unreadable: {}", String::from_utf8_lossy(&out.stderr).trim()));
            continue;
        }
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if let Some(save_to) = save_to {
            let _ = std::fs::write(save_to.join(format!("n{id}.raftlog.jsonl")), &text);
        }
        let entries: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        logs.push(replica_log(*id, &entries));
    }
    if logs.is_empty() {
        return Err(ChaosError::Log("no replica's log could be read".into()));
    }
    let commit = if commit > 0 { Commit::Reported(commit) } else { Commit::Majority { voters: nodes } };
    let read = readback::read_back(&logs, commit, at);
    notes.extend(read.notes);
    Ok((read.events, notes))
}

/// One replica's log from the lines of `fenced debug log --json`
/// (`{"index", "term", "committed", "entry"}`); an entry without an index
/// and a term is skipped. The replica vouches for the entries it marked
/// `committed`.
pub fn replica_log(id: u64, lines: &[Value]) -> ReplicaLog {
    let mut log = ReplicaLog { id, committed: None, entries: Vec::new() };
    for e in lines {
        let (Some(index), Some(term)) = (e["index"].as_u64(), e["term"].as_u64()) else { continue };
        if e["committed"].as_bool() == Some(true) {
            log.committed = log.committed.max(Some(index));
        }
        let request = match e["entry"].get("request") {
            None => Payload::Other,
            Some(req) => serde_json::from_value::<Request>(req.clone()).map_or(Payload::Unreadable, Payload::Request),
        };
        log.entries.push(LogEntry { index, term, payload: e["entry"].to_string(), request });
    }
    log
}

fn write_reports(
    out: &std::path::Path,
    target: Target,
    history: &History,
    verdicts: &[Verdict],
    metrics: &Metrics,
    schedule: &[Planned],
    notes: &[String],
) -> Result<(), ChaosError> {
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|source| ChaosError::Write { path, source })
    };
    write("history.jsonl", history.to_jsonl())?;
    let mut report = fenced_check::report::report_json(history, verdicts);
    if let Some(o) = report.as_object_mut() {
        o.insert(
            "chaos".into(),
            json!({
                "target": target,
                "store_mode": target.store_mode(),
                "token": target.token_meaning(),
                "metrics": metrics,
                "schedule": schedule,
                "notes": notes,
            }),
        );
    }
    write("report.json", serde_json::to_string_pretty(&report).unwrap_or_default())?;
    write("report.html", fenced_check::report::render_html(history, verdicts))?;
    write("report.txt", fenced_check::report::render_text(history, verdicts))?;
    Ok(())
}

#[cfg(test)]
mod ttl_tests {
    use super::*;

    #[test]
    fn a_ttl_below_the_failover_floor_is_refused_with_the_minimum_and_what_to_do() {
        let e = check_ttl(Target::Fenced, Duration::from_secs(2)).unwrap_err().to_string();
        assert!(e.contains("--ttl 2s is below 3s"), "{e}");
        assert!(e.contains("Use --ttl 3s or more"), "{e}");
        assert!(check_ttl(Target::Fenced, Duration::from_secs(3)).is_ok());
        assert!(check_ttl(Target::Fenced, Duration::from_secs(4)).is_ok());
        let e = check_ttl(Target::Fenced, Duration::from_secs(7200)).unwrap_err().to_string();
        assert!(e.contains("use --ttl 1h or less"), "{e}");
    }

    #[test]
    fn other_targets_take_any_ttl() {
        for t in [Target::Etcd, Target::EtcdNoToken, Target::Redlock] {
            assert!(check_ttl(t, Duration::from_secs(2)).is_ok());
        }
    }
}
