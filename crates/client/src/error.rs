//! Client errors.

use fenced_io::envelope::ErrorBody;

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

    /// The cluster's own explanation of a refusal (the `message` of its
    /// `{code, message}` body), if it answered with one.
    pub fn message(&self) -> Option<&str> {
        match self {
            ClientError::Api { body, .. } => Some(&body.message),
            _ => None,
        }
    }

    /// The HTTP status of a refusal, if the cluster answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// One line for a history or a log: `code: message` for a refusal the
    /// cluster explained (e.g. `invalid_argument: ttl 2000ms is outside
    /// 3000ms..=3600000ms`), otherwise the error as displayed.
    pub fn reason(&self) -> String {
        match self {
            ClientError::Api { body, .. } if body.message.is_empty() => body.code.clone(),
            ClientError::Api { body, .. } => format!("{}: {}", body.code, body.message),
            e => e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str, message: &str) -> ClientError {
        ClientError::Api { status: 400, body: Box::new(ErrorBody::new(code, message)) }
    }

    #[test]
    fn a_refusal_keeps_the_servers_reason() {
        let e = api("invalid_argument", "ttl 2000ms is outside 3000ms..=3600000ms");
        assert_eq!(e.code(), Some("invalid_argument"));
        assert_eq!(e.message(), Some("ttl 2000ms is outside 3000ms..=3600000ms"));
        assert_eq!(e.status(), Some(400));
        assert_eq!(e.reason(), "invalid_argument: ttl 2000ms is outside 3000ms..=3600000ms");
        assert!(e.to_string().contains("ttl 2000ms is outside 3000ms..=3600000ms"));
        assert_eq!(api("busy", "").reason(), "busy");
    }

    #[test]
    fn an_error_without_an_answer_has_no_code_but_a_reason() {
        let e = ClientError::Unavailable("connection refused".into());
        assert_eq!((e.code(), e.message(), e.status()), (None, None, None));
        assert!(e.reason().contains("connection refused"));
    }
}
