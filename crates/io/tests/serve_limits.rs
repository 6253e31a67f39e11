//! The server loop's protections: the connection limit, and TLS identities
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

fn router() -> Router {
    Router::new().route("/whoami", get(whoami))
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
