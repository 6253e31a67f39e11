//! HTTP/1.1 over any [`Transport`]: a server loop for an axum `Router`, and a
//! small pooled client with a deadline on every request.
//!
//! Every request has a timeout, and a connection that timed out is dropped,
//! never reused: a reply that arrives late must not be read as the answer to
//! the next request (and the simulator's TCP never retransmits).

use crate::transport::{BoxConn, Listener, Transport};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

/// The pause after a failed accept (out of file descriptors, say), so a
/// persistent failure does not spin.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(10);

/// How long a refused connection is given to read its 503; a client that
/// does not read it is not waited for.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The largest response body the client reads (snapshots included).
pub const RESPONSE_BODY_MAX: usize = 256 << 20;
/// Idle connections kept per address.
const IDLE_PER_ADDR_MAX: usize = 32;

/// Who is on the other end of a connection: inserted into every request's
/// extensions by [`serve`], for authentication and per-client limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// The peer's address (`host:port`).
    pub peer: String,
    /// The identity proved by the transport (a TLS client certificate).
    pub identity: Option<String>,
}

/// Bounds of the server loop.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Most client connections served at once. One more is answered `503`
    /// with code `too_many_connections` and closed, and counted in `refused`.
    pub max_connections: usize,
    /// Counts connections refused for being over their cap.
    pub refused: Arc<AtomicU64>,
    /// Identities (proved by the transport: a TLS client certificate) whose
    /// connections count against `max_peer_connections` instead of
    /// `max_connections`, so that clients filling their cap cannot cut the
    /// replicas off from each other. A connection without a proved identity
    /// is a client's: on a plaintext transport nothing tells a peer apart at
    /// accept time, so there both share `max_connections`.
    pub peers: Arc<BTreeSet<String>>,
    /// Most connections from `peers` served at once.
    pub max_peer_connections: usize,
    /// How long a connection may take to send a request's head, counted from
    /// when it starts waiting for it; `None` never closes. hyper starts this
    /// timer as soon as a connection waits for its next request, so it is
    /// also the idle timeout of kept-alive connections: a connection that
    /// sends no request for this long is closed. It never cuts a request in
    /// progress (a long acquire wait, a watch stream). The timer is tokio's,
    /// so the simulator's paused clock drives it.
    pub header_read_timeout: Option<Duration>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_connections: CONNECTIONS_MAX,
            refused: Arc::default(),
            peers: Arc::default(),
            max_peer_connections: PEER_CONNECTIONS_MAX,
            header_read_timeout: Some(HEADER_READ_TIMEOUT),
        }
    }
}

/// Default of [`ServeOptions::max_connections`].
pub const CONNECTIONS_MAX: usize = 4096;
/// Default of [`ServeOptions::max_peer_connections`]: a replica opens a few
/// connections to each peer (appends, votes, snapshots, probes, forwarded
/// proposals), and clusters have a handful of replicas.
pub const PEER_CONNECTIONS_MAX: usize = 256;
/// Default of [`ServeOptions::header_read_timeout`]: long enough that a
/// client's pooled connection between two keepalives (a third of a lease's
/// TTL, at most 20 s for a 60 s TTL) is kept, short enough that a slow or
/// silent connection gives its slot back within a minute. Also longer than
/// the default simulated run (30 s), so simulated histories do not change.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Serve `router` on `listener` until `shutdown` becomes true. Connections
/// are dropped at shutdown.
pub async fn serve(listener: Box<dyn Listener>, router: axum::Router, shutdown: watch::Receiver<bool>) {
    serve_with(listener, router, shutdown, ServeOptions::default()).await
}

/// [`serve`] with explicit bounds.
pub async fn serve_with(
    mut listener: Box<dyn Listener>,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
    options: ServeOptions,
) {
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let peer_slots = Arc::new(Semaphore::new(options.max_peer_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            a = listener.accept_identified() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let accepted = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                continue;
            }
        };
        let is_peer = accepted.identity.as_ref().is_some_and(|i| options.peers.contains(i));
        let pool = if is_peer { &peer_slots } else { &slots };
        let Ok(slot) = pool.clone().try_acquire_owned() else {
            options.refused.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(refuse(accepted.conn));
            continue;
        };
        let info = ConnInfo { peer: accepted.peer, identity: accepted.identity };
        // The connection's identity goes into each request's extensions (what
        // `axum::Extension` reads). Layering the router per connection did
        // the same but rebuilt every route, about 3 % of a simulated cluster.
        let router = router.clone();
        let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(info.clone());
            tower::ServiceExt::oneshot(router.clone(), req)
        });
        let mut stop = shutdown.clone();
        let header_read_timeout = options.header_read_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.keep_alive(true).timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
            let conn = builder.serve_connection(TokioIo::new(accepted.conn), svc);
            tokio::select! {
                r = conn => if let Err(e) = r { tracing::debug!(error = %e, "connection ended") },
                _ = stop.wait_for(|s| *s) => {}
            }
        });
    }
}

