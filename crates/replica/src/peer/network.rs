//! Replica-to-replica RPC: openraft's messages as checksummed binary frames
//! (postcard + CRC32C) in HTTP POST bodies, over the transport seam.
//!
//! The wire protocol carries a version in its path (`/raft/v1/...`, the
//! message encoding) and in the handshake headers of every message
//! ([`crate::peer::handshake`]: protocol version, cluster, limits, timing). A
//! replica refuses a peer it cannot understand or must not mix with, and the
//! sender reports it as unreachable, with the reason in its log, rather than
//! misreading the bytes.

use crate::peer::handshake::{Handshake, RAFT_PREFIX};
use crate::peer::health::PeerStats;
use crate::storage::types::{Node, NodeId, Snapshot, SnapshotMeta, TypeConfig, Vote};
use bytes::Bytes;
use fenced_core::toolbox::clock::Clock;
use fenced_io::frame;
use fenced_io::http::HttpClient;
use hyper::{Method, Request, StatusCode};
use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The least time a snapshot transfer is given: a snapshot may be large and
/// openraft's hard TTL is sized for heartbeats.
const SNAPSHOT_TIMEOUT_MIN: Duration = Duration::from_secs(10);

/// A snapshot on the wire.
#[derive(Serialize, Deserialize)]
pub struct SnapshotRequest {
    pub vote: Vote,
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

/// Makes a [`PeerClient`] per peer.
#[derive(Clone)]
pub struct PeerNetwork {
    http: HttpClient,
    handshake: Arc<Handshake>,
    peers: Arc<PeerStats>,
    clock: Arc<dyn Clock>,
}

impl PeerNetwork {
    /// Replies and AppendEntries round trips are recorded in `peers`.
    pub fn new(http: HttpClient, handshake: Arc<Handshake>, peers: Arc<PeerStats>, clock: Arc<dyn Clock>) -> Self {
        PeerNetwork { http, handshake, peers, clock }
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            http: self.http.clone(),
            handshake: self.handshake.clone(),
            target,
            addr: node.addr.clone(),
            peers: self.peers.clone(),
            clock: self.clock.clone(),
        }
    }
}

/// RPCs to one peer.
pub struct PeerClient {
    http: HttpClient,
    handshake: Arc<Handshake>,
    target: NodeId,
    addr: String,
    peers: Arc<PeerStats>,
    clock: Arc<dyn Clock>,
}

fn unreachable(msg: impl ToString) -> Unreachable<TypeConfig> {
    Unreachable::from_string(msg)
}

impl PeerClient {
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        what: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, Unreachable<TypeConfig>> {
        self.call_sized(what, req, timeout).await.map(|(resp, _)| resp)
    }

    /// [`PeerClient::call`], also returning the request's size in bytes.
    async fn call_sized<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        what: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<(Resp, u64), Unreachable<TypeConfig>> {
        let body = frame::encode(req).map_err(unreachable)?;
        let size = body.len() as u64;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("{RAFT_PREFIX}/{what}"))
            .header("content-type", "application/x-fenced-frame")
            .body(Bytes::from(body))
            .map_err(unreachable)?;
        self.handshake.stamp(req.headers_mut());
        let resp = self.http.send(&self.addr, req, timeout).await.map_err(unreachable)?;
        if resp.status != StatusCode::OK {
            let text = String::from_utf8_lossy(&resp.body);
            if matches!(resp.status, StatusCode::CONFLICT | StatusCode::UPGRADE_REQUIRED) {
                tracing::warn!(peer = self.target, "peer refused us: {text}");
            }
            return Err(unreachable(format!("peer {} answered {}: {text}", self.target, resp.status)));
        }
        if let Err(refusal) = self.handshake.judge(&resp.headers) {
            tracing::warn!(peer = self.target, code = refusal.code(), "refusing a peer's answer: {refusal}");
            return Err(unreachable(refusal));
        }
        self.peers.heard(self.target);
        frame::decode_exact(&resp.body).map(|r| (r, size)).map_err(unreachable)
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = crate::storage::types::SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let start = self.clock.now();
        let entries = rpc.entries.len() as u64;
        let (resp, bytes) = self.call_sized("append", &rpc, option.hard_ttl()).await?;
        // The bytes crossed the link either way; the entries count only if appended.
        let entries = if matches!(resp, AppendEntriesResponse::Success) { entries } else { 0 };
        self.peers.replicated(self.target, self.clock.now().since(start), bytes, entries);
        Ok(resp)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self.call("vote", &rpc, option.hard_ttl()).await?)
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self.call("pre-vote", &rpc, option.hard_ttl()).await?)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let req = SnapshotRequest { vote, meta: snapshot.meta, data: snapshot.snapshot.into_inner() };
        // A snapshot may be large; give it the hard TTL at least, and a floor.
        let timeout = option.hard_ttl().max(SNAPSHOT_TIMEOUT_MIN);
        Ok(self.call("snapshot", &req, timeout).await?)
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self.call("transfer-leader", &req, option.hard_ttl()).await?)
    }
}
