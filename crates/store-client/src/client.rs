//! A typed client for the store's HTTP API. The lock client's `Guard::put`
//! builds on it: it attaches both tokens and maps 409/403 to typed errors.

use crate::wire::{FenceJson, Object, WriteOk, H_CLIENT, H_REQUEST_ID, H_SIGNED_TOKEN, H_TOKEN, H_VERSION, H_WARNING};
use bytes::Bytes;
use fenced_io::envelope::ErrorBody;
use fenced_io::http::{HttpClient, HttpError, HttpResponse};
use hyper::http::{header, HeaderMap, Method, Request, StatusCode};
use std::time::Duration;

/// Why a store request failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stale fencing token {presented}: the store has accepted token {current} for this key")]
    StaleToken { presented: u64, current: u64 },
    #[error("token refused: {message}")]
    BadToken { message: String },
    #[error("missing token: {message}")]
    MissingToken { message: String },
    #[error("version mismatch: expected {expected}, current {current}")]
    VersionMismatch { expected: u64, current: u64 },
    #[error("request id too old to deduplicate; the write's outcome is unknown: {message}")]
    RequestTooOld { message: String },
    /// This client's request id was already used for a different write;
    /// nothing was applied.
    #[error("request id reused for a different write: {message}")]
    RequestIdReused { message: String },
    /// The store answered 200, but for another write than the one sent (a
    /// deduplicated answer that is not ours): treat the outcome as unknown.
    #[error("the store's answer is for another write: {0}")]
    WrongAnswer(String),
    /// No answer: the write may or may not have been applied.
    #[error("store unreachable: {0}")]
    Unreachable(#[from] HttpError),
    /// The store answered 503: the write may or may not have been applied.
    #[error("store unavailable: {message}")]
    Unavailable { message: String },
    #[error("store answered {status} {code}: {message}")]
    Http { status: u16, code: String, message: String },
    #[error("malformed store response: {0}")]
    BadResponse(String),
    /// The client was set up wrongly; nothing was sent.
    #[error("invalid client setting: {0}")]
    Invalid(String),
}

impl StoreError {
    /// The stable code: `stale_token`, `bad_token`, ... (`unreachable` when
    /// there was no answer).
    pub fn code(&self) -> &str {
        match self {
            StoreError::StaleToken { .. } => "stale_token",
            StoreError::BadToken { .. } => "bad_token",
            StoreError::MissingToken { .. } => "missing_token",
            StoreError::VersionMismatch { .. } => "version_mismatch",
            StoreError::RequestTooOld { .. } => "request_too_old",
            StoreError::RequestIdReused { .. } => "request_id_reused",
            StoreError::WrongAnswer(_) => "wrong_answer",
            StoreError::Unreachable(_) => "unreachable",
            StoreError::Unavailable { .. } => "unavailable",
            StoreError::Http { code, .. } => code,
            StoreError::BadResponse(_) => "bad_response",
            StoreError::Invalid(_) => "invalid_argument",
        }
    }

    /// True if the store refused the write (it certainly did not apply it).
    pub fn is_rejection(&self) -> bool {
        !matches!(
            self,
            StoreError::Unreachable(_)
                | StoreError::Unavailable { .. }
                | StoreError::RequestTooOld { .. }
                | StoreError::WrongAnswer(_)
        )
    }
}

/// The identity of a write for deduplication: retry with the same pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idem {
    pub client: String,
    pub request_id: u64,
}

/// The proof a writer presents: the fencing token and its signed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub token: u64,
    pub signed: String,
}

/// An accepted write, with whether the store said it is unfenced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub ok: WriteOk,
    /// `Fenced-Warning: unfenced-store` was set.
    pub unfenced: bool,
}

/// A client for one store.
#[derive(Clone)]
pub struct StoreClient {
    http: HttpClient,
    addr: String,
    timeout: Duration,
}

