//! Layer 1: a replica's configuration and the checks that refuse a bad one
//! before it can hurt. Imports nothing of the replica.

pub mod check;

use fenced_core::machine::limits::Limits;
use fenced_io::auth::Policy;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A replica's id in the cluster (openraft's node id).
pub type NodeId = u64;

/// How a replica is configured. All replicas of a cluster must agree on the
/// peer set and the limits.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    pub id: NodeId,
    /// The address this replica listens on (clients and peers).
    pub listen: String,
    /// Every voter, this one included: id -> address.
    pub peers: BTreeMap<NodeId, String>,
    pub heartbeat: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Take a snapshot (and purge the log) after this many entries.
    pub snapshot_every_entries: u64,
    /// Entries kept in the log behind the latest snapshot, so that a
    /// slightly lagging follower catches up from the log, not a snapshot.
    pub log_kept_after_snapshot: u64,
    /// How often the leader checkpoints remaining lease TTLs.
    pub checkpoint_interval: Duration,
    /// How often the leader scans for expired leases.
    pub tick: Duration,
    /// Longest TTL this replica accepts from clients. Checked before
    /// proposing, so replicas may differ here without diverging.
    pub max_ttl: Duration,
    /// Shortest TTL this replica accepts from clients, checked before
    /// proposing. It must outlive a failover ([`crate::config::check`]).
    pub min_ttl: Duration,
    /// The cluster's name: stored in the data directory and compared at
    /// start and at every peer handshake ([`crate::peer::handshake`]).
    pub cluster_name: String,
    /// Never initialize a cluster; wait to be added by `fenced cluster add`.
    pub join: bool,
    /// Bounds enforced inside the state machine. They decide what a log entry
    /// does, so every replica must use the same values: keep the defaults.
    pub limits: Limits,
    /// Authentication, ACLs and per-client limits (`crate::http::limits`).
    pub protection: Protection,
}

/// The default leader heartbeat interval. See `docs/timeouts-and-clocks.md`
/// ("Why these defaults") for the reasoning behind this and the next.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(50);
/// The default shortest election timeout (six heartbeats); the longest is
/// twice this. openraft's leader lease equals the longest, so a failover takes
/// about two timeouts: the first candidate is refused while the other
/// follower's lease runs.
pub const DEFAULT_ELECTION_TIMEOUT: Duration = Duration::from_millis(300);

/// The default log length between snapshots: a snapshot of a busy table
/// costs more than replaying 10,000 small entries, and a restart replays at
/// most this many.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 10_000;
/// Entries kept behind a snapshot, so that a follower a few heartbeats
/// behind catches up from the log instead of a whole snapshot.
pub const DEFAULT_LOG_KEPT_AFTER_SNAPSHOT: u64 = 1000;
/// How often the leader checkpoints remaining lease TTLs into the log, so a
/// new leader restarts each lease's clock from at most this long ago
/// (docs/timeouts-and-clocks.md). Liveness only: an expiry is a log entry.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);
/// How often the leader looks for expired leases and waiters to hand off to:
/// the lateness of an expiry beyond its TTL, at most.
pub const DEFAULT_TICK: Duration = Duration::from_millis(50);
/// The longest lease TTL a client may ask for by default: a holder that dies
/// without releasing blocks its locks this long at most.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(3600);
/// The cluster name when none is given.
pub const DEFAULT_CLUSTER_NAME: &str = "fenced";

impl ReplicaConfig {
    /// Sensible timings for a LAN; `fenced calibrate` recommends real ones.
    pub fn new(id: NodeId, listen: String, peers: BTreeMap<NodeId, String>) -> Self {
        ReplicaConfig {
            id,
            listen,
            peers,
            heartbeat: DEFAULT_HEARTBEAT,
            election_timeout_min: DEFAULT_ELECTION_TIMEOUT,
            election_timeout_max: DEFAULT_ELECTION_TIMEOUT * 2,
            snapshot_every_entries: DEFAULT_SNAPSHOT_EVERY,
            log_kept_after_snapshot: DEFAULT_LOG_KEPT_AFTER_SNAPSHOT,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            tick: DEFAULT_TICK,
            max_ttl: DEFAULT_MAX_TTL,
            min_ttl: crate::config::check::safe_min_ttl(DEFAULT_ELECTION_TIMEOUT, DEFAULT_ELECTION_TIMEOUT * 2),
            cluster_name: DEFAULT_CLUSTER_NAME.into(),
            join: false,
            limits: Limits::default(),
            protection: Default::default(),
        }
    }
}

/// Per-replica protection settings. Unlike [`fenced_core::machine::limits::Limits`]
/// these are policy, checked before proposing: replicas may differ.
#[derive(Debug, Clone)]
pub struct ClientLimits {
    /// Requests per second per client (identity, else IP address), on average.
    pub rate_per_sec: f64,
    /// Requests a client may send in a burst above its rate.
    pub rate_burst: f64,
    /// Clients whose buckets are remembered (bounded; see `fenced_core::toolbox::rate`).
    pub rate_clients_max: usize,
    /// Open `/v1/lock/watch` streams per client.
    pub watches_per_client_max: usize,
    /// Proposals in flight on this replica; more are refused with 503
    /// `overloaded` (retryable) rather than queued without bound.
    pub pending_proposals_max: usize,
    /// Connections served at once (see `fenced_io::http::ServeOptions`).
    pub connections_max: usize,
    /// Apply the per-client limits (rate, watches) to unauthenticated
    /// callers too, keyed by IP address. Off by default: without an auth
    /// policy every client on one host (or behind one NAT, or a benchmark on
    /// loopback) would share one budget. Authenticated callers are always
    /// limited per identity.
    pub limit_by_address: bool,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            rate_per_sec: 1000.0,
            rate_burst: 2000.0,
            rate_clients_max: 100_000,
            watches_per_client_max: 1000,
            pending_proposals_max: 4096,
            connections_max: fenced_io::http::CONNECTIONS_MAX,
            limit_by_address: false,
        }
    }
}

/// How a replica authenticates and limits callers.
#[derive(Debug, Clone, Default)]
pub struct Protection {
    /// `None`: no authentication, everyone may do everything (`fenced dev`).
    pub policy: Option<Arc<Policy>>,
    pub limits: ClientLimits,
}
