//! Every route of a replica and the right it needs, in one table: [`ROUTES`].
//!
//! The router is built from this table and nothing else, so a route without
//! a declared right cannot exist, and [`enforce`] applies the right before
//! the route's handler runs (issue 17: admin routes had been left open
//! because each handler was trusted to check its caller). Adding a route is
//! one line in [`ROUTES`]; the table-driven test
//! (`crates/replica/tests/routes.rs`) then tries it with every kind of
//! caller, and fails until the route has an example request there.
//!
//! Without an auth policy (`fenced dev`, the simulator) every right is
//! granted and [`enforce`] looks at nothing, not even the body.

use crate::http::error::ApiError;
use crate::http::limits::{refuse, Authenticated};
use crate::http::locks::{self as api, CLIENT_BODY_MAX, PEER_BODY_MAX};
use crate::http::{admin, console, metrics, peer, watch, HttpState};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use fenced_io::auth::{self, Caller, Op};
use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, Visitor};
use std::sync::Arc;

type App = Arc<HttpState>;

/// What a caller must be to use a route. With an auth policy, every right
/// but [`Right::None`] needs an authenticated identity (else `401`); a
/// missing right is `403`. Peers (replica identities) hold every right but
/// admin-only ones only as forwarders of their clients' requests, which the
/// forwarding replica has already checked; admins hold every right but
/// [`Right::Peer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// Anyone, even without credentials. Only `/v1/ping`, which tells the
    /// replica's id and nothing else (round-trip measurement, health checks).
    None,
    /// Any authenticated identity: the cluster's state (status, members,
    /// peers, public keys, metrics). None of it is a credential; it names
    /// replicas, addresses, indexes and counts. Documented in
    /// docs/security.md, "Who may call what".
    Read,
    /// `op` on the name in the request's field `field` (the JSON body's for
    /// POST, the query's for GET), with `prefix` in front: elections are the
    /// locks named `election:NAME`. A field given twice is refused (400), so
    /// the name checked here is the name the handler uses.
    Prefix { op: Op, field: &'static str, prefix: &'static str },
    /// Any authenticated identity, acting on its own leases: the state
    /// machine refuses a lease owned by another identity (`403 not_owner`)
    /// inside the same log entry, since ownership is replicated state.
    Owner,
    /// Administrators (and replicas forwarding an administrator's request
    /// to the leader).
    Admin,
    /// Replicas of this cluster only: the peer protocol under `/raft/v1/`,
    /// which also passes the peer handshake (`crate::peer::handshake`).
    Peer,
}

/// The HTTP method of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
}

impl Verb {
    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
        }
    }
}

/// One route: its method, path, right and handler.
pub struct Route {
    pub verb: Verb,
    pub path: &'static str,
    pub right: Right,
    handler: fn(MethodFilter) -> MethodRouter<App>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({:?})", self.verb.as_str(), self.path, self.right)
    }
}

const fn route(verb: Verb, path: &'static str, right: Right, handler: fn(MethodFilter) -> MethodRouter<App>) -> Route {
    Route { verb, path, right, handler }
}

const fn prefix(op: Op, field: &'static str) -> Right {
    Right::Prefix { op, field, prefix: "" }
}

const fn election(op: Op) -> Right {
    Right::Prefix { op, field: "election", prefix: api::ELECTION_PREFIX }
}

use Verb::{Get, Post};

