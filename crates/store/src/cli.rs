//! `fenced store serve|put|get`: clap arguments and the code behind them, so
//! the `fenced` binary only dispatches.
//!
//! Exit codes: 0 ok; 1 the store refused (stale or bad token, version
//! mismatch, not found); 2 unreachable, unavailable, or bad usage.
//! (`fenced store put --lock NAME --endpoints ...`, which acquires, writes
//! and releases, lives with the lock client in the `fenced` binary, and
//! writes through [`put_with_fence`].) TLS, the auth policy and client
//! credentials come in as a [`Security`] value, which the binary builds from
//! the same flags as the lock service's; [`run_with`] runs without them.

use crate::api::ObjectJson;
use crate::config::{GuardMap, StoreConfig, StoreSeams};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::{Args, Subcommand};
use ed25519_dalek::VerifyingKey;
use fenced_core::machine::token::parse_public_key;
use fenced_io::auth::Policy;
use fenced_io::clock::SystemClock;
use fenced_io::disk::FsDisk;
use fenced_io::http::HttpClient;
use fenced_io::transport::{is_loopback, TcpTransport, Transport};
use fenced_store_client::{Fence, Idem, StoreClient, StoreError};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const EXIT_OK: i32 = 0;
pub const EXIT_REJECTED: i32 = 1;
pub const EXIT_UNREACHABLE: i32 = 2;

/// `fenced store ...`
#[derive(Debug, Clone, Subcommand)]
pub enum StoreCommand {
    /// Run a fenced store.
    Serve(ServeArgs),
    /// Write a value with a fencing token.
    Put(PutArgs),
    /// Read a value.
    Get(GetArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: String,
    /// Directory for the WAL and snapshot (created if missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The lock service's public key (`ed25519:...`), or a file holding one
    /// key per line or the JSON of `GET /v1/cluster/key`. Repeat during a key
    /// rotation.
    #[arg(long = "cluster-key", required_unless_present_any = ["unsafe_no_fencing", "trust_unsigned_tokens"])]
    pub cluster_keys: Vec<String>,
    /// `PREFIX=LOCK`: keys starting with PREFIX are guarded by LOCK (default:
    /// a key is guarded by the lock of the same name). Repeatable.
    #[arg(long = "guard", value_parser = parse_guard)]
    pub guards: Vec<(String, String)>,
    /// Accept every write whatever its token (demonstrates Figure 8-4). Never
    /// in production.
    #[arg(long, conflicts_with = "trust_unsigned_tokens")]
    pub unsafe_no_fencing: bool,
    /// Check the fencing token's number but accept it without a signature:
    /// a comparison aid for lock services whose tokens are plain integers
    /// (etcd revisions). Any client can forge a number. Never in production.
    #[arg(long)]
    pub trust_unsigned_tokens: bool,
    /// Largest value, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub value_len_max: usize,
}

#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    /// The key to write.
    #[arg(id = "object_key", value_name = "KEY")]
    pub key: String,
    pub value: String,
    /// The store's `host:port`.
    #[arg(long)]
    pub store: String,
    /// The fencing token.
    #[arg(long)]
    pub token: Option<u64>,
    /// The signed token (`fenced1....`) the lock service issued with it.
    #[arg(long)]
    pub signed_token: Option<String>,
    /// With `--request-id`: deduplicate retries of this write.
    #[arg(long, requires = "request_id")]
    pub client: Option<String>,
    #[arg(long, requires = "client")]
    pub request_id: Option<u64>,
    /// Compare-and-set: write only if the current version is this (0: absent).
    #[arg(long)]
    pub if_match: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// The key to read.
    #[arg(id = "object_key", value_name = "KEY")]
    pub key: String,
    /// The store's `host:port`.
    #[arg(long)]
    pub store: String,
    /// Print JSON (`{key, value, encoding, version, token}`).
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
}

