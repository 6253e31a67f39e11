//! Signed fencing tokens.
//!
//! A bare fencing token is a number any client can make up (the seed's
//! "lies"). A signed token lets a resource check that the lock service really
//! issued `token` for `lock` to `lease`: Ed25519 over a fixed binary layout,
//! with the cluster's key, which every replica holds in its replicated state.
//! Ed25519 signing is deterministic, so every replica produces the same bytes.
//!
//! Text form: `fenced1.<base64url(payload)>.<base64url(signature)>`, where the
//! payload is `MAGIC | key_id u32 | lock_len u16 | lock | token u64 | lease u64
//! | issued_at_ms u64`, integers big-endian.
//!
//! A grant that is not exclusive (a shared hold, a semaphore permit) appends
//! its kind: `1` (shared) or `2 | slot u32` (permit). [`verify`] reads only
//! the exclusive layout, so such a token is refused wherever a write is
//! judged, by this build and by every older one: writes need an exclusive
//! holder's token. [`verify_any`] reads every kind, for fenced reads and
//! per-slot checks (docs/primitives.md).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"fenced01";
const PREFIX: &str = "fenced1.";
const PUBKEY_PREFIX: &str = "ed25519:";

/// What a signed token asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Identifies the signing key (its first four bytes), so that a verifier
    /// holding several keys during a rotation knows which one to use.
    pub key_id: u32,
    pub lock: String,
    pub token: u64,
    pub lease: u64,
    /// Display only: the proposing leader's wall clock.
    pub issued_at_ms: u64,
}

/// Why a signed token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed signed token: {0}")]
    Malformed(&'static str),
    #[error("signed token was made with key {0:08x}, which this verifier does not hold")]
    UnknownKey(u32),
    #[error("signature does not verify")]
    BadSignature,
    #[error("malformed public key: {0}")]
    BadPublicKey(&'static str),
}

/// The key id of a public key: its first four bytes.
pub fn key_id(key: &VerifyingKey) -> u32 {
    let b = key.as_bytes();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn payload(c: &TokenClaims) -> Vec<u8> {
    let lock = c.lock.as_bytes();
    let mut p = Vec::with_capacity(8 + 4 + 2 + lock.len() + 24);
    p.extend_from_slice(MAGIC);
    p.extend_from_slice(&c.key_id.to_be_bytes());
    // Names are bounded well below 64 KiB by `Limits::name_len_max`.
    p.extend_from_slice(&(lock.len().min(u16::MAX as usize) as u16).to_be_bytes());
    p.extend_from_slice(&lock[..lock.len().min(u16::MAX as usize)]);
    p.extend_from_slice(&c.token.to_be_bytes());
    p.extend_from_slice(&c.lease.to_be_bytes());
    p.extend_from_slice(&c.issued_at_ms.to_be_bytes());
    p
}

fn parse_payload(p: &[u8]) -> Result<TokenClaims, TokenError> {
    let rest = p.strip_prefix(MAGIC.as_slice()).ok_or(TokenError::Malformed("bad magic"))?;
    let take = |r: &[u8], n: usize| -> Result<(Vec<u8>, usize), TokenError> {
        r.get(..n).map(|s| (s.to_vec(), n)).ok_or(TokenError::Malformed("truncated payload"))
    };
    let (kid, _) = take(rest, 4)?;
    let rest = &rest[4..];
    let (len, _) = take(rest, 2)?;
    let len = u16::from_be_bytes([len[0], len[1]]) as usize;
    let rest = &rest[2..];
    let (lock, _) = take(rest, len)?;
    let rest = &rest[len..];
    if rest.len() == 25 || rest.len() == 29 {
        return Err(TokenError::Malformed("a shared or permit grant's token: writes need an exclusive grant's token"));
    }
    if rest.len() != 24 {
        return Err(TokenError::Malformed("bad payload length"));
    }
    let u = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&rest[i * 8..i * 8 + 8]);
        u64::from_be_bytes(b)
    };
    Ok(TokenClaims {
        key_id: u32::from_be_bytes([kid[0], kid[1], kid[2], kid[3]]),
        lock: String::from_utf8(lock).map_err(|_| TokenError::Malformed("lock is not UTF-8"))?,
        token: u(0),
        lease: u(1),
        issued_at_ms: u(2),
    })
}

/// How a signed grant is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignedKind {
    Exclusive,
    Shared,
    Permit { slot: u32 },
}

/// The lock name that fences slot `slot` of semaphore `sem` in a fenced
/// store's key space: a permit's token writes the keys this lock guards
/// (`fenced store serve --guard pool/0/=pool#0`).
pub fn slot_lock(sem: &str, slot: u32) -> String {
    format!("{sem}#{slot}")
}

/// `Some((semaphore, slot))` if `name` has the shape of a slot's lock
/// ([`slot_lock`]): it ends in `#` and a decimal number. No lock may be
/// named so: its exclusive token would write the keys of that slot, which
/// belong to the semaphore's permit holders (the API refuses such names).
pub fn slot_of(name: &str) -> Option<(&str, &str)> {
    let (sem, slot) = name.rsplit_once('#')?;
    (!slot.is_empty() && slot.bytes().all(|b| b.is_ascii_digit())).then_some((sem, slot))
}

