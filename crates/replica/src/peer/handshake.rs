//! The peer handshake: what every replica-to-replica message says about its
//! sender, and what the receiver refuses.
//!
//! Every peer request and every peer answer carries, in HTTP headers:
//!
//! | header | meaning | on mismatch |
//! |---|---|---|
//! | `x-fenced-protocol` | peer protocol version | refused unless in [`PROTOCOL_OLDEST`]..=[`PROTOCOL_VERSION`] |
//! | `x-fenced-cluster` | the cluster's name (`--cluster-name`) | refused |
//! | `x-fenced-cluster-key` | fingerprint of the cluster's first signing key, once known | refused |
//! | `x-fenced-limits` | digest of the state machine's limits | refused (entries would apply differently) |
//! | `x-fenced-timing` | heartbeat and election timeouts | accepted, reported (log, `/v1/cluster/peers`) |
//! | `x-fenced-from` | the sender's replica id | - |
//!
//! A request without `x-fenced-protocol` comes from protocol version 1 (the
//! release before these headers existed): it is accepted unchecked, so that a
//! cluster can be upgraded one replica at a time. The cluster key is the
//! first signing key the cluster ever committed: it is replicated through the
//! log, never changes, and differs between any two clusters, so it tells a
//! data directory of another cluster apart even when both share a name. A
//! replica that has not applied the key yet (a new or joining one) skips that
//! comparison.

use crate::config::ReplicaConfig;
use crate::storage::state_machine::Shared;
use crate::storage::types::NodeId;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fenced_core::admin::PeerInfo;
use fenced_core::machine::token::encode_public_key;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Path prefix of the replica protocol, with its version.
pub const RAFT_PREFIX: &str = "/raft/v1";

/// The peer protocol this build speaks.
pub const PROTOCOL_VERSION: u32 = 2;
/// The oldest peer protocol this build still accepts (one version back).
pub const PROTOCOL_OLDEST: u32 = 1;

pub const H_PROTOCOL: &str = "x-fenced-protocol";
pub const H_CLUSTER: &str = "x-fenced-cluster";
pub const H_CLUSTER_KEY: &str = "x-fenced-cluster-key";
pub const H_LIMITS: &str = "x-fenced-limits";
pub const H_TIMING: &str = "x-fenced-timing";
pub const H_FROM: &str = "x-fenced-from";

/// This replica's side of the handshake, and what it has seen of its peers.
pub struct Handshake {
    cluster: String,
    limits: String,
    timing: String,
    shared: Arc<Shared>,
    /// The cluster key's fingerprint, and the header carrying it, once
    /// this replica has applied the key.
    key: OnceLock<(String, Option<HeaderValue>)>,
    /// The headers [`Handshake::stamp`] puts on every peer message, built
    /// once: all but the cluster key's.
    fixed: Vec<(HeaderName, HeaderValue)>,
    seen: Mutex<BTreeMap<NodeId, PeerInfo>>,
}

/// Why a peer message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("peer {from} speaks peer protocol v{theirs}; this replica understands v{PROTOCOL_OLDEST} to v{PROTOCOL_VERSION}. Upgrade one version at a time (docs/operations.md, rolling upgrade)")]
    Protocol { from: String, theirs: String },
    #[error("peer {from} belongs to cluster {theirs:?}, this replica to {ours:?}; check --cluster-name and that --data-dir is this cluster's")]
    Cluster { from: String, theirs: String, ours: String },
    #[error("peer {from} holds data of another cluster (cluster key {theirs}, ours {ours}); it was started with another cluster's data directory: give it an empty one, or its own")]
    ClusterKey { from: String, theirs: String, ours: String },
    #[error("peer {from} applies entries with other limits (digest {theirs}, ours {ours}); every replica of a cluster must use the same limits")]
    Limits { from: String, theirs: String, ours: String },
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Protocol { .. } => "peer_protocol_version",
            Refusal::Cluster { .. } | Refusal::ClusterKey { .. } => "peer_other_cluster",
            Refusal::Limits { .. } => "peer_limits_mismatch",
        }
    }
}

/// The timing settings that must agree across replicas, as one string.
pub fn timing_of(c: &ReplicaConfig) -> String {
    format!(
        "heartbeat_ms={},election_timeout_ms={}-{}",
        c.heartbeat.as_millis(),
        c.election_timeout_min.as_millis(),
        c.election_timeout_max.as_millis()
    )
}