/// How a command talks to the network, and as whom. The default is plain
/// TCP, no policy, no credentials. The `fenced` binary builds it from the
/// same flags, with the same code, as the lock service's: `--tls-ca`,
/// `--tls-cert`, `--tls-key` and `--auth` for `serve`; `--ca`, `--cert`,
/// `--key` and `--auth-token` for `put` and `get`.
#[derive(Clone)]
pub struct Security {
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

impl Default for Security {
    fn default() -> Self {
        Security { transport: Arc::new(TcpTransport), tls: false, policy: None, bearer_token: None }
    }
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("tls", &self.tls)
            .field("policy", &self.policy.is_some())
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a command could not run at all (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum StoreCliError {
    #[error("cannot read cluster key file {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
    #[error("bad cluster key {what}: {message}")]
    BadKey { what: String, message: String },
    #[error("store failed: {0}")]
    Serve(#[from] std::io::Error),
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
    #[error("{0}")]
    Insecure(String),
    #[error("{0}")]
    Client(StoreError),
}

impl StoreCliError {
    pub fn exit_code(&self) -> i32 {
        EXIT_UNREACHABLE
    }
}

fn parse_guard(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((p, l)) if !p.is_empty() && !l.is_empty() => Ok((p.into(), l.into())),
        _ => Err(format!("expected PREFIX=LOCK, got {s:?}")),
    }
}

/// How often `serve` re-reads `--cluster-key` files.
pub const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Parse `--cluster-key` values: literal keys or files holding them.
pub fn load_cluster_keys(specs: &[String]) -> Result<Vec<VerifyingKey>, StoreCliError> {
    let mut keys = Vec::new();
    for spec in specs {
        let bad =
            |what: &str, e: &dyn std::fmt::Display| StoreCliError::BadKey { what: what.into(), message: e.to_string() };
        if spec.trim().starts_with("ed25519:") {
            keys.push(parse_public_key(spec).map_err(|e| bad(spec, &e))?);
            continue;
        }
        // Configuration, not store data: read directly, not through the disk seam.
        let text =
            std::fs::read_to_string(spec).map_err(|source| StoreCliError::KeyFile { path: spec.clone(), source })?;
        let texts: Vec<String> = if text.trim_start().starts_with('{') {
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(spec, &e))?;
            match (v.get("public_keys").and_then(|k| k.as_array()), v.get("public_key").and_then(|k| k.as_str())) {
                (Some(all), _) => all.iter().filter_map(|k| k.as_str().map(String::from)).collect(),
                (None, Some(one)) => vec![one.to_string()],
                _ => return Err(bad(spec, &"JSON has neither public_keys nor public_key")),
            }
        } else {
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect()
        };
        if texts.is_empty() {
            return Err(bad(spec, &"file holds no key"));
        }
        for t in texts {
            keys.push(parse_public_key(&t).map_err(|e| bad(spec, &e))?);
        }
    }
    Ok(keys)
}

/// Run a command, printing to stdout.
pub async fn run(cmd: StoreCommand) -> Result<i32, StoreCliError> {
    let mut out = std::io::stdout();
    run_with(cmd, &mut out).await
}

/// Run a command, printing to `out`, over plain TCP without credentials.
pub async fn run_with(cmd: StoreCommand, out: &mut (dyn Write + Send)) -> Result<i32, StoreCliError> {
    run_secured(cmd, &Security::default(), out).await
}

/// Run a command with the given transport and credentials, printing to `out`.
pub async fn run_secured(
    cmd: StoreCommand,
    security: &Security,
    out: &mut (dyn Write + Send),
) -> Result<i32, StoreCliError> {
    match cmd {
        StoreCommand::Serve(a) => serve(a, security, out).await,
        StoreCommand::Put(a) => put(a, security, out).await,
        StoreCommand::Get(a) => get(a, security, out).await,
    }
}

/// Refuse a policy without TLS except on loopback: bearer tokens must not
/// cross a network in the clear. (A replica refuses it everywhere, since its
/// peers prove who they are with certificates; a store has no peers.)
pub fn check_security(listen: &str, security: &Security) -> Result<(), StoreCliError> {
    if security.policy.is_some() && !security.tls && !is_loopback(listen) {
        return Err(StoreCliError::Insecure(format!(
            "--auth on {listen} needs --tls-ca, --tls-cert and --tls-key: bearer tokens must not cross the \
             network in the clear (without TLS, a policy is allowed on loopback addresses only)"
        )));
    }
    Ok(())
}

/// What `serve` says about its security, after the address it listens on.
pub fn security_summary(addr: &str, security: &Security) -> String {
    let auth = if security.policy.is_some() {
        "callers authenticated (bearer token or client certificate) and authorized per key prefix"
    } else {
        "no --auth policy: every caller may read and write every key"
    };
    match (security.tls, is_loopback(addr)) {
        (true, _) => format!("TLS on; {auth}"),
        (false, true) => format!("plaintext, loopback only; {auth}"),
        (false, false) => format!(
            "WARNING: PLAINTEXT on {addr}, which is not a loopback address: anyone on the network can read and \
             change requests and answers. Use --tls-ca, --tls-cert and --tls-key (`fenced certs` makes them). {auth}"
        ),
    }
}

/// The store configuration `serve` would use.
pub fn serve_config(a: &ServeArgs) -> Result<StoreConfig, StoreCliError> {
    let mut c = StoreConfig::new(a.listen.clone(), load_cluster_keys(&a.cluster_keys)?);
    let mut guards = GuardMap::default();
    for (p, l) in &a.guards {
        guards.insert(p.clone(), l.clone());
    }
    c.guards = guards;
    c.unsafe_no_fencing = a.unsafe_no_fencing;
    c.trust_unsigned_tokens = a.trust_unsigned_tokens;
    c.limits.value_len_max = a.value_len_max;
    c.limits.body_len_max = a.value_len_max;
    Ok(c)
}

async fn serve(a: ServeArgs, security: &Security, out: &mut (dyn Write + Send)) -> Result<i32, StoreCliError> {
    check_security(&a.listen, security)?;
    let mut config = serve_config(&a)?;
    config.policy = security.policy.clone();
    let seams = StoreSeams {
        transport: security.transport.clone(),
        disk: Arc::new(FsDisk::open(&a.data_dir)?),
        clock: Arc::new(SystemClock::new()),
    };
    let running = Arc::new(crate::server::start(config, seams).await?);
    // Key files are re-read every few seconds, so a signing-key rotation
    // reaches the store without a restart (write both keys, later only the new).
    let reload = a.cluster_keys.iter().any(|k| !k.trim().starts_with("ed25519:")).then(|| {
        let (specs, running) = (a.cluster_keys.clone(), running.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(KEY_RELOAD_INTERVAL).await;
                match load_cluster_keys(&specs) {
                    Ok(keys) if !keys.is_empty() && keys != running.cluster_keys() => {
                        tracing::info!(keys = keys.len(), "cluster keys changed on disk; now trusting them");
                        running.set_cluster_keys(keys);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot reload cluster keys; keeping the current ones"),
                }
            }
        })
    });
    let mode = if a.unsafe_no_fencing {
        " (UNSAFE: no fencing)"
    } else if a.trust_unsigned_tokens {
        " (comparison aid: unsigned tokens trusted)"
    } else {
        ""
    };
    writeln!(out, "fenced store listening on {}{mode}", running.addr).map_err(StoreCliError::Output)?;
    let summary = security_summary(&running.addr, security);
    if !security.tls && !is_loopback(&running.addr) {
        tracing::warn!(addr = %running.addr, "{summary}");
    }
    writeln!(out, "{summary}").map_err(StoreCliError::Output)?;
    let scheme = if security.tls { "https" } else { "http" };
    writeln!(out, "console: {scheme}://{}/ui (keys, their fences and the writes refused)", running.addr)
        .map_err(StoreCliError::Output)?;
    out.flush().map_err(StoreCliError::Output)?;
    wait_for_signal().await;
    if let Some(task) = reload {
        task.abort();
        let _ = task.await;
    }
    match Arc::try_unwrap(running) {
        Ok(r) => r.stop().await,
        Err(_) => tracing::warn!("store still referenced at exit; not waiting for it"),
    }
    Ok(EXIT_OK)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn client(store: &str, timeout_ms: u64, security: &Security) -> Result<StoreClient, StoreCliError> {
    let c = StoreClient::new(HttpClient::new(security.transport.clone()), store)
        .with_timeout(Duration::from_millis(timeout_ms));
    match &security.bearer_token {
        Some(t) => c.with_bearer_token(t).map_err(StoreCliError::Client),
        None => Ok(c),
    }
}

fn exit_for(e: &StoreError) -> i32 {
    if e.is_rejection() {
        EXIT_REJECTED
    } else {
        EXIT_UNREACHABLE
    }
}

fn print_error(out: &mut (dyn Write + Send), json: bool, e: &StoreError) -> Result<i32, StoreCliError> {
    let line = if json {
        let mut j = json!({ "ok": false, "code": e.code(), "message": e.to_string() });
        match e {
            StoreError::StaleToken { presented, current } => {
                j["presented"] = json!(presented);
                j["current"] = json!(current);
            }
            StoreError::VersionMismatch { expected, current } => {
                j["expected"] = json!(expected);
                j["current"] = json!(current);
            }
            _ => {}
        }
        j.to_string()
    } else {
        format!("rejected ({}): {e}", e.code())
    };
    writeln!(out, "{line}").map_err(StoreCliError::Output)?;
    Ok(exit_for(e))
}

async fn put(a: PutArgs, security: &Security, out: &mut (dyn Write + Send)) -> Result<i32, StoreCliError> {
    // A missing half is sent as missing, so the store answers `missing_token`
    // (or, if unfenced, records the bare number).
    let fence = a.token.map(|token| Fence { token, signed: a.signed_token.clone().unwrap_or_default() });
    put_with_fence(a, fence.as_ref(), security, out).await
}

/// `put` with the proof given rather than read from `--token` and
/// `--signed-token`: `fenced store put --lock NAME` acquires the lock and
/// passes its guard's fence here, so both forms write and report alike.
pub async fn put_with_fence(
    a: PutArgs,
    fence: Option<&Fence>,
    security: &Security,
    out: &mut (dyn Write + Send),
) -> Result<i32, StoreCliError> {
    let idem = a.client.zip(a.request_id).map(|(client, request_id)| Idem { client, request_id });
    let c = client(&a.store, a.timeout_ms, security)?;
    match c.write(&a.key, Some(a.value.into_bytes().into()), fence, idem.as_ref(), a.if_match).await {
        Ok(w) => {
            let line = if a.json {
                json!({ "ok": true, "key": w.ok.key, "version": w.ok.version, "token": w.ok.token, "unfenced": w.unfenced })
                    .to_string()
            } else {
                let warn = if w.unfenced { " (warning: unfenced store)" } else { "" };
                format!("ok: {} version {} token {}{warn}", w.ok.key, w.ok.version, w.ok.token)
            };
            writeln!(out, "{line}").map_err(StoreCliError::Output)?;
            Ok(EXIT_OK)
        }
        Err(e) => print_error(out, a.json, &e),
    }
}

async fn get(a: GetArgs, security: &Security, out: &mut (dyn Write + Send)) -> Result<i32, StoreCliError> {
    let c = client(&a.store, a.timeout_ms, security)?;
    match c.get(&a.key).await {
        Ok(Some(o)) => {
            if a.json {
                let (value, encoding) = match std::str::from_utf8(&o.value) {
                    Ok(s) => (s.to_string(), "utf8"),
                    Err(_) => (B64.encode(&o.value), "base64"),
                };
                let j = ObjectJson { key: a.key, value, encoding: encoding.into(), version: o.version, token: o.token };
                let line = serde_json::to_string(&j).map_err(|e| StoreCliError::Output(std::io::Error::other(e)))?;
                writeln!(out, "{line}").map_err(StoreCliError::Output)?;
            } else {
                out.write_all(&o.value).map_err(StoreCliError::Output)?;
                writeln!(out).map_err(StoreCliError::Output)?;
            }
            Ok(EXIT_OK)
        }
        Ok(None) => {
            let line = if a.json {
                json!({ "ok": false, "code": "not_found", "key": a.key }).to_string()
            } else {
                format!("not found: {}", a.key)
            };
            writeln!(out, "{line}").map_err(StoreCliError::Output)?;
            Ok(EXIT_REJECTED)
        }
        Err(e) => print_error(out, a.json, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_off_loopback_is_warned_about_and_a_policy_there_refused() {
        let open = Security::default();
        let policed = Security { policy: Some(Arc::new(Policy::default())), ..Security::default() };
        let tls = Security { tls: true, ..policed.clone() };
        assert!(security_summary("127.0.0.1:7400", &open).starts_with("plaintext, loopback only"));
        assert!(security_summary("0.0.0.0:7400", &open).starts_with("WARNING: PLAINTEXT on 0.0.0.0:7400"));
        assert!(security_summary("10.1.2.3:7400", &tls).starts_with("TLS on; callers authenticated"));
        assert!(check_security("127.0.0.1:7400", &policed).is_ok());
        assert!(check_security("localhost:7400", &policed).is_ok());
        assert!(check_security("0.0.0.0:7400", &policed).is_err());
        assert!(check_security("10.1.2.3:7400", &tls).is_ok());
        assert!(check_security("10.1.2.3:7400", &open).is_ok(), "plaintext without a policy is warned, not refused");
    }
}
