//! Who is calling, and what they may do: authentication (a bearer token, or
//! the TLS client certificate the transport verified) and per-prefix access
//! control lists. Used by the replica API and the fenced store alike.
//!
//! A policy is a JSON file (`fenced serve --auth FILE`, written by
//! `fenced certs`):
//!
//! ```json
//! {
//!   "tokens": [{"token": "s3cret", "identity": "alice"}],
//!   "peers": ["replica-1", "replica-2", "replica-3"],
//!   "admins": ["admin"],
//!   "acl": [{"identity": "alice", "prefix": "a/", "allow": ["acquire", "watch", "release"]}]
//! }
//! ```
//!
//! Without a policy every caller may do everything (`fenced dev`, tests, the
//! simulator). With one, a caller without valid credentials gets `401` and a
//! caller acting outside its grants gets `403`, before anything is proposed
//! or written.

use crate::http::ConnInfo;
use hyper::header::AUTHORIZATION;
use hyper::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// An operation on a named thing, as ACLs grant them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Acquire a lock, campaign in an election, or claim a name.
    Acquire,
    /// Read a lock's status or watch it.
    Watch,
    /// Release a lock or resign an election.
    Release,
    /// Write (put or delete) a key of the fenced store.
    Write,
    /// Read a key of the fenced store.
    Read,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Op::Acquire => "acquire",
            Op::Watch => "watch",
            Op::Release => "release",
            Op::Write => "write",
            Op::Read => "read",
        };
        f.write_str(s)
    }
}

/// One ACL rule: `identity` may do `allow` on names starting with `prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// An identity, or `*` for every authenticated caller.
    pub identity: String,
    pub prefix: String,
    pub allow: BTreeSet<Op>,
}

/// A bearer token and the identity it proves.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub token: String,
    pub identity: String,
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenEntry {{ token: <redacted>, identity: {:?} }}", self.identity)
    }
}

/// Who may connect and what they may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
    /// Replicas of this cluster: they may use the peer protocol
    /// (`/raft/v1/...`) and do anything on behalf of the clients whose
    /// requests they forward.
    #[serde(default)]
    pub peers: BTreeSet<String>,
    /// May do everything, including cluster administration (leadership
    /// transfer, signing-key rotation).
    #[serde(default)]
    pub admins: BTreeSet<String>,
    #[serde(default)]
    pub acl: Vec<Rule>,
}

/// Why a request was refused before it did anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials: send `Authorization: Bearer <token>` or connect with a client certificate signed by the cluster CA")]
    Missing,
    #[error("the bearer token is not known to this server; check --token")]
    BadToken,
    #[error("{identity:?} may not {op} {name:?}; ask an administrator for a grant on a prefix of it")]
    Forbidden { identity: String, op: Op, name: String },
    #[error("{identity:?} is not a replica of this cluster; the peer protocol needs a replica certificate")]
    NotPeer { identity: String },
    #[error("{identity:?} is not an administrator of this cluster")]
    NotAdmin { identity: String },
}

impl AuthError {
    /// `401` for missing or bad credentials, `403` for missing rights.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Missing | AuthError::BadToken => StatusCode::UNAUTHORIZED,
            _ => StatusCode::FORBIDDEN,
        }
    }

    /// The machine-readable error code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "unauthenticated",
            AuthError::BadToken => "bad_credentials",
            AuthError::Forbidden { .. } => "forbidden",
            AuthError::NotPeer { .. } => "not_a_peer",
            AuthError::NotAdmin { .. } => "not_an_admin",
        }
    }
}

/// Why a policy file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a valid policy: {source}")]
    Parse { path: String, source: serde_json::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `None` when the server runs without a policy.
    pub identity: Option<String>,
    /// What per-client limits count against: the identity, else the peer's
    /// IP address.
    pub key: String,
}

