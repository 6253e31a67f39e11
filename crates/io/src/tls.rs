//! TLS as a layer over any [`Transport`]: `TlsTransport::new(inner, ...)`
//! is itself a `Transport`, so the replica, store and client code are the same
//! with or without TLS, and the simulator keeps using its plaintext transport.
//!
//! Both directions are mutual when certificates are given: a server asks every
//! client for a certificate signed by the configured CA (optional, so bearer
//! token clients can connect without one), and a client (a replica talking to
//! its peers, or a `fenced` client with `--cert`) presents its own. The
//! identity of a connection is the common name of the certificate it
//! presented (else its first DNS name); [`crate::http::serve`] hands it to
//! the handlers as part of [`crate::http::ConnInfo`].
//!
//! Handshakes run off the accept loop, bounded in number and time, so a
//! client that opens a connection and sends nothing cannot stall others.

use crate::transport::{Accepted, BoxConn, Listener, Transport};
use futures::future::BoxFuture;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Longest a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once on one listener; more wait in the
/// kernel's accept queue.
pub const HANDSHAKES_MAX: usize = 256;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} holds no {what} in PEM form; `fenced certs` writes them")]
    Pem { path: PathBuf, what: &'static str },
    #[error("TLS configuration refused: {0}")]
    Config(String),
}

/// The PEM files of one party: the CA it trusts, and its own certificate and key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.into(), source })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::Pem { path: path.into(), what: "certificate" });
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::Pem { path: path.into(), what: "private key" })
}

fn roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs(path)? {
        roots.add(c).map_err(|e| TlsError::Config(format!("CA certificate {}: {e}", path.display())))?;
    }
    Ok(Arc::new(roots))
}

/// A server configuration: our certificate, and client certificates
/// verified against the CA when presented (optional: a client may instead
/// authenticate with a bearer token; what it may do is decided above TLS).
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(&files.ca)?, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&files.cert)?, key(&files.key)?)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

/// A client configuration trusting `ca`, presenting `cert`/`key` if given.
pub fn client_config(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca)?);
    let config = match identity {
        Some((cert, k)) => {
            builder.with_client_auth_cert(certs(cert)?, key(k)?).map_err(|e| TlsError::Config(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The identity a certificate names: its subject common name, else its first
/// DNS subject alternative name.
pub fn certificate_identity(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    if let Some(cn) = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()) {
        return Some(cn.to_string());
    }
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
        _ => None,
    })
}

/// TLS over another transport. Either side may be absent: a replica has
/// both, a client only the connecting side.
#[derive(Clone)]
pub struct TlsTransport {
    inner: Arc<dyn Transport>,
    server: Option<Arc<ServerConfig>>,
    client: Option<Arc<ClientConfig>>,
}

impl TlsTransport {
    pub fn new(
        inner: Arc<dyn Transport>,
        server: Option<Arc<ServerConfig>>,
        client: Option<Arc<ClientConfig>>,
    ) -> Self {
        TlsTransport { inner, server, client }
    }

    /// Both sides from one party's files (a replica: it serves, and it
    /// connects to its peers presenting the same certificate).
    pub fn mutual(inner: Arc<dyn Transport>, files: &TlsFiles) -> Result<Self, TlsError> {
        let client = client_config(&files.ca, Some((&files.cert, &files.key)))?;
        Ok(TlsTransport::new(inner, Some(server_config(files)?), Some(client)))
    }
}

fn server_name(addr: &str) -> io::Result<ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => addr,
    };
    ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host:?} is not a TLS server name: {e}")))
}

impl Transport for TlsTransport {
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxConn>> {
        let inner = self.inner.connect(addr);
        let client = self.client.clone();
        let name = server_name(addr);
        Box::pin(async move {
            let conn = inner.await?;
            let Some(client) = client else {
                return Err(io::Error::new(io::ErrorKind::Unsupported, "this transport has no TLS client side"));
            };
            let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsConnector::from(client).connect(name?, conn))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
            Ok(Box::new(tls) as BoxConn)
        })
    }

    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let inner = self.inner.bind(addr);
        let server = self.server.clone();
        Box::pin(async move {
            let Some(server) = server else {
                return Err(io::Error::new(io::ErrorKind::Unsupported, "this transport has no TLS server side"));
            };
            let listener = inner.await?;
            let local = listener.local_addr()?;
            Ok(Box::new(TlsListener::start(listener, TlsAcceptor::from(server), local)) as Box<dyn Listener>)
        })
    }
}

/// Accepts on the inner listener and hands over connections whose handshake
/// completed. The accepting task ends when the listener is dropped.
struct TlsListener {
    ready: mpsc::Receiver<io::Result<Accepted>>,
    local: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsListener {
    fn start(mut inner: Box<dyn Listener>, acceptor: TlsAcceptor, local: String) -> Self {
        let (tx, ready) = mpsc::channel(HANDSHAKES_MAX);
        let slots = Arc::new(Semaphore::new(HANDSHAKES_MAX));
        let task = tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                let (conn, peer) = match inner.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        if tx.send(Err(e)).await.is_err() {
                            return;
                        }
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(conn)).await {
                        Ok(Ok(tls)) => {
                            let identity = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .and_then(|c| certificate_identity(c.as_ref()));
                            let _ = tx.send(Ok(Accepted { conn: Box::new(tls), peer, identity })).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener { ready, local, task }
    }
}

impl Listener for TlsListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxConn, String)>> {
        Box::pin(async move {
            let a = self.accept_identified().await?;
            Ok((a.conn, a.peer))
        })
    }

    fn accept_identified(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            match self.ready.recv().await {
                Some(r) => r,
                None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "TLS listener stopped")),
            }
        })
    }

    fn local_addr(&self) -> io::Result<String> {
        Ok(self.local.clone())
    }
}
