//! `fenced bench`: fenced against etcd on this machine (see `fenced-bench`).

use anyhow::Context;
use clap::Args;
use fenced_bench::Config;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Also start a 3-member etcd cluster (Debian's `etcd-server`) and compare.
    #[arg(long, value_parser = ["etcd"])]
    pub vs: Option<String>,
    /// Concurrent clients (uncontended, keepalive, memory, failover).
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Clients competing for the one lock of the contended workload.
    #[arg(long, default_value_t = 16)]
    pub contended_clients: usize,
    /// Length of each timed workload.
    #[arg(long, default_value = "20s", value_parser = super::parse_duration)]
    pub duration: Duration,
    /// Leases kept alive by the keepalive workload.
    #[arg(long, default_value_t = 10_000)]
    pub leases: usize,
    /// Locks (each on its own lease) held when replica RSS is measured.
    #[arg(long, default_value_t = 100_000)]
    pub mem_locks: usize,
    /// Longest time spent taking those locks (fewer are held if it runs out).
    #[arg(long, default_value = "180s", value_parser = super::parse_duration)]
    pub mem_limit: Duration,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Append the run, dated, to this file's `fenced bench` section.
    #[arg(long, num_args = 0..=1, default_missing_value = "docs/benchmarks.md")]
    pub append_docs: Option<PathBuf>,
}

pub async fn run(a: BenchArgs) -> anyhow::Result<i32> {
    super::init_logging("warn");
    let fenced_bin = std::env::current_exe().context("cannot find the fenced binary to start replicas from")?;
    let cfg = Config {
        fenced_bin,
        vs_etcd: a.vs.is_some(),
        clients: a.clients.max(1),
        contended_clients: a.contended_clients.max(2),
        duration: a.duration,
        leases: a.leases,
        mem_locks: a.mem_locks,
        mem_limit: a.mem_limit,
    };
    let report = fenced_bench::run(&cfg).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    if let Some(path) = a.append_docs {
        report.append_docs(&path)?;
        eprintln!("appended to {}", path.display());
    }
    Ok(0)
}
