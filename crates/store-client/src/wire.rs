//! The store's HTTP wire: header names, JSON bodies and the values a client
//! reads back. The store's server (`fenced-store`) and every client build on
//! these one definitions, so the two ends cannot drift apart.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The headers of the store's API (HTTP header names are case-insensitive;
/// these are the lower-case forms the server and clients send).
pub const H_TOKEN: &str = "fenced-token";
pub const H_SIGNED_TOKEN: &str = "fenced-signed-token";
pub const H_CLIENT: &str = "fenced-client";
pub const H_REQUEST_ID: &str = "fenced-request-id";
pub const H_VERSION: &str = "fenced-version";
pub const H_WARNING: &str = "fenced-warning";
/// The value of `Fenced-Warning` on every response of an unfenced store.
pub const UNFENCED_WARNING: &str = "unfenced-store";

/// `GET /v1/objects/{key}?format=json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectJson {
    pub key: String,
    pub value: String,
    /// `utf8` or `base64`: how `value` encodes the bytes.
    pub encoding: String,
    pub version: u64,
    pub token: u64,
}

/// `GET /v1/keys/{key}/fence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceJson {
    pub key: String,
    /// The lowest token a write to `key` may carry: the highest accepted for
    /// the key or for any key its lock guards.
    pub max_token: u64,
    /// The lock that guards `key` (the longest `--guard` prefix's, else the key).
    #[serde(default)]
    pub lock: String,
}

/// A stored object as a reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub value: Bytes,
    pub version: u64,
    /// The fencing token of the write that stored this value.
    pub token: u64,
}

/// An accepted write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOk {
    pub key: String,
    pub version: u64,
    /// The token that wrote it.
    pub token: u64,
    #[serde(default)]
    pub deleted: bool,
}
