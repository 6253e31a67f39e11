//! The seams through which the outside world enters fenced.
//!
//! Production code and the simulator run the same replica, store and client;
//! only these implementations differ:
//! - [`transport`]: how bytes reach another host (TCP here, an in-memory network in the simulator);
//! - [`envelope`]: the error body every HTTP API answers with, and the API error carrying it;
//! - [`http`]: an HTTP/1 server and a pooled client built on any transport;
//! - [`disk`]: durable files with an explicit `sync` (fsync), so a simulated
//!   disk can lose what was not synced at a crash;
//! - [`clock`]: the system monotonic and wall clocks;
//! - [`frame`]: the checksummed binary encoding used on disk and between replicas;
//! - [`group_commit`]: one writer task per file, many callers per fsync (the Raft log's and the store's WAL);
//! - [`auth`]: who is calling (bearer token or client certificate) and per-prefix ACLs;
//! - [`tls`]: TLS (mutual when certificates are given) layered over any transport;
//! - [`wallclock`]: the wall clock's error bound from the kernel (`adjtimex`);
//! - [`timed_disk`]: fsync latency measurement, and an injectable slow disk;
//! - [`ui`]: what the replica's and the store's consoles share (style, script helpers, CSP).

pub mod auth;
pub mod clock;
pub mod disk;
pub mod envelope;
pub mod frame;
pub mod group_commit;
pub mod http;
pub mod listing;
pub mod process;
pub mod timed_disk;
pub mod tls;
pub mod transport;
pub mod ui;
pub mod wallclock;
