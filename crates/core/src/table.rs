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

use crate::command::{Command, Origin, Request};
use crate::ids::{ClientId, LeaseId, Token};
use crate::limits::Limits;
use crate::name_set::NameSet;
use crate::response::{Grant, GrantRecord, Response, SmError};
use crate::token::{self, TokenClaims};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

mod floor;
pub use floor::{FloorError, Restarted};

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
            signed: token::sign(&key, claims),
            value: g.value.clone(),
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
            waiters: lock.map(|l| l.waiters.iter().map(|w| w.lease).collect()).unwrap_or_default(),
        }
    }

    /// Locks (in name order) that hold a lock, for listings.
    pub fn held_locks(&self) -> impl Iterator<Item = &GrantRecord> {
        self.locks.values().filter_map(|l| l.holder.as_ref())
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
            | Command::Release { lease, .. } => self.check_owner(req, *lease)?,
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
                    .locks
                    .iter()
                    .filter(|(_, l)| l.holder.as_ref().is_some_and(|h| retiring.contains(&h.key_id)))
                    .map(|(name, _)| name.as_str())
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
                self.acquire(index, req.at_ms, lock, *lease, *wait, value, ev)
            }
            Command::CancelWait { lock, lease } => Ok(self.cancel_wait(lock, *lease)),
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
        let lock = self.locks.get(name);
        if let Some(h) = lock.and_then(|l| l.holder.as_ref()) {
            if h.lease == id {
                // Re-acquiring a lock the lease already holds returns the same grant.
                return Ok(Response::Granted(h.clone()));
            }
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
        let free = lock.is_none_or(|l| l.holder.is_none() && l.waiters.is_empty());
        if free {
            let grant = self.grant(index, at_ms, name, id, value.to_string(), ev)?;
            return Ok(Response::Granted(grant));
        }
        let lock = self.locks.entry(name.to_string()).or_default();
        if !wait {
            let (holder, token) = match &lock.holder {
                Some(h) => (h.lease, h.token),
                None => (lock.waiters.front().map(|w| w.lease).unwrap_or(id), Token(0)),
            };
            return Ok(Response::Busy { lock: name.to_string(), holder, token });
        }
        if lock.waiters.len() >= self.limits.waiters_per_lock_max {
            return Err(SmError::LimitExceeded(format!("lock {name:?} has {} waiters", lock.waiters.len())));
        }
        lock.waiters.push_back(Waiter { lease: id, value: value.to_string() });
        let position = lock.waiters.len() - 1;
        if let Some(l) = self.leases.get_mut(&id) {
            l.waiting.insert(name);
        }
        Ok(Response::Queued { lock: name.to_string(), lease: id, position })
    }

    /// Grant `name` (which must be free) to `id` with token `index`.
    fn grant(
        &mut self,
        index: u64,
        at_ms: u64,
        name: &str,
        id: LeaseId,
        value: String,
        ev: &mut Vec<Event>,
    ) -> Result<GrantRecord, SmError> {
        let secret = self.signing_keys.last().ok_or(SmError::NoSigningKey)?;
        let key_id = token::key_id(&self.key_cache.get(secret).verifying_key());
        #[cfg(feature = "bugs")]
        let index = if crate::bugs::reuse_tokens() && self.max_token > 0 { self.max_token } else { index };
        #[cfg(feature = "bugs")]
        let reusing = crate::bugs::reuse_tokens();
        #[cfg(not(feature = "bugs"))]
        let reusing = false;
        assert!(reusing || index > self.max_token, "token {index} would not exceed {}", self.max_token);
        self.max_token = index;
        let grant =
            GrantRecord { lock: name.to_string(), token: Token(index), lease: id, value, key_id, issued_at_ms: at_ms };
        let lock = self.locks.entry(name.to_string()).or_default();
        assert!(lock.holder.is_none(), "lock {name:?} granted while held");
        lock.holder = Some(grant.clone());
        if let Some(l) = self.leases.get_mut(&id) {
            l.held.insert(name);
        }
        ev.push(Event::Granted { lock: name.to_string(), token: Token(index), lease: id });
        Ok(grant)
    }

    /// Grant a free lock to the head of its queue, if it has one.
    fn grant_head(&mut self, index: u64, at_ms: u64, name: &str, ev: &mut Vec<Event>) -> Result<(), SmError> {
        let Some(lock) = self.locks.get_mut(name) else { return Ok(()) };
        if lock.holder.is_some() {
            return Ok(());
        }
        let Some(w) = lock.waiters.pop_front() else {
            self.locks.remove(name);
            return Ok(());
        };
        if let Some(l) = self.leases.get_mut(&w.lease) {
            l.waiting.remove(name);
        }
        self.grant(index, at_ms, name, w.lease, w.value, ev).map(|_| ())
    }

    /// After `freed` locks lost their holder in this entry: hand the first one
    /// with waiters over now, mark the rest for `Handoff`, drop empty ones.
    fn after_free(&mut self, index: u64, at_ms: u64, freed: Vec<String>, ev: &mut Vec<Event>) {
        let mut granted = false;
        for name in freed {
            let has_waiters = self.locks.get(&name).is_some_and(|l| !l.waiters.is_empty());
            if !has_waiters {
                self.locks.remove(&name);
            } else if !granted && self.grant_head(index, at_ms, &name, ev).is_ok() {
                granted = true;
            } else {
                self.pending_handoff.insert(name.clone());
                ev.push(Event::HandoffPending { lock: name });
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
        let holds =
            self.locks.get(name).and_then(|l| l.holder.as_ref()).is_some_and(|h| h.lease == id && h.token == token);
        if !holds {
            return Err(SmError::NotHolder { lock: name.to_string(), lease: id, token });
        }
        self.free(name, EndReason::Released, ev);
        self.after_free(index, at_ms, vec![name.to_string()], ev);
        Ok(Response::Released { lock: name.to_string(), token })
    }

    /// Take the holder off `name`.
    fn free(&mut self, name: &str, reason: EndReason, ev: &mut Vec<Event>) {
        let Some(h) = self.locks.get_mut(name).and_then(|l| l.holder.take()) else { return };
        if let Some(l) = self.leases.get_mut(&h.lease) {
            l.held.remove(name);
        }
        ev.push(Event::Freed { lock: name.to_string(), token: h.token, lease: h.lease, reason });
    }

    fn cancel_wait(&mut self, name: &str, id: LeaseId) -> Response {
        let Some(lock) = self.locks.get_mut(name) else {
            return Response::WaitCancelled { lock: name.to_string() };
        };
        if let Some(h) = &lock.holder {
            if h.lease == id {
                // The grant won the race with the give-up: report it.
                return Response::Granted(h.clone());
            }
        }
        lock.waiters.retain(|w| w.lease != id);
        if let Some(l) = self.leases.get_mut(&id) {
            l.waiting.remove(name);
        }
        self.settle_queue(name);
        Response::WaitCancelled { lock: name.to_string() }
    }

    /// A waiter left `name`'s queue: if the lock was awaiting a handoff and the
    /// queue is now empty, the lock is simply free.
    fn settle_queue(&mut self, name: &str) {
        let empty = self.locks.get(name).is_some_and(|l| l.holder.is_none() && l.waiters.is_empty());
        if empty {
            self.locks.remove(name);
            self.pending_handoff.remove(name);
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
            if let Some(lock) = self.locks.get_mut(name) {
                lock.waiters.retain(|w| w.lease != id);
            }
            self.settle_queue(name);
        }
        for name in &lease.claims {
            self.remove_claim(name);
        }
        let freed: Vec<String> = lease.held.iter().cloned().collect();
        let lock_reason = if reason == EndReason::Revoked { EndReason::Revoked } else { EndReason::Expired };
        for name in &freed {
            // The lease is already gone from `leases`, so `free` cannot touch it.
            let Some(h) = self.locks.get_mut(name).and_then(|l| l.holder.take()) else { continue };
            ev.push(Event::Freed { lock: name.clone(), token: h.token, lease: id, reason: lock_reason });
        }
        ev.push(Event::LeaseEnded { lease: id, reason });
        self.after_free(index, at_ms, freed, ev);
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
    use crate::command::{Command, Request};
    use crate::token::{secret_from_entropy, verify};

    fn entry(cmd: Command) -> Request {
        Request { origin: None, at_ms: 7, cmd }
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
