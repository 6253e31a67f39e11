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
use fenced_core::token::{self, TokenClaims, TokenError};
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
    current: HashMap<String, TokenClaims>,
    previous: HashMap<String, TokenClaims>,
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

    /// The claims of `signed`, if it verifies with one of the keys.
    pub fn verify(&self, signed: &str) -> Result<TokenClaims, TokenError> {
        if let Ok(g) = self.cache.lock() {
            if let Some(c) = g.current.get(signed).or_else(|| g.previous.get(signed)) {
                return Ok(c.clone());
            }
        }
        let claims = token::verify(&self.keys.read().unwrap_or_else(|e| e.into_inner()), signed)?;
        if let Ok(mut g) = self.cache.lock() {
            if g.current.len() >= self.per_generation {
                g.previous = std::mem::take(&mut g.current);
            }
            g.current.insert(signed.to_string(), claims.clone());
        }
        Ok(claims)
    }

    /// Check the token headers of a write to `key`; returns the fencing token.
    pub fn authorize(
        &self,
        guards: &GuardMap,
        key: &str,
        presented: Option<&str>,
        signed: Option<&str>,
    ) -> Result<u64, AuthError> {
        authorize_with(|s| self.verify(s), guards, key, presented, signed)
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
    authorize_with(|s| token::verify(keys, s), guards, key, presented, signed)
}

fn authorize_with(
    verify: impl FnOnce(&str) -> Result<TokenClaims, TokenError>,
    guards: &GuardMap,
    key: &str,
    presented: Option<&str>,
    signed: Option<&str>,
) -> Result<u64, AuthError> {
    let presented = presented.ok_or(AuthError::Missing("Fenced-Token"))?;
    let signed = signed.ok_or(AuthError::Missing("Fenced-Signed-Token"))?;
    let presented: u64 = presented.trim().parse().map_err(|_| AuthError::MalformedNumber(presented.into()))?;
    let claims = verify(signed.trim())?;
    if claims.token != presented {
        return Err(AuthError::NumberMismatch { presented, signed: claims.token });
    }
    let guard = guards.lock_for(key);
    if claims.lock != guard {
        return Err(AuthError::WrongLock { key: key.into(), guard: guard.into(), signed: claims.lock });
    }
    Ok(presented)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use fenced_core::token::{sign, TokenClaims};

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