/// Sign claims; `claims.key_id` is overwritten with the key's id.
pub fn sign(key: &SigningKey, claims: TokenClaims) -> String {
    sign_as(key, claims, SignedKind::Exclusive)
}

/// Sign the claims of a grant held as `kind`.
pub fn sign_as(key: &SigningKey, mut claims: TokenClaims, kind: SignedKind) -> String {
    claims.key_id = key_id(&key.verifying_key());
    let mut p = payload(&claims);
    match kind {
        SignedKind::Exclusive => {}
        SignedKind::Shared => p.push(1),
        SignedKind::Permit { slot } => {
            p.push(2);
            p.extend_from_slice(&slot.to_be_bytes());
        }
    }
    let sig = key.sign(&p);
    format!("{PREFIX}{}.{}", B64.encode(&p), B64.encode(sig.to_bytes()))
}

/// Decode a signed token without verifying it (for display and for choosing
/// the key). Never trust the result before [`verify`].
pub fn decode(signed: &str) -> Result<(TokenClaims, Vec<u8>, Signature), TokenError> {
    let body = signed.strip_prefix(PREFIX).ok_or(TokenError::Malformed("missing 'fenced1.' prefix"))?;
    let (p, s) = body.split_once('.').ok_or(TokenError::Malformed("missing '.' separator"))?;
    let p = B64.decode(p).map_err(|_| TokenError::Malformed("payload is not base64url"))?;
    let s = B64.decode(s).map_err(|_| TokenError::Malformed("signature is not base64url"))?;
    let s: [u8; 64] = s.try_into().map_err(|_| TokenError::Malformed("signature is not 64 bytes"))?;
    Ok((parse_payload(&p)?, p, Signature::from_bytes(&s)))
}

/// Split the kind a non-exclusive token appends off its payload.
fn split_kind(p: &[u8]) -> Result<(&[u8], SignedKind), TokenError> {
    // MAGIC, key id, the name's length and the name, then 24 bytes.
    let name_len = p.get(12..14).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize).unwrap_or(0);
    let base = 8 + 4 + 2 + name_len + 24;
    match p.get(base..) {
        Some([]) => Ok((p, SignedKind::Exclusive)),
        Some([1]) => Ok((&p[..base], SignedKind::Shared)),
        Some([2, a, b, c, d]) => Ok((&p[..base], SignedKind::Permit { slot: u32::from_be_bytes([*a, *b, *c, *d]) })),
        _ => Err(TokenError::Malformed("bad payload length")),
    }
}

/// Verify a signed token of any kind: exclusive, shared or permit. For
/// resources that judge reads or permit slots; a write must use [`verify`].
pub fn verify_any(keys: &[VerifyingKey], signed: &str) -> Result<(TokenClaims, SignedKind), TokenError> {
    let body = signed.strip_prefix(PREFIX).ok_or(TokenError::Malformed("missing 'fenced1.' prefix"))?;
    let (p, s) = body.split_once('.').ok_or(TokenError::Malformed("missing '.' separator"))?;
    let p = B64.decode(p).map_err(|_| TokenError::Malformed("payload is not base64url"))?;
    let s = B64.decode(s).map_err(|_| TokenError::Malformed("signature is not base64url"))?;
    let s: [u8; 64] = s.try_into().map_err(|_| TokenError::Malformed("signature is not 64 bytes"))?;
    let (base, kind) = split_kind(&p)?;
    let claims = parse_payload(base)?;
    let key = keys.iter().find(|k| key_id(k) == claims.key_id).ok_or(TokenError::UnknownKey(claims.key_id))?;
    key.verify(&p, &Signature::from_bytes(&s)).map_err(|_| TokenError::BadSignature)?;
    Ok((claims, kind))
}

/// Verify a signed token against any of `keys` (several during a rotation).
/// Only an exclusive grant's token passes: it is what a write needs.
pub fn verify(keys: &[VerifyingKey], signed: &str) -> Result<TokenClaims, TokenError> {
    let (claims, payload, sig) = decode(signed)?;
    let key = keys.iter().find(|k| key_id(k) == claims.key_id).ok_or(TokenError::UnknownKey(claims.key_id))?;
    key.verify(&payload, &sig).map_err(|_| TokenError::BadSignature)?;
    Ok(claims)
}

/// The public key of the secret a leader derives from `entropy` (see
/// `fenced_replica::duties::leader`): lets a simulator or test know the cluster key
/// before the cluster has installed it.
pub fn public_key_from_entropy(entropy: &[u8; 32]) -> VerifyingKey {
    SigningKey::from_bytes(&secret_from_entropy(entropy)).verifying_key()
}

/// The signing secret derived from 32 bytes of entropy.
pub fn secret_from_entropy(entropy: &[u8; 32]) -> [u8; 32] {
    // Domain-separated so the entropy is never used as a key directly.
    let mut s = *entropy;
    for (i, b) in b"fenced-signing-key-v1...........".iter().enumerate() {
        s[i] ^= b;
    }
    s
}

