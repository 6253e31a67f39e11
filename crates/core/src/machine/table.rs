//! The lock table: leases, locks with FIFO waiters, claims, and request
//! deduplication, as a pure deterministic state machine.
//!
//! Invariants (asserted here, and checked from outside by `fenced check`):
//! - **One grant per entry.** Applying one log entry grants at most one lock or
//!   claim, and the grant's token is that entry's index. Hence tokens are
//!   unique and strictly increasing (S1, S2). When one entry frees several
//!   locks that have waiters (a lease expiring), the first is handed over at
//!   once and the rest wait for [`Command::Handoff`] entries from the leader.
//! - **Exclusion.** A lock is granted only when it has no holder: after its
//!   holder released it, or the holder's lease ended through the log (S4).
//! - **Time is data.** Nothing here reads a clock. Lease expiry is decided by
//!   the leader's monotonic timer and arrives as [`Command::Expire`].
//! - **Retries are answered, not re-executed.** A request whose
//!   `(client, request_id)` was seen gets the stored response.

use crate::machine::command::{Command, Mode, Origin, Request};
use crate::machine::ids::{ClientId, LeaseId, Token};
use crate::machine::limits::Limits;
use crate::machine::name_set::NameSet;
use crate::machine::response::{Grant, GrantKind, GrantRecord, Response, SmError};
use crate::machine::token::{self, TokenClaims};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

mod floor;
mod prims;
pub use floor::{FloorError, Restarted};
use prims::Tail;
pub use prims::{PrimitiveLimits, PRIMS_FORMAT};

/// Why a lease ended or a lock was freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndReason {
    Released,
    Expired,
    Revoked,
}

/// Something that happened while applying an entry. Replicas use these to
/// drive lease timers and wake watchers; the simulator records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A lease was created or renewed: it lives `remaining_ms` from now.
    LeaseRenewed {
        lease: LeaseId,
        renewed: u64,
        remaining_ms: u64,
    },
    /// The leader checkpointed a lease's remaining TTL as of renewal
    /// `renewed` (void if the lease was renewed since).
    LeaseCheckpointed {
        lease: LeaseId,
        renewed: u64,
        remaining_ms: u64,
    },
    LeaseEnded {
        lease: LeaseId,
        reason: EndReason,
    },
    Granted {
        lock: String,
        token: Token,
        lease: LeaseId,
    },
    Freed {
        lock: String,
        token: Token,
        lease: LeaseId,
        reason: EndReason,
    },
    /// A freed lock has waiters but this entry already granted something:
    /// the leader must propose a [`Command::Handoff`].
    HandoffPending {
        lock: String,
    },
    Claimed {
        name: String,
        token: Token,
    },
}

/// The result of applying one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub response: Response,
    pub events: Vec<Event>,
}

/// A lease (session).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub ttl_ms: u64,
    /// Index of the entry that created or last renewed the lease. An
    /// [`Command::Expire`] naming an older renewal is void.
    pub renewed: u64,
    /// Remaining TTL as of the last renewal or checkpoint: what a replica that
    /// lost its timers (restart) resumes from.
    pub remaining_ms: u64,
    pub held: NameSet,
    pub waiting: NameSet,
    pub claims: NameSet,
    /// Who created the lease (see [`owner_of`]); limits count per owner.
    pub owner: Option<String>,
}

/// The owner a request's client id names. An API that authenticates its
/// callers sends client ids of the form `client@identity`: the owner is
/// then `@identity`, and only that identity may use the lease. A bare
/// client id (no authentication) is its own owner, for counting only.
pub fn owner_of(client: &ClientId) -> String {
    match client.0.split_once('@') {
        Some((_, identity)) => format!("@{identity}"),
        None => client.0.clone(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Waiter {
    lease: LeaseId,
    value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Lock {
    holder: Option<GrantRecord>,
    /// FIFO. Bounded by `Limits::waiters_per_lock_max`.
    waiters: VecDeque<Waiter>,
}

/// A claimed name (create-if-absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    /// The owner the claimer named: a display string, not an identity.
    pub owner: String,
    pub token: Token,
    pub lease: Option<LeaseId>,
    /// The owner that made the claim ([`owner_of`] its client id: `@identity`
    /// when callers are authenticated), `None` for a request without a client
    /// id. Only it, or an administrator, may release the claim, and
    /// `claims_per_owner_max` counts claims per maker.
    pub maker: Option<String>,
}

/// Remembered responses of one client, for deduplication.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    last_index: u64,
    /// Bounded by `Limits::responses_per_session`; the lowest ids go first.
    responses: BTreeMap<u64, Response>,
}

/// The public view of a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockStatus {
    pub lock: String,
    pub holder: Option<GrantRecord>,
    /// Leases queued, in FIFO order.
    pub waiters: Vec<LeaseId>,
}

/// Shared holders and shared waiters of a lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedStatus {
    pub holders: Vec<GrantRecord>,
    pub shared_waiters: Vec<LeaseId>,
}

/// The public view of a semaphore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemStatus {
    pub name: String,
    pub permits: u32,
    /// `(slot, grant)` in slot order.
    pub holders: Vec<(u32, GrantRecord)>,
    /// Leases queued, in FIFO order.
    pub waiters: Vec<LeaseId>,
}

/// The replicated state. Serialized whole into snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockTable {
    limits: Limits,
    last_applied: u64,
    /// The highest token granted so far: the one-grant-per-entry invariant
    /// makes every new grant's token exceed it.
    max_token: u64,
    /// Signing secrets, newest last. The newest signs; older ones are kept
    /// (at most one) so that verifiers can be told about the overlap.
    signing_keys: Vec<[u8; 32]>,
    leases: BTreeMap<LeaseId, Lease>,
    locks: BTreeMap<String, Lock>,
    claims: BTreeMap<String, ClaimRecord>,
    sessions: BTreeMap<ClientId, Session>,
    /// `last_index -> client`, to forget the least recently active session.
    session_lru: BTreeMap<u64, ClientId>,
    /// Locks freed with waiters but not yet handed over.
    pending_handoff: BTreeSet<String>,
    /// Live leases per owner (see [`owner_of`]), for `leases_per_owner_max`.
    owner_leases: BTreeMap<String, usize>,
    /// Live claims per maker (see [`ClaimRecord::maker`]), for `claims_per_owner_max`.
    owner_claims: BTreeMap<String, usize>,
    /// Expanded forms of `signing_keys` (not state: skipped by serde).
    #[serde(skip)]
    key_cache: KeyCache,
    /// Shared holders, re-entrant hold counts and semaphores. Last, so that
    /// snapshots written before they existed still load, and omitted while
    /// unused, so that such a table encodes as it did before (see `prims.rs`).
    #[serde(default, skip_serializing_if = "Tail::is_unused")]
    prims: Tail,
}

/// Expanded signing keys, memoised by secret. Expanding a secret derives its
/// public half, a scalar multiplication as slow as a signature; doing it on
/// every grant and every answer doubled the cost of signing. Not part of the
/// replicated state: it is skipped by serde and equal to any other cache.
#[derive(Default)]
struct KeyCache(std::sync::Mutex<BTreeMap<[u8; 32], SigningKey>>);

