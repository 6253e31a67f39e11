//! The server loop's protections: the connection limit, the peers' own
//! connection cap, the header-read (and idle) timeout, and TLS identities
//! reaching the handlers (mutual TLS with `fenced_io::tls`).

use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use fenced_io::http::{serve_with, ConnInfo, HttpClient, ServeOptions};
use fenced_io::tls::{client_config, TlsFiles, TlsTransport};
use fenced_io::transport::{TcpTransport, Transport};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

async fn whoami(Extension(c): Extension<ConnInfo>) -> String {
    c.identity.unwrap_or_else(|| "-".into())
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    "done"
}

fn router() -> Router {
    Router::new().route("/whoami", get(whoami)).route("/slow", get(slow))
}

/// Read until the server closes the connection, within `within`; `None` if
/// it is still open then.
async fn closed_within(conn: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(within, conn.read_to_end(&mut out)).await {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

async fn serve_with_timeout(timeout: Duration) -> (String, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let listener = TcpTransport.bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = watch::channel(false);
    let options = ServeOptions { header_read_timeout: Some(timeout), ..ServeOptions::default() };
    (addr, stop, tokio::spawn(serve_with(listener, router(), rx, options)))
}

/// A slowloris connection (a head that never ends) and an idle kept-alive
/// connection both lose their slot after the header-read timeout.
#[tokio::test]
async fn a_half_sent_head_and_an_idle_connection_are_closed_after_the_header_read_timeout() {
    let (addr, stop, server) = serve_with_timeout(Duration::from_millis(300)).await;
    let mut slow = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(b"GET /whoami HTTP/1.1\r\nhost: x\r\n").await.expect("write");
    assert!(closed_within(&mut slow, Duration::from_secs(10)).await.is_some(), "a half-sent head keeps its slot");
    let mut idle = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    idle.write_all(b"GET /whoami HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write");
    let answered = closed_within(&mut idle, Duration::from_secs(10)).await.expect("the idle connection is closed");
    assert!(answered.starts_with("HTTP/1.1 200"), "it was answered first: {answered}");
    // Without the timeout the same idle connection stays open.
    let (addr, stop2, server2) = serve_with_timeout(Duration::from_secs(3600)).await;
    let mut kept = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    kept.write_all(b"GET /whoami HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write");
    let mut buf = [0u8; 256];
    let n = kept.read(&mut buf).await.expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut kept, Duration::from_secs(1)).await.is_none(), "closed without a timeout");
    for (stop, server) in [(stop, server), (stop2, server2)] {
        let _ = stop.send(true);
        let _ = server.await;
    }
}

/// The timeout covers waiting for a head only: a request that takes longer
/// than it to answer (an acquire that waits, a watch) is not cut.
#[tokio::test]
async fn a_request_slower_than_the_header_read_timeout_is_answered() {
    let (addr, stop, server) = serve_with_timeout(Duration::from_millis(300)).await;
    let http = HttpClient::new(Arc::new(TcpTransport));
    let req = hyper::Request::builder().uri("/slow").body(Bytes::new()).expect("req");
    let r = http.send(&addr, req, Duration::from_secs(10)).await.expect("answered");
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"done"[..]));
    let _ = stop.send(true);
    let _ = server.await;
}

#[tokio::test]
async fn connections_over_the_limit_get_503_and_are_counted() {
    let listener = TcpTransport.bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = watch::channel(false);
    let options = ServeOptions { max_connections: 1, ..ServeOptions::default() };
    let refused = options.refused.clone();
    let server = tokio::spawn(serve_with(listener, router(), rx, options));
    // The first connection takes the only slot and keeps it (keep-alive).
    let mut first = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    first.write_all(b"GET /whoami HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write");
    let mut buf = [0u8; 256];
    let n = first.read(&mut buf).await.expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // The second is answered 503 and closed.
    let mut second = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), second.read_to_end(&mut out)).await.expect("closed").expect("read");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("too_many_connections") && text.contains("retry-after"), "{text}");
    assert_eq!(refused.load(Ordering::Relaxed), 1);
    // Once the first closes, its slot is free again.
    drop(first);
    let http = HttpClient::new(Arc::new(TcpTransport));
    let mut ok = false;
    for _ in 0..100 {
        let req = hyper::Request::builder().uri("/whoami").body(Bytes::new()).expect("req");
        if let Ok(r) = http.send(&addr, req, Duration::from_secs(5)).await {
            if r.status == 200 {
                ok = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "the slot was released");
    let _ = stop.send(true);
    let _ = server.await;
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(dir: &Path, name: &str) -> Ca {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = p.self_signed(&key).expect("self-signed");
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("write");
    Ca { cert, key }
}

fn leaf(dir: &Path, ca: &Ca, name: &str, sans: Vec<String>) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(sans).expect("params");
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &ca.cert, &ca.key).expect("sign");
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("write");
    std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem()).expect("write");
}

