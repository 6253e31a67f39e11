//! The JSON bodies of the HTTP API (`/v1/...`), shared by the replica and the
//! client so that the two cannot drift apart. Requests reject unknown fields:
//! a misspelled `wait_ms` must be an error, not a silent try-once.

use crate::machine::response::GrantRecord;
use crate::{LeaseId, Token};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseGrantRequest {
    pub ttl_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<u64>,
}

/// Keepalive and revoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    pub lease: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquireRequest {
    pub lock: String,
    pub lease: u64,
    /// How long to wait in the FIFO queue; 0 (the default) tries once.
    #[serde(default)]
    pub wait_ms: u64,
    /// Attached to the grant (election proclamations).
    #[serde(default)]
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<u64>,
    /// `shared` or `exclusive` (the default: today's lock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<crate::Mode>,
    /// Count holds: acquiring a lock the lease holds adds a hold, and each
    /// release takes one back (see docs/primitives.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reentrant: bool,
}

/// `POST /v1/sem/permits`: create semaphore `name` or change its count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemPermitsRequest {
    pub name: String,
    pub permits: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemPermitsResponse {
    pub name: String,
    pub permits: u32,
    /// Permits held now (may exceed a lowered count until holders release).
    pub held: u32,
}

/// `POST /v1/sem/acquire`: take one permit of `name` on `lease`. A permit
/// is returned with `POST /v1/lock/release` like any grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemAcquireRequest {
    pub name: String,
    pub lease: u64,
    #[serde(default)]
    pub wait_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    pub lock: String,
    pub lease: u64,
    pub token: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    pub name: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<u64>,
}

/// `POST /v1/claim/release`: remove a claim. Only the identity that made it,
/// or an administrator, may.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimReleaseRequest {
    pub name: String,
    /// If given, the claim's owner must be this (as `ClaimResponse::owner`
    /// showed it), so that a release cannot remove a later claim on the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<u64>,
}

/// The claim that was released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimReleaseResponse {
    pub name: String,
    pub token: u64,
    pub owner: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseResponse {
    pub lease: u64,
    pub ttl_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeResponse {
    pub lease: u64,
    pub released: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseResponse {
    pub lock: String,
    pub token: u64,
    /// After a re-entrant hold was given back: the holds left (the lock is
    /// still held). Absent when the lock was released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holds: Option<u32>,
}

/// `GET /v1/lock/status` and `GET /v1/election/observe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockStatusResponse {
    pub lock: String,
    pub holder: Option<Holder>,
    pub waiters: Vec<u64>,
    /// Shared holders of a lock, or permit holders of a semaphore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<Holder>,
    /// A semaphore's permit count (absent for a lock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permits: Option<u32>,
}

/// A lock's holder as every caller allowed to watch the lock sees it: the
/// token number, never the signed token. The signed token is the holder's
/// write credential (a fenced store accepts a write that presents it), so
/// only the answer to the holder's own acquire or campaign carries it
/// ([`crate::Grant`]); docs/security.md, "Who sees a signed token".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub lock: String,
    /// The fencing token's number: enough to compare, useless to write with.
    pub token: Token,
    pub lease: LeaseId,
    /// The holder's value (election proclamation), possibly empty.
    pub value: String,
}

