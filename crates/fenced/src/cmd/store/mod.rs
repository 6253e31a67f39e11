//! `fenced store serve|put|get`: the fenced store and its client commands.
//!
//! - [`args`]: the store's own flags; [`serve`]: running a store;
//!   [`client`]: one put or get, printed, with an exit code.
//! - Here: dispatch, and the one form that needs the lock client:
//!   `fenced store put KEY VALUE --lock NAME --endpoints … --store …`
//!   acquires NAME, writes with the grant's fencing token and signed token,
//!   and releases — the whole DDIA 8-5 pattern in one command, for scripts
//!   and demos.
//!
//! The command line lives in the binary, not in the store crate, so that a
//! program embedding the store (or its PostgreSQL adapter, as the Python
//! package does) does not build clap and a CLI it never runs.
//!
//! Exit codes: 0 ok; 1 the store refused (stale or bad token, version
//! mismatch, not found, or the lock is held by another); 2 unreachable,
//! unavailable, or bad usage.
//!
//! Security comes from the same flags and code as the lock service's:
//! `serve` takes `--tls-ca/--tls-cert/--tls-key/--auth`
//! ([`TlsAuthArgs`], as `fenced serve`), `put` and `get` take
//! `--auth-token/--ca/--cert/--key` ([`Credentials`], as `fenced lock`).

pub mod args;
pub mod client;
pub mod serve;

pub use super::credentials::StoreSecurity as Security;
use super::credentials::{Credentials, TlsAuthArgs};
use super::lock::{report, Common};
use super::parse_duration;
use args::{GetArgs, PutArgs, ServeArgs};
use clap::{Args, Subcommand};
use fenced_client::AcquireOptions;
use std::time::Duration;

pub const EXIT_OK: i32 = 0;
pub const EXIT_REJECTED: i32 = 1;
pub const EXIT_UNREACHABLE: i32 = 2;

/// `fenced store ...`
#[derive(Debug, Clone, Subcommand)]
pub enum StoreCommand {
    /// Run a fenced store.
    Serve(ServeCommand),
    /// Write a value with a fencing token: given with --token and
    /// --signed-token, or taken from a lock acquired with --lock (then
    /// released).
    Put(PutCommand),
    /// Read a value.
    Get(GetCommand),
}

/// `fenced store serve`: the store's flags, plus TLS and the auth policy.
#[derive(Debug, Clone, Args)]
pub struct ServeCommand {
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub security: TlsAuthArgs,
}

/// `fenced store get`: the store's flags, plus credentials.
#[derive(Debug, Clone, Args)]
pub struct GetCommand {
    #[command(flatten)]
    pub get: GetArgs,
    #[command(flatten)]
    pub credentials: Credentials,
}

/// `fenced store put`: the store's own flags, plus the lock to take.
#[derive(Debug, Clone, Args)]
pub struct PutCommand {
    #[command(flatten)]
    pub put: PutArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Sent to the store, and with --lock to the lock service too.
    #[command(flatten)]
    pub credentials: Credentials,
}

/// The lock `fenced store put --lock` takes around the write.
#[derive(Debug, Clone, Args)]
pub struct LockArgs {
    /// Acquire this lock, write with its tokens, then release it.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["token", "signed_token"])]
    pub lock: Option<String>,
    /// With --lock: the lock service's replicas, comma-separated.
    #[arg(long, env = "FENCED_ENDPOINTS", default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")]
    pub endpoints: String,
    /// With --lock: the lease's TTL. The guard keeps it alive while the
    /// write is in flight.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub ttl: Duration,
    /// With --lock: queue for the lock this long; without it, try once.
    #[arg(long, value_parser = parse_duration)]
    pub wait: Option<Duration>,
}

/// Runs a store command. Exit codes: 0 ok; 1 refused (stale or bad token,
/// version mismatch, not found, or the lock is held by another); 2
/// unreachable or unusable.
pub async fn run(c: StoreCommand) -> anyhow::Result<i32> {
    let mut out = std::io::stdout();
    match c {
        StoreCommand::Serve(ServeCommand { serve, security }) => {
            // The store reports torn tails, the unfenced mode and plaintext
            // on a non-loopback address in its log.
            super::init_logging("info");
            serve::serve(serve, &security.store_security()?, &mut out).await
        }
        StoreCommand::Get(GetCommand { get, credentials }) => {
            client::get(get, &credentials.store_security()?, &mut out).await
        }
        StoreCommand::Put(PutCommand {
            put,
            lock: LockArgs { lock: Some(name), endpoints: eps, ttl, wait },
            credentials,
        }) => {
            super::init_logging("warn");
            put_under_lock(put, &credentials, &name, &eps, ttl, wait.unwrap_or_default()).await
        }
        StoreCommand::Put(PutCommand { put, credentials, .. }) => {
            client::put(put, &credentials.store_security()?, &mut out).await
        }
    }
}

/// Acquire, write with both tokens, release. The write's outcome decides
/// the exit code; a failed release only warns, since the lease expires on
/// its own and the write has already happened (or not).
async fn put_under_lock(
    put: PutArgs,
    credentials: &Credentials,
    name: &str,
    eps: &str,
    ttl: Duration,
    wait: Duration,
) -> anyhow::Result<i32> {
    let common = Common { endpoints: eps.to_string(), json: put.json, credentials: credentials.clone() };
    let security = credentials.store_security()?;
    let client = common.client()?;
    let guard = match client.acquire(name, AcquireOptions::new(ttl).wait(wait)).await {
        Ok(g) => g,
        Err(e) => return Ok(report(&common, &e)),
    };
    let fence = guard.fence();
    let mut out = std::io::stdout();
    let code = client::put_with_fence(put, Some(&fence), &security, &mut out).await?;
    if let Err(e) = guard.release().await {
        eprintln!("warning: could not release {name} (token {}): {e}; its lease will expire", fence.token);
    }
    Ok(code)
}
