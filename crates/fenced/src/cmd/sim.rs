//! `fenced sim`: run seeds of the deterministic simulation.
//!
//! One seed runs in this process. Several seeds run as child processes, one
//! seed per process (a crashed simulated host must not leave state behind
//! that changes the next seed), `--jobs` at a time.

use anyhow::Context;
use clap::Args;
use fenced_check::history::{EventType, Process};
use fenced_check::verdict::Status;
use fenced_io::clock::now;
use fenced_sim::config::{Faults, Model, SimConfig};
use fenced_sim::run::{run_seed, SeedOutcome};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// How many seeds to run (from --first-seed on).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Run exactly this seed (in this process).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The first seed of a sweep.
    #[arg(long, default_value_t = 1)]
    pub first_seed: u64,
    /// Replicas: 3 or 5.
    #[arg(long, default_value_t = 3, value_parser = parse_nodes)]
    pub nodes: u64,
    /// Client processes.
    #[arg(long, default_value_t = 4)]
    pub clients: u64,
    /// Simulated duration of the workload.
    #[arg(long, default_value = "30s", value_parser = super::parse_duration)]
    pub duration: Duration,
    /// Timing model: sync, partial (default) or async.
    #[arg(long, default_value = "partial")]
    pub model: Model,
    /// Node fault model: crash-recovery (default) or crash-stop.
    #[arg(long, default_value = "crash-recovery")]
    pub faults: Faults,
    /// One client presents forged, replayed and other-lock tokens.
    #[arg(long)]
    pub byzantine_clients: bool,
    /// The store accepts every write (shows the Figure 8-4 corruption).
    #[arg(long)]
    pub unfenced: bool,
    /// Clock drift beyond the clients' assumed rho (5 % instead of 0.04 %).
    #[arg(long)]
    pub drift_beyond_rho: bool,
    /// An operator removes and re-adds voters (joint consensus) until the faults stop, under the same faults.
    #[arg(long)]
    pub membership: bool,
    /// Each lock guards a prefix of store keys (`--guard k0/=k0`) and clients write several keys under it: S3 judges per-lock fencing.
    #[arg(long)]
    pub guarded: bool,
    /// L1: bound on an acquire after the network heals.
    #[arg(long, default_value = "10s", value_parser = super::parse_duration)]
    pub l1_bound: Duration,
    /// Seeds run at once (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Print the whole event trace of a single seed.
    #[arg(long)]
    pub trace: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Write an HTML timeline report per seed (failing seeds only in a sweep).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Expect at least one violation (for sweeps of deliberately broken
    /// setups, e.g. --unfenced): exit 0 only if one was found.
    #[arg(long)]
    pub expect_violation: bool,
}

fn parse_nodes(s: &str) -> Result<u64, String> {
    match s {
        "3" => Ok(3),
        "5" => Ok(5),
        _ => Err(format!("{s} replicas: use 3 or 5")),
    }
}

impl SimArgs {
    fn config(&self, seed: u64) -> SimConfig {
        let mut c = SimConfig::new(seed);
        c.nodes = self.nodes;
        c.clients = self.clients;
        c.duration = self.duration;
        c.model = self.model;
        c.faults = self.faults;
        c.byzantine_clients = self.byzantine_clients;
        c.unfenced = self.unfenced;
        c.drift_beyond_rho = self.drift_beyond_rho;
        c.membership = self.membership;
        c.guarded = self.guarded;
        c.l1_bound = self.l1_bound;
        c
    }

    /// The arguments a child process needs to run `seed` like this one.
    fn child_args(&self, seed: u64) -> Vec<String> {
        let mut a = vec![
            "sim".to_string(),
            "--seed".into(),
            seed.to_string(),
            "--nodes".into(),
            self.nodes.to_string(),
            "--clients".into(),
            self.clients.to_string(),
            "--duration".into(),
            format!("{}ms", self.duration.as_millis()),
            "--l1-bound".into(),
            format!("{}ms", self.l1_bound.as_millis()),
            "--json".into(),
        ];
        a.extend(self.config(seed).replay_command().split_whitespace().skip(10).map(String::from));
        a
    }
}

fn status_str(s: Status) -> &'static str {
    match s {
        Status::Valid => "valid",
        Status::Invalid => "invalid",
        Status::Unknown => "unknown",
    }
}