impl From<&GrantRecord> for Holder {
    fn from(r: &GrantRecord) -> Self {
        Holder { lock: r.lock.clone(), token: r.token, lease: r.lease, value: r.value.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimResponse {
    pub name: String,
    pub token: u64,
    pub owner: String,
    /// True if this request created the claim.
    pub won: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub id: u64,
    pub state: String,
    pub leader: Option<u64>,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub members: BTreeMap<u64, String>,
    pub public_key: Option<String>,
    pub leases: usize,
    pub locks_held: usize,
    /// This replica's view of each other voter (failure detector, RTT).
    #[serde(default)]
    pub peers: BTreeMap<u64, PeerHealth>,
    /// This replica's clocks: wall-clock error bound, jumps, pauses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockHealth>,
    /// Latency of this replica's log fsyncs (recent window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsync: Option<crate::toolbox::latency::LatencySummary>,
    /// Whether this replica judges itself a limping leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limp: Option<LimpStatus>,
    /// True while this replica drains before a stop (or after its removal):
    /// it refuses new sessions.
    #[serde(default)]
    pub draining: bool,
}

/// One replica's view of one peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerHealth {
    /// The phi-accrual suspicion level now (0 before the first reply).
    pub phi: f64,
    /// The threshold above which the peer is suspected.
    pub phi_threshold: f64,
    pub suspected: bool,
    /// Milliseconds since anything was last heard from the peer (a probe
    /// reply, a Raft reply, or a Raft request from it); `None` if never.
    pub last_heard_ms_ago: Option<u64>,
    /// Round trips of this replica's probes to the peer.
    pub rtt: crate::toolbox::latency::LatencySummary,
    /// AppendEntries round trips (entries and heartbeats) while this replica leads.
    pub replication: crate::toolbox::latency::LatencySummary,
    /// The peer's own median fsync and median RTT to its peers, as it reported
    /// in its last probe reply (for the limping-leader comparison).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_fsync_p50_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_rtt_p50_us: Option<u64>,
    /// AppendEntries sent to the peer and acknowledged while this replica
    /// leads: bytes and entries per second over the window (the replication
    /// stream), and bytes per second of round trip (the link while busy).
    #[serde(default)]
    pub replication_throughput: crate::toolbox::throughput::ThroughputSummary,
    /// This replica's bandwidth probes to the peer (a fixed-size padded
    /// request every few seconds, in any role): `busy_bytes_per_s` is the
    /// outbound link's rate, comparable across replicas whatever the load.
    #[serde(default)]
    pub link_throughput: crate::toolbox::throughput::ThroughputSummary,
    /// The peer's own outbound link rate (median over its peers of its
    /// bandwidth probes), as it reported in its last bandwidth-probe reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_link_bytes_per_s: Option<u64>,
}

/// A replica's clocks and pauses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockHealth {
    /// The wall clock with its error bound (`adjtimex`).
    pub wall: crate::toolbox::clock::WallBound,
    /// Wall-clock jumps detected (|wall − monotonic| over one tick above the threshold).
    pub jumps: u64,
    /// The last jump, in ms (positive: forward).
    pub last_jump_ms: Option<i64>,
    /// Pauses detected (a tick late by more than the pause threshold).
    pub pauses: u64,
    /// The longest pause seen, in ms.
    pub longest_pause_ms: u64,
    /// Times this replica stopped serving as leader after a pause, until a
    /// quorum re-confirmed it.
    pub pause_stepdowns: u64,
    /// True while a pause has been noticed and leadership is not re-confirmed.
    pub awaiting_reconfirm: bool,
    /// Scheduling lateness of the replica's tick (jHiccup-style).
    pub lateness: crate::toolbox::latency::LatencySummary,
}

/// The limping-leader judgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimpStatus {
    /// True if, as leader, this replica is persistently far slower than its peers.
    pub limping: bool,
    /// Why (or why not), in words.
    pub reason: String,
    /// Leadership transfers this replica started because it was limping.
    pub transfers: u64,
    /// Why the last transfer happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transfer_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyResponse {
    /// The key that signs new tokens.
    pub public_key: String,
    /// Every key a resource should accept (rotation overlap), newest last.
    pub public_keys: Vec<String>,
}

/// One message on a lock watch stream (`event: <kind>`, `data: <json>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// `held` (initial confirmation and periodic heartbeat) or `lost`.
    pub kind: String,
    pub lock: String,
    pub token: u64,
    /// For `lost`: `released`, `expired`, `revoked`, or `not_held`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The replica's applied index when it sent this.
    pub applied: u64,
}

/// One page of `GET /v1/locks`: this replica's view of the locks a caller
/// may watch, in name order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockList {
    /// The replica whose view this is (a follower's may trail the leader's).
    pub replica: u64,
    /// Its applied index when the page was read.
    pub applied: u64,
    pub locks: Vec<LockEntry>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
    /// Matching locks the caller may see, counted up to a bound.
    pub total: u64,
    /// False if counting stopped at the bound (there are more).
    pub total_exact: bool,
}

/// One lock in a [`LockList`]. The token number only: the signed token is
/// the holder's write credential and is never listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEntry {
    pub lock: String,
    pub holder: Option<Holder>,
    /// When the holder's grant was made, by the leader's wall clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at_ms: Option<u64>,
    /// The holder's lease TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Time left on the holder's lease by this replica's timer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_left_ms: Option<u64>,
    /// Leases queued, in FIFO order.
    pub waiters: Vec<u64>,
}

/// One page of `GET /v1/claims`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimList {
    pub replica: u64,
    pub applied: u64,
    pub claims: Vec<ClaimEntry>,
    pub next: Option<String>,
    pub total: u64,
    pub total_exact: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimEntry {
    pub name: String,
    pub token: u64,
    /// The owner the claimer named (a display string).
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<u64>,
}

/// One message of the console's event stream (`GET /v1/events`, server-sent
/// events `event: <kind>`, `data: <json>`). Fields not relevant to a kind
/// are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleEvent {
    /// `hello`, `granted`, `handoff`, `released`, `expired`, `revoked`,
    /// `claimed`, `leader`, `step_down`, `refused`, `key_rotated`,
    /// `keys_retired`, or `missed` (this stream fell behind and `count`
    /// events were dropped, oldest first).
    pub kind: String,
    /// The replica that sent it.
    pub replica: u64,
    /// Its wall clock, ms since the Unix epoch (display only).
    pub at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}
