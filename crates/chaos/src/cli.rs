//! `fenced chaos` arguments and the command behind them. The `fenced` binary
//! only forwards here. A hidden role lets the driver start its workload
//! processes from the same binary: `fenced chaos client`. The store runs as
//! users run it, `fenced store serve`.

use crate::compare::{self, Row};
use crate::error::ChaosError;
use crate::nemesis::Kind;
use crate::run::{self, Config, Outcome};
use crate::target::Target;
use crate::worker::{self, WorkerArgs};
use clap::{Args, Subcommand};
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
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Server processes (3 or 5), one network namespace each. Default 3, and
    /// 5 for redlock and --compare (Redlock's recommended N).
    #[arg(long)]
    pub nodes: Option<u64>,
    /// Client processes.
    #[arg(long, default_value_t = 3)]
    pub clients: u64,
    /// How long the workload runs; the last quarter (at least 5 s) is healed.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Faults to inject, comma-separated: partition, one-way, pause, kill,
    /// clock, limp, and membership (fenced only: remove a voter or the
    /// leader and add it back, replace a killed voter by a spare).
    #[arg(long, default_value = "partition,one-way,pause,kill,clock,limp", value_delimiter = ',')]
    pub nemesis: Vec<Kind>,
    /// The system under test: fenced; etcd with the lock key's revision as a
    /// token the store checks (unsigned); etcd without a token; Redlock over
    /// redis-server (no token exists).
    #[arg(long, value_enum, default_value = "fenced")]
    pub target: Target,
    /// Run every target on the same seed and schedule, one after another,
    /// and print a table (also DIR/compare.json and DIR/compare.html).
    #[arg(long, conflicts_with = "target")]
    pub compare: bool,
    /// Seed of the fault schedule and the workload.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where the history, reports and logs go (default: chaos-<seed>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Locks (and store keys) the clients contend on.
    #[arg(long, default_value_t = 3)]
    pub locks: usize,
    /// Lease TTL the clients ask for. fenced's chaos cluster honours 3s to
    /// 1h (its election timeout is 1s..2s, and a lease must outlive a
    /// failover); a TTL outside that is refused before the run.
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
        None => run_driver(args.run, bin).await,
    }
}

async fn run_driver(a: RunArgs, bin: PathBuf) -> Result<i32, ChaosError> {
    if a.clients == 0 || a.clients > 64 {
        return Err(ChaosError::Usage("--clients must be between 1 and 64".into()));
    }
    let seed = a.seed.unwrap_or_else(rand::random);
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("chaos-{seed}")));
    let targets: Vec<Target> = if a.compare { Target::ALL.to_vec() } else { vec![a.target] };
    let nodes = a.nodes.unwrap_or(if a.compare || a.target == Target::Redlock { 5 } else { 3 });
    if targets.contains(&Target::Redlock) && nodes != 5 {
        return Err(ChaosError::Usage(
            "Redlock runs on 5 independent redis-server processes (its recommended N); use --nodes 5".into(),
        ));
    }
    // Before anything runs: a --compare must not run etcd and Redlock for
    // minutes and then refuse fenced.
    for t in &targets {
        run::check_ttl(*t, a.ttl)?;
    }
    let mut outcomes = Vec::new();
    for target in targets {
        let dir = if a.compare { out.join(target.name()) } else { out.clone() };
        let cfg = Config {
            bin: bin.clone(),
            target,
            nodes,
            clients: a.clients,
            duration: a.duration,
            kinds: a.nemesis.iter().copied().collect::<BTreeSet<_>>(),
            seed,
            out: dir.clone(),
            locks: a.locks.max(1),
            ttl: a.ttl,
            progress: true,
        };
        if a.compare {
            eprintln!("[chaos] === {} ===", target.name());
        }
        let o = run::run(cfg).await?;
        if !a.compare {
            if a.json {
                println!("{}", summary_json(&o, seed, &dir));
            } else {
                print!("{}", summary_text(&o, seed, &dir));
            }
            return Ok(fenced_check::verdict::exit_code(&o.verdicts));
        }
        outcomes.push((o, dir));
    }
    let rows: Vec<Row> = outcomes.iter().map(|(o, dir)| Row::of(o, dir)).collect();
    let doc = compare::json(seed, nodes, a.duration, &rows);
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|source| ChaosError::Write { path, source })
    };
    write("compare.json", serde_json::to_string_pretty(&doc).unwrap_or_default())?;
    write("compare.html", compare::html(seed, nodes, a.duration, &rows))?;
    if a.json {
        println!("{doc}");
    } else {
        print!("{}", compare::text(seed, nodes, a.duration, &rows));
        println!("(also {} and compare.html)", out.join("compare.json").display());
    }
    // The comparison ran; its findings are data, not a failure of the command.
    Ok(0)
}

pub fn summary_json(o: &Outcome, seed: u64, out: &std::path::Path) -> serde_json::Value {
    json!({
        "target": o.target,
        "metrics": o.metrics,
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
    let mut s = format!("fenced chaos: target {}, seed {seed}, {} faults\n", o.target.name(), o.schedule.len());
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
    let m = &o.metrics;
    let pct = |a: &crate::metrics::Availability| a.ratio().map_or("-".into(), |r| format!("{:.0}%", r * 100.0));
    s.push_str(&format!(
        "acquires ok: {} during faults, {} outside; acquire p50 {:.1} ms, p99 {:.1} ms; {} stale writes refused\n",
        pct(&m.during_faults),
        pct(&m.outside_faults),
        m.acquire_latency.p50_ms,
        m.acquire_latency.p99_ms,
        m.writes_refused_stale
    ));
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
