//! The console at `/ui`: a read-only page served from assets compiled into
//! the binary (`crates/replica/ui/`, with the style and script helpers it
//! shares with the store's console from `fenced_io::ui`; vanilla JS and CSS,
//! no build step, no CDN), and the three read routes it needs besides `/v1/cluster/status`:
//!
//! - `GET /v1/locks` and `GET /v1/claims`: pages of this replica's table in
//!   name order, filtered by prefix, showing only the names the caller may
//!   watch (a list that left out nothing would show every name to anyone
//!   with the read right);
//! - `GET /v1/events`: one server-sent-event stream per browser of what this
//!   replica applies and sees (grants, hand-offs, releases, expiries, claims,
//!   key changes, leader changes), and for administrators the refused
//!   requests (they name other callers).
//!
//! The page shell itself carries no data, so it needs no right; every byte
//! of data comes through a route declared in [`crate::http::routes::ROUTES`] with
//! its right. The page sends the bearer token typed into it as
//! `Authorization` (a browser's client certificate works without it).
//!
//! Every answer is this replica's view, which a follower's may trail; the
//! answers say whose view they are.

use crate::http::error::ApiError;
use crate::http::HttpState;
use crate::storage::state_machine::AppliedEntry;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use fenced_core::api::{ClaimEntry, ClaimList, ConsoleEvent, Holder, LockEntry, LockList};
use fenced_core::machine::table::{EndReason, Event};
use fenced_core::LeaseId;
use fenced_io::auth::{self, Caller, Op};
use fenced_io::{listing, ui};
use openraft::async_runtime::WatchReceiver;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

type App = Arc<HttpState>;

/// Messages queued for one browser before its stream falls behind; beyond
/// them, the replica's event rings drop the oldest and the stream says how
/// many it missed.
const STREAM_QUEUE: usize = 64;
/// A comment line this often, so a closed browser is noticed.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The console page, built once from the shared shell.
static INDEX_HTML: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    ui::Page {
        title: "fenced console",
        heading: "fenced",
        script: "console.js",
        token_hint: "none (fenced dev)",
        main: include_str!("../../ui/main.html"),
    }
    .render()
});
const CONSOLE_JS: &str = include_str!("../../ui/console.js");

// The style sheet, the script helpers, the CSP and the asset headers are
// the store console's too (`fenced_io::ui`).
pub(crate) async fn index() -> Response {
    ui::html(INDEX_HTML.as_str())
}

pub(crate) async fn common_script() -> Response {
    ui::script(ui::COMMON_JS)
}

pub(crate) async fn script() -> Response {
    ui::script(CONSOLE_JS)
}

pub(crate) async fn style() -> Response {
    ui::style(ui::CONSOLE_CSS)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only names starting with this.
    #[serde(default)]
    prefix: String,
    /// Names after this one (the previous page's `next`).
    after: Option<String>,
    limit: Option<usize>,
}

fn page_size(limit: Option<usize>) -> Result<usize, ApiError> {
    listing::page_size(limit, listing::PAGE_MAX).map_err(ApiError::bad_request)
}

fn query(q: Result<Query<ListQuery>, QueryRejection>) -> Result<ListQuery, ApiError> {
    q.map(|Query(v)| v).map_err(|e| ApiError::bad_request(e.body_text()))
}

/// May the caller see this name in a listing or the event stream? The
/// same right as reading its status (`/v1/lock/status`).
fn visible(app: &HttpState, caller: &Caller, name: &str) -> bool {
    auth::authorize(app.limiter.policy(), caller, Op::Watch, name).is_ok()
}

