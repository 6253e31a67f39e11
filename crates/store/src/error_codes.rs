//! Every `code` an error body of the store's API can carry, in one list.
//!
//! `docs/store.md` lists the same set in its table of errors, and
//! `tests/error_codes.rs` fails when the two differ. [`Codes`] hands the
//! list to the shared error type ([`fenced_io::envelope::ApiError::new`]
//! refuses, in debug builds, a code outside it), so a new code cannot reach
//! a client without reaching the documentation first.

use fenced_io::envelope::ErrorCodes;

/// `(code, what it means)`, grouped by status.
pub const ERROR_CODES: &[(&str, &str)] = &[
    // 400, 404, 405, 413: the request itself.
    ("bad_request", "a malformed header, key or body"),
    ("missing_token", "a token header is missing"),
    ("not_found", "no such route, or no such key"),
    ("method_not_allowed", "the route exists under another method"),
    ("too_large", "the value or body exceeds the limit"),
    // 401, 403: who is asking, and with what token.
    ("unauthenticated", "no credentials were presented"),
    ("bad_credentials", "a bearer token the store does not know"),
    ("forbidden", "the identity has no right on this key"),
    ("bad_token", "the signed token does not verify for this key's lock"),
    // 409, 410, 412, 429: the writer's refusals.
    ("stale_token", "the token is below the key's or its lock's fence"),
    ("request_id_reused", "the request id answered a different write"),
    ("request_too_old", "the request id left the deduplication window; the outcome is unknown"),
    ("version_mismatch", "If-Match differs from the key's version"),
    ("limit_exceeded", "the deduplication table holds its maximum of identities"),
    // 503: the outcome is unknown.
    ("unavailable", "the store is stopping or a disk write failed"),
];

/// The store's codes, for [`fenced_io::envelope::ApiError`].
pub struct Codes;

impl ErrorCodes for Codes {
    const CODES: &'static [(&'static str, &'static str)] = ERROR_CODES;
    const CONTRACT: &'static str = "the store's error_codes::ERROR_CODES (and so not in docs/store.md)";
}
