//! Authenticating a write's fencing token, before it reaches the writer.
//!
//! A bare number proves nothing: any client can make one up. So a write must
//! present both the number (`Fenced-Token`) and the lock service's signed
//! token (`Fenced-Signed-Token`), and the store checks that the signature
//! verifies with a cluster key, that it was issued for the lock guarding this
//! key, and that it is for the very number presented. Only then does the
//! number take part in the `token >= max_token` comparison (done by the
//! single writer, see [`crate::engine`]). Signature checks run here, in the
//! request handlers, in parallel, and never under the writer.
//!
//! An Ed25519 verification costs tens of microseconds, which halved write
//! throughput in the benchmark. A lock holder presents the same signed token
//! on every write, and verification is a pure function of the token's bytes
//! and the (fixed) key set, so [`Verifier`] remembers tokens that verified:
//! a repeat costs one map lookup. Only successes are remembered, so a flood
//! of forgeries cannot fill the cache, and it is bounded (two generations of
//! `VERIFIED_CACHE` entries).

use crate::config::GuardMap;
use ed25519_dalek::VerifyingKey;
use fenced_core::machine::token::{self, SignedKind, TokenClaims, TokenError};
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

/// Verified tokens remembered per generation.
const VERIFIED_CACHE: usize = 4096;

