//! Every `code` an error body of the replica's API can carry, in one list.
//!
//! `docs/openapi.yaml` enumerates the same set (`components.schemas.Error`),
//! and `tests/error_codes.rs` fails when the two differ or when an error type
//! grows a code that is not here. [`Codes`] hands the list to the shared
//! error type ([`fenced_io::envelope::ApiError::new`] refuses, in debug
//! builds, a code outside it), so a new code cannot reach a client without
//! reaching the contract first.

use fenced_io::envelope::ErrorCodes;

/// `(code, what it means)`, grouped by status.
pub const ERROR_CODES: &[(&str, &str)] = &[
    // 400, 404, 405, 413: the request itself.
    ("bad_request", "the body is not the JSON the route expects"),
    ("invalid_argument", "a field is out of range or malformed"),
    ("not_found", "no such route, or no such object"),
    ("method_not_allowed", "the route exists under another method"),
    ("body_too_large", "the body exceeds the route's size limit"),
    // 401, 403: who is asking.
    ("unauthenticated", "no credentials were presented"),
    ("bad_credentials", "a bearer token the cluster does not know"),
    ("forbidden", "the identity has no right on this name"),
    ("not_owner", "the lease belongs to another identity"),
    ("not_an_admin", "the route needs an administrator"),
    ("not_a_peer", "the route is for replicas only"),
    ("not_claim_owner", "the claim was made by another identity"),
    // 404, 409, 410: the state machine's deterministic refusals.
    ("no_such_lease", "the lease expired, was revoked, or never existed"),
    ("no_such_claim", "no claim exists on that name"),
    ("not_holder", "the lock is not held by that lease and token"),
    ("busy", "the lock is held by another lease (no wait was asked)"),
    ("claim_owner_mismatch", "the claim's owner is not the one named"),
    ("request_too_old", "the request id left the deduplication window; the outcome is unknown"),
    ("request_id_reused", "the request id was used for a different request"),
    ("no_signing_key", "the cluster has no signing key yet"),
    // 408, 429: limits and time.
    ("wait_timeout", "the wait for the lock ended before it was granted"),
    ("limit_exceeded", "a configured limit would be exceeded"),
    ("rate_limited", "over the per-client request rate; see Retry-After"),
    ("overloaded", "the replica sheds load; retry later"),
    // 503, 504: availability. Safe to retry unless the code is unknown_outcome.
    ("no_leader", "no leader is known; an election may be under way"),
    ("not_leader", "this replica is not the leader and the route does not forward"),
    ("not_ready", "no leader is known to this replica"),
    ("unknown_outcome", "the request may or may not have been applied; retry with the same request id"),
    ("shutting_down", "the replica is stopping"),
    ("draining", "the replica is draining and takes no new sessions"),
    ("forward_failed", "the leader could not be reached to forward the request"),
    ("transfer_timeout", "leadership did not move within the wait"),
    ("hand_off_failed", "leadership could not be handed off"),
    ("internal", "a bug or an I/O failure; the log has details"),
    // 409: membership.
    ("would_lose_quorum", "the change would leave fewer live voters than a majority"),
    ("member_exists", "the replica is already a voter"),
    ("not_a_voter", "the replica is not a voter"),
    ("membership_change_refused", "Raft refused the change (another is in flight)"),
    ("learner_catch_up_timeout", "the new replica did not catch up in time"),
    // Peer handshake refusals (peer routes only).
    ("peer_protocol_version", "the peer speaks another protocol version"),
    ("peer_other_cluster", "the peer belongs to another cluster"),
    ("peer_limits_mismatch", "the peer applies entries with other limits"),
];

/// The replica's codes, for [`fenced_io::envelope::ApiError`].
pub struct Codes;

impl ErrorCodes for Codes {
    const CODES: &'static [(&'static str, &'static str)] = ERROR_CODES;
    const CONTRACT: &'static str = "the replica's error_codes::ERROR_CODES (and so not in docs/openapi.yaml)";
}

/// Whether `code` is in [`ERROR_CODES`].
pub fn is_known(code: &str) -> bool {
    Codes::is_known(code)
}