/// The secret of a key rotation: derived from a replica's key entropy and a
/// nonce (the rotating replica's applied index), so two rotations never
/// produce the same key and nobody without the entropy can predict one.
pub fn rotated_secret(entropy: &[u8; 32], nonce: u64) -> [u8; 32] {
    use ed25519_dalek::{Digest, Sha512};
    let mut h = Sha512::new();
    h.update(b"fenced-rotated-signing-key-v1");
    h.update(entropy);
    h.update(nonce.to_be_bytes());
    let digest = h.finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest[..32]);
    out
}

/// The text form of a public key: `ed25519:<base64url>`.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    format!("{PUBKEY_PREFIX}{}", B64.encode(key.as_bytes()))
}

/// Parse the text form of a public key.
pub fn parse_public_key(s: &str) -> Result<VerifyingKey, TokenError> {
    let b = s.trim().strip_prefix(PUBKEY_PREFIX).ok_or(TokenError::BadPublicKey("missing 'ed25519:' prefix"))?;
    let b = B64.decode(b).map_err(|_| TokenError::BadPublicKey("not base64url"))?;
    let b: [u8; 32] = b.try_into().map_err(|_| TokenError::BadPublicKey("not 32 bytes"))?;
    VerifyingKey::from_bytes(&b).map_err(|_| TokenError::BadPublicKey("not a valid Ed25519 point"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn slot_locks_have_a_shape_no_lock_name_may_take() {
        assert_eq!(super::slot_lock("pool", 0), "pool#0");
        assert_eq!(super::slot_of("pool#0"), Some(("pool", "0")));
        assert_eq!(super::slot_of("a#b#12"), Some(("a#b", "12")));
        assert_eq!(super::slot_of("election:x#007"), Some(("election:x", "007")));
        for free in ["pool", "pool#", "pool#x", "#a", "a#1b", "a1"] {
            assert_eq!(super::slot_of(free), None, "{free}");
        }
    }

    use super::*;

    fn claims() -> TokenClaims {
        TokenClaims { key_id: 0, lock: "orders".into(), token: 34, lease: 7, issued_at_ms: 1 }
    }

    #[test]
    fn round_trip_verifies() {
        let k = SigningKey::from_bytes(&[7; 32]);
        let s = sign(&k, claims());
        let c = verify(&[k.verifying_key()], &s).expect("verifies");
        assert_eq!((c.lock.as_str(), c.token, c.lease), ("orders", 34, 7));
    }

    /// Writes need an exclusive grant: a shared or permit token is refused
    /// by `verify` (what a write is judged with), and read, with its kind,
    /// only by `verify_any`. Its kind is signed: dropping it breaks the
    /// signature.
    #[test]
    fn a_shared_or_permit_token_is_not_a_write_token() {
        let k = SigningKey::from_bytes(&[7; 32]);
        let keys = [k.verifying_key()];
        for kind in [SignedKind::Shared, SignedKind::Permit { slot: 3 }] {
            let s = sign_as(&k, claims(), kind);
            assert!(matches!(verify(&keys, &s), Err(TokenError::Malformed(_))), "{kind:?} must not pass verify");
            let (c, got) = verify_any(&keys, &s).expect("verifies as what it is");
            assert_eq!((c.token, got), (34, kind));
            let body = s.strip_prefix(PREFIX).and_then(|b| b.split_once('.')).expect("two parts");
            let mut p = B64.decode(body.0).expect("base64");
            p.truncate(p.len() - if kind == SignedKind::Shared { 1 } else { 5 });
            let stripped = format!("{PREFIX}{}.{}", B64.encode(&p), body.1);
            assert_eq!(verify(&keys, &stripped), Err(TokenError::BadSignature), "the kind is under the signature");
        }
        let s = sign(&k, claims());
        assert_eq!(verify_any(&keys, &s).map(|(_, kind)| kind), Ok(SignedKind::Exclusive));
    }

    #[test]
    fn forged_token_number_fails() {
        let k = SigningKey::from_bytes(&[7; 32]);
        let s = sign(&k, claims());
        let (mut c, _, sig) = decode(&s).expect("decodes");
        c.token = 35;
        let forged = format!("{PREFIX}{}.{}", B64.encode(payload(&c)), B64.encode(sig.to_bytes()));
        assert_eq!(verify(&[k.verifying_key()], &forged), Err(TokenError::BadSignature));
    }

    #[test]
    fn other_cluster_key_fails() {
        let k = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let s = sign(&other, claims());
        assert!(matches!(verify(&[k.verifying_key()], &s), Err(TokenError::UnknownKey(_))));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let k = SigningKey::from_bytes(&[7; 32]).verifying_key();
        for s in ["", "fenced1.", "fenced1.AAAA.BBBB", "x.y.z", "fenced1.ZmVuY2VkMDE.AA"] {
            assert!(verify(&[k], s).is_err(), "{s}");
        }
    }

    #[test]
    fn public_key_text_round_trips() {
        let k = SigningKey::from_bytes(&[9; 32]).verifying_key();
        assert_eq!(parse_public_key(&encode_public_key(&k)), Ok(k));
    }
}
