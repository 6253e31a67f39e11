//! openraft's type configuration for fenced, and short aliases.

use openraft_rt::deterministic_rng::DeterministicRng;

pub use crate::config::NodeId;
pub use openraft::impls::BasicNode as Node;

openraft::declare_raft_types!(
    /// The raft types of fenced: log entries carry [`fenced_core::Request`],
    /// applying one answers a [`fenced_core::Response`].
    ///
    /// The runtime draws its randomness (election timeouts) from a seeded RNG
    /// so that a simulation replays bit for bit; in production the seed comes
    /// from the OS.
    pub TypeConfig:
        D = fenced_core::Request,
        R = fenced_core::Response,
        Node = Node,
        AsyncRuntime = DeterministicRng<openraft::impls::TokioRuntime>,
);

pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type SnapshotData = std::io::Cursor<Vec<u8>>;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;
