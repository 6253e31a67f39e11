//! `fenced chaos` arguments and the command behind them. The `fenced` binary
//! only forwards here. Two hidden roles let the driver start the pieces it
//! needs from the same binary: `fenced chaos client` (one workload process)
//! and `fenced chaos store` (the fenced store, in its namespace).

use crate::error::ChaosError;
use crate::nemesis::Kind;
use crate::run::{self, Config, Outcome};
use crate::worker::{self, WorkerArgs};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ChaosArgs {
    #[command(subcommand)]
    pub role: Option<Role>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Role {
    /// One client process of a chaos run (started by the driver).
    #[command(hide = true)]
    Client(WorkerArgs),
    /// The fenced store of a chaos run (started by the driver).
    #[command(hide = true)]
    Store(fenced_store::cli::ServeArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Fenced,
    Etcd,
    Redlock,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Replicas (3 or 5), one network namespace each.
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Client processes.
    #[arg(long, default_value_t = 3)]
    pub clients: u64,
    /// How long the workload runs; the last quarter (at least 5 s) is healed.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Faults to inject, comma-separated.
    #[arg(long, default_value = "partition,one-way,pause,kill,clock,limp", value_delimiter = ',')]
    pub nemesis: Vec<Kind>,
    #[arg(long, value_enum, default_value = "fenced")]
    pub target: Target,
    /// Seed of the fault schedule and the workload.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where the history, reports and logs go (default: chaos-<seed>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Locks (and store keys) the clients contend on.
    #[arg(long, default_value_t = 3)]
    pub locks: usize,
    /// Lease TTL the clients ask for.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub ttl: Duration,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 20s, 2m)"))
}

/// Run `fenced chaos`; `bin` is the fenced binary (the current executable).
pub async fn run(args: ChaosArgs, bin: PathBuf) -> Result<i32, ChaosError> {
    match args.role {
        Some(Role::Client(w)) => {
            worker::run(w).await;
            Ok(0)
        }
        Some(Role::Store(s)) => fenced_store::cli::run(fenced_store::cli::StoreCommand::Serve(s))
            .await
            .map_err(|e| ChaosError::NotReady(e.to_string())),
        None => run_driver(args.run, bin).await,
    }
}

async fn run_driver(a: RunArgs, bin: PathBuf) -> Result<i32, ChaosError> {
    match a.target {
        Target::Fenced => {}
        Target::Etcd => return Err(ChaosError::TargetNotImplemented("etcd".into())),
        Target::Redlock => return Err(ChaosError::TargetNotImplemented("redlock".into())),
    }
    if a.clients == 0 || a.clients > 64 {
        return Err(ChaosError::Usage("--clients must be between 1 and 64".into()));
    }
    let seed = a.seed.unwrap_or_else(rand::random);
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("chaos-{seed}")));
    let cfg = Config {
        bin,
        nodes: a.nodes,
        clients: a.clients,
        duration: a.duration,
        kinds: a.nemesis.iter().copied().collect::<BTreeSet<_>>(),
        seed,
        out: out.clone(),
        locks: a.locks.max(1),
        ttl: a.ttl,
        progress: true,
    };
    let o = run::run(cfg).await?;
    if a.json {
        println!("{}", summary_json(&o, seed, &out));
    } else {
        print!("{}", summary_text(&o, seed, &out));
    }
    Ok(fenced_check::verdict::exit_code(&o.verdicts))
}

pub fn summary_json(o: &Outcome, seed: u64, out: &std::path::Path) -> serde_json::Value {
    json!({
        "target": "fenced",
        "seed": seed,
        "status": o.status(),
        "verdicts": o.verdicts.iter().map(|v| json!({
            "property": v.property.to_string(), "status": v.status, "violations": v.violations, "message": v.message,
        })).collect::<Vec<_>>(),
        "client_events": o.counts(),
        "faults": o.schedule.len(),
        "notes": o.notes,
        "leftover_namespaces": o.leftovers_after,
        "out": out.display().to_string(),
    })
}

pub fn summary_text(o: &Outcome, seed: u64, out: &std::path::Path) -> String {
    let mut s = format!("fenced chaos: target fenced, seed {seed}, {} faults\n", o.schedule.len());
    let c = o.counts();
    s.push_str(&format!(
        "client events: {} invoke, {} ok, {} fail, {} info\n",
        c.get("invoke").unwrap_or(&0),
        c.get("ok").unwrap_or(&0),
        c.get("fail").unwrap_or(&0),
        c.get("info").unwrap_or(&0)
    ));
    for v in &o.verdicts {
        s.push_str(&format!(
            "  {:<3} {:<8} {}\n",
            v.property.to_string(),
            format!("{:?}", v.status).to_lowercase(),
            v.message
        ));
    }
    for n in &o.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    if !o.leftovers_after.is_empty() {
        s.push_str(&format!("WARNING: namespaces left behind: {}\n", o.leftovers_after.join(", ")));
    }
    s.push_str(&format!(
        "overall: {:?}; history, report.json, report.html and logs in {}\n",
        o.status(),
        out.display()
    ));
    s
}
