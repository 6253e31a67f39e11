//! Layer 5: a running replica: openraft wired to our storage, network and
//! clock, plus proposal forwarding and linearizable reads. The duties
//! ([`crate::duties`]) and the HTTP layer ([`crate::http`]) sit on top of
//! [`Replica`].

pub mod drain;
pub mod metrics;

use crate::config::ReplicaConfig;
use crate::node::drain::DrainState;
use crate::node::metrics::Metrics;
use crate::peer::handshake::Handshake;
use crate::peer::handshake::RAFT_PREFIX;
use crate::peer::network::PeerNetwork;
use crate::storage::log_store::LogStore;
use crate::storage::state_machine::{Shared, StateMachine};
use crate::storage::types::{Node, NodeId, TypeConfig};
use bytes::Bytes;
use fenced_core::machine::command::Request;
use fenced_core::machine::table::LockTable;
use fenced_core::toolbox::clock::Clock;
use fenced_core::Response;
use fenced_io::disk::Disk;
use fenced_io::frame;
use fenced_io::http::{HttpClient, HttpError};
use fenced_io::timed_disk::TimedDisk;
use fenced_io::transport::Transport;
use hyper::{Method, StatusCode};
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::{Config, Instant as _, ReadPolicy, SnapshotPolicy};
use openraft_rt::deterministic_rng::DeterministicRng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// openraft running over this replica's state machine. Declared here, not
/// beside [`TypeConfig`], so that the type configuration does not name the
/// state machine that is built on it.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// The seams: everything nondeterministic a replica touches.
#[derive(Clone)]
pub struct Seams {
    pub transport: Arc<dyn Transport>,
    pub disk: Arc<dyn Disk>,
    pub clock: Arc<dyn Clock>,
    /// Seeds openraft's RNG (election jitter) and the signing-key generator.
    pub seed: u64,
    /// Entropy for the cluster's signing key, if this replica creates it.
    pub key_entropy: [u8; 32],
}

/// Why a proposal or read did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    #[error("no leader is known; the cluster may be electing one or may have lost its majority")]
    NoLeader,
    #[error("the outcome is unknown: the leader changed or could not be reached after the request was sent; retry with the same request id")]
    Unknown,
    #[error("this replica is shutting down")]
    ShuttingDown,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProposeError {
    pub fn code(&self) -> &'static str {
        match self {
            ProposeError::NoLeader => "no_leader",
            ProposeError::Unknown => "unknown_outcome",
            ProposeError::ShuttingDown => "shutting_down",
            ProposeError::Internal(_) => "internal",
        }
    }
}

/// The outcome of one routing attempt that did not produce a response.
#[derive(Debug)]
enum Route {
    /// Certainly not proposed (no leader known, or it refused or was
    /// unreachable before anything was sent): safe to try again. `refused`:
    /// the leader answered that it could not take it (a new leader does until
    /// its vote is on disk), so asking it again soon may succeed.
    NotProposed {
        refused: bool,
    },
    Failed(ProposeError),
}

/// A running replica.
pub struct Replica {
    pub config: ReplicaConfig,
    pub raft: Raft,
    pub shared: Arc<Shared>,
    pub log: LogStore,
    pub http: HttpClient,
    pub metrics: Metrics,
    pub seams: Seams,
    pub handshake: Arc<Handshake>,
    /// Draining: new client sessions are refused, leadership is handed
    /// away ([`crate::duties::drain`]).
    pub drain: DrainState,
    /// Peers, clocks, pauses, fsync latency, limping ([`crate::vitals`]).
    pub vitals: Arc<crate::vitals::Vitals>,
}

/// Whether a restarted leader resumes its old term (never, unless a test
/// switches the broken variant on).
fn leader_restore() -> bool {
    #[cfg(feature = "bugs")]
    return crate::bugs::LEADER_RESTORE.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(feature = "bugs"))]
    false
}

/// How long a forwarded proposal may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

