//! The history format: what happened, as data.
//!
//! One JSON object per line (JSON Lines). Every operation is an `invoke`
//! followed, for the same `process`, by at most one completion: `ok` (it took
//! effect), `fail` (it certainly did not take effect) or `info` (unknown: it may
//! have taken effect at any point after its invoke, or never). Nemesis events
//! (fault start and stop) use `process: "nemesis"` and `type: "info"`.
//! The full format is documented in `docs/history.md`.

use serde::{Deserialize, Serialize};

/// What kind of event a line records (Jepsen's `:type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The operation was sent.
    Invoke,
    /// The operation completed and took effect.
    Ok,
    /// The operation completed and certainly did not take effect.
    Fail,
    /// The outcome is unknown. Never treat this as a failure.
    Info,
}

/// Who produced an event: a client process, or the nemesis.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    /// A client process, numbered from 0.
    Client(u64),
    /// A named actor: `"nemesis"` for faults, `"log"` for entries read back
    /// from the replicated log, `"final"` for end-of-run reads.
    Named(String),
}

/// One line of a history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub process: Process,
    /// The operation, e.g. `acquire`, `release`, `write`, `read`; for the
    /// nemesis, `start` or `stop`.
    pub f: String,
    /// Operation-specific payload; see `docs/history.md`.
    #[serde(default)]
    pub value: serde_json::Value,
    /// Monotonic time in nanoseconds since the start of the run.
    pub time: u64,
    /// The node that served the request, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A whole history, in the order the events were recorded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub events: Vec<Event>,
}