/// The JSON summary of one seed.
fn seed_json(o: &SeedOutcome) -> Value {
    let verdicts: BTreeMap<String, Value> = o
        .verdicts
        .iter()
        .map(|v| (v.property.to_string(), json!({"status": status_str(v.status), "message": v.message})))
        .collect();
    json!({
        "seed": o.config.seed,
        "history_hash": format!("{:016x}", o.history_hash),
        "events": o.history.events.len(),
        "sim_seconds": o.sim_time.as_secs_f64(),
        "wall_seconds": o.wall_time.as_secs_f64(),
        "long_client_pause": o.long_pause,
        "faults": o.schedule.len(),
        "fault_kinds": o.schedule.iter().map(|p| serde_json::to_value(&p.fault).ok().and_then(|v| v["fault"].as_str().map(String::from)).unwrap_or_default()).collect::<std::collections::BTreeSet<_>>(),
        "membership_changes": o.history.events.iter().filter(|e| {
            e.process.is_named("nemesis") && e.f == "stop" && e.value["fault"] == "membership" && e.value["outcome"].get("voters").is_some()
        }).count(),
        "verdicts": verdicts,
        "replay": o.config.replay_command(),
    })
}

fn is_violation(v: &Value) -> Vec<String> {
    v["verdicts"]
        .as_object()
        .map(|m| {
            m.iter().filter(|(k, x)| x["status"] == "invalid" && k.as_str() != "L1").map(|(k, _)| k.clone()).collect()
        })
        .unwrap_or_default()
}

fn liveness_failed(v: &Value) -> bool {
    v["verdicts"]["L1"]["status"] == "invalid"
}

fn print_trace(o: &SeedOutcome) {
    for e in &o.history.events {
        let who = match &e.process {
            Process::Client(p) => format!("c{p}"),
            Process::Named(n) => n.clone(),
        };
        let kind = match e.kind {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        };
        println!("{:>12.6}s {:<8} {:<7} {:<8} {}", e.time as f64 / 1e9, who, kind, e.f, e.value);
    }
}

fn run_one(a: &SimArgs, seed: u64) -> anyhow::Result<i32> {
    // Quiet unless RUST_LOG asks: the replicas log through tracing.
    super::init_logging("off");
    let cfg = a.config(seed);
    let o = run_seed(&cfg).with_context(|| format!("seed {seed}"))?;
    if a.trace {
        print_trace(&o);
    }
    if let Some(dir) = &a.html {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("seed-{seed}.html"));
        std::fs::write(&path, fenced_check::report::render_html(&o.history, &o.verdicts))?;
        std::fs::write(dir.join(format!("seed-{seed}.jsonl")), o.history.to_jsonl())?;
        eprintln!("wrote {}", path.display());
    }
    let summary = seed_json(&o);
    let violations = is_violation(&summary);
    if a.json {
        println!("{summary}");
    } else {
        println!(
            "seed {seed}: {} events, {:.1} s simulated in {:.2} s",
            o.history.events.len(),
            o.sim_time.as_secs_f64(),
            o.wall_time.as_secs_f64()
        );
        for v in &o.verdicts {
            println!(
                "  {:<3} {:<8} {:<38} {}",
                v.property.to_string(),
                status_str(v.status),
                v.property.name(),
                v.message
            );
        }
        println!("  history hash {:016x}", o.history_hash);
        if !violations.is_empty() {
            println!("VIOLATION of {}; replay with:\n  {} --trace", violations.join(", "), cfg.replay_command());
        }
    }
    Ok(i32::from(!violations.is_empty()))
}