impl Replica {
    /// Open storage, start openraft, and initialize the cluster if this is
    /// the lowest-numbered voter of a new one.
    pub async fn start(config: ReplicaConfig, mut seams: Seams) -> std::io::Result<Arc<Replica>> {
        let refused = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        crate::config::check::validate(&config).map_err(|e| refused(e.to_string()))?;
        crate::storage::data_dir::open(&*seams.disk, &config).map_err(|e| refused(e.to_string()))?;
        let has_log = seams.disk.read(crate::storage::log_store::WAL)?.is_some();
        // Every fsync is timed: the status reports it and a limping leader steps aside.
        let timed = TimedDisk::new(seams.disk.clone(), seams.clock.clone());
        let vitals = Arc::new(crate::vitals::Vitals::new(&config, seams.clock.clone(), timed.window()));
        seams.disk = Arc::new(timed);
        let raft_config = Config {
            cluster_name: "fenced".into(),
            heartbeat_interval: config.heartbeat.as_millis() as u64,
            election_timeout_min: config.election_timeout_min.as_millis() as u64,
            election_timeout_max: config.election_timeout_max.as_millis() as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every_entries),
            max_in_snapshot_log_to_keep: config.log_kept_after_snapshot,
            purge_batch_size: 1,
            enable_pre_vote: Some(true),
            // A restarted leader must win an election in a new term. openraft's
            // default restores it as leader in its old term, which reuses log
            // ids: entries it had sent to followers but not yet written and
            // fsynced itself (group commit) are gone from its log after
            // `kill -9`, and it assigns their ids (term, index) to new
            // entries. Followers that hold the old ones keep them (same id, so
            // "same entry"), and the logs diverge under committed entries. See
            // docs/design.md, "A restarted leader wins a new election".
            enable_leader_restore: Some(leader_restore()),
            ..Default::default()
        }
        .validate()
        .map_err(|e| std::io::Error::other(format!("invalid raft configuration: {e}")))?;
        let log = LogStore::open(seams.disk.clone())?;
        let sm = StateMachine::open(seams.disk.clone(), seams.clock.clone(), LockTable::new(config.limits.clone()))?;
        let shared = sm.shared.clone();
        let http = HttpClient::new(seams.transport.clone());
        let handshake = Arc::new(Handshake::new(&config, shared.clone()));
        let network = PeerNetwork::new(http.clone(), handshake.clone(), vitals.peers.clone(), seams.clock.clone());
        let raft = DeterministicRng::<openraft::impls::TokioRuntime>::scope(
            seams.seed,
            Raft::new(config.id, Arc::new(raft_config), network, log.clone(), sm),
        )
        .await
        .map_err(|e| std::io::Error::other(format!("raft failed to start: {e}")))?;
        let lowest = config.peers.keys().next().copied();
        let initialized = raft.is_initialized().await.map_err(|e| std::io::Error::other(e.to_string()))?;
        let replicated: BTreeMap<NodeId, String> = {
            let m = raft.metrics().borrow_watched().membership_config.clone();
            let voters: BTreeSet<NodeId> = m.membership().voter_ids().collect();
            m.membership().nodes().filter(|(id, _)| voters.contains(id)).map(|(id, n)| (*id, n.addr.clone())).collect()
        };
        let problem = if initialized {
            crate::config::check::against_membership(&config.peers, &replicated).err().map(|p| p.to_string())
        } else if config.peers.is_empty() && !config.join && !has_log {
            // An empty log. (One that holds only a vote waits to be
            // contacted, as a joining replica does.)
            Some(
                "peers: this data directory holds no cluster yet and no peers are given: pass --peers to create a \
                  cluster, or --join to wait to be added by `fenced cluster add`"
                    .to_string(),
            )
        } else {
            None
        };
        if let Some(problem) = problem {
            let _ = raft.shutdown().await;
            return Err(refused(format!("invalid configuration: {problem}")));
        }
        if !initialized && lowest == Some(config.id) && !config.join {
            let members: BTreeMap<NodeId, Node> =
                config.peers.iter().map(|(id, addr)| (*id, Node { addr: addr.clone() })).collect();
            match raft.initialize(members).await {
                Ok(()) => tracing::info!(id = config.id, "initialized a new cluster"),
                Err(e) => tracing::info!(error = %e, "cluster already initialized elsewhere"),
            }
        }
        Ok(Arc::new(Replica {
            config,
            raft,
            shared,
            log,
            http,
            metrics: Metrics::default(),
            seams,
            handshake,
            drain: DrainState::default(),
            vitals,
        }))
    }

    /// Propose `req` and wait for its response, forwarding to the leader if
    /// this replica is not it. Forwarded once at most: the leader does not
    /// forward again.
    ///
    /// Returns the response and the index of the entry. Once this returns,
    /// this replica has applied that entry too, so a caller reading local
    /// state next sees its own write.
    pub async fn propose(&self, req: Request) -> Result<(Response, u64), ProposeError> {
        let (resp, index) = self.propose_routed(req).await?;
        let mut applied = self.shared.watch_applied();
        let caught_up = tokio::time::timeout(FORWARD_TIMEOUT, async {
            loop {
                if *applied.borrow_and_update() >= index {
                    return true;
                }
                // A draining replica (or one just removed, which no longer
                // receives the log) answers at once instead of waiting.
                if self.drain.is_draining() {
                    return false;
                }
                if let Ok(Err(_)) =
                    tokio::time::timeout(crate::node::drain::poll(self.config.heartbeat), applied.changed()).await
                {
                    return false;
                }
            }
        })
        .await;
        if caught_up != Ok(true) {
            // The entry is committed, but this replica lags: the answer is
            // right, local reads would not be. Report it as unknown so the
            // client retries (deduplicated) elsewhere.
            return Err(ProposeError::Unknown);
        }
        Ok((resp, index))
    }

    /// Propose here or at the leader. While no leader is reachable (an
    /// election is under way, or the leader we know of refuses connections),
    /// wait for openraft to learn of a new one and try again, for up to
    /// [`Replica::leader_wait`]: the client's request then completes right
    /// after the election instead of backing off blindly. A leader that is
    /// known, answered and refused is asked again every heartbeat interval: a new
    /// leader refuses writes for the few milliseconds until its term's vote
    /// is on disk, and waiting for yet another leader would then waste the
    /// whole wait. Only attempts that certainly did not propose are retried;
    /// the table deduplicates by request id anyway.
    async fn propose_routed(&self, req: Request) -> Result<(Response, u64), ProposeError> {
        self.metrics.proposals.inc();
        let clock = &self.seams.clock;
        let start = clock.now();
        let mut metrics = self.raft.metrics();
        loop {
            let seen_leader = metrics.borrow_watched().current_leader;
            let attempted = clock.now();
            let refused = match self.propose_once(&req).await {
                Err(Route::NotProposed { refused }) => refused,
                Err(Route::Failed(e)) => return Err(e),
                Ok(r) => return Ok(r),
            };
            tracing::debug!(?seen_leader, refused, "not proposed; waiting for a leader");
            // A draining replica (or one just removed, whose idea of the
            // leader may never be corrected) sends the client elsewhere now.
            if self.drain.is_draining() {
                return Err(ProposeError::NoLeader);
            }
            // Wait for a different leader, or a heartbeat interval if the
            // known one refused; give up at the deadline.
            loop {
                let step = LeaderWait {
                    left: self.leader_wait().checked_sub(clock.now().since(start)),
                    leader: metrics.borrow_watched().current_leader,
                    seen_leader,
                    refused,
                    since_attempt: clock.now().since(attempted),
                    retry_every: self.config.heartbeat,
                };
                match step.next() {
                    WaitStep::GiveUp => return Err(ProposeError::NoLeader),
                    WaitStep::Retry => break,
                    WaitStep::Wait(d) => match tokio::time::timeout(d, metrics.changed()).await {
                        Ok(Ok(())) | Err(_) => {}
                        Ok(Err(_)) => return Err(ProposeError::ShuttingDown),
                    },
                }
            }
        }
    }

    /// How long a proposal waits for a leader before answering "no leader":
    /// long enough for a failover, which takes up to two election timeouts
    /// (openraft's followers refuse votes for one election timeout after the
    /// last heartbeat, so the first candidate can be refused; see
    /// `docs/timeouts-and-clocks.md`), and short enough to answer within the
    /// client's request timeout.
    fn leader_wait(&self) -> Duration {
        self.config.election_timeout_max * 2
    }

    async fn propose_once(&self, req: &Request) -> Result<(Response, u64), Route> {
        if self.ensure_not_paused().await.is_err() {
            // A paused leader that could not re-confirm: wait for the new one.
            tracing::debug!("not proposed: paused leader not re-confirmed");
            return Err(Route::NotProposed { refused: false });
        }
        match self.raft.client_write(req.clone()).await {
            Ok(resp) => Ok((resp.response().clone(), resp.log_id().index)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                // No committed leader in openraft's own state (an election,
                // or this replica was just elected and its vote is not yet on
                // disk): if a leader is known, it is worth asking again soon.
                let Some(node) = f.leader_node else { return Err(Route::NotProposed { refused: true }) };
                if f.leader_id == Some(self.config.id) {
                    // Elected, but not yet ready to take writes.
                    tracing::debug!("not proposed: openraft forwards to this replica itself");
                    return Err(Route::NotProposed { refused: true });
                }
                self.metrics.forwards.inc();
                self.forward(&node.addr, req).await
            }
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_))) => {
                Err(Route::Failed(ProposeError::Unknown))
            }
            Err(RaftError::APIError(e)) => Err(Route::Failed(ProposeError::Internal(e.to_string()))),
            Err(RaftError::Fatal(_)) => Err(Route::Failed(ProposeError::ShuttingDown)),
        }
    }

    /// Propose on this replica only (the target of a forward).
    pub async fn propose_local(&self, req: Request) -> Result<(Response, u64), ProposeError> {
        self.ensure_not_paused().await?;
        match self.raft.client_write(req).await {
            Ok(resp) => Ok((resp.response().clone(), resp.log_id().index)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                tracing::debug!(leader = ?f.leader_id, "forwarded proposal refused: not the leader");
                Err(ProposeError::NoLeader)
            }
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_))) => Err(ProposeError::Unknown),
            Err(RaftError::APIError(e)) => Err(ProposeError::Internal(e.to_string())),
            Err(RaftError::Fatal(_)) => Err(ProposeError::ShuttingDown),
        }
    }

    async fn forward(&self, addr: &str, req: &Request) -> Result<(Response, u64), Route> {
        let internal = |e: String| Route::Failed(ProposeError::Internal(e));
        let body = frame::encode(req).map_err(|e| internal(e.to_string()))?;
        let http_req = hyper::Request::builder()
            .method(Method::POST)
            .uri(format!("{RAFT_PREFIX}/propose"))
            .body(Bytes::from(body))
            .map_err(|e| internal(e.to_string()))?;
        forward_outcome(self.http.send(addr, http_req, FORWARD_TIMEOUT).await)
    }

    /// Wait until this replica may serve a linearizable read (read-index: the
    /// leader confirms its leadership with a quorum, and the state machine has
    /// applied up to the commit index it saw). Returns the leader's address
    /// if this replica is not the leader.
    pub async fn linearizable(&self) -> Result<(), Result<String, ProposeError>> {
        self.ensure_not_paused().await.map_err(Err)?;
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read) => {
                let index = read.index();
                let mut applied = self.shared.watch_applied();
                let waited = tokio::time::timeout(FORWARD_TIMEOUT, applied.wait_for(|a| *a >= index)).await;
                match waited {
                    Ok(Ok(_)) => Ok(()),
                    _ => Err(Err(ProposeError::Unknown)),
                }
            }
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => match f.leader_node {
                Some(n) if f.leader_id != Some(self.config.id) => Err(Ok(n.addr)),
                _ => Err(Err(ProposeError::NoLeader)),
            },
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(_))) => Err(Err(ProposeError::NoLeader)),
            Err(RaftError::Fatal(_)) => Err(Err(ProposeError::ShuttingDown)),
        }
    }

    /// Is this replica the leader with a recent quorum acknowledgement? Used
    /// only to decide who proposes expiries (liveness); safety never rests on it.
    pub fn is_leader(&self) -> bool {
        if self.vitals.timekeeper.must_reconfirm(self.raft_thinks_leader()) {
            return false;
        }
        let leader = match self.raft.as_leader() {
            Ok(l) => l,
            Err(e) => {
                tracing::trace!(error = %e, "not the leader");
                return false;
            }
        };
        // A sole voter is its own quorum. openraft records a quorum's
        // acknowledgement only when a follower answers, so without this a
        // one-voter cluster stopped counting as led one election timeout
        // after its election, and then expired no lease ever again.
        if self.voters().into_iter().eq([self.config.id]) {
            return true;
        }
        let acked = leader.last_quorum_acked();
        tracing::trace!(?acked, "leader quorum check");
        acked.is_some_and(|t| t.elapsed() <= self.config.election_timeout_max)
    }

    /// Does openraft consider this replica the leader (without asking a quorum)?
    pub fn raft_thinks_leader(&self) -> bool {
        self.raft.metrics().borrow_watched().state.is_leader()
    }

    /// After a pause longer than the election timeout ([`crate::vitals::timekeeper`]),
    /// serve nothing as leader until a quorum acknowledges a heartbeat sent
    /// after the pause (a ReadIndex round). A follower has nothing to
    /// re-confirm: it forwards to the leader.
    pub async fn ensure_not_paused(&self) -> Result<(), ProposeError> {
        let tk = &self.vitals.timekeeper;
        let leading = self.raft_thinks_leader();
        if !tk.must_reconfirm(leading) {
            return Ok(());
        }
        if !leading {
            tk.reconfirmed(false);
            return Ok(());
        }
        let round = self.raft.ensure_linearizable(ReadPolicy::ReadIndex);
        match tokio::time::timeout(self.config.election_timeout_max, round).await {
            Ok(Ok(_)) => {
                tk.reconfirmed(true);
                Ok(())
            }
            _ => {
                tracing::info!("paused leader could not re-confirm its leadership; refusing to serve as leader");
                Err(ProposeError::NoLeader)
            }
        }
    }

    /// Every member (voters and learners) and its address.
    pub fn member_addrs(&self) -> BTreeMap<NodeId, String> {
        let m = self.raft.metrics().borrow_watched().membership_config.clone();
        m.membership().nodes().map(|(id, n)| (*id, n.addr.clone())).collect()
    }

    /// The voters, from the committed membership.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.raft.metrics().borrow_watched().membership_config.membership().voter_ids().collect()
    }

    /// Stop openraft.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }
}

