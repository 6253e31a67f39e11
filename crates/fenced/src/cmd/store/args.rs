//! The flags of `fenced store serve`, `put` and `get` that are the store's
//! own; TLS, the auth policy and credentials come from the flags the lock
//! commands share (`super::super::credentials`).

use clap::Args;
use std::path::PathBuf;

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

fn parse_guard(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((p, l)) if !p.is_empty() && !l.is_empty() => Ok((p.into(), l.into())),
        _ => Err(format!("expected PREFIX=LOCK, got {s:?}")),
    }
}