/// Percent-encode a key for a URL path; `/` is kept, as the API allows it.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn error_from(resp: &HttpResponse) -> StoreError {
    let Ok(b) = serde_json::from_slice::<ErrorBody>(&resp.body) else {
        let text = String::from_utf8_lossy(&resp.body).chars().take(200).collect();
        return StoreError::Http { status: resp.status.as_u16(), code: "unknown".into(), message: text };
    };
    match (b.code.as_str(), b.presented, b.current, b.expected) {
        ("stale_token", Some(presented), Some(current), _) => StoreError::StaleToken { presented, current },
        ("bad_token", ..) => StoreError::BadToken { message: b.message },
        ("missing_token", ..) => StoreError::MissingToken { message: b.message },
        ("version_mismatch", _, Some(current), Some(expected)) => StoreError::VersionMismatch { expected, current },
        ("request_too_old", ..) => StoreError::RequestTooOld { message: b.message },
        ("request_id_reused", ..) => StoreError::RequestIdReused { message: b.message },
        ("unavailable", ..) => StoreError::Unavailable { message: b.message },
        _ => StoreError::Http { status: resp.status.as_u16(), code: b.code, message: b.message },
    }
}

/// Is `ok` the answer to the write we sent (`key`, delete or put, `token`)?
/// A store answers a retry with the first answer, so an answer for another
/// key or token means that answer was not ours; the caller must not take it
/// as success.
fn check_answer(ok: &WriteOk, key: &str, deleting: bool, token: Option<u64>, unfenced: bool) -> Result<(), StoreError> {
    if ok.key != key {
        return Err(StoreError::WrongAnswer(format!("wrote key {key:?}, answer is for key {:?}", ok.key)));
    }
    if ok.deleted != deleting {
        let (sent, got) = if deleting { ("a delete", "a put") } else { ("a put", "a delete") };
        return Err(StoreError::WrongAnswer(format!("sent {sent} of {key:?}, answer is for {got}")));
    }
    // An unfenced store records whatever number it got (0 without one), so
    // only a fenced store's token must be the one sent.
    match token {
        Some(t) if !unfenced && ok.token != t => {
            Err(StoreError::WrongAnswer(format!("wrote {key:?} with token {t}, answer is for token {}", ok.token)))
        }
        _ => Ok(()),
    }
}

impl StoreClient {
    /// A client for the store at `addr` (`host:port`), with a 10 s timeout.
    pub fn new(http: HttpClient, addr: impl Into<String>) -> Self {
        StoreClient { http, addr: addr.into(), timeout: Duration::from_secs(10) }
    }

    /// Send `token` as `Authorization: Bearer <token>` with every request,
    /// for a store run with an auth policy (`fenced store serve --auth`).
    /// Over TLS, give `new` an [`HttpClient`] on a `fenced_io::tls`
    /// transport instead (or as well): a client certificate identifies the
    /// caller too.
    pub fn with_bearer_token(mut self, token: &str) -> Result<Self, StoreError> {
        let v = fenced_io::auth::bearer_header(token)
            .ok_or_else(|| StoreError::Invalid("the bearer token must be printable ASCII".into()))?;
        self.http = self.http.with_header(header::AUTHORIZATION, v);
        Ok(self)
    }

