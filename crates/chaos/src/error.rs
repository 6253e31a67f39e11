//! Why a chaos run could not be carried out (distinct from a verdict on the
//! system under test, which is data in the report).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error(transparent)]
    Unsupported(#[from] crate::nemesis::Unsupported),
    #[error("fenced chaos must run as root (it creates network namespaces and nftables rules); run it with sudo")]
    NotRoot,
    #[error("`{tool}` is not installed: {hint}")]
    MissingTool { tool: String, hint: String },
    #[error("command `{cmd}` failed: {stderr}")]
    Command { cmd: String, stderr: String },
    #[error("cannot run `{cmd}`: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the fenced binary was not found at {0}; build it first (`cargo build -p fenced`)")]
    NoBinary(PathBuf),
    #[error("the cluster did not become ready: {0}")]
    NotReady(String),
    #[error("reading the replicas' logs failed: {0}")]
    Log(String),
    #[error("bad arguments: {0}")]
    Usage(String),
    #[error("interrupted; everything the run started was cleaned up")]
    Interrupted,
}
