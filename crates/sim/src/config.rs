//! What one simulation run is: the seed and the system model.

use std::time::Duration;

/// The timing model of the seed's section 4.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Every delay and pause is bounded; liveness is required throughout.
    Sync,
    /// Unbounded faults until the global stabilization time (GST), bounded
    /// after; liveness (L1) is required after GST.
    Partial,
    /// No timing assumptions; no liveness claim.
    Async,
}

/// The node fault model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Faults {
    /// Crashed replicas restart from their (simulated) disks.
    CrashRecovery,
    /// Crashed replicas never come back (at most a minority crashes).
    CrashStop,
}

impl std::str::FromStr for Model {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sync" => Ok(Model::Sync),
            "partial" => Ok(Model::Partial),
            "async" => Ok(Model::Async),
            _ => Err(format!("unknown model {s:?}; use sync, partial or async")),
        }
    }
}

impl std::str::FromStr for Faults {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "crash-recovery" => Ok(Faults::CrashRecovery),
            "crash-stop" => Ok(Faults::CrashStop),
            _ => Err(format!("unknown fault model {s:?}; use crash-recovery or crash-stop")),
        }
    }
}

/// How the whole cluster is lost and brought back ([`SimConfig::disaster`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisasterKind {
    /// Every replica's disk is lost; a new cluster is restored on fresh
    /// disks from a backup taken earlier through the leader
    /// (`fenced cluster snapshot save`, then `fenced snapshot restore`).
    Restore,
    /// A majority's disks are lost for good; the one survivor is rewritten
    /// as a one-member cluster (`fenced cluster recover`).
    Recover,
}

impl std::str::FromStr for DisasterKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "restore" => Ok(DisasterKind::Restore),
            "recover" => Ok(DisasterKind::Recover),
            _ => Err(format!("unknown disaster {s:?}; use restore or recover")),
        }
    }
}

/// A disaster in the middle of the run, and the token floor's bump the
/// operator gives (`--bump`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disaster {
    pub kind: DisasterKind,
    /// Added to the highest index known to place the token floor; the
    /// production default is `fenced_replica::storage::backup::DEFAULT_BUMP`. A small
    /// bump is the broken variant the tests run.
    pub bump: u64,
}

/// One run's configuration. With the same values (and the same build), a run
/// produces the same history, bit for bit.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: u64,
    pub clients: u64,
    /// Simulated time for the workload.
    pub duration: Duration,
    pub model: Model,
    pub faults: Faults,
    /// Some clients present forged, replayed and other-lock tokens to the store.
    pub byzantine_clients: bool,
    /// The store accepts every write (Figure 8-4).
    pub unfenced: bool,
    /// Let clock drift exceed the clients' assumed rho.
    pub drift_beyond_rho: bool,
    /// The clients' lease TTL.
    pub ttl: Duration,
    /// How long a client's acquire may wait in a lock's queue. A client
    /// waits for an answer up to its request timeout plus this, so a queued
    /// acquire whose request was with a host that crashed costs the client
    /// that long (it cannot tell a crash from a wait).
    pub acquire_wait: Duration,
    /// How many distinct locks (and store keys) the clients contend for.
    pub locks: usize,
    /// L1: an acquire after the last heal must complete within this.
    pub l1_bound: Duration,
    /// Probability (0..1) that a client pauses after acquiring, before writing.
    pub client_pause_rate: f64,
    /// Turn the random nemesis off entirely.
    pub nemesis: bool,
    /// A fixed fault schedule instead of a random one (named scenarios).
    pub script: Option<Vec<fenced_check::nemesis::Planned>>,
    /// An operator removes and re-adds voters until the faults stop
    /// ([`crate::membership`]).
    pub membership: bool,
    /// Each lock guards a prefix of store keys (`--guard k0/=k0`, ...), and
    /// clients write several keys under their lock's prefix, so S3 judges
    /// per-lock fencing. Off by default: it draws extra random numbers, and
    /// the default seeds' histories stay as they were.
    pub guarded: bool,
    /// Clients mix the other primitives into the workload: shared holds
    /// (reading the store), re-entrant exclusive holds, and permits of a
    /// semaphore `sem` whose count they change. Off by default: it draws
    /// extra random numbers, and the default seeds' histories stay as they were.
    pub primitives: bool,
    /// Lose the whole cluster (or a majority's disks) mid-run and bring it
    /// back through the real restore or recovery code; the workload goes on
    /// and the checkers judge the history across the disaster.
    pub disaster: Option<Disaster>,
}

/// Keys under each lock's prefix in the guarded workload.
pub const GUARDED_KEYS_PER_LOCK: usize = 3;

impl SimConfig {
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            nodes: 3,
            clients: 4,
            duration: Duration::from_secs(30),
            model: Model::Partial,
            faults: Faults::CrashRecovery,
            byzantine_clients: false,
            unfenced: false,
            drift_beyond_rho: false,
            ttl: Duration::from_secs(2),
            acquire_wait: Duration::from_secs(4),
            locks: 2,
            l1_bound: Duration::from_secs(10),
            client_pause_rate: 0.1,
            nemesis: true,
            script: None,
            membership: false,
            guarded: false,
            primitives: false,
            disaster: None,
        }
    }

    /// When faults stop for good (partial synchrony's GST).
    pub fn gst(&self) -> Duration {
        match self.model {
            Model::Partial => self.duration.mul_f64(0.6),
            Model::Sync | Model::Async => self.duration,
        }
    }

    /// The command line that replays this run.
    pub fn replay_command(&self) -> String {
        let mut s = format!(
            "fenced sim --seed {} --nodes {} --clients {} --duration {}s --model {} --faults {}",
            self.seed,
            self.nodes,
            self.clients,
            self.duration.as_secs(),
            match self.model {
                Model::Sync => "sync",
                Model::Partial => "partial",
                Model::Async => "async",
            },
            match self.faults {
                Faults::CrashRecovery => "crash-recovery",
                Faults::CrashStop => "crash-stop",
            }
        );
        if self.byzantine_clients {
            s.push_str(" --byzantine-clients");
        }
        if self.unfenced {
            s.push_str(" --unfenced");
        }
        if self.drift_beyond_rho {
            s.push_str(" --drift-beyond-rho");
        }
        if self.membership {
            s.push_str(" --membership");
        }
        if self.guarded {
            s.push_str(" --guarded");
        }
        if self.primitives {
            s.push_str(" --primitives");
        }
        if let Some(d) = &self.disaster {
            s.push_str(match d.kind {
                DisasterKind::Restore => " --disaster restore",
                DisasterKind::Recover => " --disaster recover",
            });
            if d.bump != fenced_replica::storage::backup::DEFAULT_BUMP {
                s.push_str(&format!(" --disaster-bump {}", d.bump));
            }
        }
        s
    }
}
