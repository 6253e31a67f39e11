//! What applying a command answers. Deterministic: every replica computes the
//! same response for the same entry, which is what makes deduplicated retries
//! return the original result from any replica.

use crate::machine::ids::{LeaseId, Token};
use serde::{Deserialize, Serialize};

/// A lock grant as the lock table records and answers it.
///
/// It carries no signature: the signed token is a pure function of these
/// fields and the signing key named by `key_id`, so only the replica that
/// answers a client computes it ([`crate::machine::table::LockTable::sign`]), once,
/// instead of every replica on every apply (signing was the largest CPU cost
/// of a grant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    pub lock: String,
    /// The fencing token: the log index of the granting entry.
    pub token: Token,
    pub lease: LeaseId,
    /// The holder's value (election proclamation), possibly empty.
    pub value: String,
    /// The id of the key that signs this grant (the newest at grant time).
    pub key_id: u32,
    /// Display only: the proposing leader's wall clock, in the signed claims.
    pub issued_at_ms: u64,
}

/// A lock grant as clients see it: the record plus its signed token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub lock: String,
    /// The fencing token: the log index of the granting entry.
    pub token: Token,
    pub lease: LeaseId,
    /// The signed token (see [`crate::machine::token`]) a resource can verify.
    pub signed: String,
    /// The holder's value (election proclamation), possibly empty.
    pub value: String,
    /// `shared` or `permit`; absent for an exclusive grant (a resource
    /// accepts writes only from exclusive grants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// A permit's slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// The lease's hold count on a re-entrant lock, when above 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holds: Option<u32>,
}

impl Grant {
    /// Describe how the grant is held (as the table answered it).
    pub fn with_kind(mut self, kind: GrantKind, holds: u32) -> Grant {
        self.mode = match kind {
            GrantKind::Exclusive => None,
            k => Some(k.name().to_string()),
        };
        self.slot = kind.slot();
        self.holds = (holds > 1).then_some(holds);
        self
    }
}

/// The answer to a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    LeaseGranted {
        lease: LeaseId,
        ttl_ms: u64,
    },
    LeaseKept {
        lease: LeaseId,
        ttl_ms: u64,
    },
    LeaseRevoked {
        lease: LeaseId,
        released: Vec<String>,
    },
    Granted(GrantRecord),
    /// The lock is held and the caller joined the queue at `position` (0 = next).
    Queued {
        lock: String,
        lease: LeaseId,
        position: usize,
    },
    /// The lock is held by another lease and the caller asked not to wait.
    Busy {
        lock: String,
        holder: LeaseId,
        token: Token,
    },
    Released {
        lock: String,
        token: Token,
    },
    /// The waiter left the queue (or was not in it).
    WaitCancelled {
        lock: String,
    },
    Claimed {
        name: String,
        token: Token,
        owner: String,
    },
    AlreadyClaimed {
        name: String,
        token: Token,
        owner: String,
    },
    /// Leader bookkeeping (expire, handoff, checkpoint, key) took effect or was void.
    Done,
    Err(SmError),
    /// The claim on `name` was removed; `token` and `owner` were its own.
    /// (Last variant: earlier ones keep their encoding in stored responses.)
    ClaimReleased {
        name: String,
        token: Token,
        owner: String,
    },
    /// A grant of [`crate::machine::command::Command::AcquireMode`] or
    /// [`crate::machine::command::Command::SemAcquire`]: the record, how it is held, and the
    /// lease's hold count on it (1 unless re-entrant).
    GrantedAs {
        grant: GrantRecord,
        kind: GrantKind,
        holds: u32,
    },
    /// A re-entrant hold was given back; the lease still holds the lock
    /// `holds` times with the same token.
    HoldReleased {
        lock: String,
        token: Token,
        holds: u32,
    },
    /// Semaphore `name` now has `permits` permits, `held` of them held.
    PermitsSet {
        name: String,
        permits: u32,
        held: u32,
    },
}

/// How a grant is held. A fenced resource needs it to judge the token:
/// writes need an exclusive grant, a permit fences its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantKind {
    Exclusive,
    Shared,
    /// One permit of a counting semaphore, in `slot` (0-based, below the
    /// permit count at grant time).
    Permit {
        slot: u32,
    },
}

impl GrantKind {
    pub fn name(&self) -> &'static str {
        match self {
            GrantKind::Exclusive => "exclusive",
            GrantKind::Shared => "shared",
            GrantKind::Permit { .. } => "permit",
        }
    }

    pub fn slot(&self) -> Option<u32> {
        match self {
            GrantKind::Permit { slot } => Some(*slot),
            _ => None,
        }
    }
}

/// A deterministic rejection. The state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum SmError {
    #[error("lease {0} does not exist (it expired, was revoked, or never existed)")]
    NoSuchLease(LeaseId),
    #[error("lock {lock:?} is not held by lease {lease} with token {token}")]
    NotHolder { lock: String, lease: LeaseId, token: Token },
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("request {request_id} is older than the deduplication window; its outcome is unknown")]
    RequestTooOld { request_id: u64 },
    #[error("the cluster has no signing key yet")]
    NoSigningKey,
    #[error("lease {lease} belongs to another identity; use a lease granted to you")]
    NotOwner { lease: LeaseId },
    #[error("no claim on {name:?} exists (it was released, its lease ended, or it was never made)")]
    NoSuchClaim { name: String },
    #[error("the claim on {name:?} was made by another identity; only it or an administrator may release it")]
    NotClaimOwner { name: String },
    #[error("the claim on {name:?} has owner {actual:?}, not {expected:?}; nothing was released")]
    ClaimOwnerMismatch { name: String, expected: String, actual: String },
}

impl SmError {
    /// A stable machine-readable code, used in the HTTP API.
    pub fn code(&self) -> &'static str {
        match self {
            SmError::NoSuchLease(_) => "no_such_lease",
            SmError::NotHolder { .. } => "not_holder",
            SmError::LimitExceeded(_) => "limit_exceeded",
            SmError::Invalid(_) => "invalid_argument",
            SmError::RequestTooOld { .. } => "request_too_old",
            SmError::NoSigningKey => "no_signing_key",
            SmError::NotOwner { .. } => "not_owner",
            SmError::NoSuchClaim { .. } => "no_such_claim",
            SmError::NotClaimOwner { .. } => "not_claim_owner",
            SmError::ClaimOwnerMismatch { .. } => "claim_owner_mismatch",
        }
    }
}