/// A short digest of the limits (the CRC of their encoding).
pub fn limits_digest(c: &ReplicaConfig) -> String {
    match fenced_io::frame::encode(&c.limits) {
        Ok(f) => f.get(4..8).map(|b| b.iter().map(|x| format!("{x:02x}")).collect()).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

// The header names, parsed once: a lookup by `&str` parses the name again
// on every peer message.
const N_PROTOCOL: HeaderName = HeaderName::from_static(H_PROTOCOL);
const N_CLUSTER: HeaderName = HeaderName::from_static(H_CLUSTER);
const N_CLUSTER_KEY: HeaderName = HeaderName::from_static(H_CLUSTER_KEY);
const N_LIMITS: HeaderName = HeaderName::from_static(H_LIMITS);
const N_TIMING: HeaderName = HeaderName::from_static(H_TIMING);
const N_FROM: HeaderName = HeaderName::from_static(H_FROM);

fn header<'a>(h: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

impl Handshake {
    pub fn new(config: &ReplicaConfig, shared: Arc<Shared>) -> Self {
        let (limits, timing) = (limits_digest(config), timing_of(config));
        let fixed = [
            (N_PROTOCOL, PROTOCOL_VERSION.to_string()),
            (N_CLUSTER, config.cluster_name.clone()),
            (N_LIMITS, limits.clone()),
            (N_TIMING, timing.clone()),
            (N_FROM, config.id.to_string()),
        ]
        .into_iter()
        .filter_map(|(name, v)| HeaderValue::from_str(&v).ok().map(|v| (name, v)))
        .collect();
        Handshake {
            cluster: config.cluster_name.clone(),
            limits,
            timing,
            shared,
            key: OnceLock::new(),
            fixed,
            seen: Mutex::new(BTreeMap::new()),
        }
    }

    /// The cluster key's fingerprint, once this replica has applied it.
    pub fn cluster_key(&self) -> Option<&str> {
        self.key_entry().map(|(fp, _)| fp.as_str())
    }

    fn key_entry(&self) -> Option<&(String, Option<HeaderValue>)> {
        if let Some(k) = self.key.get() {
            return Some(k);
        }
        let first = self.shared.read(|t| t.public_keys().first().map(encode_public_key))?;
        // The fingerprint: enough of the key to tell clusters apart.
        let fp: String = first.chars().rev().take(16).collect::<Vec<_>>().into_iter().rev().collect();
        Some(self.key.get_or_init(|| {
            let header = HeaderValue::from_str(&fp).ok();
            (fp, header)
        }))
    }

    /// Our headers, on a request or an answer.
    pub fn stamp(&self, h: &mut HeaderMap) {
        h.reserve(self.fixed.len() + 1);
        for (name, v) in &self.fixed {
            h.insert(name.clone(), v.clone());
        }
        if let Some((_, Some(k))) = self.key_entry() {
            h.insert(N_CLUSTER_KEY, k.clone());
        }
    }

    /// Judge a peer's headers. `Ok` may still record a timing mismatch.
    /// Runs on every peer message, so the accepting path allocates nothing
    /// unless what a peer says about itself changed.
    pub fn judge(&self, h: &HeaderMap) -> Result<(), Refusal> {
        let from = header(h, &N_FROM).unwrap_or("?");
        let Some(protocol) = header(h, &N_PROTOCOL) else {
            // Protocol v1: the release before the handshake. Accepted as is.
            return Ok(());
        };
        let version = protocol.parse::<u32>().ok().filter(|v| (PROTOCOL_OLDEST..=PROTOCOL_VERSION).contains(v));
        let Some(version) = version else {
            return Err(Refusal::Protocol { from: from.into(), theirs: protocol.to_string() });
        };
        let theirs = header(h, &N_CLUSTER).unwrap_or("");
        if theirs != self.cluster {
            return Err(Refusal::Cluster { from: from.into(), theirs: theirs.into(), ours: self.cluster.clone() });
        }
        if let (Some(theirs), Some(ours)) = (header(h, &N_CLUSTER_KEY), self.cluster_key()) {
            if theirs != ours {
                return Err(Refusal::ClusterKey { from: from.into(), theirs: theirs.into(), ours: ours.into() });
            }
        }
        let theirs = header(h, &N_LIMITS).unwrap_or("");
        if theirs != self.limits {
            return Err(Refusal::Limits { from: from.into(), theirs: theirs.into(), ours: self.limits.clone() });
        }
        let timing = header(h, &N_TIMING).unwrap_or("");
        let Ok(id) = from.parse::<NodeId>() else { return Ok(()) };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.get(&id).is_some_and(|s| s.protocol == version && s.timing == timing) {
            return Ok(());
        }
        let mismatch = (timing != self.timing).then(|| {
            format!(
                "peer {from} runs {timing}, this replica {}; heartbeat and election timeouts must agree across replicas",
                self.timing
            )
        });
        if let Some(m) = &mismatch {
            tracing::warn!(peer = id, "timing mismatch: {m}");
        }
        seen.insert(id, PeerInfo { protocol: version, timing: timing.to_string(), timing_mismatch: mismatch });
        Ok(())
    }

    /// What each peer said last.
    pub fn peers(&self) -> BTreeMap<NodeId, PeerInfo> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn timing(&self) -> &str {
        &self.timing
    }
}

/// Middleware on the peer routes: refuse what we cannot understand or must
/// not mix with, stamp our headers on every answer.
pub async fn check(State(hs): State<Arc<Handshake>>, req: Request, next: Next) -> Response {
    if let Err(refusal) = hs.judge(req.headers()) {
        tracing::warn!(code = refusal.code(), "refused a peer: {refusal}");
        let status = match refusal {
            Refusal::Protocol { .. } => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::CONFLICT,
        };
        let mut resp = (status, format!("{}: {refusal}", refusal.code())).into_response();
        hs.stamp(resp.headers_mut());
        return resp;
    }
    let mut resp = next.run(req).await;
    hs.stamp(resp.headers_mut());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use fenced_core::machine::table::LockTable;
    use fenced_core::toolbox::clock::Clock;

    fn hs(cluster: &str, heartbeat_ms: u64) -> Handshake {
        let mut c = ReplicaConfig::new(1, "127.0.0.1:1".into(), BTreeMap::new());
        c.cluster_name = cluster.into();
        c.heartbeat = std::time::Duration::from_millis(heartbeat_ms);
        let disk: Arc<dyn fenced_io::disk::Disk> = Arc::new(fenced_io::disk::MemDisk::new());
        let clock: Arc<dyn Clock> = Arc::new(fenced_io::clock::SystemClock::new());
        let sm = crate::storage::state_machine::StateMachine::open(disk, clock, LockTable::new(Default::default()))
            .expect("state machine");
        Handshake::new(&c, sm.shared)
    }

    fn headers_of(h: &Handshake) -> HeaderMap {
        let mut m = HeaderMap::new();
        h.stamp(&mut m);
        m
    }

    #[test]
    fn same_cluster_is_accepted_and_timing_mismatch_is_reported() {
        let a = hs("prod", 100);
        assert_eq!(a.judge(&headers_of(&hs("prod", 100))), Ok(()));
        assert_eq!(a.judge(&headers_of(&hs("prod", 50))), Ok(()));
        let report = a.peers().remove(&1).expect("peer 1 recorded");
        assert!(report.timing_mismatch.expect("mismatch").contains("heartbeat_ms=50"));
    }

    #[test]
    fn an_unknown_protocol_version_and_another_cluster_are_refused() {
        let a = hs("prod", 100);
        let mut future = headers_of(&a);
        future.insert(H_PROTOCOL, HeaderValue::from_static("3"));
        let r = a.judge(&future).expect_err("v3 refused");
        assert_eq!(r.code(), "peer_protocol_version");
        assert!(r.to_string().contains("understands v1 to v2"), "{r}");
        let r = a.judge(&headers_of(&hs("staging", 100))).expect_err("other cluster refused");
        assert_eq!(r.code(), "peer_other_cluster");
        assert!(r.to_string().contains("\"staging\""), "{r}");
    }

    #[test]
    fn a_version_1_peer_without_headers_is_accepted() {
        assert_eq!(hs("prod", 100).judge(&HeaderMap::new()), Ok(()));
    }
}
