//! `fenced sim`: run seeds of the deterministic simulation.
//!
//! One seed runs in this process. Several seeds run as child processes, one
//! seed per process (a crashed simulated host must not leave state behind
//! that changes the next seed), `--jobs` at a time.

use anyhow::Context;
use clap::Args;
use fenced_check::history::{EventType, Process};
use fenced_check::nemesis::{Fault, NemesisEvent};
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
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    #[command(subcommand)]
    pub action: Option<SimAction>,
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
    /// Clients also take shared and re-entrant holds and semaphore permits (changing the permit count): S4 judges every mode.
    #[arg(long)]
    pub primitives: bool,
    /// Lose the cluster mid-run and bring it back through the real code:
    /// `restore` (every disk lost; a new cluster from a backup taken through
    /// the leader) or `recover` (all but one replica lost; the survivor
    /// rewritten as a one-member cluster). The verdict `restore` judges the
    /// token floor and states what the restore lost by design.
    #[arg(long, conflicts_with = "membership")]
    pub disaster: Option<fenced_sim::config::DisasterKind>,
    /// The token floor's bump for --disaster (the restore's `--bump`). The
    /// default is the production one; a small bump is a broken variant.
    #[arg(long, default_value_t = fenced_replica::storage::backup::DEFAULT_BUMP, requires = "disaster")]
    pub disaster_bump: u64,
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
    /// Run only shard I of N (1-based) of the sweep's seeds: the seed at
    /// position p (0-based, from --first-seed) belongs to shard p mod N + 1.
    /// Every machine runs the same command with its own I, and `fenced sim
    /// merge` joins their `--json` summaries.
    #[arg(long, value_parser = parse_shard, conflicts_with = "seed")]
    pub shard: Option<Shard>,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum SimAction {
    /// Join the `--json` summaries of sweeps (e.g. the shards of one sweep,
    /// run on several machines) into one summary, as if one sweep had run
    /// them all. A seed in two files counts once; if its two runs disagree
    /// (different history hashes: the binaries or settings differ), the
    /// merge fails.
    Merge(MergeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// The summaries (`fenced sim --seeds N [--shard I/N] --json > FILE`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Expect at least one violation: exit 0 only if one was found.
    #[arg(long)]
    pub expect_violation: bool,
    /// Summarise even when some shards of a sweep are missing (their seeds
    /// are then not in the totals). Without it a merge with missing shards
    /// names them and exits 1, so a lost machine cannot pass as a clean sweep.
    #[arg(long)]
    pub allow_missing: bool,
}

/// One shard of a sweep: `index` of `count`, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// Whether the seed at `position` of the sweep (0-based) is this shard's.
    /// Round-robin, so every shard gets the same mix of early and late seeds.
    pub fn owns(&self, position: u64) -> bool {
        position % self.count == self.index - 1
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    let bad = || format!("{s:?}: use I/N with 1 <= I <= N, e.g. --shard 2/8 (the second of eight machines)");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let index: u64 = i.trim().parse().map_err(|_| bad())?;
    let count: u64 = n.trim().parse().map_err(|_| bad())?;
    if count == 0 || index == 0 || index > count {
        return Err(bad());
    }
    Ok(Shard { index, count })
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
        c.primitives = self.primitives;
        c.disaster = self.disaster.map(|kind| fenced_sim::config::Disaster { kind, bump: self.disaster_bump });
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
    let mut verdicts: BTreeMap<String, Value> = o
        .verdicts
        .iter()
        .map(|v| (v.property.to_string(), json!({"status": status_str(v.status), "message": v.message})))
        .collect();
    // The restore's own promises (floor above every old token, new grants
    // above it, a backup equal to the log's prefix) count as safety.
    if let Some(d) = &o.disaster {
        verdicts.insert(
            "restore".into(),
            json!({"status": if d.ok() { "valid" } else { "invalid" }, "message": d.message()}),
        );
    }
    json!({
        "seed": o.config.seed,
        "history_hash": format!("{:016x}", o.history_hash),
        "events": o.history.events.len(),
        "sim_seconds": o.sim_time.as_secs_f64(),
        "wall_seconds": o.wall_time.as_secs_f64(),
        "long_client_pause": o.long_pause,
        "faults": o.schedule.len(),
        "fault_kinds": o.schedule.iter().map(|p| p.fault.name()).collect::<std::collections::BTreeSet<_>>(),
        "membership_changes": o.history.events.iter().filter(|e| {
            matches!(NemesisEvent::from_event(e), Ok(NemesisEvent::Stop(r))
                if matches!(r.fault, Fault::Membership { .. }) && r.detail.get("outcome").is_some_and(|o| o.get("voters").is_some()))
        }).count(),
        "verdicts": verdicts,
        "disaster": o.disaster.as_ref().map(|d| json!({"kind": d.kind, "floor": d.floor, "known_index": d.known_index,
            "old_grants": d.old_grants, "lost_grants": d.lost_grants.len(), "new_grants": d.new_grants})),
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
        if let Some(d) = &o.disaster {
            println!(
                "  {:<3} {:<8} {:<38} {}",
                "R",
                if d.ok() { "valid" } else { "invalid" },
                "restore above the token floor",
                d.message()
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
    if let Some(SimAction::Merge(m)) = &a.action {
        return merge(m);
    }
    if let Some(seed) = a.seed {
        return run_one(&a, seed);
    }
    let jobs = a.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)).max(1);
    let exe = std::env::current_exe().context("cannot find the fenced executable")?;
    let seeds: Vec<u64> = (a.first_seed..a.first_seed + a.seeds)
        .enumerate()
        .filter(|(position, _)| a.shard.is_none_or(|s| s.owns(*position as u64)))
        .map(|(_, seed)| seed)
        .collect();
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
    let sweep = json!({
        "first_seed": a.first_seed,
        "seeds": a.seeds,
        "shard": a.shard.map(|s| s.to_string()),
    });
    let summary = summarize(&results, wall, sweep);
    report(&summary, a.json, a.model != Model::Async)?;
    let any_violation =
        summary["seeds_with_safety_violations"].as_u64() != Some(0) || summary["errors"].as_u64() != Some(0);
    Ok(match (a.expect_violation, any_violation) {
        (true, true) | (false, false) => 0,
        _ => 1,
    })
}

/// The summary of a sweep from its seeds' results; `sweep` says which seeds
/// were asked for (first seed, count, shard), for a later merge.
fn summarize(results: &BTreeMap<u64, Value>, wall: f64, sweep: Value) -> Value {
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
    json!({
        "seeds": results.len(),
        "sweep": sweep,
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
    })
}

/// Print a sweep's summary: as one JSON line, or as text for a reader.
fn report(summary: &Value, as_json: bool, judge_liveness: bool) -> anyhow::Result<()> {
    if as_json {
        println!("{summary}");
        return Ok(());
    }
    let n = |k: &str| summary[k].as_u64().unwrap_or(0);
    let f = |k: &str| summary[k].as_f64().unwrap_or(0.0);
    let mut out = std::io::stdout().lock();
    writeln!(out, "seeds run: {}", n("seeds"))?;
    match summary["violations_by_property"].as_object() {
        Some(m) if !m.is_empty() => {
            for (p, c) in m {
                writeln!(out, "safety violations of {p}: {c} seeds")?;
            }
        }
        _ => writeln!(out, "safety violations: none")?,
    }
    if n("errors") > 0 {
        writeln!(out, "seeds that failed to run: {}", n("errors"))?;
    }
    if judge_liveness {
        writeln!(
            out,
            "liveness (L1 after the last heal): {} of {} seeds held",
            n("seeds") - n("l1_failed"),
            n("seeds")
        )?;
    }
    writeln!(
        out,
        "seeds with a client paused past its TTL: {} (S3 violated in {})",
        n("seeds_with_long_client_pause"),
        n("s3_violations_among_long_pause_seeds")
    )?;
    writeln!(
        out,
        "speed: {:.0} simulated seconds per wall second ({:.0} s in {:.1} s), {:.0} seeds of this kind an hour",
        f("simulated_seconds") / f("wall_seconds").max(1e-9),
        f("simulated_seconds"),
        f("wall_seconds"),
        f("seeds_per_hour")
    )?;
    Ok(())
}

/// `fenced sim merge`: the union of sweeps' results, summarised again. The
/// merged wall time is the longest of the parts (they ran side by side), so
/// its speed is that of the whole fleet.
fn merge(m: &MergeArgs) -> anyhow::Result<i32> {
    let mut results: BTreeMap<u64, Value> = BTreeMap::new();
    let mut wall: f64 = 0.0;
    let mut shards: BTreeMap<u64, std::collections::BTreeSet<u64>> = BTreeMap::new();
    let mut sweeps = std::collections::BTreeSet::new();
    let mut async_model = false;
    for path in &m.files {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        // The summary is the last JSON line (a file may hold progress lines before it).
        let doc: Value = text
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l).ok().filter(|v| v.get("results").is_some()))
            .with_context(|| {
                format!(
                    "{} holds no sweep summary; write one with `fenced sim --seeds N --json > FILE`",
                    path.display()
                )
            })?;
        wall = wall.max(doc["wall_seconds"].as_f64().unwrap_or(0.0));
        let sweep = &doc["sweep"];
        sweeps.insert((sweep["first_seed"].as_u64(), sweep["seeds"].as_u64()));
        if let Some(Ok(s)) = sweep["shard"].as_str().map(parse_shard) {
            shards.entry(s.count).or_default().insert(s.index);
        }
        for r in doc["results"].as_array().into_iter().flatten() {
            let Some(seed) = r["seed"].as_u64() else {
                anyhow::bail!("{}: a result without a seed: {r}", path.display());
            };
            async_model |= r["replay"].as_str().is_some_and(|c| c.contains("--model async"));
            if let Some(prev) = results.get(&seed) {
                if prev["history_hash"] != r["history_hash"] {
                    anyhow::bail!(
                        "seed {seed} ran twice with different histories ({} and {} in {}): the parts were run with \
                         different binaries or settings, so their results do not add up; rerun them with one",
                        prev["history_hash"],
                        r["history_hash"],
                        path.display()
                    );
                }
                continue;
            }
            results.insert(seed, r.clone());
        }
    }
    let mut notes = Vec::new();
    let missing = missing_shards(&shards);
    if !missing.is_empty() {
        notes.push(format!("shards missing: {}", missing.join(", ")));
    }
    if sweeps.len() > 1 {
        notes.push(format!("the parts come from {} different sweeps (first seed, seeds)", sweeps.len()));
    }
    let mut summary = summarize(&results, wall, json!({"merged_files": m.files.len()}));
    summary["notes"] = json!(notes);
    summary["shards_missing"] = json!(missing);
    report(&summary, m.json, !async_model)?;
    if !m.json {
        for n in &notes {
            println!("note: {n}");
        }
    }
    if !missing.is_empty() && !m.allow_missing {
        eprintln!(
            "error: shards missing: {}; their seeds were not run or their summaries were not given. Run each \
             (`fenced sim --seeds N --shard I/N --json > FILE`, with the sweep's other settings) and merge again, \
             or pass --allow-missing to summarise without them",
            missing.join(", ")
        );
        return Ok(1);
    }
    let any_violation =
        summary["seeds_with_safety_violations"].as_u64() != Some(0) || summary["errors"].as_u64() != Some(0);
    Ok(match (m.expect_violation, any_violation) {
        (true, true) | (false, false) => 0,
        _ => 1,
    })
}

/// The shards (`I/N`) absent from the parts, given the indexes seen per count.
fn missing_shards(shards: &BTreeMap<u64, std::collections::BTreeSet<u64>>) -> Vec<String> {
    shards
        .iter()
        .flat_map(|(count, got)| (1..=*count).filter(|i| !got.contains(i)).map(move |i| format!("{i}/{count}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_seeds() {
        let shards: Vec<Shard> = (1..=4).map(|i| parse_shard(&format!("{i}/4")).unwrap()).collect();
        for position in 0..1000u64 {
            assert_eq!(shards.iter().filter(|s| s.owns(position)).count(), 1, "position {position}");
        }
        assert_eq!((0..8).filter(|p| shards[1].owns(*p)).collect::<Vec<_>>(), vec![1, 5]);
        for bad in ["0/4", "5/4", "1/0", "1", "a/b", "2/-1"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn summary_counts_violations_and_errors() {
        let mut r = BTreeMap::new();
        r.insert(1, json!({"seed": 1, "sim_seconds": 30.0, "verdicts": {"S3": {"status": "invalid"}, "L1": {"status": "valid"}}, "long_client_pause": true}));
        r.insert(2, json!({"seed": 2, "sim_seconds": 30.0, "verdicts": {"S3": {"status": "valid"}, "L1": {"status": "invalid"}}}));
        r.insert(3, json!({"seed": 3, "error": "seed process exited with 101"}));
        let s = summarize(&r, 2.0, json!(null));
        assert_eq!(s["seeds"], 3);
        assert_eq!(s["seeds_with_safety_violations"], 1);
        assert_eq!(s["violations_by_property"]["S3"], 1);
        assert_eq!(s["l1_failed"], 1);
        assert_eq!(s["errors"], 1);
        assert_eq!(s["s3_violations_among_long_pause_seeds"], 1);
        assert_eq!(s["simulated_seconds_per_wall_second"], 30.0);
    }
}
