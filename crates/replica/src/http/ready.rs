//! `GET /v1/ready`: is there a leader this replica can reach? For
//! orchestrators' readiness probes (Kubernetes, load balancers): a replica
//! that knows of no leader cannot serve or forward a request, so traffic
//! should go elsewhere. Liveness is `/v1/ping`.
//!
//! Its right (`crate::http::routes`) is none, like `/v1/ping`: probes carry no
//! credentials, and the answer reveals only the leader's id.

use crate::http::error::ApiError;
use crate::http::HttpState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use openraft::async_runtime::WatchReceiver;
use std::sync::Arc;

type App = Arc<HttpState>;

pub(crate) async fn ready(State(app): State<App>) -> Result<Json<serde_json::Value>, ApiError> {
    let leader = app.raft.metrics().borrow_watched().current_leader;
    let has_key = app.shared.read(|t| !t.public_keys().is_empty());
    match leader {
        Some(l) if has_key && (l != app.config.id || app.is_leader()) => {
            Ok(Json(serde_json::json!({ "id": app.config.id, "leader": l })))
        }
        _ => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("replica {} knows of no leader with a quorum yet; see `fenced cluster status`", app.config.id),
        )),
    }
}
