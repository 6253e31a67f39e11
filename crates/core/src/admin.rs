//! JSON bodies of the maintenance API: membership changes
//! (`/v1/cluster/members/*`), drain (`/v1/cluster/drain`) and the peer
//! handshake report (`/v1/cluster/peers`). See `docs/operations.md`.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// `POST /v1/cluster/members/add`: join replica `id` at `addr`, as a learner
/// first, then as a voter once it has caught up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub id: u64,
    pub addr: String,
    /// Stay a learner (do not promote).
    #[serde(default)]
    pub learner_only: bool,
    #[serde(default)]
    pub force: bool,
}

/// `POST /v1/cluster/members/remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveMember {
    pub id: u64,
    #[serde(default)]
    pub force: bool,
}

/// `POST /v1/cluster/members/replace`: replica `new` at `addr` takes the
/// place of voter `old` (a dead machine), in one joint-consensus change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceMember {
    pub old: u64,
    pub new: u64,
    pub addr: String,
    #[serde(default)]
    pub force: bool,
}

/// The membership after a change (or as it is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub voters: BTreeSet<u64>,
    pub learners: BTreeSet<u64>,
    /// Every member's address, voters and learners.
    pub nodes: BTreeMap<u64, String>,
    pub leader: Option<u64>,
    /// The log index of the membership entry.
    pub log_index: u64,
    /// Set when `force` overrode a refusal: what the change risks.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `POST /raft/v1/drain-removed` (a peer message, never a client's): the
/// leader that removed a replica tells it to drain. `removed_at` is the log
/// index of the membership without it; such a drain ends by itself once the
/// replica sees a later membership that includes it again (it was re-added).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    pub removed_at: u64,
}

/// `POST /v1/cluster/drain` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainStatus {
    pub id: u64,
    pub draining: bool,
    /// The leader after the drain handed off leadership (if it had it).
    pub leader: Option<u64>,
}

/// What one peer said about itself at the last handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub protocol: u32,
    pub timing: String,
    pub timing_mismatch: Option<String>,
}

/// `GET /v1/cluster/peers`: this replica's handshake view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeersReport {
    pub id: u64,
    pub protocol: u32,
    pub data_format: u32,
    pub cluster: String,
    pub cluster_key: Option<String>,
    pub timing: String,
    pub draining: bool,
    pub peers: BTreeMap<u64, PeerInfo>,
}

/// `GET /v1/cluster/snapshot` (administrators): a backup file, as
/// `fenced cluster snapshot save` writes it. The file is checksummed and
/// versioned by itself; here it travels base64-encoded in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotExport {
    /// The backup file format ([`SnapshotExport::file`]'s outer version).
    pub format: u32,
    /// The log index the snapshot's state is at.
    pub index: u64,
    /// The backup file, base64 (standard alphabet, padded).
    pub file: String,
}
