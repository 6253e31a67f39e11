//! What goes into the replicated log.

use crate::machine::ids::{ClientId, LeaseId, Token};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One log entry's payload: a command, who sent it, and the proposer's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// `(client, request_id)` for deduplication. `None` for commands the
    /// leader proposes on its own (expiry, handoff, checkpoints).
    pub origin: Option<Origin>,
    /// The proposing leader's wall clock, in ms since the Unix epoch. Used only
    /// as the `issued_at` of signed tokens, for display. Never for timing.
    pub at_ms: u64,
    pub cmd: Command,
}

/// The sender of a client request and its per-client sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub client: ClientId,
    pub request_id: u64,
}

/// A state-machine command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Install the cluster's Ed25519 signing key (32 secret bytes) if it has
    /// none. Proposed by the first leader.
    SetSigningKey { secret: [u8; 32] },
    /// Create a lease that lives `ttl_ms` after its last renewal.
    LeaseGrant { ttl_ms: u64 },
    /// Renew a lease for another full TTL.
    LeaseKeepAlive { lease: LeaseId },
    /// End a lease now, releasing its locks and leaving its queues.
    LeaseRevoke { lease: LeaseId },
    /// Acquire `lock` for `lease`. If held by another lease and `wait` is
    /// true, join the FIFO queue; otherwise answer `Busy`.
    Acquire { lock: String, lease: LeaseId, wait: bool, value: String },
    /// Leave the queue of `lock` (a waiter gave up).
    CancelWait { lock: String, lease: LeaseId },
    /// Release `lock`, held by `lease` with `token`.
    Release { lock: String, lease: LeaseId, token: Token },
    /// Create-if-absent of a name. If `lease` is given the claim ends with it.
    Claim { name: String, owner: String, lease: Option<LeaseId> },
    /// Proposed by the leader when its monotonic timer for `lease` ran out.
    /// `renewed` is the log index of the renewal the timer was based on: if the
    /// lease was renewed since, the expiry is void.
    Expire { lease: LeaseId, renewed: u64 },
    /// Proposed by the leader: grant `lock` to the head of its queue. Needed
    /// when one entry freed several locks, because an entry grants at most one.
    Handoff { lock: String },
    /// Proposed by the leader: `(lease, renewed, remaining_ms)` for each lease,
    /// measured on its monotonic clock. A replica that restarts (and so lost
    /// its own timers) resumes from these instead of the full TTL. A
    /// checkpoint taken before a renewal it does not know of is void for that
    /// lease: it must never shorten a lease that was renewed since.
    Checkpoint { remaining: Vec<(LeaseId, u64, u64)> },
    /// Make `secret` the signing key; the previous key stays published (for
    /// verifiers) until [`Command::RetireSigningKeys`]. Proposed by an
    /// administrator's `fenced cluster rotate-key`.
    RotateSigningKey { secret: [u8; 32] },
    /// Stop publishing every key but the newest: the rotation's overlap ends.
    RetireSigningKeys,
    /// Remove the claim on `name`. Only the owner that made it (see
    /// [`crate::machine::table::owner_of`]) may, or an administrator: `admin` is set
    /// by the API after it checked the caller's admin right, since the table
    /// knows no policy. If `owner` is given the claim's displayed owner must
    /// equal it, so that a release aimed at one claim cannot remove a later
    /// one on the same name. (Last variant: earlier ones keep their encoding.)
    ReleaseClaim { name: String, owner: Option<String>, admin: bool },
    /// Acquire `lock` for `lease` in `mode`. With `reentrant`, a lease that
    /// already holds the lock gets the same grant and one more hold, which a
    /// release takes back one at a time (see [`crate::machine::table`], "Re-entrant
    /// holds"). [`Command::Acquire`] is this with `Exclusive` and no
    /// re-entrance. (New variants go last: earlier ones keep their encoding,
    /// so an existing log still replays.)
    AcquireMode { lock: String, lease: LeaseId, wait: bool, value: String, mode: Mode, reentrant: bool },
    /// Create the counting semaphore `name` with `permits` permits, or change
    /// its count. Holders above a lowered count keep their permits; no new
    /// permit is granted until fewer than `permits` are held. `0` deletes
    /// the semaphore once nobody holds or awaits it.
    SemPermits { name: String, permits: u32 },
    /// Take one permit of semaphore `name` for `lease`; queue FIFO if `wait`.
    SemAcquire { name: String, lease: LeaseId, wait: bool },
    /// Return the permit of `name` that `lease` holds with `token`.
    SemRelease { name: String, lease: LeaseId, token: Token },
    /// Leave the queue of semaphore `name`.
    SemCancelWait { name: String, lease: LeaseId },
}

/// How a lock is held: by one exclusive holder, or by many shared holders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One holder; today's lock. Writes to a fenced resource need this.
    #[default]
    Exclusive,
    /// Many holders at once, none exclusive (readers).
    Shared,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Exclusive => "exclusive",
            Mode::Shared => "shared",
        })
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(o) => write!(f, "{}#{}: ", o.client, o.request_id)?,
            None => write!(f, "leader: ")?,
        }
        match &self.cmd {
            Command::SetSigningKey { .. } => write!(f, "set-signing-key"),
            Command::LeaseGrant { ttl_ms } => write!(f, "lease-grant ttl={ttl_ms}ms"),
            Command::LeaseKeepAlive { lease } => write!(f, "keepalive lease={lease}"),
            Command::LeaseRevoke { lease } => write!(f, "revoke lease={lease}"),
            Command::Acquire { lock, lease, wait, .. } => {
                write!(f, "acquire {lock} lease={lease} wait={wait}")
            }
            Command::CancelWait { lock, lease } => write!(f, "cancel-wait {lock} lease={lease}"),
            Command::Release { lock, lease, token } => {
                write!(f, "release {lock} lease={lease} token={token}")
            }
            Command::Claim { name, owner, .. } => write!(f, "claim {name} owner={owner}"),
            Command::Expire { lease, renewed } => write!(f, "expire lease={lease} renewed={renewed}"),
            Command::Handoff { lock } => write!(f, "handoff {lock}"),
            Command::Checkpoint { remaining } => write!(f, "checkpoint leases={}", remaining.len()),
            Command::RotateSigningKey { .. } => write!(f, "rotate-signing-key"),
            Command::RetireSigningKeys => write!(f, "retire-signing-keys"),
            Command::ReleaseClaim { name, admin, .. } => write!(f, "release-claim {name} admin={admin}"),
            Command::AcquireMode { lock, lease, wait, mode, reentrant, .. } => {
                write!(f, "acquire {lock} lease={lease} wait={wait} mode={mode} reentrant={reentrant}")
            }
            Command::SemPermits { name, permits } => write!(f, "sem-permits {name} permits={permits}"),
            Command::SemAcquire { name, lease, wait } => write!(f, "sem-acquire {name} lease={lease} wait={wait}"),
            Command::SemRelease { name, lease, token } => {
                write!(f, "sem-release {name} lease={lease} token={token}")
            }
            Command::SemCancelWait { name, lease } => write!(f, "sem-cancel-wait {name} lease={lease}"),
        }
    }
}