/// Every route of a replica. The peer routes' paths start with
/// [`crate::peer::handshake::RAFT_PREFIX`] (a test checks it).
pub const ROUTES: &[Route] = &[
    route(Get, "/v1/ping", Right::None, |m| on(m, admin::ping)),
    route(Post, "/v1/lease/grant", Right::Owner, |m| on(m, api::lease_grant)),
    route(Post, "/v1/lease/keepalive", Right::Owner, |m| on(m, api::lease_keepalive)),
    route(Post, "/v1/lease/revoke", Right::Owner, |m| on(m, api::lease_revoke)),
    route(Post, "/v1/lock/acquire", prefix(Op::Acquire, "lock"), |m| on(m, api::lock_acquire)),
    route(Post, "/v1/lock/release", prefix(Op::Release, "lock"), |m| on(m, api::lock_release)),
    route(Get, "/v1/lock/status", prefix(Op::Watch, "lock"), |m| on(m, api::lock_status)),
    route(Get, "/v1/lock/watch", prefix(Op::Watch, "lock"), |m| on(m, watch::lock_watch)),
    // A semaphore is a name like a lock's: the same rights on it. Setting
    // the count changes who may be granted, so it needs the acquire right.
    route(Post, "/v1/sem/permits", prefix(Op::Acquire, "name"), |m| on(m, api::sem_permits)),
    route(Post, "/v1/sem/acquire", prefix(Op::Acquire, "name"), |m| on(m, api::sem_acquire)),
    route(Post, "/v1/claim", prefix(Op::Acquire, "name"), |m| on(m, api::claim)),
    route(Post, "/v1/claim/release", prefix(Op::Acquire, "name"), |m| on(m, api::claim_release)),
    route(Post, "/v1/election/campaign", election(Op::Acquire), |m| on(m, api::campaign)),
    route(Post, "/v1/election/resign", election(Op::Release), |m| on(m, api::resign)),
    route(Get, "/v1/election/observe", election(Op::Watch), |m| on(m, api::observe)),
    // The console's page and assets carry no data; everything it shows
    // comes through the routes below with their rights (`crate::http::console`).
    route(Get, "/ui", Right::None, |m| on(m, console::index)),
    route(Get, "/ui/common.js", Right::None, |m| on(m, console::common_script)),
    route(Get, "/ui/console.js", Right::None, |m| on(m, console::script)),
    route(Get, "/ui/console.css", Right::None, |m| on(m, console::style)),
    // Listings and the event stream: any authenticated caller, shown only
    // the names it may watch (and refusals only if it is an administrator).
    route(Get, "/v1/locks", Right::Read, |m| on(m, console::list_locks)),
    route(Get, "/v1/claims", Right::Read, |m| on(m, console::list_claims)),
    route(Get, "/v1/events", Right::Read, |m| on(m, console::events)),
    route(Get, "/v1/cluster/status", Right::Read, |m| on(m, admin::cluster_status)),
    route(Get, "/v1/cluster/key", Right::Read, |m| on(m, admin::cluster_key)),
    // Readiness probes carry no credentials; the answer names the leader only.
    route(Get, "/v1/ready", Right::None, |m| on(m, crate::http::ready::ready)),
    route(Get, "/v1/cluster/members", Right::Read, |m| on(m, admin::members)),
    route(Get, "/v1/cluster/peers", Right::Read, |m| on(m, admin::peers_report)),
    route(Get, "/metrics", Right::Read, |m| on(m, metrics::metrics)),
    route(Post, "/v1/cluster/transfer-leader", Right::Admin, |m| on(m, admin::transfer_leader)),
    route(Post, "/v1/cluster/rotate-key", Right::Admin, |m| on(m, admin::rotate_key)),
    route(Post, "/v1/cluster/retire-keys", Right::Admin, |m| on(m, admin::retire_keys)),
    route(Post, "/v1/cluster/members/add", Right::Admin, |m| on(m, admin::add)),
    route(Post, "/v1/cluster/members/remove", Right::Admin, |m| on(m, admin::remove)),
    route(Post, "/v1/cluster/members/replace", Right::Admin, |m| on(m, admin::replace)),
    route(Post, "/v1/cluster/drain", Right::Admin, |m| on(m, admin::drain_handler)),
    // The whole table, signing secrets included (docs/deploy.md, backups).
    route(Get, "/v1/cluster/snapshot", Right::Admin, |m| on(m, admin::save)),
    route(Post, "/raft/v1/append", Right::Peer, |m| on(m, peer::raft_append)),
    route(Post, "/raft/v1/vote", Right::Peer, |m| on(m, peer::raft_vote)),
    route(Post, "/raft/v1/pre-vote", Right::Peer, |m| on(m, peer::raft_pre_vote)),
    route(Post, "/raft/v1/snapshot", Right::Peer, |m| on(m, peer::raft_snapshot)),
    route(Post, "/raft/v1/transfer-leader", Right::Peer, |m| on(m, peer::raft_transfer_leader)),
    route(Post, "/raft/v1/propose", Right::Peer, |m| on(m, peer::raft_propose)),
    route(Post, "/raft/v1/probe", Right::Peer, |m| on(m, peer::raft_probe)),
    route(Post, "/raft/v1/bandwidth", Right::Peer, |m| on(m, peer::raft_bandwidth)),
    route(Post, crate::duties::drain::REMOVED_PATH, Right::Peer, |m| on(m, peer::removed_handler)),
];