    /// Change the per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn send(&self, req: Request<Bytes>) -> Result<HttpResponse, StoreError> {
        Ok(self.http.send(&self.addr, req, self.timeout).await?)
    }

    /// Write `value` under `key` with the fencing token `token` and its
    /// signed form `signed`.
    pub async fn put(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        token: u64,
        signed: &str,
        idem: Option<&Idem>,
    ) -> Result<WriteOk, StoreError> {
        let fence = Fence { token, signed: signed.into() };
        Ok(self.write(key, Some(value.into()), Some(&fence), idem, None).await?.ok)
    }

    /// Compare-and-set: write only if the live version is `if_match` (0: absent).
    pub async fn put_if(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        fence: &Fence,
        idem: Option<&Idem>,
        if_match: u64,
    ) -> Result<WriteOk, StoreError> {
        Ok(self.write(key, Some(value.into()), Some(fence), idem, Some(if_match)).await?.ok)
    }

    /// Delete `key`; the store keeps its `max_token`.
    pub async fn delete(&self, key: &str, fence: &Fence, idem: Option<&Idem>) -> Result<WriteOk, StoreError> {
        Ok(self.write(key, None, Some(fence), idem, None).await?.ok)
    }

    /// The general write: `value` `None` deletes; `fence` `None` sends no
    /// token headers (only an unfenced store accepts that).
    pub async fn write(
        &self,
        key: &str,
        value: Option<Bytes>,
        fence: Option<&Fence>,
        idem: Option<&Idem>,
        if_match: Option<u64>,
    ) -> Result<Written, StoreError> {
        let deleting = value.is_none();
        let method = if deleting { Method::DELETE } else { Method::PUT };
        let mut b = Request::builder().method(method).uri(format!("/v1/objects/{}", encode_key(key)));
        if let Some(f) = fence {
            b = b.header(H_TOKEN, f.token);
            if !f.signed.is_empty() {
                b = b.header(H_SIGNED_TOKEN, f.signed.as_str());
            }
        }
        if let Some(i) = idem {
            b = b.header(H_CLIENT, i.client.as_str()).header(H_REQUEST_ID, i.request_id);
        }
        if let Some(v) = if_match {
            b = b.header(header::IF_MATCH, v);
        }
        let req =
            b.body(value.unwrap_or_default()).map_err(|e| StoreError::BadResponse(format!("bad request: {e}")))?;
        let resp = self.send(req).await?;
        if resp.status != StatusCode::OK {
            return Err(error_from(&resp));
        }
        let ok: WriteOk = serde_json::from_slice(&resp.body).map_err(|e| StoreError::BadResponse(e.to_string()))?;
        let unfenced = resp.headers.contains_key(H_WARNING);
        check_answer(&ok, key, deleting, fence.map(|f| f.token), unfenced)?;
        Ok(Written { ok, unfenced })
    }

    /// The object under `key`, or `None`.
    pub async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        self.get_fenced(key, None).await
    }

    /// A fenced read: the object under `key`, or `None`, if `fence` (a
    /// grant of any kind of the key's guarding lock) is not older than the
    /// last token that wrote under that lock; `409 stale_token` otherwise
    /// (docs/store.md, "Fenced reads"). `None` reads unfenced, as [`get`](Self::get).
    pub async fn get_fenced(&self, key: &str, fence: Option<&Fence>) -> Result<Option<Object>, StoreError> {
        let mut b = Request::get(format!("/v1/objects/{}", encode_key(key)));
        if let Some(f) = fence {
            b = b.header(H_TOKEN, f.token).header(H_SIGNED_TOKEN, f.signed.as_str());
        }
        let req = b.body(Bytes::new()).map_err(|e| StoreError::BadResponse(format!("bad request: {e}")))?;
        let resp = self.send(req).await?;
        match resp.status {
            StatusCode::OK => {
                let (Some(version), Some(token)) =
                    (header_u64(&resp.headers, H_VERSION), header_u64(&resp.headers, H_TOKEN))
                else {
                    return Err(StoreError::BadResponse("missing Fenced-Version or Fenced-Token".into()));
                };
                Ok(Some(Object { value: resp.body, version, token }))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(error_from(&resp)),
        }
    }

    /// The highest token the store has accepted for `key`.
    pub async fn max_token(&self, key: &str) -> Result<u64, StoreError> {
        let req = Request::get(format!("/v1/keys/{}/fence", encode_key(key)))
            .body(Bytes::new())
            .map_err(|e| StoreError::BadResponse(format!("bad request: {e}")))?;
        let resp = self.send(req).await?;
        if resp.status != StatusCode::OK {
            return Err(error_from(&resp));
        }
        let f: FenceJson = serde_json::from_slice(&resp.body).map_err(|e| StoreError::BadResponse(e.to_string()))?;
        Ok(f.max_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_for_another_write_is_refused() {
        let ok = WriteOk { key: "bob/x".into(), version: 1, token: 14, deleted: false };
        assert!(check_answer(&ok, "bob/x", false, Some(14), false).is_ok());
        for (key, deleting, token) in [("svc/config", false, 14), ("bob/x", true, 14), ("bob/x", false, 29)] {
            let e = check_answer(&ok, key, deleting, Some(token), false).expect_err("not our answer");
            assert_eq!(e.code(), "wrong_answer");
            assert!(!e.is_rejection(), "the outcome of our write is unknown, not refused");
        }
        assert!(check_answer(&ok, "bob/x", false, Some(3), true).is_ok(), "an unfenced store records any number");
    }

    #[test]
    fn keys_are_percent_encoded_but_slashes_kept() {
        assert_eq!(encode_key("orders/1"), "orders/1");
        assert_eq!(encode_key("a b?c"), "a%20b%3Fc");
    }
}
