//! `GET /metrics`: the replica's counters and vital signs in Prometheus
//! text format.

use crate::http::admin::cluster_status_of;
use crate::http::HttpState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response as AxResponse};
use std::sync::Arc;

type App = Arc<HttpState>;

pub(crate) async fn metrics(State(app): State<App>) -> AxResponse {
    let s = cluster_status_of(&app);
    let m = &app.metrics;
    let is_leader = u64::from(s.leader == Some(s.id));
    let lines = [
        ("fenced_raft_term", "gauge", "Current Raft term.", s.term),
        ("fenced_raft_commit_index", "gauge", "Highest committed log index.", s.commit_index),
        ("fenced_raft_applied_index", "gauge", "Highest applied log index.", s.applied_index),
        ("fenced_raft_is_leader", "gauge", "1 if this replica is the leader.", is_leader),
        ("fenced_leases", "gauge", "Live leases.", s.leases as u64),
        ("fenced_locks_held", "gauge", "Locks with a holder.", s.locks_held as u64),
        ("fenced_proposals_total", "counter", "Proposals submitted here.", m.proposals.get()),
        ("fenced_forwards_total", "counter", "Proposals forwarded to the leader.", m.forwards.get()),
        ("fenced_grants_total", "counter", "Lock grants answered here.", m.grants.get()),
        (
            "fenced_expiries_proposed_total",
            "counter",
            "Lease expiries proposed by this leader.",
            m.expiries_proposed.get(),
        ),
        (
            "fenced_handoffs_proposed_total",
            "counter",
            "Lock handoffs proposed by this leader.",
            m.handoffs_proposed.get(),
        ),
        (
            "fenced_leader_duty_panics_total",
            "counter",
            "Panics of the leader's duties (lease expiry), each followed by a restart.",
            m.leader_duty_panics.get(),
        ),
        ("fenced_checkpoints_proposed_total", "counter", "TTL checkpoints proposed.", m.checkpoints_proposed.get()),
        ("fenced_watch_lost_total", "counter", "Lost-lock signals sent to watchers.", m.watches_lost_signalled.get()),
        (
            "fenced_peer_frames_rejected_total",
            "counter",
            "Peer messages rejected as malformed (bad checksum, truncated, undecodable).",
            m.peer_frames_rejected.get(),
        ),
        (
            "fenced_raft_log_torn_bytes",
            "gauge",
            "Bytes of torn Raft log tail cut off when this replica started.",
            app.log.torn_bytes(),
        ),
    ];
    let r = &app.limiter.refused;
    // Reasons, as documented in docs/security.md: 401, 403, 429 (rate,
    // state-machine limits, watches), 503 (proposals, connections).
    let refusals = [
        ("unauthenticated", r.unauthenticated.get()),
        ("forbidden", r.forbidden.get()),
        ("rate_limited", r.throttled.get()),
        ("limit_exceeded", r.limit_exceeded.get()),
        ("watches", r.watches_refused.get()),
        ("overloaded", r.proposals_refused.get()),
        ("connections", r.connections_refused.load(std::sync::atomic::Ordering::Relaxed)),
    ];
    let mut out = String::new();
    for (name, kind, help, v) in lines {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{replica=\"{}\"}} {v}\n", s.id));
    }
    out.push_str("# HELP fenced_refused_total Requests refused before doing anything, by reason.\n");
    out.push_str("# TYPE fenced_refused_total counter\n");
    for (reason, v) in refusals {
        out.push_str(&format!("fenced_refused_total{{replica=\"{}\",reason=\"{reason}\"}} {v}\n", s.id));
    }
    out.push_str(&app.vitals.prometheus(s.id, &app.voters()));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
