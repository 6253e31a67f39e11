//! The peer RPC server: openraft's messages, forwarded proposals, probes
//! and the removed replica's drain, as checksummed frames under
//! [`RAFT_PREFIX`](crate::peer::handshake::RAFT_PREFIX). Every message has
//! passed the handshake check ([`crate::peer::handshake::check`]) first.

use crate::duties::drain::drain_removed;
use crate::http::HttpState;
use crate::node::ProposeError;
use crate::peer::network::SnapshotRequest;
use crate::storage::state_machine::decode_snapshot_data;
use crate::storage::types::Snapshot;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as AxResponse};
use fenced_core::admin::DrainRequest;
use fenced_core::machine::command::Request;
use fenced_io::frame;
use serde::de::DeserializeOwned;
use std::sync::Arc;

type App = Arc<HttpState>;

/// Decode a peer frame, or answer 400; a rejected frame is counted and logged.
pub(crate) fn peer_decode<T: DeserializeOwned>(app: &App, what: &str, body: &[u8]) -> Result<T, Box<AxResponse>> {
    frame::decode_exact(body).map_err(|e| Box::new(reject_peer_frame(app, what, e)))
}

fn reject_peer_frame(app: &App, what: &str, e: impl std::fmt::Display) -> AxResponse {
    app.metrics.peer_frames_rejected.inc();
    tracing::warn!(rpc = what, error = %e, "rejected a malformed peer message");
    (StatusCode::BAD_REQUEST, format!("bad frame: {e}")).into_response()
}

pub(crate) fn peer_reply<T: serde::Serialize, E: std::fmt::Display>(r: Result<T, E>) -> AxResponse {
    match r {
        Ok(v) => match frame::encode(&v) {
            Ok(b) => (StatusCode::OK, b).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

pub(crate) async fn raft_append(State(app): State<App>, body: Bytes) -> AxResponse {
    match peer_decode(&app, "append", &body) {
        Ok(rpc) => peer_reply(app.raft.append_entries(rpc).await),
        Err(r) => *r,
    }
}

pub(crate) async fn raft_vote(State(app): State<App>, body: Bytes) -> AxResponse {
    match peer_decode(&app, "vote", &body) {
        Ok(rpc) => peer_reply(app.raft.vote(rpc).await),
        Err(r) => *r,
    }
}

pub(crate) async fn raft_pre_vote(State(app): State<App>, body: Bytes) -> AxResponse {
    match peer_decode(&app, "pre-vote", &body) {
        Ok(rpc) => peer_reply(app.raft.pre_vote(rpc).await),
        Err(r) => *r,
    }
}

pub(crate) async fn raft_snapshot(State(app): State<App>, body: Bytes) -> AxResponse {
    let req = match peer_decode::<SnapshotRequest>(&app, "snapshot", &body) {
        Ok(req) => req,
        Err(r) => return *r,
    };
    // The table inside has its own checksum; check it here, where a bad one is
    // the sender's fault, rather than in openraft's storage call, where an
    // error would stop this replica.
    if let Err(e) = decode_snapshot_data(&req.data) {
        return reject_peer_frame(&app, "snapshot", format!("snapshot data: {e}"));
    }
    let snap = Snapshot { meta: req.meta, snapshot: std::io::Cursor::new(req.data) };
    peer_reply(app.raft.install_full_snapshot(req.vote, snap).await)
}

pub(crate) async fn raft_transfer_leader(State(app): State<App>, body: Bytes) -> AxResponse {
    match peer_decode(&app, "transfer-leader", &body) {
        Ok(req) => peer_reply(app.raft.handle_transfer_leader(req).await),
        Err(r) => *r,
    }
}

/// A peer's probe ([`crate::peer::health`]): answer with this replica's vital signs.
pub(crate) async fn raft_probe(State(app): State<App>, body: Bytes) -> AxResponse {
    match peer_decode::<crate::peer::health::ProbeRequest>(&app, "probe", &body) {
        Ok(req) => {
            app.vitals.peers.heard(req.from);
            let fsync = app.vitals.fsync.lock().ok().and_then(|w| w.recent_median(64));
            peer_reply(Ok::<_, String>(app.vitals.peers.reply(fsync)))
        }
        Err(r) => *r,
    }
}

/// A peer's bandwidth probe ([`crate::peer::health::probe_bandwidth`]): its padding
/// has been received by now; answer with this replica's own link rate.
pub(crate) async fn raft_bandwidth(State(app): State<App>, body: Bytes) -> AxResponse {
    match peer_decode::<crate::peer::health::BandwidthRequest>(&app, "bandwidth", &body) {
        Ok(req) => {
            app.vitals.peers.heard(req.from);
            peer_reply(Ok::<_, String>(app.vitals.peers.bandwidth_reply()))
        }
        Err(r) => *r,
    }
}

/// A proposal forwarded by a follower. Proposed here only, never forwarded on.
pub(crate) async fn raft_propose(State(app): State<App>, body: Bytes) -> AxResponse {
    match peer_decode::<Request>(&app, "propose", &body) {
        // 503 means "refused before proposing" to the forwarding replica,
        // which may then try again elsewhere; any other failure may have
        // proposed, so it must not look like a refusal.
        Ok(req) => propose_reply(app.propose_local(req).await),
        Err(r) => *r,
    }
}

/// The answer of `/raft/v1/propose`: 503 only when nothing was proposed.
fn propose_reply(r: Result<(fenced_core::Response, u64), ProposeError>) -> AxResponse {
    match r {
        Err(e @ ProposeError::NoLeader) => peer_reply::<(), _>(Err(e)),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        ok => peer_reply(ok),
    }
}

/// `POST /raft/v1/drain-removed`: a [`DrainRequest`] frame from the leader.
pub(crate) async fn removed_handler(State(app): State<App>, body: Bytes) -> axum::response::Response {
    match peer_decode::<DrainRequest>(&app, "drain-removed", &body) {
        Ok(req) => peer_reply(Ok::<_, String>(drain_removed(&app.replica, req.removed_at))),
        Err(r) => *r,
    }
}

#[cfg(test)]
mod propose_reply_tests {
    use super::*;

    #[test]
    fn only_no_leader_is_answered_503_to_a_forwarding_replica() {
        assert_eq!(propose_reply(Err(ProposeError::NoLeader)).status(), StatusCode::SERVICE_UNAVAILABLE);
        for e in [ProposeError::Unknown, ProposeError::ShuttingDown, ProposeError::Internal("disk".into())] {
            let code = e.code();
            assert_eq!(
                propose_reply(Err(e)).status(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "{code} may have proposed, so it must not read as a refusal"
            );
        }
    }
}