impl Policy {
    /// Read a policy from a JSON file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let p = path.display().to_string();
        let text = std::fs::read(path).map_err(|source| PolicyError::Read { path: p.clone(), source })?;
        let policy: Policy =
            serde_json::from_slice(&text).map_err(|source| PolicyError::Parse { path: p.clone(), source })?;
        let mut seen = BTreeSet::new();
        for t in &policy.tokens {
            if t.token.len() < 16 {
                return Err(PolicyError::Invalid {
                    path: p,
                    message: format!("the token of {:?} is shorter than 16 characters", t.identity),
                });
            }
            if !seen.insert(t.token.as_str()) {
                return Err(PolicyError::Invalid { path: p, message: "a token appears twice".into() });
            }
        }
        Ok(policy)
    }

    fn token_identity(&self, token: &str) -> Option<&str> {
        // Compare every entry in full so that timing says nothing about
        // which prefix of a token matched.
        let mut found = None;
        for t in &self.tokens {
            if constant_time_eq(t.token.as_bytes(), token.as_bytes()) {
                found = Some(t.identity.as_str());
            }
        }
        found
    }

    /// May `identity` do `op` on `name`?
    pub fn allows(&self, identity: &str, op: Op, name: &str) -> bool {
        self.peers.contains(identity)
            || self.admins.contains(identity)
            || self.acl.iter().any(|r| {
                (r.identity == identity || r.identity == "*") && name.starts_with(&r.prefix) && r.allow.contains(&op)
            })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn peer_ip(conn: Option<&ConnInfo>) -> String {
    let peer = conn.map(|c| c.peer.as_str()).unwrap_or("unknown");
    match peer.rsplit_once(':') {
        Some((host, _)) => host.to_string(),
        None => peer.to_string(),
    }
}

/// The `Authorization` header value that presents `token`; `None` if the
/// token cannot be a header (it must be printable ASCII). Every client (the
/// lock client, the store client) sends its token through this.
pub fn bearer_header(token: &str) -> Option<hyper::header::HeaderValue> {
    hyper::header::HeaderValue::from_str(&format!("Bearer {token}")).ok()
}

/// The token of an `Authorization: Bearer TOKEN` value. The scheme is
/// case-insensitive (RFC 7235 section 2.1: `bearer`, `BEARER` are the same
/// scheme) and separated from the token by spaces.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Establish who sent a request. A bearer token, when sent, must be valid
/// (a bad token is not silently ignored in favour of the certificate).
pub fn authenticate(
    policy: Option<&Policy>,
    headers: &HeaderMap,
    conn: Option<&ConnInfo>,
) -> Result<Caller, AuthError> {
    let Some(policy) = policy else {
        return Ok(Caller { identity: None, key: peer_ip(conn) });
    };
    if let Some(v) = headers.get(AUTHORIZATION) {
        let token = v.to_str().ok().and_then(bearer_token).ok_or(AuthError::BadToken)?;
        let identity = policy.token_identity(token).ok_or(AuthError::BadToken)?;
        return Ok(Caller { identity: Some(identity.to_string()), key: identity.to_string() });
    }
    match conn.and_then(|c| c.identity.clone()) {
        Some(identity) => Ok(Caller { key: identity.clone(), identity: Some(identity) }),
        None => Err(AuthError::Missing),
    }
}

/// May `caller` do `op` on `name`? Always yes without a policy.
pub fn authorize(policy: Option<&Policy>, caller: &Caller, op: Op, name: &str) -> Result<(), AuthError> {
    match (policy, &caller.identity) {
        (None, _) => Ok(()),
        (Some(p), Some(id)) if p.allows(id, op, name) => Ok(()),
        (Some(_), Some(id)) => Err(AuthError::Forbidden { identity: id.clone(), op, name: name.into() }),
        (Some(_), None) => Err(AuthError::Missing),
    }
}

/// Is `caller` a replica of this cluster? Always yes without a policy.
pub fn authorize_peer(policy: Option<&Policy>, caller: &Caller) -> Result<(), AuthError> {
    match (policy, &caller.identity) {
        (None, _) => Ok(()),
        (Some(p), Some(id)) if p.peers.contains(id) => Ok(()),
        (Some(_), Some(id)) => Err(AuthError::NotPeer { identity: id.clone() }),
        (Some(_), None) => Err(AuthError::Missing),
    }
}

/// Is `caller` an administrator (or a replica forwarding for one)? Always
/// yes without a policy.
pub fn authorize_admin(policy: Option<&Policy>, caller: &Caller) -> Result<(), AuthError> {
    match (policy, &caller.identity) {
        (None, _) => Ok(()),
        (Some(p), Some(id)) if p.admins.contains(id) || p.peers.contains(id) => Ok(()),
        (Some(_), Some(id)) => Err(AuthError::NotAdmin { identity: id.clone() }),
        (Some(_), None) => Err(AuthError::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        serde_json::from_str(
            r#"{"tokens":[{"token":"alice-token-0123456789","identity":"alice"}],
                "peers":["replica-1"],"admins":["ops"],
                "acl":[{"identity":"alice","prefix":"a/","allow":["acquire","watch","release"]},
                       {"identity":"*","prefix":"public/","allow":["watch"]}]}"#,
        )
        .expect("policy parses")
    }

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(AUTHORIZATION, a.parse().expect("header"));
        }
        h
    }

    #[test]
    fn tokens_and_certificates_authenticate() {
        let p = policy();
        let conn = ConnInfo { peer: "127.0.0.1:5000".into(), identity: None };
        assert_eq!(authenticate(Some(&p), &headers(None), Some(&conn)), Err(AuthError::Missing));
        assert_eq!(authenticate(Some(&p), &headers(Some("Bearer nope")), Some(&conn)), Err(AuthError::BadToken));
        assert_eq!(authenticate(Some(&p), &headers(Some("Basic abc")), Some(&conn)), Err(AuthError::BadToken));
        assert_eq!(authenticate(Some(&p), &headers(Some("Bearer")), Some(&conn)), Err(AuthError::BadToken));
        assert_eq!(authenticate(Some(&p), &headers(Some("Bearerx y")), Some(&conn)), Err(AuthError::BadToken));
        // The scheme is case-insensitive (RFC 7235); the token is not.
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let c = authenticate(Some(&p), &headers(Some(&format!("{scheme}  alice-token-0123456789"))), Some(&conn));
            assert_eq!(c.expect(scheme).identity.as_deref(), Some("alice"));
        }
        assert_eq!(
            authenticate(Some(&p), &headers(Some("Bearer ALICE-TOKEN-0123456789")), Some(&conn)),
            Err(AuthError::BadToken)
        );
        let c = authenticate(Some(&p), &headers(Some("Bearer alice-token-0123456789")), Some(&conn)).expect("ok");
        assert_eq!(c.identity.as_deref(), Some("alice"));
        let tls = ConnInfo { peer: "127.0.0.1:5000".into(), identity: Some("replica-1".into()) };
        let c = authenticate(Some(&p), &headers(None), Some(&tls)).expect("cert");
        assert_eq!(c.identity.as_deref(), Some("replica-1"));
        // Without a policy, the caller is keyed by IP address.
        let c = authenticate(None, &headers(None), Some(&conn)).expect("open");
        assert_eq!((c.identity, c.key.as_str()), (None, "127.0.0.1"));
    }

    #[test]
    fn acl_is_per_prefix_and_per_op() {
        let p = Some(policy());
        let alice = Caller { identity: Some("alice".into()), key: "alice".into() };
        let bob = Caller { identity: Some("bob".into()), key: "bob".into() };
        assert_eq!(authorize(p.as_ref(), &alice, Op::Acquire, "a/x"), Ok(()));
        assert!(matches!(authorize(p.as_ref(), &alice, Op::Acquire, "b/x"), Err(AuthError::Forbidden { .. })));
        assert!(matches!(authorize(p.as_ref(), &alice, Op::Write, "a/x"), Err(AuthError::Forbidden { .. })));
        assert_eq!(authorize(p.as_ref(), &bob, Op::Watch, "public/x"), Ok(()));
        assert!(authorize(p.as_ref(), &bob, Op::Acquire, "public/x").is_err());
        assert!(authorize_peer(p.as_ref(), &alice).is_err());
        assert!(authorize_admin(p.as_ref(), &alice).is_err());
        let ops = Caller { identity: Some("ops".into()), key: "ops".into() };
        assert_eq!(authorize_admin(p.as_ref(), &ops), Ok(()));
        assert_eq!(authorize(None, &bob, Op::Write, "anything"), Ok(()));
        assert_eq!(AuthError::Missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(AuthError::NotAdmin { identity: "x".into() }.status(), StatusCode::FORBIDDEN);
    }
}