/// `GET /v1/locks`: the locks (held or with waiters) the caller may watch.
pub(crate) async fn list_locks(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<LockList>, ApiError> {
    let q = query(q)?;
    let limit = page_size(q.limit)?;
    let after = q.after.as_deref();
    let see = |n: &str| visible(&app, &caller, n);
    let (locks, next, (total, total_exact), ttls, applied) = app.shared.read(|t| {
        let (locks, next) = listing::page(
            t.locks_from(listing::start(&q.prefix, after)),
            |s| s.lock.as_str(),
            &q.prefix,
            after,
            limit,
            see,
        );
        let ttls: Vec<Option<u64>> =
            locks.iter().map(|s| s.holder.as_ref().and_then(|h| t.lease(h.lease)).map(|l| l.ttl_ms)).collect();
        let counted =
            listing::count(t.lock_names_from(&q.prefix).map(String::as_str), &q.prefix, listing::COUNT_MAX, see);
        (locks, next, counted, ttls, t.last_applied())
    });
    let leases: Vec<LeaseId> = locks.iter().map(|s| s.holder.as_ref().map_or(LeaseId(0), |h| h.lease)).collect();
    let left = app.shared.time_left(&leases, app.seams.clock.now());
    let locks = locks
        .into_iter()
        .zip(ttls)
        .zip(left)
        .map(|((s, ttl_ms), left)| LockEntry {
            lock: s.lock,
            issued_at_ms: s.holder.as_ref().map(|h| h.issued_at_ms),
            lease_left_ms: s.holder.as_ref().and(left).map(|d| d.as_millis() as u64),
            holder: s.holder.as_ref().map(Holder::from),
            ttl_ms,
            waiters: s.waiters.iter().map(|l| l.0).collect(),
        })
        .collect();
    Ok(Json(LockList { replica: app.config.id, applied, locks, next, total, total_exact }))
}

/// `GET /v1/claims`: the claims on names the caller may watch.
pub(crate) async fn list_claims(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ClaimList>, ApiError> {
    let q = query(q)?;
    let limit = page_size(q.limit)?;
    let after = q.after.as_deref();
    let see = |n: &str| visible(&app, &caller, n);
    let list = app.shared.read(|t| {
        let (claims, next) = listing::page(
            t.claims_from(listing::start(&q.prefix, after)),
            |(n, _)| n.as_str(),
            &q.prefix,
            after,
            limit,
            see,
        );
        let (total, total_exact) =
            listing::count(t.claims_from(&q.prefix).map(|(n, _)| n.as_str()), &q.prefix, listing::COUNT_MAX, see);
        let claims = claims
            .into_iter()
            .map(|(name, c)| ClaimEntry {
                name: name.clone(),
                token: c.token.0,
                owner: c.owner.clone(),
                lease: c.lease.map(|l| l.0),
            })
            .collect();
        ClaimList { replica: app.config.id, applied: t.last_applied(), claims, next, total, total_exact }
    });
    Ok(Json(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only lock and claim events on names starting with this.
    #[serde(default)]
    prefix: String,
}

fn sse(ev: &ConsoleEvent) -> Bytes {
    let data = serde_json::to_string(ev).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!("event: {}\ndata: {data}\n\n", ev.kind))
}

/// The console events one applied entry makes, as `caller` may see them.
fn entry_events(replica: u64, at_ms: u64, entry: &AppliedEntry, keep: &dyn Fn(&str) -> bool) -> Vec<ConsoleEvent> {
    let base =
        |kind: &str| ConsoleEvent { kind: kind.into(), replica, at_ms, index: Some(entry.index), ..Default::default() };
    let mut out = Vec::new();
    match entry.command {
        "rotate_key" => out.push(base("key_rotated")),
        "retire_keys" => out.push(base("keys_retired")),
        "set_key" => out.push(base("key_installed")),
        _ => {}
    }
    for (i, ev) in entry.events.iter().enumerate() {
        let (kind, lock, token, lease) = match ev {
            Event::Granted { lock, token, lease } => {
                // A grant to a waiter: by a Handoff entry, or in the entry
                // that freed the lock.
                let freed_here =
                    entry.events[..i].iter().any(|e| matches!(e, Event::Freed { lock: l, .. } if l == lock));
                let kind = if entry.command == "handoff" || freed_here { "handoff" } else { "granted" };
                (kind, lock, token.0, Some(lease.0))
            }
            Event::Freed { lock, token, lease, reason } => {
                let kind = match reason {
                    EndReason::Released => "released",
                    EndReason::Expired => "expired",
                    EndReason::Revoked => "revoked",
                };
                (kind, lock, token.0, Some(lease.0))
            }
            Event::Claimed { name, token } => ("claimed", name, token.0, None),
            _ => continue,
        };
        if keep(lock) {
            out.push(ConsoleEvent { lock: Some(lock.clone()), token: Some(token), lease, ..base(kind) });
        }
    }
    out
}

/// `GET /v1/events`: this replica's events, live, as server-sent events.
/// Bounded twice: [`crate::http::limits::CONSOLE_STREAMS_MAX`] streams per
/// replica (and an authenticated caller's streams count against its
/// watches), and each stream reads the replica's event rings, which drop
/// the oldest for a reader that falls behind; the reader is then sent a
/// `missed` event with the count.
pub(crate) async fn events(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = q.map(|Query(v)| v).map_err(|e| ApiError::bad_request(e.body_text()))?;
    let slot = app.limiter.watch_slot(&caller)?;
    let permit = app.limiter.console_streams.clone().try_acquire_owned().map_err(|_| {
        let message = format!(
            "{} console streams are open on this replica; close a console tab or use another replica",
            crate::http::limits::CONSOLE_STREAMS_MAX
        );
        app.limiter.report(StatusCode::TOO_MANY_REQUESTS, "limit_exceeded", message.clone());
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "limit_exceeded", message)
    })?;
    let admin = auth::authorize_admin(app.limiter.policy(), &caller).is_ok();
    // Subscribe before answering, so nothing between is missed.
    let mut applied = app.shared.subscribe();
    let mut refusals = app.limiter.refusals.subscribe();
    let mut metrics = app.raft.metrics();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(STREAM_QUEUE);
    let app2 = app.clone();
    tokio::spawn(async move {
        let app = app2;
        let _held = (slot, permit);
        let keep = |name: &str| name.starts_with(&q.prefix) && visible(&app, &caller, name);
        let now = |kind: &str| ConsoleEvent {
            kind: kind.into(),
            replica: app.config.id,
            at_ms: app.seams.clock.wall_ms(),
            ..Default::default()
        };
        let view = |m: &openraft::RaftMetrics<crate::storage::types::TypeConfig>| {
            (m.current_leader, m.current_term, m.state.is_leader())
        };
        let mut last = view(&metrics.borrow_watched());
        let hello = ConsoleEvent {
            leader: last.0,
            term: Some(last.1),
            index: Some(app.shared.applied_index()),
            ..now("hello")
        };
        if tx.send(sse(&hello)).await.is_err() {
            return;
        }
        loop {
            let out: Vec<ConsoleEvent> = tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(KEEPALIVE) => {
                    if tx.send(Bytes::from_static(b": keepalive\n\n")).await.is_err() { return; }
                    continue;
                }
                e = applied.recv() => match e {
                    Ok(entry) => entry_events(app.config.id, app.seams.clock.wall_ms(), &entry, &keep),
                    Err(RecvError::Lagged(n)) => vec![ConsoleEvent { count: Some(n), ..now("missed") }],
                    Err(RecvError::Closed) => return,
                },
                r = refusals.recv() => match r {
                    Ok(r) if admin => vec![ConsoleEvent {
                        status: Some(r.status),
                        code: Some(r.code.into()),
                        message: Some(r.message),
                        ..now("refused")
                    }],
                    Ok(_) => continue,
                    // Non-administrators are not shown refusals, nor their count.
                    Err(RecvError::Lagged(n)) if admin => vec![ConsoleEvent { count: Some(n), ..now("missed") }],
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                },
                changed = metrics.changed() => {
                    if changed.is_err() { return; }
                    let v = view(&metrics.borrow_watched());
                    let mut out = Vec::new();
                    if last.2 && !v.2 {
                        out.push(ConsoleEvent { leader: v.0, term: Some(v.1), ..now("step_down") });
                    }
                    if (v.0, v.1) != (last.0, last.1) {
                        out.push(ConsoleEvent { leader: v.0, term: Some(v.1), ..now("leader") });
                    }
                    last = v;
                    out
                }
            };
            for ev in out {
                if tx.send(sse(&ev)).await.is_err() {
                    return;
                }
            }
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx)) });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_to_a_waiter_is_a_hand_off_and_hidden_names_stay_hidden() {
        use fenced_core::{LeaseId, Token};
        let freed = Event::Freed { lock: "a".into(), token: Token(5), lease: LeaseId(1), reason: EndReason::Expired };
        let granted = Event::Granted { lock: "a".into(), token: Token(9), lease: LeaseId(2) };
        let other = Event::Granted { lock: "secret".into(), token: Token(9), lease: LeaseId(3) };
        let entry = AppliedEntry { index: 9, events: vec![freed, granted.clone(), other], command: "expire" };
        let kinds = |e: &AppliedEntry| -> Vec<(String, Option<String>)> {
            entry_events(1, 0, e, &|n| n != "secret").into_iter().map(|c| (c.kind, c.lock)).collect()
        };
        assert_eq!(
            kinds(&entry),
            vec![("expired".into(), Some("a".into())), ("handoff".into(), Some("a".into()))],
            "the waiter's grant in the freeing entry is a hand-off; `secret` is not shown"
        );
        let handoff = AppliedEntry { index: 10, events: vec![granted.clone()], command: "handoff" };
        assert_eq!(kinds(&handoff), vec![("handoff".into(), Some("a".into()))]);
        let plain = AppliedEntry { index: 11, events: vec![granted], command: "acquire" };
        assert_eq!(kinds(&plain), vec![("granted".into(), Some("a".into()))]);
        let rotated = AppliedEntry { index: 12, events: vec![], command: "rotate_key" };
        assert_eq!(kinds(&rotated), vec![("key_rotated".into(), None)]);
    }
}