/// What a proposal that was not proposed does next (see
/// [`Replica::propose_routed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitStep {
    /// Try again now.
    Retry,
    /// Wait for a change in openraft's view, at most this long.
    Wait(Duration),
    /// The deadline passed: answer "no leader".
    GiveUp,
}

/// The state [`WaitStep`] is decided from.
struct LeaderWait {
    /// Time left before the deadline (`None`: it passed).
    left: Option<Duration>,
    /// The leader openraft knows of now.
    leader: Option<NodeId>,
    /// The leader it knew of when the failed attempt started.
    seen_leader: Option<NodeId>,
    /// That leader answered and refused (rather than being unreachable).
    refused: bool,
    since_attempt: Duration,
    retry_every: Duration,
}

impl LeaderWait {
    fn next(&self) -> WaitStep {
        let Some(left) = self.left.filter(|l| !l.is_zero()) else { return WaitStep::GiveUp };
        match self.leader {
            // A new leader: ask it.
            Some(l) if Some(l) != self.seen_leader => WaitStep::Retry,
            // The same leader answered but refused (a new one does until its
            // vote is on disk): ask again every interval.
            Some(_) if self.refused => match self.retry_every.checked_sub(self.since_attempt) {
                Some(d) if !d.is_zero() => WaitStep::Wait(d.min(left)),
                _ => WaitStep::Retry,
            },
            // The same leader could not be reached, or no leader is known:
            // wait for an election to name another.
            _ => WaitStep::Wait(left),
        }
    }
}