/// The whole router of a replica: [`ROUTES`], each behind [`enforce`] with
/// its right, a `405` with an error body for another method, and a `404`
/// for any other path.
pub fn router(app: App) -> Router {
    let mut router = Router::new();
    for r in ROUTES {
        let limit = if r.right == Right::Peer { PEER_BODY_MAX } else { CLIENT_BODY_MAX };
        let mut methods = (r.handler)(r.verb.filter()).route_layer(DefaultBodyLimit::max(limit));
        if r.right == Right::Peer {
            methods = methods.route_layer(axum::middleware::from_fn_with_state(
                app.handshake.clone(),
                crate::peer::handshake::check,
            ));
        }
        let methods = methods
            .route_layer(axum::middleware::from_fn_with_state((app.clone(), r), enforce))
            .fallback(move || async move { method_not_allowed(r) });
        router = router.route(r.path, methods);
    }
    let guard = axum::middleware::from_fn_with_state(app.clone(), crate::http::limits::guard);
    router.fallback(api::not_found).layer(guard).with_state(app)
}

fn method_not_allowed(r: &Route) -> Response {
    let mut resp = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} takes {} only; the API is listed in README.md", r.path, r.verb.as_str()),
    )
    .into_response();
    resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(r.verb.as_str()));
    resp
}

