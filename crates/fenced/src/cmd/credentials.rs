//! Security flags shared by subcommands: a client's credentials (bearer
//! token, CA, client certificate) and a replica's TLS, policy and limits.

use super::lock::Common;
use anyhow::Context;
use clap::Args;
use fenced_client::{Client, ClientConfig};
use fenced_io::auth::Policy;
use fenced_io::clock::SystemClock;
use fenced_io::tls::{client_config, TlsFiles, TlsTransport};
use fenced_io::transport::{TcpTransport, Transport};
use fenced_replica::limits::{ClientLimits, Protection};
use std::path::PathBuf;
use std::sync::Arc;

/// How a client proves who it is. Without any of these it talks plaintext
/// and anonymously (fine for `fenced dev`).
#[derive(Args, Debug, Clone, Default)]
pub struct Credentials {
    /// Bearer token (see the cluster's auth policy). Prefer the environment
    /// variable: command lines are visible to other users.
    #[arg(long = "auth-token", env = "FENCED_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// CA certificate (PEM) to verify the replicas with; turns TLS on.
    #[arg(long, env = "FENCED_CA")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --key and --ca.
    #[arg(long, env = "FENCED_CERT", requires = "key", requires = "ca")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, env = "FENCED_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
}

impl Credentials {
    /// The transport these credentials ask for: TLS if a CA is given.
    pub fn transport(&self) -> anyhow::Result<Arc<dyn Transport>> {
        let Some(ca) = &self.ca else { return Ok(Arc::new(TcpTransport)) };
        let identity = self.cert.as_deref().zip(self.key.as_deref());
        let config = client_config(ca, identity).context("cannot set up TLS")?;
        Ok(Arc::new(TlsTransport::new(Arc::new(TcpTransport), None, Some(config))))
    }

    /// A client of `endpoints` with these credentials.
    pub fn client(&self, endpoints: Vec<String>) -> anyhow::Result<Client> {
        let mut config = ClientConfig::new(endpoints);
        config.bearer_token = self.auth_token.clone();
        Ok(Client::with_seams(config, self.transport()?, Arc::new(SystemClock::new()))?)
    }
}

impl Common {
    /// A client of `--endpoints` with the given credentials.
    pub fn client(&self) -> anyhow::Result<Client> {
        self.credentials.client(super::endpoints(&self.endpoints))
    }
}

/// A replica's TLS, authentication policy and per-client limits.
#[derive(Args, Debug, Clone)]
pub struct SecurityArgs {
    /// CA certificate (PEM) that signed the replicas' and clients'
    /// certificates. With --tls-cert and --tls-key, turns on TLS for clients
    /// and mutual TLS between replicas (`fenced certs` makes all three).
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// This replica's certificate (PEM); its common name is its identity.
    #[arg(long, requires = "tls_ca")]
    pub tls_cert: Option<PathBuf>,
    /// This replica's private key (PEM).
    #[arg(long, requires = "tls_ca")]
    pub tls_key: Option<PathBuf>,
    /// Authentication and ACL policy (JSON; see docs/security.md). Without
    /// it, every caller may do everything.
    #[arg(long)]
    pub auth: Option<PathBuf>,
    /// Requests per second per client (identity, else IP address).
    #[arg(long, default_value_t = ClientLimits::default().rate_per_sec)]
    pub rate: f64,
    /// Requests a client may burst above --rate.
    #[arg(long, default_value_t = ClientLimits::default().rate_burst)]
    pub rate_burst: f64,
    /// Connections served at once; more are answered 503 and closed.
    #[arg(long, default_value_t = ClientLimits::default().connections_max)]
    pub max_connections: usize,
    /// Open lock watches per client.
    #[arg(long, default_value_t = ClientLimits::default().watches_per_client_max)]
    pub max_watches_per_client: usize,
    /// Proposals in flight on this replica; more are refused with 503 overloaded.
    #[arg(long, default_value_t = ClientLimits::default().pending_proposals_max)]
    pub max_pending_proposals: usize,
    /// Also rate- and watch-limit unauthenticated callers, per IP address
    /// (authenticated callers are always limited per identity).
    #[arg(long)]
    pub limit_by_address: bool,
}

impl SecurityArgs {
    pub fn protection(&self) -> anyhow::Result<Protection> {
        let policy = match &self.auth {
            Some(p) => Some(Arc::new(Policy::load(p)?)),
            None => None,
        };
        if policy.is_some() && self.tls_ca.is_none() {
            anyhow::bail!(
                "--auth needs --tls-ca, --tls-cert and --tls-key: replicas prove who they are to each other \
                 with their certificates, and bearer tokens must not cross the network in the clear"
            );
        }
        let limits = ClientLimits {
            rate_per_sec: self.rate,
            rate_burst: self.rate_burst,
            connections_max: self.max_connections,
            watches_per_client_max: self.max_watches_per_client,
            pending_proposals_max: self.max_pending_proposals,
            limit_by_address: self.limit_by_address,
            ..ClientLimits::default()
        };
        Ok(Protection { policy, limits })
    }

    /// The replica's transport: mutual TLS if certificates are given.
    pub fn transport(&self) -> anyhow::Result<Arc<dyn Transport>> {
        match (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            (Some(ca), Some(cert), Some(key)) => {
                let files = TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() };
                Ok(Arc::new(TlsTransport::mutual(Arc::new(TcpTransport), &files).context("cannot set up TLS")?))
            }
            _ => Ok(Arc::new(TcpTransport)),
        }
    }
}
