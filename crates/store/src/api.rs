//! The store's HTTP API (see `docs/store.md`).
//!
//! - `PUT /v1/objects/{key}`: body = value; headers `Fenced-Token`,
//!   `Fenced-Signed-Token`, optional `Fenced-Client` + `Fenced-Request-Id`,
//!   optional `If-Match: <version>`.
//! - `DELETE /v1/objects/{key}`: the same headers.
//! - `GET /v1/objects/{key}`: the value, with `Fenced-Version` and
//!   `Fenced-Token`; `?format=json` for [`ObjectJson`].
//! - `GET /v1/keys/{key}/fence`: [`FenceJson`].
//! - `GET /v1/keys`: the console's listing ([`KeysJson`]): per key its
//!   fences and last refusals, only keys the caller may read.
//! - `GET /v1/refusals`: the recent refusals ([`RefusalsJson`]), only on keys
//!   the caller may read (see [`crate::refusals`]).
//! - `GET /ui`: the console (assets embedded from `crates/store/ui/`, with
//!   the style and helpers it shares with the replica's from
//!   `fenced_io::ui`). The page carries no data and needs no right.
//!
//! Every error is a 4xx/5xx with an [`ErrorBody`](fenced_io::envelope::ErrorBody),
//! its code one of [`error_codes::ERROR_CODES`]; no rejected write changes
//! any state. Keys may contain `/`.
//!
//! Every route states the right it needs in [`ROUTES`], next to its path and
//! method; the router is built from that table and checks the right in a
//! layer before the handler runs ([`enforce`]), so a handler cannot forget
//! it and a route cannot exist without one.

