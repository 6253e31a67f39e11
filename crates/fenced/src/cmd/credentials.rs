//! Security flags shared by subcommands: a client's credentials (bearer
//! token, CA, client certificate), a server's TLS and auth policy (a
//! replica's and a fenced store's: the same flags, read by the same code),
//! and a replica's per-client limits.

use anyhow::Context;
use clap::Args;
use fenced_client::{Client, ClientConfig};
use fenced_io::auth::Policy;
use fenced_io::clock::SystemClock;
use fenced_io::tls::{client_config, TlsFiles, TlsTransport};
use fenced_io::transport::{TcpTransport, Transport};
use fenced_replica::config::{ClientLimits, Protection};
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
    /// CA certificate (PEM) to verify the servers (replicas, fenced store)
    /// with; turns TLS on.
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

    /// The transport and bearer token for the `fenced store` client
    /// commands: the same credentials the lock commands send.
    pub fn store_security(&self) -> anyhow::Result<StoreSecurity> {
        Ok(StoreSecurity {
            transport: self.transport()?,
            tls: self.ca.is_some(),
            policy: None,
            bearer_token: self.auth_token.clone(),
        })
    }

    /// A client of `endpoints` with these credentials.
    pub fn client(&self, endpoints: Vec<String>) -> anyhow::Result<Client> {
        let mut config = ClientConfig::new(endpoints);
        config.bearer_token = self.auth_token.clone();
        Ok(Client::with_seams(config, self.transport()?, Arc::new(SystemClock::new()))?)
    }
}

/// A server's TLS and authentication policy: `fenced serve` and `fenced
/// store serve` take these same flags.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsAuthArgs {
    /// CA certificate (PEM) that signed the servers' and clients'
    /// certificates. With --tls-cert and --tls-key, turns on TLS for clients
    /// (who may present a certificate signed by it: mutual TLS, the
    /// certificate's common name is the caller's identity) and, for a
    /// replica, mutual TLS between replicas. `fenced certs` makes all three.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// This server's certificate (PEM); its common name is its identity.
    #[arg(long, requires = "tls_ca")]
    pub tls_cert: Option<PathBuf>,
    /// This server's private key (PEM).
    #[arg(long, requires = "tls_ca")]
    pub tls_key: Option<PathBuf>,
    /// Authentication and ACL policy (JSON; see docs/security.md). Without
    /// it, every caller may do everything.
    #[arg(long)]
    pub auth: Option<PathBuf>,
}

impl TlsAuthArgs {
    /// The policy file, read and checked.
    pub fn policy(&self) -> anyhow::Result<Option<Arc<Policy>>> {
        match &self.auth {
            Some(p) => Ok(Some(Arc::new(Policy::load(p)?))),
            None => Ok(None),
        }
    }

    /// The server's transport: TLS if certificates are given, serving (and
    /// asking clients for an optional certificate) and connecting to peers
    /// with the same certificate.
    pub fn transport(&self) -> anyhow::Result<Arc<dyn Transport>> {
        match (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            (Some(ca), Some(cert), Some(key)) => {
                let files = TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() };
                Ok(Arc::new(TlsTransport::mutual(Arc::new(TcpTransport), &files).context("cannot set up TLS")?))
            }
            _ => Ok(Arc::new(TcpTransport)),
        }
    }

    /// What `fenced store serve` runs with.
    pub fn store_security(&self) -> anyhow::Result<StoreSecurity> {
        Ok(StoreSecurity {
            transport: self.transport()?,
            tls: self.tls_ca.is_some(),
            policy: self.policy()?,
            bearer_token: None,
        })
    }
}

/// A replica's TLS, authentication policy and per-client limits.
#[derive(Args, Debug, Clone)]
pub struct SecurityArgs {
    #[command(flatten)]
    pub tls: TlsAuthArgs,
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
        let policy = self.tls.policy()?;
        if policy.is_some() && self.tls.tls_ca.is_none() {
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
        self.tls.transport()
    }
}

/// How a command talks to the network, and as whom. The default is plain
/// TCP, no policy, no credentials. Built from the same flags, with the same
/// code, as the lock service's (this module): `--tls-ca`,
/// `--tls-cert`, `--tls-key` and `--auth` for `serve`; `--ca`, `--cert`,
/// `--key` and `--auth-token` for `put` and `get`.
#[derive(Clone)]
pub struct StoreSecurity {
    /// Plain TCP, or TLS layered over it (`fenced_io::tls`); for `serve`,
    /// a TLS server asks clients for a certificate (optional) and names them
    /// by it.
    pub transport: Arc<dyn Transport>,
    /// Whether `transport` speaks TLS (`serve` refuses a policy without it
    /// on non-loopback addresses, and warns about plaintext there).
    pub tls: bool,
    /// `serve`: who may read and write which keys. `None`: anyone.
    pub policy: Option<Arc<Policy>>,
    /// `put`/`get`: the bearer token to send.
    pub bearer_token: Option<String>,
}

impl Default for StoreSecurity {
    fn default() -> Self {
        StoreSecurity { transport: Arc::new(TcpTransport), tls: false, policy: None, bearer_token: None }
    }
}

impl std::fmt::Debug for StoreSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSecurity")
            .field("tls", &self.tls)
            .field("policy", &self.policy.is_some())
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}