/// Why a token was refused before any state was looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing {0} header: writes need both Fenced-Token and Fenced-Signed-Token")]
    Missing(&'static str),
    #[error("Fenced-Token is not an unsigned integer: {0:?}")]
    MalformedNumber(String),
    #[error("signed token refused: {0}")]
    Signature(#[from] TokenError),
    #[error("signed token is for token {signed}, but Fenced-Token says {presented}")]
    NumberMismatch { presented: u64, signed: u64 },
    #[error("signed token is for lock {signed:?}, but key {key:?} is guarded by lock {guard:?}")]
    WrongLock { key: String, guard: String, signed: String },
}

#[derive(Default)]
struct Generations {
    current: HashMap<String, (TokenClaims, SignedKind)>,
    previous: HashMap<String, (TokenClaims, SignedKind)>,
}

/// The lock name that fences slot `slot` of semaphore `sem`: keys a permit
/// may write are guarded by it (`--guard pool/0/=pool#0`). The cluster
/// refuses lock names of that shape (docs/primitives.md).
pub use fenced_core::machine::token::slot_lock;

/// What a verified token may fence: the lock it names, or for a permit its
/// slot's lock. A shared grant fences nothing it could write.
fn fenced_lock(claims: &TokenClaims, kind: SignedKind) -> Result<String, AuthError> {
    match kind {
        SignedKind::Exclusive => Ok(claims.lock.clone()),
        SignedKind::Permit { slot } => Ok(slot_lock(&claims.lock, slot)),
        SignedKind::Shared => Err(AuthError::Signature(TokenError::Malformed(
            "a shared grant's token cannot write: writes need an exclusive grant (or a permit, on its slot's keys)",
        ))),
    }
}

/// Verifies signed tokens against the cluster keys, remembering successes.
/// The keys can be replaced while serving ([`Verifier::set_keys`]), for a
/// signing-key rotation.
pub struct Verifier {
    keys: RwLock<Vec<VerifyingKey>>,
    cache: Mutex<Generations>,
    per_generation: usize,
}

impl Verifier {
    pub fn new(keys: Vec<VerifyingKey>) -> Self {
        Self::with_capacity(keys, VERIFIED_CACHE)
    }

    /// Remember up to `2 * per_generation` verified tokens.
    pub fn with_capacity(keys: Vec<VerifyingKey>, per_generation: usize) -> Self {
        Verifier {
            keys: RwLock::new(keys),
            cache: Mutex::new(Generations::default()),
            per_generation: per_generation.max(1),
        }
    }

    /// Trust exactly `keys` from now on. Remembered verifications are
    /// forgotten, so a token of a key no longer trusted stops verifying at once.
    pub fn set_keys(&self, keys: Vec<VerifyingKey>) {
        let mut k = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let mut g = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        *k = keys;
        *g = Generations::default();
    }

    /// The keys trusted now.
    pub fn keys(&self) -> Vec<VerifyingKey> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The claims of `signed`, if it verifies with one of the keys and is
    /// an exclusive grant's.
    pub fn verify(&self, signed: &str) -> Result<TokenClaims, TokenError> {
        match self.verify_any(signed)? {
            (c, SignedKind::Exclusive) => Ok(c),
            _ => Err(TokenError::Malformed("a shared or permit grant's token: writes need an exclusive grant's token")),
        }
    }

    /// The claims and kind of `signed` (exclusive, shared or permit), if it
    /// verifies with one of the keys.
    pub fn verify_any(&self, signed: &str) -> Result<(TokenClaims, SignedKind), TokenError> {
        if let Ok(g) = self.cache.lock() {
            if let Some(c) = g.current.get(signed).or_else(|| g.previous.get(signed)) {
                return Ok(c.clone());
            }
        }
        let verified = token::verify_any(&self.keys.read().unwrap_or_else(|e| e.into_inner()), signed)?;
        if let Ok(mut g) = self.cache.lock() {
            if g.current.len() >= self.per_generation {
                g.previous = std::mem::take(&mut g.current);
            }
            g.current.insert(signed.to_string(), verified.clone());
        }
        Ok(verified)
    }

    /// Check the token headers of a fenced read of `key`: any kind of grant
    /// of the key's guarding lock (a permit: of its slot's lock). Returns
    /// the token and that lock; the caller compares the token with the
    /// fence (docs/store.md, "Fenced reads").
    pub fn authorize_read(
        &self,
        guards: &GuardMap,
        key: &str,
        presented: Option<&str>,
        signed: Option<&str>,
    ) -> Result<(u64, String, SignedKind), AuthError> {
        let presented = presented.ok_or(AuthError::Missing("Fenced-Token"))?;
        let signed = signed.ok_or(AuthError::Missing("Fenced-Signed-Token"))?;
        let presented: u64 = presented.trim().parse().map_err(|_| AuthError::MalformedNumber(presented.into()))?;
        let (claims, kind) = self.verify_any(signed.trim())?;
        if claims.token != presented {
            return Err(AuthError::NumberMismatch { presented, signed: claims.token });
        }
        let lock = match kind {
            SignedKind::Shared => claims.lock.clone(),
            k => fenced_lock(&claims, k)?,
        };
        let guard = guards.lock_for(key);
        if lock != guard {
            return Err(AuthError::WrongLock { key: key.into(), guard: guard.into(), signed: lock });
        }
        Ok((presented, lock, kind))
    }

    /// Check the token headers of a write to `key`; returns the fencing token.
    pub fn authorize(
        &self,
        guards: &GuardMap,
        key: &str,
        presented: Option<&str>,
        signed: Option<&str>,
    ) -> Result<u64, AuthError> {
        authorize_with(|s| self.verify_any(s), guards, key, presented, signed)
    }
}

/// Check the token headers of a write to `key` (no cache); returns the fencing token.
pub fn authorize(
    keys: &[VerifyingKey],
    guards: &GuardMap,
    key: &str,
    presented: Option<&str>,
    signed: Option<&str>,
) -> Result<u64, AuthError> {
    authorize_with(|s| token::verify_any(keys, s), guards, key, presented, signed)
}

/// A write needs an exclusive grant of the key's guarding lock, or a permit
/// whose slot's lock guards the key (per-slot fencing).
fn authorize_with(
    verify: impl FnOnce(&str) -> Result<(TokenClaims, SignedKind), TokenError>,
    guards: &GuardMap,
    key: &str,
    presented: Option<&str>,
    signed: Option<&str>,
) -> Result<u64, AuthError> {
    let presented = presented.ok_or(AuthError::Missing("Fenced-Token"))?;
    let signed = signed.ok_or(AuthError::Missing("Fenced-Signed-Token"))?;
    let presented: u64 = presented.trim().parse().map_err(|_| AuthError::MalformedNumber(presented.into()))?;
    let (claims, kind) = verify(signed.trim())?;
    if claims.token != presented {
        return Err(AuthError::NumberMismatch { presented, signed: claims.token });
    }
    let lock = fenced_lock(&claims, kind)?;
    let guard = guards.lock_for(key);
    if lock != guard {
        return Err(AuthError::WrongLock { key: key.into(), guard: guard.into(), signed: lock });
    }
    Ok(presented)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use fenced_core::machine::token::{sign, sign_as, SignedKind, TokenClaims};

    fn signed(key: u8, lock: &str, token: u64) -> String {
        let claims = TokenClaims { key_id: 0, lock: lock.into(), token, lease: 1, issued_at_ms: 0 };
        sign(&SigningKey::from_bytes(&[key; 32]), claims)
    }

    #[test]
    fn accepts_only_a_matching_signed_token() {
        let keys = [SigningKey::from_bytes(&[1; 32]).verifying_key()];
        let mut g = GuardMap::default();
        g.insert("orders/", "orders");
        let ok = signed(1, "orders", 7);
        assert_eq!(authorize(&keys, &g, "orders/1", Some("7"), Some(&ok)), Ok(7));
        assert!(matches!(
            authorize(&keys, &g, "orders/1", Some("8"), Some(&ok)),
            Err(AuthError::NumberMismatch { .. })
        ));
        assert!(matches!(authorize(&keys, &g, "other", Some("7"), Some(&ok)), Err(AuthError::WrongLock { .. })));
        let foreign = signed(2, "orders", 7);
        assert!(matches!(authorize(&keys, &g, "orders/1", Some("7"), Some(&foreign)), Err(AuthError::Signature(_))));
        assert_eq!(authorize(&keys, &g, "orders/1", None, Some(&ok)), Err(AuthError::Missing("Fenced-Token")));
        assert!(matches!(authorize(&keys, &g, "orders/1", Some("x"), Some(&ok)), Err(AuthError::MalformedNumber(_))));
    }

    /// A shared grant never writes; a permit writes only keys its slot's
    /// lock guards; any grant of the guarding lock may do a fenced read.
    #[test]
    fn shared_tokens_cannot_write_and_permits_write_only_their_slot() {
        let k = SigningKey::from_bytes(&[1; 32]);
        let v = Verifier::new(vec![k.verifying_key()]);
        let claims = |lock: &str, token| TokenClaims { key_id: 0, lock: lock.into(), token, lease: 1, issued_at_ms: 0 };
        let mut g = GuardMap::default();
        g.insert("pool/0/", slot_lock("pool", 0));
        g.insert("pool/1/", slot_lock("pool", 1));
        let shared = sign_as(&k, claims("doc", 5), SignedKind::Shared);
        assert!(matches!(v.authorize(&g, "doc", Some("5"), Some(&shared)), Err(AuthError::Signature(_))));
        assert!(authorize(&[k.verifying_key()], &g, "doc", Some("5"), Some(&shared)).is_err());
        assert_eq!(v.authorize_read(&g, "doc", Some("5"), Some(&shared)), Ok((5, "doc".into(), SignedKind::Shared)));
        let permit = sign_as(&k, claims("pool", 9), SignedKind::Permit { slot: 0 });
        assert_eq!(v.authorize(&g, "pool/0/conn", Some("9"), Some(&permit)), Ok(9));
        assert!(matches!(v.authorize(&g, "pool/1/conn", Some("9"), Some(&permit)), Err(AuthError::WrongLock { .. })));
        assert!(matches!(v.authorize(&g, "pool", Some("9"), Some(&permit)), Err(AuthError::WrongLock { .. })));
        let exclusive = sign(&k, claims("doc", 6));
        assert_eq!(v.authorize(&g, "doc", Some("6"), Some(&exclusive)), Ok(6));
        assert!(v.verify(&shared).is_err(), "verify() is for writes: exclusive only");
    }

    #[test]
    fn cached_verifier_agrees_and_stays_bounded() {
        let v = Verifier::with_capacity(vec![SigningKey::from_bytes(&[1; 32]).verifying_key()], 4);
        let g = GuardMap::default();
        for t in 0..20 {
            let s = signed(1, "k", t);
            assert_eq!(v.authorize(&g, "k", Some(&t.to_string()), Some(&s)), Ok(t));
            assert_eq!(v.authorize(&g, "k", Some(&t.to_string()), Some(&s)), Ok(t), "cached");
            assert!(
                v.authorize(&g, "k", Some(&(t + 1).to_string()), Some(&s)).is_err(),
                "cache keeps the number check"
            );
        }
        let c = v.cache.lock().expect("cache");
        assert!(c.current.len() + c.previous.len() <= 8);
        drop(c);
        assert!(v.verify(&signed(2, "k", 1)).is_err(), "failures are not cached");
    }

    #[test]
    fn replacing_keys_takes_effect_at_once_even_for_cached_tokens() {
        let v = Verifier::new(vec![SigningKey::from_bytes(&[1; 32]).verifying_key()]);
        let old = signed(1, "k", 1);
        let new = signed(2, "k", 2);
        assert!(v.verify(&old).is_ok());
        assert!(v.verify(&new).is_err());
        // The overlap of a rotation: both keys.
        v.set_keys(vec![
            SigningKey::from_bytes(&[1; 32]).verifying_key(),
            SigningKey::from_bytes(&[2; 32]).verifying_key(),
        ]);
        assert!(v.verify(&old).is_ok() && v.verify(&new).is_ok());
        // Retired: the old key's token is refused although it was cached.
        v.set_keys(vec![SigningKey::from_bytes(&[2; 32]).verifying_key()]);
        assert!(matches!(v.verify(&old), Err(TokenError::UnknownKey(_))));
        assert!(v.verify(&new).is_ok());
    }
}