use crate::config::StoreConfig;
use crate::engine::{self, Origin, Rejection, Store, WriteOk, WriteOp, WriteRequest};
use crate::error_codes;
use crate::fence::{AuthError, Verifier};
use crate::refusals::{NewRefusal, Refusal, Refusals};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put, MethodRouter};
use axum::{Extension, Json, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use fenced_core::toolbox::clock::Clock;
use fenced_io::auth::{self, Caller, Op};
use fenced_io::clock::SystemClock;
use fenced_io::envelope;
use fenced_io::http::ConnInfo;
use fenced_io::ui;
pub use fenced_store_client::wire::{
    FenceJson, ObjectJson, H_CLIENT, H_REQUEST_ID, H_SIGNED_TOKEN, H_TOKEN, H_VERSION, H_WARNING, UNFENCED_WARNING,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One key of `GET /v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyJson {
    pub key: String,
    /// The lock that guards the key.
    pub lock: String,
    /// The highest token accepted for this key.
    pub max_token: u64,
    /// The lowest token a write to the key may carry: `max_token`, or the
    /// highest accepted for any key of `lock` if higher.
    pub fence: u64,
    /// Accepted writes so far (deletes included).
    pub version: u64,
    /// The token of the last accepted write.
    pub token: u64,
    /// The last accepted write was a DELETE (the key keeps its fence).
    pub deleted: bool,
    /// The key's last refusals still remembered, newest first.
    pub refused: Vec<Refusal>,
}

/// `GET /v1/keys`: a page of keys in name order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysJson {
    pub keys: Vec<KeyJson>,
    /// The last key of this page when more follow: the next page's `after`.
    #[serde(default)]
    pub next: Option<String>,
    /// Keys matching the prefix that the caller may read, counted up to
    /// [`COUNT_MAX`].
    pub total: u64,
    pub total_exact: bool,
}

/// `GET /v1/refusals`: the recent refusals, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalsJson {
    pub refusals: Vec<Refusal>,
    /// How many refusals the store keeps for this feed
    /// ([`crate::refusals::RECENT_MAX`]; older ones are forgotten).
    pub kept: usize,
}

pub use fenced_io::listing::{COUNT_MAX, PAGE_DEFAULT, PAGE_MAX};

/// An error response of the store: status plus the one envelope
/// ([`fenced_io::envelope`]), its code checked against [`error_codes::Codes`].
pub type ApiError = envelope::ApiError<error_codes::Codes>;

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing(_) => ApiError::new(StatusCode::BAD_REQUEST, "missing_token", e.to_string()),
            AuthError::MalformedNumber(_) => ApiError::bad_request(e.to_string()),
            _ => ApiError::new(StatusCode::FORBIDDEN, "bad_token", e.to_string()),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        let message = r.to_string();
        match r {
            Rejection::Stale { presented, current } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "stale_token", message);
                e.body.presented = Some(presented);
                e.body.current = Some(current);
                e
            }
            Rejection::VersionMismatch { expected, current } => {
                let mut e = ApiError::new(StatusCode::PRECONDITION_FAILED, "version_mismatch", message);
                e.body.expected = Some(expected);
                e.body.current = Some(current);
                e
            }
            Rejection::RequestTooOld { .. } => ApiError::new(StatusCode::GONE, "request_too_old", message),
            Rejection::RequestIdReused { .. } => ApiError::new(StatusCode::CONFLICT, "request_id_reused", message),
            Rejection::TooManyIdentities { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "limit_exceeded", message)
            }
            Rejection::Unavailable(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message),
        }
    }
}

struct App {
    store: Store,
    config: StoreConfig,
    verifier: Arc<Verifier>,
    refusals: Refusals,
}

type AppState = Arc<App>;

/// The store's router. `store` must come from [`Store::open`] with the same
/// `unsafe_no_fencing` as `config`.
/// Refusals are timed by the system clock.
pub fn router(store: Store, config: StoreConfig) -> Router {
    let verifier = Arc::new(Verifier::new(config.cluster_keys.clone()));
    router_with(store, config, verifier, Arc::new(SystemClock::new()))
}

/// Where a route finds the key its right is checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAt {
    /// `/v1/objects/{key}`: the whole path parameter.
    Object,
    /// `/v1/keys/{key}/fence`: the path parameter without `/fence`.
    Fence,
}

/// The right a route needs, checked before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone, authenticated or not (says nothing about keys).
    Nothing,
    /// `op` (read or write) granted on a prefix of the key.
    Prefix(Op, KeyAt),
    /// Any authenticated caller (401 without credentials, with a policy);
    /// the answer holds only the keys on which the caller holds `op`, so a
    /// caller with no grant gets an empty list, not a 403 that would tell
    /// it the keys exist.
    Listed(Op),
}

/// The handlers, so that [`ROUTES`] can name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Health,
    GetObject,
    PutObject,
    DeleteObject,
    GetFence,
    ListKeys,
    ListRefusals,
    Console,
    CommonJs,
    ConsoleJs,
    ConsoleCss,
}

/// One route: method, path, the right it needs, its handler.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub need: Need,
    pub handler: Handler,
}

/// Every route of the store, with the right it needs. The router is built
/// from this table and nothing else.
pub const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/v1/health", need: Need::Nothing, handler: Handler::Health },
    Route {
        method: "GET",
        path: "/v1/objects/{*key}",
        need: Need::Prefix(Op::Read, KeyAt::Object),
        handler: Handler::GetObject,
    },
    Route {
        method: "PUT",
        path: "/v1/objects/{*key}",
        need: Need::Prefix(Op::Write, KeyAt::Object),
        handler: Handler::PutObject,
    },
    Route {
        method: "DELETE",
        path: "/v1/objects/{*key}",
        need: Need::Prefix(Op::Write, KeyAt::Object),
        handler: Handler::DeleteObject,
    },
    // A key's fence says who wrote it last: reading it is reading the key.
    Route {
        method: "GET",
        path: "/v1/keys/{*rest}",
        need: Need::Prefix(Op::Read, KeyAt::Fence),
        handler: Handler::GetFence,
    },
    // The console's listings: a key, its fences and its refusals are read
    // as the key is read.
    Route { method: "GET", path: "/v1/keys", need: Need::Listed(Op::Read), handler: Handler::ListKeys },
    Route { method: "GET", path: "/v1/refusals", need: Need::Listed(Op::Read), handler: Handler::ListRefusals },
    // The console's page and assets carry no data: everything it shows
    // comes through the routes above, with the caller's credentials.
    Route { method: "GET", path: "/ui", need: Need::Nothing, handler: Handler::Console },
    Route { method: "GET", path: "/ui/common.js", need: Need::Nothing, handler: Handler::CommonJs },
    Route { method: "GET", path: "/ui/store.js", need: Need::Nothing, handler: Handler::ConsoleJs },
    Route { method: "GET", path: "/ui/console.css", need: Need::Nothing, handler: Handler::ConsoleCss },
];

/// The console page, built once from the shared shell.
static INDEX_HTML: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    ui::Page {
        title: "fenced store console",
        heading: "fenced store",
        script: "store.js",
        token_hint: "none (no --auth)",
        main: include_str!("../ui/main.html"),
    }
    .render()
});
const STORE_JS: &str = include_str!("../ui/store.js");

fn method_router(h: Handler) -> MethodRouter<AppState> {
    match h {
        Handler::Health => get(health),
        Handler::GetObject => get(get_object),
        Handler::PutObject => put(put_object),
        Handler::DeleteObject => delete(delete_object),
        Handler::GetFence => get(get_fence),
        Handler::ListKeys => get(list_keys),
        Handler::ListRefusals => get(list_refusals),
        Handler::Console => get(|| async { ui::html(INDEX_HTML.as_str()) }),
        Handler::CommonJs => get(|| async { ui::script(ui::COMMON_JS) }),
        Handler::ConsoleJs => get(|| async { ui::script(STORE_JS) }),
        Handler::ConsoleCss => get(|| async { ui::style(ui::CONSOLE_CSS) }),
    }
}

/// [`router`] with a verifier the caller keeps, to replace the cluster keys
/// while serving (see [`crate::server::RunningStore::set_cluster_keys`]),
/// and the clock that times refusals (the simulator's, under simulation).
pub fn router_with(store: Store, config: StoreConfig, verifier: Arc<Verifier>, clock: Arc<dyn Clock>) -> Router {
    let body_max = config.limits.body_len_max.max(config.limits.value_len_max);
    let unfenced = config.unsafe_no_fencing || store.unsafe_no_fencing();
    let app = Arc::new(App { store, config, verifier, refusals: Refusals::new(clock) });
    // Routes of one path share a method router: merge them, each method
    // wrapped in the check of its own right.
    let mut by_path: std::collections::BTreeMap<&str, MethodRouter<AppState>> = std::collections::BTreeMap::new();
    for r in ROUTES {
        let need = r.need;
        let layer = axum::middleware::from_fn_with_state((app.clone(), need), enforce);
        let m = method_router(r.handler).route_layer(layer);
        let merged = match by_path.remove(r.path) {
            Some(prev) => prev.merge(m),
            None => m,
        };
        by_path.insert(r.path, merged);
    }
    let mut r = Router::new();
    for (path, m) in by_path {
        r = r.route(path, m.fallback(method_not_allowed));
    }
    let r = r.fallback(not_found).layer(DefaultBodyLimit::max(body_max)).with_state(app);
    if unfenced {
        r.layer(axum::middleware::map_response(warn_unfenced))
    } else {
        r
    }
}

/// The key a request names, from its path parameter: a JSON 400 (not the
/// framework's plain text) when it is not UTF-8 or not a key.
fn path_key(p: Result<Path<String>, PathRejection>, at: KeyAt) -> Result<String, ApiError> {
    let Path(raw) = p.map_err(|e| {
        ApiError::bad_request(format!("the key in the path is not valid (percent-encoded UTF-8 expected): {e}"))
    })?;
    match at {
        KeyAt::Object => Ok(raw),
        KeyAt::Fence => raw
            .strip_suffix("/fence")
            .map(str::to_string)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "use GET /v1/keys/{key}/fence")),
    }
}

/// Who sent a request, for the refusals the console shows: the
/// authenticated identity, else the peer address.
#[derive(Debug, Clone)]
struct Sender {
    who: String,
    authenticated: bool,
}

impl Sender {
    fn of(caller: Option<&Caller>, conn: Option<&ConnInfo>) -> Sender {
        match caller.and_then(|c| c.identity.clone()) {
            Some(who) => Sender { who, authenticated: true },
            None => Sender { who: conn.map_or_else(|| "unknown".into(), |c| c.peer.clone()), authenticated: false },
        }
    }
}

fn auth_error(e: auth::AuthError) -> ApiError {
    ApiError::new(e.status(), e.code(), e.to_string())
}

impl App {
    /// Remember a refused write or fenced read of `key` for the console
    /// ([`crate::refusals`]): after the decision, never part of it.
    fn record(&self, key: &str, op: &'static str, e: &ApiError, sender: &Sender, h: &HeaderMap) {
        let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
        let client = text(H_CLIENT)
            .filter(|c| !c.is_empty() && c.len() <= self.config.limits.client_len_max)
            .map(str::to_string);
        let presented = e.body.presented.or_else(|| text(H_TOKEN).and_then(|t| t.trim().parse().ok()));
        self.refusals.record(NewRefusal {
            key: key.to_string(),
            lock: self.config.guards.lock_for(key).to_string(),
            op,
            status: e.status.as_u16(),
            code: e.body.code.clone(),
            message: e.body.message.clone(),
            presented,
            current: e.body.current,
            sender: sender.who.clone(),
            authenticated: sender.authenticated,
            client,
        });
    }

    /// `r`, after recording it if it is a refusal.
    fn refused<T>(
        &self,
        key: &str,
        op: &'static str,
        sender: &Sender,
        h: &HeaderMap,
        r: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        if let Err(e) = &r {
            self.record(key, op, e, sender, h);
        }
        r
    }
}

fn write_op_name(m: &axum::http::Method) -> &'static str {
    if m == axum::http::Method::DELETE {
        "delete"
    } else {
        "put"
    }
}

/// The check of a route's [`Need`], before its handler: authenticates the
/// caller (401), checks the grant on the key (403) and hands the handler the
/// [`Caller`], whose identity binds deduplication, and the [`Sender`] its
/// refusals are recorded under. A refused request reaches no handler, so it
/// changes nothing; a refused write is recorded for the console.
async fn enforce(
    State((app, need)): State<(AppState, Need)>,
    conn: Option<Extension<ConnInfo>>,
    path: Result<Path<String>, PathRejection>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let policy = app.config.policy.as_deref();
    let authed = auth::authenticate(policy, req.headers(), conn.as_deref());
    let sender = Sender::of(authed.as_ref().ok(), conn.as_deref());
    let caller = match need {
        Need::Nothing => authed.unwrap_or(Caller { identity: None, key: String::new() }),
        Need::Listed(_) => authed.map_err(auth_error)?,
        Need::Prefix(op, at) => {
            let key = path_key(path, at)?;
            check_key(&app, &key)?;
            let checked = authed
                .and_then(|caller| auth::authorize(policy, &caller, op, &key).map(|()| caller))
                .map_err(auth_error);
            if op == Op::Write {
                app.refused(&key, write_op_name(req.method()), &sender, req.headers(), checked)?
            } else {
                checked?
            }
        }
    };
    req.extensions_mut().insert(caller);
    req.extensions_mut().insert(sender);
    Ok(next.run(req).await)
}

/// Unknown paths get an error body too, not an empty 404.
async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; the API is listed in docs/store.md")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see docs/store.md",
    )
}

async fn warn_unfenced(mut resp: Response) -> Response {
    resp.headers_mut().insert(HeaderName::from_static(H_WARNING), HeaderValue::from_static(UNFENCED_WARNING));
    resp
}

async fn health(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "ok": true,
        "unsafe_no_fencing": app.config.unsafe_no_fencing,
        "trust_unsigned_tokens": app.config.trust_unsigned_tokens,
        "wal_torn_bytes": app.store.torn_bytes(),
    }))
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| ApiError::bad_request(format!("header {name} is not ASCII"))),
    }
}

fn check_key(app: &App, key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > app.config.limits.key_len_max {
        return Err(ApiError::bad_request(format!("key must be 1 to {} bytes", app.config.limits.key_len_max)));
    }
    Ok(())
}

/// Build the write from the request headers; authenticates the token. The
/// caller's right on the key was checked by [`enforce`].
fn write_request(
    app: &App,
    caller: &Caller,
    key: String,
    op: WriteOp,
    h: &HeaderMap,
) -> Result<WriteRequest, ApiError> {
    check_key(app, &key)?;
    let presented = header(h, H_TOKEN)?;
    let token = if app.config.unsafe_no_fencing {
        // Demonstration mode: whatever was presented is recorded, unchecked.
        presented.and_then(|t| t.trim().parse().ok()).unwrap_or(0)
    } else if app.config.trust_unsigned_tokens {
        // Comparison mode: the number takes part in the stale check, but
        // nothing proves the lock service issued it.
        let t = presented.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_token",
                "this store trusts unsigned tokens but still checks them: send Fenced-Token: <u64>",
            )
        })?;
        t.trim().parse().map_err(|_| AuthError::MalformedNumber(t.to_string()))?
    } else {
        app.verifier.authorize(&app.config.guards, &key, presented, header(h, H_SIGNED_TOKEN)?)?
    };
    let if_match = header(h, header::IF_MATCH.as_str())?
        .map(|v| v.trim().trim_matches('"').parse::<u64>())
        .transpose()
        .map_err(|_| ApiError::bad_request("If-Match must be a version number"))?;
    let origin = match (header(h, H_CLIENT)?, header(h, H_REQUEST_ID)?) {
        (None, None) => None,
        (Some(c), Some(id)) if !c.is_empty() && c.len() <= app.config.limits.client_len_max => {
            let request_id = id.trim().parse().map_err(|_| ApiError::bad_request("Fenced-Request-Id must be a u64"))?;
            // Bound to the caller and to this very request: see `crate::dedup`.
            Some(Origin {
                owner: caller.identity.clone().unwrap_or_default(),
                client: c.to_string(),
                request_id,
                fingerprint: engine::fingerprint(&key, &op, token, if_match),
            })
        }
        (Some(_), Some(_)) => {
            let max = app.config.limits.client_len_max;
            return Err(ApiError::bad_request(format!("Fenced-Client must be 1 to {max} bytes")));
        }
        _ => return Err(ApiError::bad_request("Fenced-Client and Fenced-Request-Id must be given together")),
    };
    let lock = app.config.guards.lock_for(&key).to_string();
    Ok(WriteRequest { key, lock, op, token, if_match, origin })
}

fn write_response(ok: WriteOk) -> Response {
    let mut h = HeaderMap::new();
    h.insert(HeaderName::from_static(H_VERSION), HeaderValue::from(ok.version));
    h.insert(HeaderName::from_static(H_TOKEN), HeaderValue::from(ok.token));
    (StatusCode::OK, h, Json(ok)).into_response()
}

async fn put_object(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(sender): Extension<Sender>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = path_key(path, KeyAt::Object)?;
    let r = put_value(&app, &caller, key.clone(), &headers, body).await;
    app.refused(&key, "put", &sender, &headers, r)
}

async fn put_value(
    app: &App,
    caller: &Caller,
    key: String,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.body_text()))?;
    if body.len() > app.config.limits.value_len_max {
        let max = app.config.limits.value_len_max;
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("values are at most {max} bytes"),
        ));
    }
    let req = write_request(app, caller, key, WriteOp::Put(body), headers)?;
    Ok(write_response(app.store.write(req).await?))
}

async fn delete_object(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(sender): Extension<Sender>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = path_key(path, KeyAt::Object)?;
    let r = match write_request(&app, &caller, key.clone(), WriteOp::Delete, &headers) {
        Ok(req) => app.store.write(req).await.map(write_response).map_err(ApiError::from),
        Err(e) => Err(e),
    };
    app.refused(&key, "delete", &sender, &headers, r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetParams {
    #[serde(default)]
    format: Option<String>,
}

fn unavailable(e: std::io::Error) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string())
}

/// A fenced read: with `Fenced-Token` and `Fenced-Signed-Token`, the read
/// is refused (`409 stale_token`) unless the token, of any grant of the
/// key's guarding lock (a permit: of its slot's lock), is at least the
/// highest token accepted for writes there. A shared holder older than the
/// last exclusive writer was granted before that writer, so its hold has
/// ended: it must not read as if it still held (docs/store.md).
fn fenced_read(app: &App, key: &str, h: &HeaderMap) -> Result<(), ApiError> {
    let (presented, signed) = (header(h, H_TOKEN)?, header(h, H_SIGNED_TOKEN)?);
    if (presented.is_none() && signed.is_none()) || app.config.unsafe_no_fencing {
        return Ok(());
    }
    let (token, lock, _) = app.verifier.authorize_read(&app.config.guards, key, presented, signed)?;
    let current = app.store.fence(key, &lock).map_err(unavailable)?;
    if token < current {
        let mut e = ApiError::new(
            StatusCode::CONFLICT,
            "stale_token",
            format!(
                "token {token} is older than {current}, the last token that wrote under lock {lock:?}: this grant \
                 ended before that writer was granted; acquire again"
            ),
        );
        e.body.presented = Some(token);
        e.body.current = Some(current);
        return Err(e);
    }
    Ok(())
}

async fn get_object(
    State(app): State<AppState>,
    Extension(sender): Extension<Sender>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<GetParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = path_key(path, KeyAt::Object)?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    check_key(&app, &key)?;
    app.refused(&key, "read", &sender, &headers, fenced_read(&app, &key, &headers))?;
    let obj = app
        .store
        .get(&key)
        .map_err(unavailable)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no object under key {key:?}")))?;
    match params.format.as_deref() {
        Some("json") => {
            let (value, encoding) = match std::str::from_utf8(&obj.value) {
                Ok(s) => (s.to_string(), "utf8"),
                Err(_) => (B64.encode(&obj.value), "base64"),
            };
            let j = ObjectJson { key, value, encoding: encoding.into(), version: obj.version, token: obj.token };
            Ok(Json(j).into_response())
        }
        None | Some("raw") => {
            let mut h = HeaderMap::new();
            h.insert(HeaderName::from_static(H_VERSION), HeaderValue::from(obj.version));
            h.insert(HeaderName::from_static(H_TOKEN), HeaderValue::from(obj.token));
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            Ok((StatusCode::OK, h, obj.value).into_response())
        }
        Some(f) => Err(ApiError::bad_request(format!("unknown format {f:?}; use json or raw"))),
    }
}

async fn get_fence(
    State(app): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<FenceJson>, ApiError> {
    // `{*key}` must end a route, so `/v1/keys/{key}/fence` is matched by hand.
    let key = path_key(path, KeyAt::Fence)?;
    check_key(&app, &key)?;
    let lock = app.config.guards.lock_for(&key).to_string();
    let max_token = app.store.fence(&key, &lock).map_err(unavailable)?;
    Ok(Json(FenceJson { key, max_token, lock }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only keys starting with this.
    #[serde(default)]
    prefix: String,
    /// Keys after this one (the previous page's `next`).
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefusalsQuery {
    /// Only refusals of keys starting with this.
    #[serde(default)]
    prefix: String,
    limit: Option<usize>,
}

fn page_size(limit: Option<usize>, max: usize) -> Result<usize, ApiError> {
    fenced_io::listing::page_size(limit, max).map_err(ApiError::bad_request)
}

/// May `caller` see `key` in a listing? The right that reading it needs.
fn readable(app: &App, caller: &Caller, key: &str) -> bool {
    auth::authorize(app.config.policy.as_deref(), caller, Op::Read, key).is_ok()
}

/// `GET /v1/keys`: a page of the keys the caller may read, with their
/// fences and last refusals.
async fn list_keys(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<KeysJson>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = page_size(q.limit, PAGE_MAX)?;
    let guards = &app.config.guards;
    let page = app
        .store
        .list(
            &q.prefix,
            q.after.as_deref(),
            limit,
            COUNT_MAX,
            |k| readable(&app, &caller, k),
            |k| guards.lock_for(k).to_string(),
        )
        .map_err(unavailable)?;
    let keys = page
        .keys
        .into_iter()
        .map(|k| KeyJson {
            fence: k.max_token.max(k.lock_max_token),
            refused: app.refusals.of_key(&k.key),
            key: k.key,
            lock: k.lock,
            max_token: k.max_token,
            version: k.version,
            token: k.token,
            deleted: k.deleted,
        })
        .collect();
    Ok(Json(KeysJson { keys, next: page.next, total: page.total, total_exact: page.exact }))
}

/// `GET /v1/refusals`: the recent refusals of keys the caller may read.
async fn list_refusals(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<RefusalsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RefusalsJson>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = page_size(q.limit, crate::refusals::RECENT_MAX)?;
    let refusals = app.refusals.recent(&q.prefix, limit, |k| readable(&app, &caller, k));
    Ok(Json(RefusalsJson { refusals, kept: crate::refusals::RECENT_MAX }))
}
