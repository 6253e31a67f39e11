//! The error every HTTP answer of a replica carries: a status and a
//! `{code, message}` body, the code one of [`error_codes::ERROR_CODES`]. The
//! lower layers' errors become answers here and nowhere else.

use crate::http::error_codes;
use crate::node::ProposeError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request as AxRequest};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as AxResponse};
use axum::Json;
use fenced_core::api::ErrorBody;
use fenced_core::SmError;
use serde::de::DeserializeOwned;

/// An API error: status plus body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    pub(crate) body: ErrorBody,
}

impl ApiError {
    /// `code` must be one of [`error_codes::ERROR_CODES`] (checked in
    /// debug builds, so every test run catches a code the contract lacks).
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        debug_assert!(
            error_codes::is_known(code),
            "error code {code:?} is not in error_codes::ERROR_CODES (and so not in docs/openapi.yaml)"
        );
        ApiError {
            status,
            body: ErrorBody { code: code.into(), message: message.into(), holder: None, token: None, retry: false },
        }
    }

    /// Mark as safe to retry with the same request id.
    pub(crate) fn retryable(mut self) -> Self {
        self.body.retry = true;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// Mark the error as safe to retry (elsewhere).
    pub fn set_retry(&mut self, retry: bool) {
        self.body.retry = retry;
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> AxResponse {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<ProposeError> for ApiError {
    fn from(e: ProposeError) -> Self {
        let status = match e {
            ProposeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut err = ApiError::new(status, e.code(), e.to_string());
        err.body.retry = !matches!(e, ProposeError::Internal(_));
        err
    }
}

impl From<SmError> for ApiError {
    fn from(e: SmError) -> Self {
        let status = match &e {
            SmError::NoSuchLease(_) => StatusCode::NOT_FOUND,
            SmError::NotHolder { .. } => StatusCode::CONFLICT,
            SmError::LimitExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
            SmError::Invalid(_) => StatusCode::BAD_REQUEST,
            SmError::RequestTooOld { .. } => StatusCode::GONE,
            SmError::NoSigningKey => StatusCode::SERVICE_UNAVAILABLE,
            SmError::NotOwner { .. } | SmError::NotClaimOwner { .. } => StatusCode::FORBIDDEN,
            SmError::NoSuchClaim { .. } => StatusCode::NOT_FOUND,
            SmError::ClaimOwnerMismatch { .. } => StatusCode::CONFLICT,
        };
        // Every SmError comes from an applied entry whose response is stored
        // for deduplication: retrying with the same request id would get the
        // same answer, so none is marked retryable here.
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// `Json` that answers malformed bodies in our error format.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: AxRequest, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::BytesRejection(e)) => {
                Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", e.body_text()))
            }
            Err(e) => Err(ApiError::bad_request(format!("{}; see the API in README.md", e.body_text()))),
        }
    }
}

impl ApiError {
    /// A draining replica refuses new sessions; the client retries on another.
    pub fn draining() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "this replica is draining before a stop; open the session on another replica",
        )
        .retryable()
    }
}