/// Clients that fill their connection cap do not keep a peer out: a peer
/// (a certificate identity listed in `peers`) has its own cap.
#[tokio::test]
async fn peers_have_their_own_connection_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = ca(d, "ca");
    leaf(d, &ca, "server", vec!["127.0.0.1".into()]);
    for name in ["alice", "replica-2", "replica-3"] {
        leaf(d, &ca, name, vec![]);
    }
    let files = TlsFiles { ca: d.join("ca.pem"), cert: d.join("server.pem"), key: d.join("server-key.pem") };
    let listener = TlsTransport::mutual(Arc::new(TcpTransport), &files).expect("TLS").bind("127.0.0.1:0").await;
    let listener = listener.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = watch::channel(false);
    let options = ServeOptions {
        max_connections: 1,
        max_peer_connections: 1,
        peers: Arc::new(["replica-2".to_string(), "replica-3".to_string()].into()),
        ..ServeOptions::default()
    };
    let refused = options.refused.clone();
    let server = tokio::spawn(serve_with(listener, router(), rx, options));
    let client_of = |name: &str| {
        let id = (d.join(format!("{name}.pem")), d.join(format!("{name}-key.pem")));
        let config = client_config(&d.join("ca.pem"), Some((id.0.as_path(), id.1.as_path()))).expect("client");
        HttpClient::new(Arc::new(TlsTransport::new(Arc::new(TcpTransport), None, Some(config))))
    };
    let ask = |http: HttpClient| {
        let addr = addr.clone();
        async move {
            let req = hyper::Request::builder().uri("/whoami").body(Bytes::new()).expect("req");
            let r = http.send(&addr, req, Duration::from_secs(10)).await.expect("an answer");
            (r.status.as_u16(), String::from_utf8_lossy(&r.body).into_owned())
        }
    };
    // alice's pooled connection takes the only client slot and keeps it.
    let alice = client_of("alice");
    assert_eq!(ask(alice.clone()).await, (200, "alice".into()));
    // Another client connection is refused...
    let (status, body) = ask(client_of("alice")).await;
    assert_eq!(status, 503, "{body}");
    // ...but a peer still gets in, on its own cap, which is full in turn.
    let peer = client_of("replica-2");
    assert_eq!(ask(peer.clone()).await, (200, "replica-2".into()));
    assert_eq!(ask(client_of("replica-3")).await.0, 503, "the peers' cap is bounded too");
    assert_eq!(refused.load(Ordering::Relaxed), 2);
    drop((alice, peer));
    let _ = stop.send(true);
    let _ = server.await;
}

#[tokio::test]
async fn mutual_tls_names_the_client_and_refuses_strangers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let good = ca(d, "ca");
    let evil = ca(d, "evil-ca");
    leaf(d, &good, "server", vec!["127.0.0.1".into()]);
    leaf(d, &good, "alice", vec![]);
    leaf(d, &evil, "mallory", vec![]);
    let files = TlsFiles { ca: d.join("ca.pem"), cert: d.join("server.pem"), key: d.join("server-key.pem") };
    let server_side = TlsTransport::mutual(Arc::new(TcpTransport), &files).expect("server TLS");
    let listener = server_side.bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = watch::channel(false);
    let server = tokio::spawn(serve_with(listener, router(), rx, ServeOptions::default()));

    let ask = |client: Option<&str>, ca_file: &str| {
        let ca_path = d.join(ca_file);
        let id = client.map(|c| (d.join(format!("{c}.pem")), d.join(format!("{c}-key.pem"))));
        let config = client_config(&ca_path, id.as_ref().map(|(c, k)| (c.as_path(), k.as_path()))).expect("client");
        let http = HttpClient::new(Arc::new(TlsTransport::new(Arc::new(TcpTransport), None, Some(config))));
        let addr = addr.clone();
        async move {
            let req = hyper::Request::builder().uri("/whoami").body(Bytes::new()).expect("req");
            http.send(&addr, req, Duration::from_secs(10)).await.map(|r| String::from_utf8_lossy(&r.body).to_string())
        }
    };
    assert_eq!(ask(Some("alice"), "ca.pem").await.expect("alice connects"), "alice");
    assert_eq!(ask(None, "ca.pem").await.expect("no certificate is allowed"), "-");
    assert!(ask(Some("mallory"), "ca.pem").await.is_err(), "a certificate from another CA is refused");
    assert!(ask(None, "evil-ca.pem").await.is_err(), "a client that does not trust the server's CA refuses it");
    // Plaintext to a TLS port gets nothing usable.
    let plain = HttpClient::new(Arc::new(TcpTransport));
    let req = hyper::Request::builder().uri("/whoami").body(Bytes::new()).expect("req");
    assert!(plain.send(&addr, req, Duration::from_secs(5)).await.is_err());
    let _ = stop.send(true);
    let _ = server.await;
}