pub fn run(a: SimArgs) -> anyhow::Result<i32> {
    if let Some(seed) = a.seed {
        return run_one(&a, seed);
    }
    let jobs = a.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)).max(1);
    let exe = std::env::current_exe().context("cannot find the fenced executable")?;
    let seeds: Vec<u64> = (a.first_seed..a.first_seed + a.seeds).collect();
    let bar = ProgressBar::new(seeds.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} seeds {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if a.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let started = now();
    let mut results: BTreeMap<u64, Value> = BTreeMap::new();
    let mut queue = seeds.iter().copied();
    let mut running: Vec<(u64, std::process::Child)> = Vec::new();
    let mut violating = 0usize;
    loop {
        while running.len() < jobs {
            let Some(seed) = queue.next() else { break };
            let child = Command::new(&exe)
                .args(a.child_args(seed))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start a seed process")?;
            running.push((seed, child));
        }
        if running.is_empty() {
            break;
        }
        let mut i = 0;
        while i < running.len() {
            if running[i].1.try_wait()?.is_some() {
                let (seed, child) = running.remove(i);
                let out = child.wait_with_output()?;
                let text = String::from_utf8_lossy(&out.stdout);
                let v = text.lines().rev().find_map(|l| serde_json::from_str::<Value>(l).ok()).unwrap_or_else(
                    || json!({"seed": seed, "error": format!("seed process exited with {}", out.status)}),
                );
                let viol = is_violation(&v);
                if !viol.is_empty() || v.get("error").is_some() {
                    violating += 1;
                    let replay =
                        v["replay"].as_str().map(String::from).unwrap_or_else(|| a.config(seed).replay_command());
                    bar.println(format!(
                        "seed {seed}: {} — replay: {replay} --trace",
                        if viol.is_empty() { "error".to_string() } else { format!("violates {}", viol.join(", ")) }
                    ));
                }
                bar.set_message(format!("{violating} failing"));
                bar.inc(1);
                results.insert(seed, v);
            } else {
                i += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    bar.finish_and_clear();
    let wall = now().since(started).as_secs_f64();
    // A seed replays bit for bit (one seed per process), so the reports of
    // the failing seeds are made by running each again in a process of its own.
    if let Some(dir) = &a.html {
        for (seed, v) in &results {
            if !is_violation(v).is_empty() {
                let status = Command::new(&exe)
                    .args(a.child_args(*seed))
                    .arg("--html")
                    .arg(dir)
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .status()
                    .with_context(|| format!("cannot replay seed {seed} for its report"))?;
                if status.code() == Some(2) {
                    eprintln!("warning: the report of seed {seed} could not be written");
                }
            }
        }
    }
    let sim_total: f64 = results.values().filter_map(|v| v["sim_seconds"].as_f64()).sum();
    let mut by_property: BTreeMap<String, usize> = BTreeMap::new();
    let mut l1_failed = 0;
    let mut errors = 0;
    for v in results.values() {
        for p in is_violation(v) {
            *by_property.entry(p).or_default() += 1;
        }
        if liveness_failed(v) {
            l1_failed += 1;
        }
        if v.get("error").is_some() {
            errors += 1;
        }
    }
    let long_pause_seeds = results.values().filter(|v| v["long_client_pause"] == true).count();
    let s3_in_long_pause = results
        .values()
        .filter(|v| v["long_client_pause"] == true && is_violation(v).iter().any(|p| p == "S3"))
        .count();
    // At this sweep's rate, with as many seeds at once as it ran (`--jobs`).
    let seeds_per_hour = if wall > 0.0 { results.len() as f64 * 3600.0 / wall } else { 0.0 };
    let summary = json!({
        "seeds": results.len(),
        "violations_by_property": by_property,
        "seeds_with_safety_violations": results.values().filter(|v| !is_violation(v).is_empty()).count(),
        "l1_failed": l1_failed,
        "errors": errors,
        "seeds_with_long_client_pause": long_pause_seeds,
        "s3_violations_among_long_pause_seeds": s3_in_long_pause,
        "simulated_seconds": sim_total,
        "wall_seconds": wall,
        "simulated_seconds_per_wall_second": if wall > 0.0 { sim_total / wall } else { 0.0 },
        "seeds_per_hour": seeds_per_hour,
        "results": results.values().collect::<Vec<_>>(),
    });
    let any_violation = !by_property.is_empty() || errors > 0;
    if a.json {
        println!("{summary}");
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(out, "seeds run: {}", results.len())?;
        if by_property.is_empty() {
            writeln!(out, "safety violations: none")?;
        } else {
            for (p, n) in &by_property {
                writeln!(out, "safety violations of {p}: {n} seeds")?;
            }
        }
        if errors > 0 {
            writeln!(out, "seeds that failed to run: {errors}")?;
        }
        if a.model != Model::Async {
            writeln!(
                out,
                "liveness (L1 after the last heal): {} of {} seeds held",
                results.len() - l1_failed,
                results.len()
            )?;
        }
        writeln!(
            out,
            "seeds with a client paused past its TTL: {long_pause_seeds} (S3 violated in {s3_in_long_pause})"
        )?;
        writeln!(
            out,
            "speed: {:.0} simulated seconds per wall second ({sim_total:.0} s in {wall:.1} s), {:.0} seeds of this kind an hour",
            sim_total / wall.max(1e-9),
            seeds_per_hour
        )?;
    }
    Ok(match (a.expect_violation, any_violation) {
        (true, true) | (false, false) => 0,
        _ => 1,
    })
}