/// Apply `route`'s right to the request before its handler runs, and leave
/// the [`Caller`] for the handler.
pub async fn enforce(State((app, route)): State<(App, &'static Route)>, req: Request, next: Next) -> Response {
    match admit(&app, route, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn admit(app: &HttpState, route: &Route, mut req: Request) -> Result<Request, ApiError> {
    let authenticated = req
        .extensions_mut()
        .remove::<Authenticated>()
        .map(|a| a.0)
        .unwrap_or_else(|| auth::authenticate(app.limiter.policy(), req.headers(), None));
    let policy = app.limiter.policy();
    // The name is read (and a malformed request refused with 400) only for
    // a caller who is who they say: an unauthenticated caller learns 401.
    let name = match route.right {
        Right::Prefix { field, .. } if policy.is_some() && authenticated.is_ok() => {
            let (back, name) = name_of(route.verb, field, req).await?;
            req = back;
            Some(name)
        }
        _ => None,
    };
    let caller = decide(route.right, policy, authenticated, name.as_deref()).map_err(|e| refuse(app, e))?;
    req.extensions_mut().insert(caller);
    Ok(req)
}

/// The guard's decision, apart from the request and the replica: may this
/// caller (the outcome of authenticating it) use a route that needs
/// `right`, and as whom? `name` is the requested name for a prefix right
/// (without the right's own prefix); without one, a prefix right under a
/// policy is refused, never granted on an empty name.
pub(crate) fn decide(
    right: Right,
    policy: Option<&auth::Policy>,
    authenticated: Result<Caller, auth::AuthError>,
    name: Option<&str>,
) -> Result<Caller, auth::AuthError> {
    let caller = match (right, authenticated) {
        (_, Ok(c)) => c,
        (Right::None, Err(_)) => Caller { identity: None, key: String::new() },
        (_, Err(e)) => return Err(e),
    };
    match right {
        Right::None | Right::Read | Right::Owner => Ok(()),
        Right::Admin => auth::authorize_admin(policy, &caller),
        Right::Peer => auth::authorize_peer(policy, &caller),
        // Without a policy everyone may do everything: nothing to read.
        Right::Prefix { .. } if policy.is_none() => Ok(()),
        Right::Prefix { op, prefix, .. } => match name {
            Some(name) => auth::authorize(policy, &caller, op, &format!("{prefix}{name}")),
            None => Err(auth::AuthError::Forbidden {
                identity: caller.identity.clone().unwrap_or_default(),
                op,
                name: prefix.to_string(),
            }),
        },
    }?;
    Ok(caller)
}

/// The name a prefix right is checked on: field `field` of the query (GET)
/// or of the JSON body (POST). Returns the request with its body intact.
async fn name_of(verb: Verb, field: &str, req: Request) -> Result<(Request, String), ApiError> {
    let missing = || ApiError::bad_request(format!("`{field}` (a string) is required; see the API in README.md"));
    match verb {
        Verb::Get => {
            let pairs = Query::<Vec<(String, String)>>::try_from_uri(req.uri())
                .map_err(|e| ApiError::bad_request(e.body_text()))?
                .0;
            let mut named = pairs.into_iter().filter(|(k, _)| k == field).map(|(_, v)| v);
            let name = named.next().ok_or_else(missing)?;
            if named.next().is_some() {
                return Err(ApiError::bad_request(format!("`{field}` is given twice")));
            }
            Ok((req, name))
        }
        Verb::Post => {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, CLIENT_BODY_MAX).await.map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the body exceeds {CLIENT_BODY_MAX} bytes"),
                )
            })?;
            let name = json_field(&bytes, field)
                .map_err(|e| ApiError::bad_request(format!("{e}; see the API in README.md")))?
                .ok_or_else(missing)?;
            Ok((Request::from_parts(parts, Body::from(bytes)), name))
        }
    }
}