/// The body of the 503 for a connection over the limit: an
/// [`ErrorBody`](crate::envelope::ErrorBody), written out because it is sent
/// before any service's router sees the connection.
pub(crate) const TOO_MANY_CONNECTIONS: &str = r#"{"code":"too_many_connections","message":"this server is at its connection limit; retry later or reuse connections","retry":true}"#;

/// Answer a connection over the limit with a 503 and close it.
async fn refuse(mut conn: BoxConn) {
    use tokio::io::AsyncWriteExt;
    let body = TOO_MANY_CONNECTIONS;
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        conn.write_all(head.as_bytes()).await?;
        conn.write_all(body.as_bytes()).await?;
        conn.shutdown().await
    })
    .await;
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("no response from {addr} within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("HTTP error talking to {addr}: {source}")]
    Protocol { addr: String, source: hyper::Error },
    #[error("response body from {addr} is unreadable or larger than {RESPONSE_BODY_MAX} bytes")]
    Body { addr: String },
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Idle connections, per address.
type Pool = Arc<Mutex<BTreeMap<String, Vec<SendRequest<Full<Bytes>>>>>>;

/// A pooled HTTP/1 client over a [`Transport`].
#[derive(Clone)]
pub struct HttpClient {
    transport: Arc<dyn Transport>,
    idle: Pool,
    /// Added to every request that does not set them (credentials).
    headers: Arc<HeaderMap>,
}

impl HttpClient {
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        HttpClient { transport, idle: Arc::default(), headers: Arc::default() }
    }

    /// Send `name: value` on every request that does not set `name` itself
    /// (e.g. `authorization: Bearer ...`).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        Arc::make_mut(&mut self.headers).insert(name, value);
        self
    }

    async fn connection(&self, addr: &str) -> Result<SendRequest<Full<Bytes>>, HttpError> {
        loop {
            let pooled = self.idle.lock().ok().and_then(|mut m| m.get_mut(addr).and_then(Vec::pop));
            match pooled {
                Some(s) if !s.is_closed() && s.is_ready() => return Ok(s),
                Some(_) => continue,
                None => break,
            }
        }
        let conn: BoxConn =
            self.transport.connect(addr).await.map_err(|source| HttpError::Connect { addr: addr.into(), source })?;
        let (send, driver) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
            .await
            .map_err(|source| HttpError::Protocol { addr: addr.into(), source })?;
        tokio::spawn(async move {
            if let Err(e) = driver.await {
                tracing::debug!(error = %e, "client connection ended");
            }
        });
        Ok(send)
    }

    fn give_back(&self, addr: &str, s: SendRequest<Full<Bytes>>) {
        if let Ok(mut m) = self.idle.lock() {
            let v = m.entry(addr.to_string()).or_default();
            if v.len() < IDLE_PER_ADDR_MAX {
                v.push(s);
            }
        }
    }

    /// Send `req` to `addr` and read the whole response, within `timeout`.
    pub async fn send(&self, addr: &str, req: Request<Bytes>, timeout: Duration) -> Result<HttpResponse, HttpError> {
        let work = async {
            let (resp, send) = self.start(addr, req).await?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, RESPONSE_BODY_MAX)
                .collect()
                .await
                .map_err(|_| HttpError::Body { addr: addr.into() })?
                .to_bytes();
            self.give_back(addr, send);
            Ok(HttpResponse { status: parts.status, headers: parts.headers, body })
        };
        tokio::time::timeout(timeout, work).await.map_err(|_| HttpError::Timeout { addr: addr.into(), timeout })?
    }

    /// Send `req` and return as soon as the response head arrives, within
    /// `timeout`; the body streams (watches). The connection is not pooled.
    pub async fn send_streaming(
        &self,
        addr: &str,
        req: Request<Bytes>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, HttpError> {
        let work = async { self.start(addr, req).await.map(|(r, _)| r) };
        tokio::time::timeout(timeout, work).await.map_err(|_| HttpError::Timeout { addr: addr.into(), timeout })?
    }

    async fn start(
        &self,
        addr: &str,
        req: Request<Bytes>,
    ) -> Result<(Response<Incoming>, SendRequest<Full<Bytes>>), HttpError> {
        let mut send = self.connection(addr).await?;
        let (mut parts, body) = req.into_parts();
        if let Ok(v) = addr.parse() {
            parts.headers.insert(hyper::header::HOST, v);
        }
        for (name, value) in self.headers.iter() {
            if !parts.headers.contains_key(name) {
                parts.headers.insert(name.clone(), value.clone());
            }
        }
        let resp = send
            .send_request(Request::from_parts(parts, Full::new(body)))
            .await
            .map_err(|source| HttpError::Protocol { addr: addr.into(), source })?;
        Ok((resp, send))
    }
}
