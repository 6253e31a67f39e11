//! Errors of the benchmark harness.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("`etcd` not found on PATH; install Debian's `etcd-server` package (apt-get install -y etcd-server) or run without --vs etcd")]
    EtcdMissing,
    #[error("cannot start {what}: {source}")]
    Spawn { what: String, source: std::io::Error },
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Cluster(String),
    #[error("the {system} {workload} workload failed: {message}")]
    Workload { system: String, workload: String, message: String },
}

/// One failed operation of the load generator.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpError {
    /// Definitely refused (lock held, lease unknown, bad request).
    #[error("refused: {0}")]
    Refused(String),
    /// No answer in time: the outcome is unknown.
    #[error("unavailable: {0}")]
    Unavailable(String),
}