/// What the reply to a forwarded proposal means for the forwarding replica.
///
/// Only an attempt that certainly proposed nothing may be routed again
/// ([`Route::NotProposed`]): no connection was made, or the target answered
/// 503, which `/raft/v1/propose` uses only for "refused before proposing".
/// Everything else after the request may have been sent is an unknown
/// outcome: the client must retry with the same request id, and the table's
/// deduplication makes that retry return the first grant.
fn forward_outcome(reply: Result<fenced_io::http::HttpResponse, HttpError>) -> Result<(Response, u64), Route> {
    let internal = |e: String| Route::Failed(ProposeError::Internal(e));
    let resp = match reply {
        Ok(r) => r,
        Err(HttpError::Connect { .. }) => return Err(Route::NotProposed { refused: false }),
        Err(_) => return Err(Route::Failed(ProposeError::Unknown)),
    };
    match resp.status {
        StatusCode::OK => frame::decode_exact(&resp.body).map_err(|e| internal(e.to_string())),
        StatusCode::SERVICE_UNAVAILABLE => Err(Route::NotProposed { refused: true }),
        _ => Err(Route::Failed(ProposeError::Unknown)),
    }
}

#[cfg(test)]
mod forward_tests {
    use super::*;
    use fenced_io::http::HttpResponse;

