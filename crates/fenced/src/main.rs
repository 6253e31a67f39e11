//! `fenced`: the one binary. Each subcommand lives in its own module under
//! `cmd/`; this file only parses arguments and dispatches.

mod cmd;
mod malloc;

use clap::{Parser, Subcommand};

/// fenced: a lock service whose every grant carries a fencing token, and the
/// tools to prove it under the faults of DDIA chapter 8.
#[derive(Parser)]
#[command(name = "fenced", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one replica of a cluster.
    Serve(cmd::serve::ServeArgs),
    /// Run a 3-replica cluster inside this process, on loopback, for trying fenced out.
    Dev(cmd::dev::DevArgs),
    /// Acquire, release, inspect and hold locks.
    #[command(subcommand)]
    Lock(cmd::lock::LockCommand),
    /// Make and release claims (create-if-absent names).
    #[command(subcommand)]
    Claim(cmd::claim::ClaimCommand),
    /// Counting semaphores: set the permit count, take a permit (status and
    /// release: `fenced lock status|release`).
    #[command(subcommand)]
    Sem(cmd::sem::SemCommand),
    /// Measure RTTs, fsync latency and scheduling hiccups; recommend timeouts.
    Calibrate(cmd::calibrate::CalibrateArgs),
    /// Make a development CA, replica, store and client certificates, and an auth policy.
    Certs(cmd::certs::CertsArgs),
    /// Inspect and maintain the cluster: status, leadership, membership, drain, signing keys.
    #[command(subcommand)]
    Cluster(cmd::cluster::ClusterCommand),
    /// Backup files: inspect one, or restore a new cluster from one.
    #[command(subcommand)]
    Snapshot(cmd::snapshot::SnapshotCommand),
    /// Validate a replica config file offline.
    #[command(subcommand)]
    Config(cmd::config::ConfigCommand),
    /// Run the fenced store (a resource that rejects stale and forged
    /// tokens), or write to and read from one.
    #[command(subcommand)]
    Store(cmd::store::StoreCommand),
    /// Judge a recorded history against the safety and liveness properties.
    Check(fenced_check::cli::CheckArgs),
    /// Run the real code in a deterministic simulation under seeded faults.
    Sim(cmd::sim::SimArgs),
    /// Tell one of the chapter's stories in the simulator, narrated and judged.
    Demo(cmd::demo::DemoArgs),
    /// Tools for looking inside a replica.
    #[command(subcommand)]
    Debug(cmd::debug::DebugCommand),
    /// Benchmark a 3-replica cluster, optionally against etcd (`--vs etcd`).
    Bench(cmd::bench::BenchArgs),
    /// Jepsen-style faults on real replicas in network namespaces (root only).
    Chaos(cmd::chaos::ChaosArgs),
}

fn main() {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_) | Command::Dev(_) | Command::Store(cmd::store::StoreCommand::Serve(_))) {
        malloc::tune_for_server();
    }
    let code = match cli.command {
        Command::Check(args) => fenced_check::cli::run(&args),
        Command::Certs(args) => match cmd::certs::run(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                2
            }
        },
        Command::Demo(args) => match cmd::demo::run(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                2
            }
        },
        Command::Config(c) => match cmd::config::run(c) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                2
            }
        },
        Command::Snapshot(c) => match cmd::snapshot::run(c) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                2
            }
        },
        Command::Sim(args) => match cmd::sim::run(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                2
            }
        },
        other => cmd::run_async(other),
    };
    std::process::exit(code);
}

impl Command {
    async fn run(self) -> anyhow::Result<i32> {
        match self {
            Command::Serve(a) => cmd::serve::run(a).await,
            Command::Dev(a) => cmd::dev::run(a).await,
            Command::Lock(c) => cmd::lock::run(c).await,
            Command::Claim(c) => cmd::claim::run(c).await,
            Command::Sem(c) => cmd::sem::run(c).await,
            Command::Cluster(c) => cmd::cluster::run(c).await,
            Command::Calibrate(a) => cmd::calibrate::run(a).await,
            Command::Debug(c) => cmd::debug::run(c).await,
            Command::Bench(a) => cmd::bench::run(a).await,
            Command::Store(c) => cmd::store::run(c).await,
            Command::Chaos(a) => cmd::chaos::run(a).await,
            Command::Check(_)
            | Command::Sim(_)
            | Command::Demo(_)
            | Command::Config(_)
            | Command::Certs(_)
            | Command::Snapshot(_) => {
                unreachable!("handled synchronously")
            }
        }
    }
}