impl KeyCache {
    /// Keys live in the table at most two at a time; forget old ones beyond this.
    const MAX: usize = 8;

    fn get(&self, secret: &[u8; 32]) -> SigningKey {
        let Ok(mut keys) = self.0.lock() else { return SigningKey::from_bytes(secret) };
        if let Some(k) = keys.get(secret) {
            return k.clone();
        }
        let k = SigningKey::from_bytes(secret);
        if keys.len() >= Self::MAX {
            keys.clear();
        }
        keys.insert(*secret, k.clone());
        k
    }
}

impl Clone for KeyCache {
    fn clone(&self) -> Self {
        KeyCache::default()
    }
}

impl PartialEq for KeyCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for KeyCache {}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyCache")
    }
}

impl LockTable {
    pub fn new(limits: Limits) -> Self {
        LockTable { limits, ..Default::default() }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn last_applied(&self) -> u64 {
        self.last_applied
    }

    /// The public keys a resource should accept, newest last.
    pub fn public_keys(&self) -> Vec<VerifyingKey> {
        // Newest last; only the newest signs.
        self.signing_keys.iter().map(|s| self.key_cache.get(s).verifying_key()).collect()
    }

    /// The grant as a client receives it, with its signed token. Signed with
    /// the key the grant names, which the table keeps while grants it signed
    /// may still be answered.
    pub fn sign(&self, g: &GrantRecord) -> Result<Grant, SmError> {
        self.sign_as(g, GrantKind::Exclusive)
    }

    /// [`LockTable::sign`] for a grant held as `kind`: a shared or permit
    /// grant's token names its kind, so that a resource refuses it for writes.
    pub fn sign_as(&self, g: &GrantRecord, kind: GrantKind) -> Result<Grant, SmError> {
        let key = self
            .signing_keys
            .iter()
            .map(|s| self.key_cache.get(s))
            .find(|k| token::key_id(&k.verifying_key()) == g.key_id)
            .ok_or(SmError::NoSigningKey)?;
        let claims = TokenClaims {
            key_id: g.key_id,
            lock: g.lock.clone(),
            token: g.token.0,
            lease: g.lease.0,
            issued_at_ms: g.issued_at_ms,
        };
        Ok(Grant {
            lock: g.lock.clone(),
            token: g.token,
            lease: g.lease,
            signed: token::sign_as(
                &key,
                claims,
                match kind {
                    GrantKind::Exclusive => token::SignedKind::Exclusive,
                    GrantKind::Shared => token::SignedKind::Shared,
                    GrantKind::Permit { slot } => token::SignedKind::Permit { slot },
                },
            ),
            value: g.value.clone(),
            mode: None,
            slot: None,
            holds: None,
        })
    }

    pub fn lease(&self, id: LeaseId) -> Option<&Lease> {
        self.leases.get(&id)
    }

    pub fn leases(&self) -> impl Iterator<Item = (&LeaseId, &Lease)> {
        self.leases.iter()
    }

    pub fn lock_status(&self, name: &str) -> LockStatus {
        let lock = self.locks.get(name);
        LockStatus {
            lock: name.to_string(),
            holder: lock.and_then(|l| l.holder.clone()),
            waiters: match self.prims.0.sems.get(name) {
                Some(s) => s.waiters.iter().map(|w| w.lease).collect(),
                None => lock.map(|l| l.waiters.iter().map(|w| w.lease).collect()).unwrap_or_default(),
            },
        }
    }

    /// Locks (in name order) that hold a lock, for listings.
    pub fn held_locks(&self) -> impl Iterator<Item = &GrantRecord> {
        self.locks.values().filter_map(|l| l.holder.as_ref())
    }

    /// Every grant held, of every kind, with its kind: exclusive holders in
    /// name order, then shared holders, then permits.
    pub fn all_holders(&self) -> impl Iterator<Item = (GrantKind, &GrantRecord)> {
        let p = &self.prims.0;
        self.held_locks()
            .map(|g| (GrantKind::Exclusive, g))
            .chain(p.shared.values().flat_map(|s| s.values()).map(|g| (GrantKind::Shared, g)))
            .chain(
                p.sems.values().flat_map(|s| s.holders.iter()).map(|(slot, g)| (GrantKind::Permit { slot: *slot }, g)),
            )
    }

    /// How the grant of `name` with `token` is held, if it is.
    pub fn grant_kind(&self, name: &str, token: Token) -> Option<GrantKind> {
        let p = &self.prims.0;
        if self.locks.get(name).and_then(|l| l.holder.as_ref()).is_some_and(|h| h.token == token) {
            return Some(GrantKind::Exclusive);
        }
        if p.shared.get(name).is_some_and(|s| s.values().any(|g| g.token == token)) {
            return Some(GrantKind::Shared);
        }
        p.sems
            .get(name)
            .and_then(|s| s.holders.iter().find(|(_, g)| g.token == token))
            .map(|(slot, _)| GrantKind::Permit { slot: *slot })
    }

    /// The shared holders of `name`, by lease, and the leases queued for it
    /// shared.
    pub fn shared_status(&self, name: &str) -> SharedStatus {
        let p = &self.prims.0;
        SharedStatus {
            holders: p.shared.get(name).map(|s| s.values().cloned().collect()).unwrap_or_default(),
            shared_waiters: p.shared_waiters.iter().filter(|(n, _)| n == name).map(|(_, l)| *l).collect(),
        }
    }

    /// A lease's hold count on `name` (0 if it does not hold it).
    pub fn holds(&self, name: &str, lease: LeaseId) -> u32 {
        match self.grant_kind_of_lease(name, lease) {
            Some(_) => self.prims.0.depth.get(&(name.to_string(), lease)).copied().unwrap_or(1),
            None => 0,
        }
    }

    /// The grant `lease` holds on `name` (of any kind), with its kind and hold count.
    pub fn held_by(&self, name: &str, lease: LeaseId) -> Option<(GrantRecord, GrantKind, u32)> {
        let kind = self.grant_kind_of_lease(name, lease)?;
        let p = &self.prims.0;
        let g = match kind {
            GrantKind::Exclusive => self.locks.get(name)?.holder.clone()?,
            GrantKind::Shared => p.shared.get(name)?.get(&lease)?.clone(),
            GrantKind::Permit { slot } => p.sems.get(name)?.holders.get(&slot)?.clone(),
        };
        Some((g, kind, self.holds(name, lease)))
    }

    /// Holders of `name` other than an exclusive one: shared holders, or a
    /// semaphore's permit holders (in slot order); and a semaphore's count.
    pub fn other_holders(&self, name: &str) -> (Vec<GrantRecord>, Option<u32>) {
        let p = &self.prims.0;
        if let Some(s) = p.sems.get(name) {
            return (s.holders.values().cloned().collect(), Some(s.permits));
        }
        (p.shared.get(name).map(|s| s.values().cloned().collect()).unwrap_or_default(), None)
    }

    fn grant_kind_of_lease(&self, name: &str, lease: LeaseId) -> Option<GrantKind> {
        let p = &self.prims.0;
        if self.locks.get(name).and_then(|l| l.holder.as_ref()).is_some_and(|h| h.lease == lease) {
            return Some(GrantKind::Exclusive);
        }
        if p.shared.get(name).is_some_and(|s| s.contains_key(&lease)) {
            return Some(GrantKind::Shared);
        }
        p.sems
            .get(name)
            .and_then(|s| s.holders.iter().find(|(_, g)| g.lease == lease))
            .map(|(slot, _)| GrantKind::Permit { slot: *slot })
    }

    /// Semaphore `name`: its permit count, holders by slot, and queue.
    pub fn sem_status(&self, name: &str) -> Option<SemStatus> {
        let s = self.prims.0.sems.get(name)?;
        Some(SemStatus {
            name: name.to_string(),
            permits: s.permits,
            holders: s.holders.iter().map(|(slot, g)| (*slot, g.clone())).collect(),
            waiters: s.waiters.iter().map(|w| w.lease).collect(),
        })
    }

    /// Limits of the primitives; see [`PrimitiveLimits`].
    pub fn primitive_limits(&self) -> &PrimitiveLimits {
        &self.prims.0.limits
    }

    /// Replace the primitives' limits. Part of the replicated state: call
    /// it only on a fresh table, the same on every replica.
    pub fn set_primitive_limits(&mut self, limits: PrimitiveLimits) {
        self.prims.0.limits = limits;
    }

    pub fn claim(&self, name: &str) -> Option<&ClaimRecord> {
        self.claims.get(name)
    }

    /// Locks with a holder or waiters, in name order, from `start` on
    /// (inclusive): the console pages through them without copying the
    /// table.
    pub fn locks_from<'a>(&'a self, start: &str) -> impl Iterator<Item = LockStatus> + 'a {
        use std::ops::Bound;
        self.locks.range::<str, _>((Bound::Included(start), Bound::Unbounded)).map(|(name, l)| LockStatus {
            lock: name.clone(),
            holder: l.holder.clone(),
            waiters: l.waiters.iter().map(|w| w.lease).collect(),
        })
    }

    /// The names of [`Self::locks_from`], without copying the locks.
    pub fn lock_names_from<'a>(&'a self, start: &str) -> impl Iterator<Item = &'a String> + 'a {
        use std::ops::Bound;
        self.locks.range::<str, _>((Bound::Included(start), Bound::Unbounded)).map(|(name, _)| name)
    }

    /// Claims in name order from `start` on (inclusive), for listings.
    pub fn claims_from<'a>(&'a self, start: &str) -> impl Iterator<Item = (&'a String, &'a ClaimRecord)> + 'a {
        use std::ops::Bound;
        self.claims.range::<str, _>((Bound::Included(start), Bound::Unbounded))
    }

    pub fn pending_handoffs(&self) -> impl Iterator<Item = &String> {
        self.pending_handoff.iter()
    }

    /// Apply the entry at `index`. Indices must increase; every replica that
    /// applies the same entries gets the same state and responses.
    pub fn apply(&mut self, index: u64, req: &Request) -> Applied {
        assert!(index > self.last_applied, "entry {index} applied after {}", self.last_applied);
        self.last_applied = index;
        let mut events = Vec::new();
        let response = match &req.origin {
            Some(origin) => match self.replay(origin) {
                Some(r) => r,
                None => {
                    let r = self.execute(index, req, &mut events);
                    self.remember(index, origin, &r);
                    r
                }
            },
            None => self.execute(index, req, &mut events),
        };
        let grants = events.iter().filter(|e| matches!(e, Event::Granted { .. } | Event::Claimed { .. })).count();
        assert!(grants <= 1, "entry {index} granted {grants} times; tokens would repeat");
        Applied { response, events }
    }

    /// The stored response of a retried request, if any.
    fn replay(&self, origin: &Origin) -> Option<Response> {
        let s = self.sessions.get(&origin.client)?;
        if let Some(r) = s.responses.get(&origin.request_id) {
            return Some(r.clone());
        }
        let full = s.responses.len() >= self.limits.responses_per_session;
        match s.responses.keys().next() {
            Some(&oldest) if full && origin.request_id < oldest => {
                Some(Response::Err(SmError::RequestTooOld { request_id: origin.request_id }))
            }
            _ => None,
        }
    }

    fn remember(&mut self, index: u64, origin: &Origin, r: &Response) {
        let s = self.sessions.entry(origin.client.clone()).or_default();
        self.session_lru.remove(&s.last_index);
        s.last_index = index;
        s.responses.insert(origin.request_id, r.clone());
        while s.responses.len() > self.limits.responses_per_session {
            s.responses.pop_first();
        }
        self.session_lru.insert(index, origin.client.clone());
        while self.sessions.len() > self.limits.sessions_max {
            let Some((_, client)) = self.session_lru.pop_first() else { break };
            self.sessions.remove(&client);
        }
    }

    fn execute(&mut self, index: u64, req: &Request, ev: &mut Vec<Event>) -> Response {
        self.try_execute(index, req, ev).unwrap_or_else(Response::Err)
    }

    /// An authenticated owner's lease may only be used by that owner.
    fn check_owner(&self, req: &Request, id: LeaseId) -> Result<(), SmError> {
        let (Some(origin), Some(lease)) = (&req.origin, self.leases.get(&id)) else { return Ok(()) };
        match &lease.owner {
            Some(owner) if owner.starts_with('@') && *owner != owner_of(&origin.client) => {
                Err(SmError::NotOwner { lease: id })
            }
            _ => Ok(()),
        }
    }

    fn try_execute(&mut self, index: u64, req: &Request, ev: &mut Vec<Event>) -> Result<Response, SmError> {
        match &req.cmd {
            Command::LeaseKeepAlive { lease }
            | Command::LeaseRevoke { lease }
            | Command::Acquire { lease, .. }
            | Command::CancelWait { lease, .. }
            | Command::Release { lease, .. }
            | Command::AcquireMode { lease, .. }
            | Command::SemAcquire { lease, .. }
            | Command::SemRelease { lease, .. }
            | Command::SemCancelWait { lease, .. } => self.check_owner(req, *lease)?,
            Command::Claim { lease: Some(lease), .. } => self.check_owner(req, *lease)?,
            _ => {}
        }
        match &req.cmd {
            Command::SetSigningKey { secret } => {
                // Install-if-absent: two leaders racing to install a key must
                // not rotate it behind the verifiers' backs.
                if self.signing_keys.is_empty() {
                    self.signing_keys.push(*secret);
                }
                Ok(Response::Done)
            }
            Command::RotateSigningKey { secret } => {
                // The new key signs from this entry on; the previous one
                // stays (published, and signing the grants made with it when
                // they are answered) until `RetireSigningKeys`. One rotation
                // at a time: dropping a key here could leave held grants
                // that nobody can sign any more.
                if self.signing_keys.last() == Some(secret) {
                    return Ok(Response::Done);
                }
                if self.signing_keys.len() >= 2 {
                    return Err(SmError::Invalid(
                        "a key rotation is already in progress; retire the old key first (fenced cluster retire-keys)"
                            .into(),
                    ));
                }
                self.signing_keys.push(*secret);
                Ok(Response::Done)
            }
            Command::RetireSigningKeys => {
                let keep = self.signing_keys.len().saturating_sub(1);
                let retiring: BTreeSet<u32> = self.signing_keys[..keep]
                    .iter()
                    .map(|s| token::key_id(&SigningKey::from_bytes(s).verifying_key()))
                    .collect();
                let old: Vec<&str> = self
                    .all_holders()
                    .filter(|(_, h)| retiring.contains(&h.key_id))
                    .map(|(_, h)| h.lock.as_str())
                    .collect();
                if let Some(first) = old.first() {
                    return Err(SmError::Invalid(format!(
                        "{} locks (e.g. {first:?}) are still held under the old key; retire once they are released \
                         or their leases expire (at most the maximum TTL), or revoke their leases",
                        old.len()
                    )));
                }
                self.signing_keys.drain(..keep);
                Ok(Response::Done)
            }
            Command::LeaseGrant { ttl_ms } => {
                let owner = req.origin.as_ref().map(|o| owner_of(&o.client));
                self.lease_grant(index, *ttl_ms, owner, ev)
            }
            Command::LeaseKeepAlive { lease } => self.keepalive(index, *lease, ev),
            Command::LeaseRevoke { lease } => {
                let released = self.lease_ref(*lease)?.held.iter().cloned().collect();
                self.end_lease(index, req.at_ms, *lease, EndReason::Revoked, ev);
                Ok(Response::LeaseRevoked { lease: *lease, released })
            }
            Command::Acquire { lock, lease, wait, value } => {
                self.acquire(index, req.at_ms, lock, *lease, *wait, value, Mode::Exclusive, false, true, ev)
            }
            Command::AcquireMode { lock, lease, wait, value, mode, reentrant } => {
                self.acquire(index, req.at_ms, lock, *lease, *wait, value, *mode, *reentrant, false, ev)
            }
            Command::CancelWait { lock, lease } => Ok(self.cancel_wait(lock, *lease, ev)),
            Command::SemCancelWait { name, lease } => Ok(self.cancel_wait(name, *lease, ev)),
            Command::SemPermits { name, permits } => self.sem_permits(name, *permits, ev),
            Command::SemAcquire { name, lease, wait } => self.sem_acquire(index, req.at_ms, name, *lease, *wait, ev),
            Command::SemRelease { name, lease, token } => {
                if !self.prims.0.sems.contains_key(name) {
                    return Err(SmError::NotHolder { lock: name.to_string(), lease: *lease, token: *token });
                }
                self.release(index, req.at_ms, name, *lease, *token, ev)
            }
            Command::Release { lock, lease, token } => self.release(index, req.at_ms, lock, *lease, *token, ev),
            Command::Claim { name, owner, lease } => {
                let maker = req.origin.as_ref().map(|o| owner_of(&o.client));
                self.claim_name(index, name, owner, *lease, maker, ev)
            }
            Command::ReleaseClaim { name, owner, admin } => {
                let caller = req.origin.as_ref().map(|o| owner_of(&o.client));
                self.release_claim(name, owner.as_deref(), caller, *admin)
            }
            Command::Expire { lease, renewed } => {
                if self.leases.get(lease).is_some_and(|l| l.renewed == *renewed) {
                    self.end_lease(index, req.at_ms, *lease, EndReason::Expired, ev);
                }
                Ok(Response::Done)
            }
            Command::Handoff { lock } => {
                if self.pending_handoff.remove(lock) {
                    self.grant_head(index, req.at_ms, lock, ev)?;
                    // Readers queued behind a reader follow it one entry each.
                    if self.head_grantable(lock) {
                        self.mark_pending(lock, ev);
                    }
                }
                Ok(Response::Done)
            }
            Command::Checkpoint { remaining } => {
                for (id, renewed, rem) in remaining {
                    if let Some(l) = self.leases.get_mut(id).filter(|l| l.renewed == *renewed) {
                        l.remaining_ms = (*rem).min(l.ttl_ms);
                        ev.push(Event::LeaseCheckpointed {
                            lease: *id,
                            renewed: *renewed,
                            remaining_ms: l.remaining_ms,
                        });
                    }
                }
                Ok(Response::Done)
            }
        }
    }

    fn lease_ref(&self, id: LeaseId) -> Result<&Lease, SmError> {
        self.leases.get(&id).ok_or(SmError::NoSuchLease(id))
    }

    fn check_name(&self, what: &str, name: &str) -> Result<(), SmError> {
        if name.is_empty() {
            return Err(SmError::Invalid(format!("{what} name is empty")));
        }
        if name.len() > self.limits.name_len_max {
            return Err(SmError::Invalid(format!(
                "{what} name is {} bytes; the limit is {}",
                name.len(),
                self.limits.name_len_max
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(SmError::Invalid(format!("{what} name contains control characters")));
        }
        Ok(())
    }

    fn lease_grant(
        &mut self,
        index: u64,
        ttl_ms: u64,
        owner: Option<String>,
        ev: &mut Vec<Event>,
    ) -> Result<Response, SmError> {
        let (lo, hi) = (self.limits.ttl_ms_min, self.limits.ttl_ms_max);
        if !(lo..=hi).contains(&ttl_ms) {
            return Err(SmError::Invalid(format!("ttl {ttl_ms}ms is outside {lo}ms..={hi}ms")));
        }
        if self.leases.len() >= self.limits.leases_max {
            return Err(SmError::LimitExceeded(format!("{} leases exist", self.leases.len())));
        }
        if let Some(o) = &owner {
            let n = self.owner_leases.get(o).copied().unwrap_or(0);
            if n >= self.limits.leases_per_owner_max {
                return Err(SmError::LimitExceeded(format!(
                    "{o} already has {n} leases (limit {}); revoke some or reuse one",
                    self.limits.leases_per_owner_max
                )));
            }
            *self.owner_leases.entry(o.clone()).or_default() += 1;
        }
        let id = LeaseId(index);
        let lease = Lease {
            ttl_ms,
            renewed: index,
            remaining_ms: ttl_ms,
            held: NameSet::new(),
            waiting: NameSet::new(),
            claims: NameSet::new(),
            owner,
        };
        self.leases.insert(id, lease);
        ev.push(Event::LeaseRenewed { lease: id, renewed: index, remaining_ms: ttl_ms });
        Ok(Response::LeaseGranted { lease: id, ttl_ms })
    }

    fn keepalive(&mut self, index: u64, id: LeaseId, ev: &mut Vec<Event>) -> Result<Response, SmError> {
        let l = self.leases.get_mut(&id).ok_or(SmError::NoSuchLease(id))?;
        l.renewed = index;
        l.remaining_ms = l.ttl_ms;
        ev.push(Event::LeaseRenewed { lease: id, renewed: index, remaining_ms: l.ttl_ms });
        Ok(Response::LeaseKept { lease: id, ttl_ms: l.ttl_ms })
    }

    #[allow(clippy::too_many_arguments)]
    fn acquire(
        &mut self,
        index: u64,
        at_ms: u64,
        name: &str,
        id: LeaseId,
        wait: bool,
        value: &str,
        mode: Mode,
        reentrant: bool,
        legacy: bool,
        ev: &mut Vec<Event>,
    ) -> Result<Response, SmError> {
        self.check_name("lock", name)?;
        if value.len() > self.limits.value_len_max {
            return Err(SmError::Invalid(format!(
                "value is {} bytes; the limit is {}",
                value.len(),
                self.limits.value_len_max
            )));
        }
        let lease = self.lease_ref(id)?;
        if self.prims.0.sems.contains_key(name) {
            return Err(SmError::Invalid(format!(
                "{name:?} is a semaphore; take a permit (POST /v1/sem/acquire) or use another lock name"
            )));
        }
        let lock = self.locks.get(name);
        let held = match lock.and_then(|l| l.holder.as_ref()) {
            // Re-acquiring a lock the lease already holds returns the same grant.
            Some(h) if h.lease == id => Some((h.clone(), GrantKind::Exclusive)),
            _ => self.prims.0.shared.get(name).and_then(|s| s.get(&id)).map(|g| (g.clone(), GrantKind::Shared)),
        };
        if let Some((grant, kind)) = held {
            if kind == GrantKind::Shared && mode == Mode::Exclusive {
                return Err(SmError::Invalid(format!(
                    "lease {id} holds {name:?} shared; a shared hold cannot be upgraded to exclusive (two \
                     upgrading readers would wait for each other forever). Release it, then acquire exclusive"
                )));
            }
            let key = (name.to_string(), id);
            let mut holds = self.prims.0.depth.get(&key).copied().unwrap_or(1);
            if reentrant {
                if holds >= self.prims.0.limits.hold_depth_max {
                    return Err(SmError::LimitExceeded(format!(
                        "lease {id} already holds {name:?} {holds} times (limit {}); release some holds first",
                        self.prims.0.limits.hold_depth_max
                    )));
                }
                holds += 1;
                self.prims.0.depth.insert(key, holds);
            }
            return Ok(if legacy { Response::Granted(grant) } else { Response::GrantedAs { grant, kind, holds } });
        }
        if let Some(pos) = lock.and_then(|l| l.waiters.iter().position(|w| w.lease == id)) {
            return Ok(Response::Queued { lock: name.to_string(), lease: id, position: pos });
        }
        if lease.held.len() + lease.waiting.len() >= self.limits.locks_per_lease_max {
            return Err(SmError::LimitExceeded(format!(
                "lease {id} already holds or awaits {} locks",
                lease.held.len() + lease.waiting.len()
            )));
        }
        let shared = self.prims.0.shared.get(name).map_or(0, BTreeMap::len);
        if mode == Mode::Shared && shared >= self.prims.0.limits.shared_holders_max {
            return Err(SmError::LimitExceeded(format!(
                "lock {name:?} has {shared} shared holders (limit {}); retry after some release",
                self.prims.0.limits.shared_holders_max
            )));
        }
        let queue_empty = lock.is_none_or(|l| l.holder.is_none() && l.waiters.is_empty());
        if queue_empty && self.compatible(name, mode) {
            let kind = if mode == Mode::Shared { GrantKind::Shared } else { GrantKind::Exclusive };
            let grant = self.grant(index, at_ms, name, id, value.to_string(), kind, ev)?;
            return Ok(if legacy { Response::Granted(grant) } else { Response::GrantedAs { grant, kind, holds: 1 } });
        }
        let first_shared = self.prims.0.shared.get(name).and_then(|s| s.values().next()).map(|g| (g.lease, g.token));
        let lock = self.locks.entry(name.to_string()).or_default();
        if !wait {
            let (holder, token) = match (&lock.holder, first_shared) {
                (Some(h), _) => (h.lease, h.token),
                (None, Some(s)) => s,
                (None, None) => (lock.waiters.front().map(|w| w.lease).unwrap_or(id), Token(0)),
            };
            if lock.holder.is_none() && lock.waiters.is_empty() {
                // Created by `entry` above only to answer: leave no trace.
                self.locks.remove(name);
            }
            return Ok(Response::Busy { lock: name.to_string(), holder, token });
        }
        if lock.waiters.len() >= self.limits.waiters_per_lock_max {
            return Err(SmError::LimitExceeded(format!("lock {name:?} has {} waiters", lock.waiters.len())));
        }
        lock.waiters.push_back(Waiter { lease: id, value: value.to_string() });
        let position = lock.waiters.len() - 1;
        if mode == Mode::Shared {
            self.prims.0.shared_waiters.insert((name.to_string(), id));
        }
        if let Some(l) = self.leases.get_mut(&id) {
            l.waiting.insert(name);
        }
        Ok(Response::Queued { lock: name.to_string(), lease: id, position })
    }

    /// Whether `name` may be granted in `mode` given its holders (not its
    /// queue): shared next to shared holders only, exclusive to nobody else.
    fn compatible(&self, name: &str, mode: Mode) -> bool {
        if self.locks.get(name).is_some_and(|l| l.holder.is_some()) {
            return false;
        }
        let shared = self.prims.0.shared.get(name).map_or(0, BTreeMap::len);
        match mode {
            Mode::Shared => shared < self.prims.0.limits.shared_holders_max,
            #[cfg(feature = "bugs")]
            Mode::Exclusive if crate::machine::bugs::writer_with_readers() => true,
            Mode::Exclusive => shared == 0,
        }
    }

    /// Whether the head of `name`'s queue (lock or semaphore) may be granted now.
    fn head_grantable(&self, name: &str) -> bool {
        if let Some(sem) = self.prims.0.sems.get(name) {
            return !sem.waiters.is_empty() && sem.holders.len() < sem.permits as usize;
        }
        let Some(w) = self.locks.get(name).and_then(|l| l.waiters.front()) else { return false };
        let shared = self.prims.0.shared_waiters.contains(&(name.to_string(), w.lease));
        self.compatible(name, if shared { Mode::Shared } else { Mode::Exclusive })
    }

    /// Nobody holds or awaits `name`: its entry can go.
    fn idle(&self, name: &str) -> bool {
        if let Some(sem) = self.prims.0.sems.get(name) {
            return sem.permits == 0 && sem.holders.is_empty() && sem.waiters.is_empty();
        }
        self.locks.get(name).is_none_or(|l| l.holder.is_none() && l.waiters.is_empty())
            && !self.prims.0.shared.contains_key(name)
    }

    /// Forget an idle name. A semaphore with permits stays: its count is state.
    fn remove_idle(&mut self, name: &str) {
        self.locks.remove(name);
        self.prims.0.sems.remove(name);
        self.pending_handoff.remove(name);
    }

    /// Ask the leader for a `Handoff` of `name`.
    fn mark_pending(&mut self, name: &str, ev: &mut Vec<Event>) {
        if self.pending_handoff.insert(name.to_string()) {
            ev.push(Event::HandoffPending { lock: name.to_string() });
        }
    }

    /// Grant `name` to `id` as `kind` with token `index`; `name` must admit it.
    #[allow(clippy::too_many_arguments)]
    fn grant(
        &mut self,
        index: u64,
        at_ms: u64,
        name: &str,
        id: LeaseId,
        value: String,
        kind: GrantKind,
        ev: &mut Vec<Event>,
    ) -> Result<GrantRecord, SmError> {
        let secret = self.signing_keys.last().ok_or(SmError::NoSigningKey)?;
        let key_id = token::key_id(&self.key_cache.get(secret).verifying_key());
        #[cfg(feature = "bugs")]
        let index = if crate::machine::bugs::reuse_tokens() && self.max_token > 0 { self.max_token } else { index };
        #[cfg(feature = "bugs")]
        let reusing = crate::machine::bugs::reuse_tokens();
        #[cfg(not(feature = "bugs"))]
        let reusing = false;
        assert!(reusing || index > self.max_token, "token {index} would not exceed {}", self.max_token);
        self.max_token = index;
        let grant =
            GrantRecord { lock: name.to_string(), token: Token(index), lease: id, value, key_id, issued_at_ms: at_ms };
        match kind {
            GrantKind::Exclusive => {
                #[cfg(feature = "bugs")]
                let readers_ok = crate::machine::bugs::writer_with_readers();
                #[cfg(not(feature = "bugs"))]
                let readers_ok = false;
                assert!(readers_ok || !self.prims.0.shared.contains_key(name), "lock {name:?} granted while shared");
                let lock = self.locks.entry(name.to_string()).or_default();
                assert!(lock.holder.is_none(), "lock {name:?} granted while held");
                lock.holder = Some(grant.clone());
            }
            GrantKind::Shared => {
                assert!(self.locks.get(name).is_none_or(|l| l.holder.is_none()), "lock {name:?} shared while held");
                self.prims.0.shared.entry(name.to_string()).or_default().insert(id, grant.clone());
            }
            GrantKind::Permit { slot } => {
                let sem = self.prims.0.sems.entry(name.to_string()).or_default();
                assert!(sem.holders.len() < sem.permits as usize, "semaphore {name:?} granted beyond its permits");
                assert!(sem.holders.insert(slot, grant.clone()).is_none(), "slot {slot} of {name:?} granted twice");
            }
        }
        if let Some(l) = self.leases.get_mut(&id) {
            l.held.insert(name);
        }
        ev.push(Event::Granted { lock: name.to_string(), token: Token(index), lease: id });
        Ok(grant)
    }

    /// Grant `name` to the head of its queue, if it has one and may.
    fn grant_head(&mut self, index: u64, at_ms: u64, name: &str, ev: &mut Vec<Event>) -> Result<(), SmError> {
        if self.idle(name) {
            self.remove_idle(name);
            return Ok(());
        }
        if !self.head_grantable(name) {
            return Ok(());
        }
        if let Some(sem) = self.prims.0.sems.get_mut(name) {
            let Some(w) = sem.waiters.pop_front() else { return Ok(()) };
            let slot = (0..).find(|s| !sem.holders.contains_key(s)).unwrap_or(0);
            if let Some(l) = self.leases.get_mut(&w.lease) {
                l.waiting.remove(name);
            }
            return self.grant(index, at_ms, name, w.lease, w.value, GrantKind::Permit { slot }, ev).map(|_| ());
        }
        let Some(w) = self.locks.get_mut(name).and_then(|l| l.waiters.pop_front()) else { return Ok(()) };
        if let Some(l) = self.leases.get_mut(&w.lease) {
            l.waiting.remove(name);
        }
        let kind = if self.prims.0.shared_waiters.remove(&(name.to_string(), w.lease)) {
            GrantKind::Shared
        } else {
            GrantKind::Exclusive
        };
        self.grant(index, at_ms, name, w.lease, w.value, kind, ev).map(|_| ())
    }

    /// After `freed` names lost a holder in this entry: hand the first one
    /// whose queue's head may go over now, mark the rest (and a name whose
    /// next waiter may follow, e.g. a second reader) for `Handoff`, drop
    /// idle ones.
    fn after_free(&mut self, index: u64, at_ms: u64, freed: Vec<String>, ev: &mut Vec<Event>) {
        let mut granted = false;
        for name in freed {
            if self.idle(&name) {
                self.remove_idle(&name);
            } else if !self.head_grantable(&name) {
                continue;
            } else if !granted && self.grant_head(index, at_ms, &name, ev).is_ok() {
                granted = true;
                if self.head_grantable(&name) {
                    self.mark_pending(&name, ev);
                }
            } else {
                self.mark_pending(&name, ev);
            }
        }
    }

    fn release(
        &mut self,
        index: u64,
        at_ms: u64,
        name: &str,
        id: LeaseId,
        token: Token,
        ev: &mut Vec<Event>,
    ) -> Result<Response, SmError> {
        let is = |g: &GrantRecord| g.lease == id && g.token == token;
        let holds = self.locks.get(name).and_then(|l| l.holder.as_ref()).is_some_and(is)
            || self.prims.0.shared.get(name).and_then(|s| s.get(&id)).is_some_and(is)
            || self.prims.0.sems.get(name).is_some_and(|s| s.holders.values().any(is));
        if !holds {
            return Err(SmError::NotHolder { lock: name.to_string(), lease: id, token });
        }
        let key = (name.to_string(), id);
        if let Some(d) = self.prims.0.depth.get_mut(&key) {
            *d -= 1;
            let holds = *d;
            if holds <= 1 {
                self.prims.0.depth.remove(&key);
            }
            return Ok(Response::HoldReleased { lock: name.to_string(), token, holds });
        }
        self.free(name, id, EndReason::Released, ev);
        self.after_free(index, at_ms, vec![name.to_string()], ev);
        Ok(Response::Released { lock: name.to_string(), token })
    }

    /// Take `id`'s hold (exclusive, shared or permit) off `name`, all of it.
    fn free(&mut self, name: &str, id: LeaseId, reason: EndReason, ev: &mut Vec<Event>) {
        let mut taken = None;
        if let Some(l) = self.locks.get_mut(name) {
            if l.holder.as_ref().is_some_and(|h| h.lease == id) {
                taken = l.holder.take();
            }
        }
        if taken.is_none() {
            if let Some(s) = self.prims.0.shared.get_mut(name) {
                taken = s.remove(&id);
                if s.is_empty() {
                    self.prims.0.shared.remove(name);
                }
            }
        }
        if taken.is_none() {
            if let Some(sem) = self.prims.0.sems.get_mut(name) {
                let slot = sem.holders.iter().find(|(_, g)| g.lease == id).map(|(s, _)| *s);
                taken = slot.and_then(|s| sem.holders.remove(&s));
            }
        }
        let Some(h) = taken else { return };
        self.prims.0.depth.remove(&(name.to_string(), id));
        if let Some(l) = self.leases.get_mut(&id) {
            l.held.remove(name);
        }
        ev.push(Event::Freed { lock: name.to_string(), token: h.token, lease: h.lease, reason });
    }

    fn cancel_wait(&mut self, name: &str, id: LeaseId, ev: &mut Vec<Event>) -> Response {
        if let Some(h) = self.locks.get(name).and_then(|l| l.holder.as_ref()).filter(|h| h.lease == id) {
            // The grant won the race with the give-up: report it.
            return Response::Granted(h.clone());
        }
        if let Some(g) = self.prims.0.shared.get(name).and_then(|s| s.get(&id)) {
            let holds = self.prims.0.depth.get(&(name.to_string(), id)).copied().unwrap_or(1);
            return Response::GrantedAs { grant: g.clone(), kind: GrantKind::Shared, holds };
        }
        if let Some((slot, g)) = self.prims.0.sems.get(name).and_then(|s| s.holders.iter().find(|(_, g)| g.lease == id))
        {
            return Response::GrantedAs { grant: g.clone(), kind: GrantKind::Permit { slot: *slot }, holds: 1 };
        }
        if !self.locks.contains_key(name) && !self.prims.0.sems.contains_key(name) {
            return Response::WaitCancelled { lock: name.to_string() };
        }
        self.leave_queue(name, id);
        if let Some(l) = self.leases.get_mut(&id) {
            l.waiting.remove(name);
        }
        self.settle_queue(name, ev);
        Response::WaitCancelled { lock: name.to_string() }
    }

    /// Take `id` out of `name`'s queue (lock or semaphore).
    fn leave_queue(&mut self, name: &str, id: LeaseId) {
        if let Some(lock) = self.locks.get_mut(name) {
            lock.waiters.retain(|w| w.lease != id);
        }
        if let Some(sem) = self.prims.0.sems.get_mut(name) {
            sem.waiters.retain(|w| w.lease != id);
        }
        self.prims.0.shared_waiters.remove(&(name.to_string(), id));
    }

    /// A waiter left `name`'s queue: if nobody holds or awaits it, it is
    /// simply free; if the waiter was blocking the next ones (a writer ahead
    /// of readers that may now join the holders), ask for a handoff.
    fn settle_queue(&mut self, name: &str, ev: &mut Vec<Event>) {
        if self.idle(name) {
            self.remove_idle(name);
        } else if self.head_grantable(name) {
            self.mark_pending(name, ev);
        }
    }

    fn end_lease(&mut self, index: u64, at_ms: u64, id: LeaseId, reason: EndReason, ev: &mut Vec<Event>) {
        let Some(lease) = self.leases.remove(&id) else { return };
        if let Some(o) = &lease.owner {
            if let Some(n) = self.owner_leases.get_mut(o) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.owner_leases.remove(o);
                }
            }
        }
        for name in &lease.waiting {
            self.leave_queue(name, id);
            self.settle_queue(name, ev);
        }
        for name in &lease.claims {
            self.remove_claim(name);
        }
        let freed: Vec<String> = lease.held.iter().cloned().collect();
        let lock_reason = if reason == EndReason::Revoked { EndReason::Revoked } else { EndReason::Expired };
        for name in &freed {
            // The lease is already gone from `leases`, so `free` cannot touch it.
            self.free(name, id, lock_reason, ev);
        }
        ev.push(Event::LeaseEnded { lease: id, reason });
        self.after_free(index, at_ms, freed, ev);
    }

    /// Create semaphore `name` or change its permit count.
    fn sem_permits(&mut self, name: &str, permits: u32, ev: &mut Vec<Event>) -> Result<Response, SmError> {
        self.check_name("semaphore", name)?;
        let limits = &self.prims.0.limits;
        if permits > limits.permits_max {
            return Err(SmError::Invalid(format!("{permits} permits asked for; the limit is {}", limits.permits_max)));
        }
        if self.locks.contains_key(name) || self.prims.0.shared.contains_key(name) {
            return Err(SmError::Invalid(format!(
                "{name:?} is a lock that is held or awaited; a semaphore needs a name of its own"
            )));
        }
        if !self.prims.0.sems.contains_key(name) {
            if permits == 0 {
                return Ok(Response::PermitsSet { name: name.to_string(), permits: 0, held: 0 });
            }
            if self.prims.0.sems.len() >= limits.semaphores_max {
                return Err(SmError::LimitExceeded(format!(
                    "{} semaphores exist (limit {}); delete unused ones (set their permits to 0)",
                    self.prims.0.sems.len(),
                    limits.semaphores_max
                )));
            }
        }
        let sem = self.prims.0.sems.entry(name.to_string()).or_default();
        sem.permits = permits;
        let held = sem.holders.len() as u32;
        self.settle_queue(name, ev);
        Ok(Response::PermitsSet { name: name.to_string(), permits, held })
    }

    fn sem_acquire(
        &mut self,
        index: u64,
        at_ms: u64,
        name: &str,
        id: LeaseId,
        wait: bool,
        ev: &mut Vec<Event>,
    ) -> Result<Response, SmError> {
        self.check_name("semaphore", name)?;
        let lease = self.lease_ref(id)?;
        let Some(sem) = self.prims.0.sems.get(name) else {
            return Err(SmError::Invalid(format!(
                "no semaphore named {name:?}; create it first with its permit count (POST /v1/sem/permits)"
            )));
        };
        if let Some((slot, g)) = sem.holders.iter().find(|(_, g)| g.lease == id) {
            // One permit per lease and semaphore: asking again answers it.
            return Ok(Response::GrantedAs { grant: g.clone(), kind: GrantKind::Permit { slot: *slot }, holds: 1 });
        }
        if let Some(pos) = sem.waiters.iter().position(|w| w.lease == id) {
            return Ok(Response::Queued { lock: name.to_string(), lease: id, position: pos });
        }
        if lease.held.len() + lease.waiting.len() >= self.limits.locks_per_lease_max {
            return Err(SmError::LimitExceeded(format!(
                "lease {id} already holds or awaits {} locks",
                lease.held.len() + lease.waiting.len()
            )));
        }
        if sem.waiters.is_empty() && sem.holders.len() < sem.permits as usize {
            let slot = (0..).find(|s| !sem.holders.contains_key(s)).unwrap_or(0);
            let kind = GrantKind::Permit { slot };
            let grant = self.grant(index, at_ms, name, id, String::new(), kind, ev)?;
            return Ok(Response::GrantedAs { grant, kind, holds: 1 });
        }
        if !wait {
            let (holder, token) = sem.holders.values().next().map_or((id, Token(0)), |g| (g.lease, g.token));
            return Ok(Response::Busy { lock: name.to_string(), holder, token });
        }
        if sem.waiters.len() >= self.limits.waiters_per_lock_max {
            return Err(SmError::LimitExceeded(format!("semaphore {name:?} has {} waiters", sem.waiters.len())));
        }
        let sem = self.prims.0.sems.entry(name.to_string()).or_default();
        sem.waiters.push_back(Waiter { lease: id, value: String::new() });
        let position = sem.waiters.len() - 1;
        if let Some(l) = self.leases.get_mut(&id) {
            l.waiting.insert(name);
        }
        Ok(Response::Queued { lock: name.to_string(), lease: id, position })
    }

    fn claim_name(
        &mut self,
        index: u64,
        name: &str,
        owner: &str,
        lease: Option<LeaseId>,
        maker: Option<String>,
        ev: &mut Vec<Event>,
    ) -> Result<Response, SmError> {
        self.check_name("claim", name)?;
        if owner.len() > self.limits.value_len_max {
            return Err(SmError::Invalid(format!(
                "owner is {} bytes; the limit is {}",
                owner.len(),
                self.limits.value_len_max
            )));
        }
        if let Some(c) = self.claims.get(name) {
            return Ok(Response::AlreadyClaimed { name: name.to_string(), token: c.token, owner: c.owner.clone() });
        }
        if let Some(id) = lease {
            self.lease_ref(id)?;
        }
        if self.claims.len() >= self.limits.claims_max {
            return Err(SmError::LimitExceeded(format!("{} claims exist", self.claims.len())));
        }
        if let Some(m) = &maker {
            let n = self.owner_claims.get(m).copied().unwrap_or(0);
            if n >= self.limits.claims_per_owner_max {
                return Err(SmError::LimitExceeded(format!(
                    "{m} already has {n} claims (limit {}); release some (POST /v1/claim/release) or tie new ones \
                     to a lease so that they end with it",
                    self.limits.claims_per_owner_max
                )));
            }
            *self.owner_claims.entry(m.clone()).or_default() += 1;
        }
        assert!(index > self.max_token, "token {index} would not exceed {}", self.max_token);
        self.max_token = index;
        self.claims
            .insert(name.to_string(), ClaimRecord { owner: owner.to_string(), token: Token(index), lease, maker });
        if let Some(l) = lease.and_then(|id| self.leases.get_mut(&id)) {
            l.claims.insert(name);
        }
        ev.push(Event::Claimed { name: name.to_string(), token: Token(index) });
        Ok(Response::Claimed { name: name.to_string(), token: Token(index), owner: owner.to_string() })
    }

    /// Remove a claim on the request of `caller` (the requesting owner), or
    /// of an administrator. Refusals change nothing.
    fn release_claim(
        &mut self,
        name: &str,
        expected: Option<&str>,
        caller: Option<String>,
        admin: bool,
    ) -> Result<Response, SmError> {
        self.check_name("claim", name)?;
        let c = self.claims.get(name).ok_or_else(|| SmError::NoSuchClaim { name: name.to_string() })?;
        let is_maker = c.maker.is_some() && c.maker == caller;
        if !admin && !is_maker {
            return Err(SmError::NotClaimOwner { name: name.to_string() });
        }
        if let Some(e) = expected.filter(|e| *e != c.owner) {
            return Err(SmError::ClaimOwnerMismatch {
                name: name.to_string(),
                expected: e.to_string(),
                actual: c.owner.clone(),
            });
        }
        let c = self.remove_claim(name).ok_or_else(|| SmError::NoSuchClaim { name: name.to_string() })?;
        if let Some(l) = c.lease.and_then(|id| self.leases.get_mut(&id)) {
            l.claims.remove(name);
        }
        Ok(Response::ClaimReleased { name: name.to_string(), token: c.token, owner: c.owner })
    }

    /// Drop a claim and its maker's count.
    fn remove_claim(&mut self, name: &str) -> Option<ClaimRecord> {
        let c = self.claims.remove(name)?;
        if let Some(n) = c.maker.as_ref().and_then(|m| self.owner_claims.get_mut(m)) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                if let Some(m) = &c.maker {
                    self.owner_claims.remove(m);
                }
            }
        }
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::command::{Command, Request};
    use crate::machine::token::{secret_from_entropy, verify};

    fn entry(cmd: Command) -> Request {
        Request { origin: None, at_ms: 7, cmd }
    }

    /// A table that never used the primitives encodes without their field,
    /// as tables did before it existed, and such bytes (an older snapshot)
    /// decode to "no primitives"; a table with them round-trips, versioned.
    #[test]
    fn snapshots_without_primitives_keep_their_encoding_and_with_them_round_trip() {
        let mut t = LockTable::new(Limits::default());
        t.apply(1, &entry(Command::SetSigningKey { secret: [9; 32] }));
        t.apply(2, &entry(Command::LeaseGrant { ttl_ms: 10_000 }));
        let before = postcard::to_allocvec(&t).expect("encodes");
        let back: LockTable = postcard::from_bytes(&before).expect("an encoding without the field decodes");
        assert_eq!(back, t);
        t.apply(3, &entry(Command::SemPermits { name: "pool".into(), permits: 2 }));
        t.apply(4, &entry(Command::SemAcquire { name: "pool".into(), lease: LeaseId(2), wait: false }));
        let after = postcard::to_allocvec(&t).expect("encodes");
        let back: LockTable = postcard::from_bytes(&after).expect("decodes");
        assert_eq!(back.sem_status("pool").map(|s| s.holders.len()), Some(1));
        assert_eq!(back, t);
        // Everything released and the semaphore deleted: the field goes again.
        t.apply(5, &entry(Command::SemPermits { name: "pool".into(), permits: 0 }));
        t.apply(6, &entry(Command::Release { lock: "pool".into(), lease: LeaseId(2), token: Token(4) }));
        assert!(t.sem_status("pool").is_none());
        let json = serde_json::to_string(&t).expect("json");
        assert!(!json.contains("prims"), "unused primitives are omitted: {json}");
    }

    /// The signature is computed on answering, not stored: it must verify
    /// with the cluster's key, carry the record's claims, and be the same on
    /// every replica (the retry of a lost reply may be answered elsewhere).
    #[test]
    fn a_grant_signed_on_answering_verifies_and_is_identical_on_every_replica() {
        let run = || {
            let mut t = LockTable::new(Limits::default());
            t.apply(1, &entry(Command::SetSigningKey { secret: secret_from_entropy(&[9; 32]) }));
            t.apply(2, &entry(Command::LeaseGrant { ttl_ms: 10_000 }));
            let applied = t.apply(
                3,
                &entry(Command::Acquire { lock: "a".into(), lease: LeaseId(2), wait: false, value: String::new() }),
            );
            let Response::Granted(record) = applied.response else { panic!("not granted: {:?}", applied.response) };
            let grant = t.sign(&record).expect("the key is held");
            (t, grant)
        };
        let (t, a) = run();
        let (_, b) = run();
        assert_eq!(a, b, "deterministic across replicas");
        let claims = verify(&t.public_keys(), &a.signed).expect("verifies with the cluster key");
        assert_eq!((claims.lock.as_str(), claims.token, claims.lease), ("a", 3, 2));
        let other = LockTable::new(Limits::default());
        let record = t.lock_status("a").holder.expect("held");
        assert_eq!(other.sign(&record), Err(SmError::NoSigningKey), "no key, no signature");
    }
}