    fn wait(left_ms: Option<u64>, leader: Option<NodeId>, seen: Option<NodeId>, since_ms: u64) -> WaitStep {
        wait_after(left_ms, leader, seen, true, since_ms)
    }

    fn wait_after(
        left_ms: Option<u64>,
        leader: Option<NodeId>,
        seen: Option<NodeId>,
        refused: bool,
        since_ms: u64,
    ) -> WaitStep {
        LeaderWait {
            left: left_ms.map(Duration::from_millis),
            leader,
            seen_leader: seen,
            refused,
            since_attempt: Duration::from_millis(since_ms),
            retry_every: Duration::from_millis(50),
        }
        .next()
    }

    #[test]
    fn a_leader_that_refused_is_asked_again_after_an_interval_not_waited_out() {
        // The new leader 2 refused (its vote was not yet on disk): the
        // regression waited for a leader other than 2 until the deadline.
        assert_eq!(wait(Some(900), Some(2), Some(2), 10), WaitStep::Wait(Duration::from_millis(40)));
        assert_eq!(wait(Some(900), Some(2), Some(2), 50), WaitStep::Retry);
        assert_eq!(wait(Some(20), Some(2), Some(2), 10), WaitStep::Wait(Duration::from_millis(20)));
    }

    #[test]
    fn an_unreachable_leader_is_not_asked_again_until_another_is_elected() {
        assert_eq!(wait_after(Some(900), Some(1), Some(1), false, 500), WaitStep::Wait(Duration::from_millis(900)));
    }

