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

use crate::config::GuardMap;
use ed25519_dalek::VerifyingKey;
use fenced_core::token::{self, TokenError};

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

/// Check the token headers of a write to `key`; returns the fencing token.
pub fn authorize(
    keys: &[VerifyingKey],
    guards: &GuardMap,
    key: &str,
    presented: Option<&str>,
    signed: Option<&str>,
) -> Result<u64, AuthError> {
    let presented = presented.ok_or(AuthError::Missing("Fenced-Token"))?;
    let signed = signed.ok_or(AuthError::Missing("Fenced-Signed-Token"))?;
    let presented: u64 = presented.trim().parse().map_err(|_| AuthError::MalformedNumber(presented.into()))?;
    let claims = token::verify(keys, signed.trim())?;
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
}
