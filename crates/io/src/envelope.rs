//! The one error envelope of fenced's HTTP APIs, the replica's and the
//! store's: every refusal is a status and an [`ErrorBody`], and a client
//! parses both services' errors with the same type.
//!
//! It lives here because this is the lowest crate that every server and
//! every client of fenced shares (`fenced-core` must stay free of HTTP, and
//! the store's client does not depend on the core directly).
//!
//! A service names its codes once, in a type implementing [`ErrorCodes`];
//! [`ApiError::new`] refuses, in debug builds, a code outside that list, so
//! a new code cannot reach a client without reaching the service's contract
//! (`docs/openapi.yaml` for the replica, `docs/store.md` for the store)
//! first. Each service keeps only its list and its conversions from its own
//! domain errors.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::marker::PhantomData;

/// The body of every error response.
///
/// `code` and `message` are always there, and so is `retry`; each detail
/// field appears only on the codes that carry it. The field order is the
/// order both services wrote before they shared this type, so a replica's
/// body is byte for byte what it was, and a store's differs only by the
/// `retry` at its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable and machine-readable (`busy`, `stale_token`, ...): one of the
    /// answering service's [`ErrorCodes::CODES`].
    pub code: String,
    /// What happened and what to do next.
    pub message: String,
    /// Replica, `busy`: the holding lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<u64>,
    /// Replica, `busy`: the holder's token number (enough to compare, useless
    /// to write with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<u64>,
    /// Store, `stale_token`: the token presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presented: Option<u64>,
    /// Store, `stale_token`: the fence (the highest token accepted for the key
    /// or its lock); `version_mismatch`: the live version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    /// Store, `version_mismatch`: the version the request expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<u64>,
    /// True if retrying the same request (same request id) may succeed.
    /// Absent means false, so bodies written before the store sent it parse.
    #[serde(default)]
    pub retry: bool,
}

impl ErrorBody {
    /// A body with no details, not retryable.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            code: code.into(),
            message: message.into(),
            holder: None,
            token: None,
            presented: None,
            current: None,
            expected: None,
            retry: false,
        }
    }
}

/// The codes one service's errors may carry: its contract with clients.
pub trait ErrorCodes {
    /// `(code, what it means)`, every code the service can answer.
    const CODES: &'static [(&'static str, &'static str)];
    /// Where the list and the contract live, named when a code is missing.
    const CONTRACT: &'static str;

    /// Whether `code` is in [`Self::CODES`].
    fn is_known(code: &str) -> bool {
        Self::CODES.iter().any(|(c, _)| *c == code)
    }
}

/// An HTTP error of the service whose codes are `C`: a status and an
/// [`ErrorBody`]. Built only through [`ApiError::new`], which checks the code.
/// The body is boxed: handlers return `Result<_, ApiError>` on every path,
/// and the body with all its details would make every such result large.
pub struct ApiError<C> {
    pub status: StatusCode,
    pub body: Box<ErrorBody>,
    codes: PhantomData<fn() -> C>,
}

impl<C: ErrorCodes> ApiError<C> {
    /// `code` must be one of `C::CODES` (checked in debug builds, so every
    /// test run catches a code the contract lacks).
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        debug_assert!(C::is_known(code), "error code {code:?} is not in {}", C::CONTRACT);
        ApiError { status, body: Box::new(ErrorBody::new(code, message)), codes: PhantomData }
    }

    /// `400 bad_request`: the request is not what the route takes.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// Mark as safe to retry with the same request id.
    pub fn retryable(mut self) -> Self {
        self.body.retry = true;
        self
    }
}

impl<C> fmt::Debug for ApiError<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError").field("status", &self.status).field("body", &self.body).finish()
    }
}

impl<C> IntoResponse for ApiError<C> {
    fn into_response(self) -> Response {
        (self.status, Json(*self.body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Two;
    impl ErrorCodes for Two {
        const CODES: &'static [(&'static str, &'static str)] = &[("bad_request", "x"), ("busy", "y")];
        const CONTRACT: &'static str = "the test's list";
    }

    #[test]
    fn body_keeps_each_services_wire() {
        let mut replica = ErrorBody::new("busy", "m");
        replica.holder = Some(1);
        replica.token = Some(2);
        assert_eq!(
            serde_json::to_string(&replica).expect("encodes"),
            r#"{"code":"busy","message":"m","holder":1,"token":2,"retry":false}"#
        );
        let mut store = ErrorBody::new("stale_token", "m");
        store.presented = Some(3);
        store.current = Some(4);
        assert_eq!(
            serde_json::to_string(&store).expect("encodes"),
            r#"{"code":"stale_token","message":"m","presented":3,"current":4,"retry":false}"#
        );
        // A store's body from before `retry` was sent still parses.
        let old: ErrorBody =
            serde_json::from_str(r#"{"code":"version_mismatch","message":"m","expected":1,"current":2}"#)
                .expect("parses");
        assert_eq!((old.expected, old.current, old.retry), (Some(1), Some(2), false));
    }

    #[test]
    fn the_connection_limit_refusal_is_an_envelope() {
        let b: ErrorBody = serde_json::from_str(crate::http::TOO_MANY_CONNECTIONS).expect("parses");
        assert_eq!((b.code.as_str(), b.retry), ("too_many_connections", true));
    }

    #[test]
    fn known_codes_pass_and_retry_is_marked() {
        let e = ApiError::<Two>::bad_request("no").retryable();
        assert_eq!((e.status, e.body.code.as_str(), e.body.retry), (StatusCode::BAD_REQUEST, "bad_request", true));
        assert!(Two::is_known("busy") && !Two::is_known("bus"));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "not in the test's list")]
    fn an_unknown_code_is_refused_in_debug_builds() {
        let _ = ApiError::<Two>::new(StatusCode::CONFLICT, "made_up", "x");
    }
}
