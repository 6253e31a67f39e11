//! Client errors.

use fenced_core::api::ErrorBody;

/// Why a client call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The cluster answered and refused (4xx), or reported a definite error.
    #[error("{}: {} (HTTP {status})", body.code, body.message)]
    Api { status: u16, body: Box<ErrorBody> },
    /// No endpoint gave an answer in time. The request may or may not have
    /// taken effect; retrying with the same client keeps it idempotent.
    #[error("no replica answered: {0}; check that the endpoints are right and a majority is up")]
    Unavailable(String),
    /// An answer that is not what the API promises.
    #[error("unexpected response from {endpoint}: {message}")]
    Protocol { endpoint: String, message: String },
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl ClientError {
    /// The API error code, if the cluster answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { body, .. } => Some(&body.code),
            _ => None,
        }
    }
}
