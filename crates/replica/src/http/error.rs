//! The error every HTTP answer of a replica carries: a status and a
//! `{code, message}` body, the code one of [`error_codes::ERROR_CODES`]. The
//! lower layers' errors become answers here and nowhere else.

use crate::http::error_codes;
use crate::node::ProposeError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request as AxRequest};
use axum::http::StatusCode;
use axum::Json;
use fenced_core::SmError;
use fenced_io::envelope;
use serde::de::DeserializeOwned;

/// An API error of the replica: status plus the one envelope
/// ([`fenced_io::envelope`]), its code checked against [`error_codes::Codes`].
pub type ApiError = envelope::ApiError<error_codes::Codes>;

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

/// The answer to a state machine's refusal. A function, not a `From`: both
/// types are other crates', so the orphan rule leaves the conversion here.
pub(crate) fn sm_error(e: SmError) -> ApiError {
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

/// A draining replica refuses new sessions; the client retries on another.
pub fn draining() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "draining",
        "this replica is draining before a stop; open the session on another replica",
    )
    .retryable()
}