    #[test]
    fn a_new_leader_is_asked_at_once_and_none_is_waited_for_until_the_deadline() {
        assert_eq!(wait(Some(900), Some(3), Some(1), 0), WaitStep::Retry);
        assert_eq!(wait(Some(900), Some(3), None, 0), WaitStep::Retry);
        assert_eq!(wait(Some(900), None, Some(1), 0), WaitStep::Wait(Duration::from_millis(900)));
        assert_eq!(wait(None, Some(3), Some(1), 0), WaitStep::GiveUp);
        assert_eq!(wait(Some(0), None, None, 0), WaitStep::GiveUp);
    }

    fn reply(status: StatusCode, body: &'static [u8]) -> Result<HttpResponse, HttpError> {
        Ok(HttpResponse { status, headers: Default::default(), body: Bytes::from_static(body) })
    }

    #[test]
    fn only_a_refused_connection_or_a_503_may_be_routed_again() {
        let refused = Err(HttpError::Connect {
            addr: "127.0.0.1:1".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        });
        assert!(matches!(forward_outcome(refused), Err(Route::NotProposed { refused: false })));
        assert!(matches!(
            forward_outcome(reply(StatusCode::SERVICE_UNAVAILABLE, b"no leader")),
            Err(Route::NotProposed { refused: true })
        ));
    }

    #[test]
    fn anything_after_the_request_may_have_been_sent_is_an_unknown_outcome() {
        let timeout = Err(HttpError::Timeout { addr: "127.0.0.1:1".into(), timeout: FORWARD_TIMEOUT });
        assert!(matches!(forward_outcome(timeout), Err(Route::Failed(ProposeError::Unknown))));
        let body = Err(HttpError::Body { addr: "127.0.0.1:1".into() });
        assert!(matches!(forward_outcome(body), Err(Route::Failed(ProposeError::Unknown))));
        for status in [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::BAD_GATEWAY, StatusCode::TOO_MANY_REQUESTS] {
            assert!(
                matches!(forward_outcome(reply(status, b"")), Err(Route::Failed(ProposeError::Unknown))),
                "{status} must not be taken for a refusal"
            );
        }
    }

    #[test]
    fn a_200_with_a_corrupt_body_is_an_error_not_a_grant() {
        let r = forward_outcome(reply(StatusCode::OK, b"\x00garbage"));
        assert!(matches!(r, Err(Route::Failed(ProposeError::Internal(_)))), "{r:?}");
    }
}