/// The string field `field` of the JSON object `body`, refusing the field
/// twice (a JSON value would silently keep the last, the handler's struct
/// refuses it; the two must not see different names).
fn json_field(body: &[u8], field: &str) -> Result<Option<String>, serde_json::Error> {
    struct Seek<'a>(&'a str);
    impl<'de> DeserializeSeed<'de> for Seek<'_> {
        type Value = Option<String>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Seek<'_> {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<String>()? {
                if key != self.0 {
                    map.next_value::<IgnoredAny>()?;
                } else if found.is_some() {
                    return Err(A::Error::custom(format_args!("duplicate field `{key}`")));
                } else {
                    found = Some(map.next_value::<String>()?);
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let found = Seek(field).deserialize(&mut de)?;
    de.end()?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn each_path_is_declared_once_and_peer_routes_live_under_the_peer_prefix() {
        let mut seen = BTreeSet::new();
        for r in ROUTES {
            assert!(seen.insert(r.path), "{} is declared twice; give one entry per path", r.path);
            assert_eq!(
                r.path.starts_with(crate::peer::handshake::RAFT_PREFIX),
                r.right == Right::Peer,
                "{r:?}: peer messages, and only they, live under {}",
                crate::peer::handshake::RAFT_PREFIX
            );
        }
    }

    fn policy() -> auth::Policy {
        let rule = |identity: &str, prefix: &str, allow: &[Op]| auth::Rule {
            identity: identity.into(),
            prefix: prefix.into(),
            allow: allow.iter().copied().collect(),
        };
        auth::Policy {
            peers: ["replica-1".to_string()].into(),
            admins: ["root".to_string()].into(),
            acl: vec![rule("alice", "a/", &[Op::Acquire]), rule("alice", "election:e/", &[Op::Acquire])],
            ..auth::Policy::default()
        }
    }

    fn who(identity: &str) -> Result<Caller, auth::AuthError> {
        Ok(Caller { identity: Some(identity.into()), key: identity.into() })
    }

    #[test]
    fn without_credentials_only_the_open_route_passes_and_as_no_one() {
        let p = policy();
        for e in [auth::AuthError::Missing, auth::AuthError::BadToken] {
            let anon = decide(Right::None, Some(&p), Err(e.clone()), None).expect("open to anyone");
            assert_eq!(anon.identity, None);
            for right in [Right::Read, Right::Owner, Right::Admin, Right::Peer, prefix(Op::Acquire, "lock")] {
                assert_eq!(decide(right, Some(&p), Err(e.clone()), Some("a/x")).err(), Some(e.clone()), "{right:?}");
            }
        }
    }

    #[test]
    fn admin_and_peer_rights_are_held_by_whom_the_policy_names() {
        let p = policy();
        let d = |right, id| decide(right, Some(&p), who(id), None).map(|c| c.identity);
        assert_eq!(d(Right::Admin, "root"), Ok(Some("root".into())));
        assert_eq!(d(Right::Admin, "replica-1"), Ok(Some("replica-1".into())), "a replica forwards an admin's call");
        assert!(matches!(d(Right::Admin, "alice"), Err(auth::AuthError::NotAdmin { .. })));
        assert_eq!(d(Right::Peer, "replica-1"), Ok(Some("replica-1".into())));
        assert!(matches!(d(Right::Peer, "root"), Err(auth::AuthError::NotPeer { .. })), "an admin is no replica");
        assert!(d(Right::Read, "alice").is_ok() && d(Right::Owner, "alice").is_ok());
    }

    #[test]
    fn a_prefix_right_is_checked_on_the_prefixed_name_and_never_on_a_missing_one() {
        let p = policy();
        let lock = prefix(Op::Acquire, "lock");
        assert!(decide(lock, Some(&p), who("alice"), Some("a/x")).is_ok());
        let refused = decide(lock, Some(&p), who("alice"), Some("b/x")).expect_err("outside the grant");
        assert!(matches!(&refused, auth::AuthError::Forbidden { name, .. } if name == "b/x"), "{refused}");
        let elect = election(Op::Acquire);
        assert!(decide(elect, Some(&p), who("alice"), Some("e/1")).is_ok(), "election:e/1 is granted");
        assert!(decide(elect, Some(&p), who("alice"), Some("a/x")).is_err(), "election:a/x is not, though a/x is");
        assert!(decide(lock, Some(&p), who("alice"), None).is_err(), "no name: refused, not granted on \"\"");
        assert!(decide(lock, Some(&p), who("mallory"), Some("a/x")).is_err(), "no grant at all");
        assert!(decide(lock, Some(&p), who("root"), Some("b/x")).is_ok(), "an admin holds every right but the peer's");
    }

    #[test]
    fn without_a_policy_every_right_is_granted_even_without_a_name() {
        for right in [Right::None, Right::Read, Right::Owner, Right::Admin, Right::Peer, prefix(Op::Acquire, "lock")] {
            assert!(decide(right, None, who("anyone"), None).is_ok(), "{right:?}");
        }
    }

    #[test]
    fn the_checked_name_is_the_one_field_of_that_name() {
        assert_eq!(json_field(br#"{"lock":"a/x","lease":1}"#, "lock").ok(), Some(Some("a/x".into())));
        assert_eq!(json_field(br#"{"lease":1,"value":{"lock":"b/x"}}"#, "lock").ok(), Some(None));
        assert!(json_field(br#"{"lock":"a/x","lock":"b/x"}"#, "lock").is_err(), "a duplicate is refused");
        assert!(json_field(br#"{"lock":7}"#, "lock").is_err());
        assert!(json_field(br#"["lock"]"#, "lock").is_err());
        assert!(json_field(br#"{"lock":"a/x"} {}"#, "lock").is_err(), "trailing data is refused");
    }
}
