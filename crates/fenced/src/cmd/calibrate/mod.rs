//! `fenced calibrate`: measure the real network, disks and scheduler, and
//! recommend timeouts from them ("there's no correct value for timeouts —
//! they need to be determined experimentally").
//!
//! For `--duration` it pings every replica (`GET /v1/ping`), runs a trickle
//! of writes (lease grant + revoke, so that every replica fsyncs), and
//! samples its own scheduling lateness on a dedicated thread (jHiccup). At
//! the end it asks each replica for its status: its probe RTT to every peer,
//! its fsync latency, its tick lateness and its wall-clock bound. The
//! recommendation and its reasoning are in [`model`].

pub mod model;

use super::timing_file::TimingFile;
use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use fenced_client::{Client, ClientConfig};
use fenced_core::api::ClusterStatus;
use fenced_core::toolbox::clock::Clock;
use fenced_core::toolbox::latency::LatencySummary;
use fenced_io::clock::SystemClock;
use fenced_io::http::HttpClient;
use fenced_io::transport::TcpTransport;
use model::{us, Inputs, Recommendation};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// Replica addresses, comma-separated.
    #[arg(long, env = "FENCED_ENDPOINTS")]
    pub endpoints: String,
    /// How long to measure. Longer runs see rarer delays (p99.9 needs thousands of samples).
    #[arg(long, default_value = "30s", value_parser = super::parse_duration)]
    pub duration: Duration,
    /// Time between pings to each replica.
    #[arg(long, default_value = "10ms", value_parser = super::parse_duration)]
    pub ping_every: Duration,
    /// Do not write (no lease grant/revoke trickle); fsync numbers then come
    /// only from whatever else the cluster writes.
    #[arg(long)]
    pub no_writes: bool,
    /// Print JSON instead of the report.
    #[arg(long)]
    pub json: bool,
    /// Write the recommended timings to FILE in the server's config format
    /// (`fenced serve --config FILE`).
    #[arg(long)]
    pub write_config: Option<PathBuf>,
}

/// One replica as seen from here.
#[derive(Debug, Serialize)]
struct EndpointReport {
    endpoint: String,
    id: Option<u64>,
    rtt: LatencySummary,
    errors: u64,
    #[serde(skip)]
    samples_us: Vec<u64>,
}

#[derive(Debug, Serialize)]
struct PairReport {
    from: u64,
    to: u64,
    rtt: LatencySummary,
    phi: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    duration_ms: u64,
    endpoints: Vec<EndpointReport>,
    between_replicas: Vec<PairReport>,
    fsync: BTreeMap<u64, LatencySummary>,
    replica_lateness: BTreeMap<u64, LatencySummary>,
    wall_clocks: BTreeMap<u64, fenced_core::toolbox::clock::WallBound>,
    client_hiccup: LatencySummary,
    write_latency: LatencySummary,
    write_errors: u64,
    inputs: Inputs,
    recommendation: Recommendation,
}

async fn ping_loop(
    http: HttpClient,
    clock: Arc<dyn Clock>,
    ep: String,
    every: Duration,
    until: Duration,
) -> (Vec<u64>, u64) {
    let start = clock.now();
    let (mut samples, mut errors) = (Vec::new(), 0u64);
    let max = (until.as_nanos() / every.as_nanos().max(1)) as usize + 1;
    while clock.now().since(start) < until && samples.len() + (errors as usize) < max {
        let Ok(req) = hyper::Request::builder().uri("/v1/ping").body(Bytes::new()) else { break };
        let t0 = clock.now();
        match http.send(&ep, req, Duration::from_secs(2)).await {
            Ok(r) if r.status.is_success() => samples.push(us(clock.now().since(t0))),
            _ => errors += 1,
        }
        tokio::time::sleep(every).await;
    }
    (samples, errors)
}

async fn write_loop(client: Client, clock: Arc<dyn Clock>, until: Duration) -> (Vec<u64>, u64) {
    let start = clock.now();
    let (mut samples, mut errors) = (Vec::new(), 0u64);
    // Ten writes a second at most, bounded in count.
    for _ in 0..(until.as_millis() / 100 + 1) {
        if clock.now().since(start) >= until {
            break;
        }
        let t0 = clock.now();
        match client.grant_lease(Duration::from_secs(10)).await {
            Ok(l) => {
                samples.push(us(clock.now().since(t0)));
                let _ = client.revoke(l.lease).await;
            }
            Err(_) => errors += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (samples, errors)
}

/// jHiccup: sleep 1 ms over and over on a thread of its own and record how
/// much later than asked each wake-up came.
fn hiccup_thread(clock: Arc<dyn Clock>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        let want = Duration::from_millis(1);
        // Bounded: at most one sample per ms for an hour.
        while !stop.load(Ordering::Relaxed) && samples.len() < 3_600_000 {
            let t0 = clock.now();
            std::thread::sleep(want);
            samples.push(us(clock.now().since(t0).saturating_sub(want)));
        }
        samples
    })
}

fn summary_us(samples: &[u64]) -> LatencySummary {
    let v: Vec<Duration> = samples.iter().map(|u| Duration::from_micros(*u)).collect();
    LatencySummary::of(&v)
}

/// A terminal histogram on a 1-2-5 scale of milliseconds.
fn histogram(title: &str, samples_us: &[u64]) {
    println!("{title} ({} samples):", samples_us.len());
    if samples_us.is_empty() {
        println!("  (none)");
        return;
    }
    let max = samples_us.iter().copied().max().unwrap_or(0);
    let mut bounds = vec![0u64];
    let mut b = 50u64; // 0.05 ms
    while *bounds.last().unwrap_or(&0) <= max {
        bounds.push(b);
        b = match b.to_string().chars().next() {
            Some('1') => b * 2,
            Some('2') => b / 2 * 5,
            _ => b * 2,
        };
    }
    let counts: Vec<usize> =
        bounds.windows(2).map(|w| samples_us.iter().filter(|s| **s >= w[0] && **s < w[1]).count()).collect();
    let top = counts.iter().copied().max().unwrap_or(1).max(1);
    for (w, c) in bounds.windows(2).zip(&counts) {
        if *c == 0 {
            continue;
        }
        let bar = "#".repeat(((*c as f64 / top as f64) * 50.0).ceil() as usize);
        println!("  {:>8.2} - {:>8.2} ms {:>7} {bar}", w[0] as f64 / 1000.0, w[1] as f64 / 1000.0, c);
    }
}

fn line(name: &str, s: &LatencySummary) -> String {
    let f = |u: u64| u as f64 / 1000.0;
    format!(
        "{name:<28} p50 {:>8.2}  p99 {:>8.2}  p99.9 {:>8.2}  max {:>8.2} ms  (n={})",
        f(s.p50_us),
        f(s.p99_us),
        f(s.p999_us),
        f(s.max_us),
        s.count
    )
}

pub async fn run(a: CalibrateArgs) -> anyhow::Result<i32> {
    super::init_logging("warn");
    let eps = super::endpoints(&a.endpoints);
    if eps.is_empty() {
        bail!("--endpoints is empty; give every replica as HOST:PORT,HOST:PORT,...");
    }
    if a.duration < Duration::from_secs(1) {
        bail!("--duration must be at least 1s (30s or more for a meaningful p99.9)");
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let http = HttpClient::new(Arc::new(TcpTransport));
    let client = Client::new(ClientConfig::new(eps.clone())).context("cannot create a client")?;
    for ep in &eps {
        client.cluster_status_of(ep).await.with_context(|| format!("replica {ep} does not answer; is it running?"))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let hiccups = hiccup_thread(clock.clone(), stop.clone());
    let pings: Vec<_> = eps
        .iter()
        .map(|ep| tokio::spawn(ping_loop(http.clone(), clock.clone(), ep.clone(), a.ping_every, a.duration)))
        .collect();
    let writes = (!a.no_writes).then(|| tokio::spawn(write_loop(client.clone(), clock.clone(), a.duration)));
    let start = clock.now();
    while clock.now().since(start) < a.duration {
        tokio::time::sleep(Duration::from_secs(1).min(a.duration)).await;
        let done = clock.now().since(start).min(a.duration);
        eprint!("\rcalibrating: {:>3} / {} s", done.as_secs(), a.duration.as_secs());
    }
    eprintln!();
    let mut endpoints = Vec::new();
    for (ep, h) in eps.iter().zip(pings) {
        let (samples_us, errors) = h.await.context("ping task")?;
        endpoints.push(EndpointReport {
            endpoint: ep.clone(),
            id: None,
            rtt: summary_us(&samples_us),
            errors,
            samples_us,
        });
    }
    let (write_samples, write_errors) = match writes {
        Some(h) => h.await.context("write task")?,
        None => (Vec::new(), 0),
    };
    stop.store(true, Ordering::Relaxed);
    let hiccup_samples = hiccups.join().map_err(|_| anyhow::anyhow!("the hiccup sampler panicked"))?;

    let mut statuses: Vec<ClusterStatus> = Vec::new();
    for e in &mut endpoints {
        match client.cluster_status_of(&e.endpoint).await {
            Ok(s) => {
                e.id = Some(s.id);
                statuses.push(s);
            }
            Err(err) => eprintln!("warning: no status from {}: {err}", e.endpoint),
        }
    }
    let between: Vec<PairReport> = statuses
        .iter()
        .flat_map(|s| s.peers.iter().map(|(to, h)| PairReport { from: s.id, to: *to, rtt: h.rtt, phi: h.phi }))
        .collect();
    let fsync: BTreeMap<u64, LatencySummary> = statuses.iter().filter_map(|s| s.fsync.map(|f| (s.id, f))).collect();
    let lateness: BTreeMap<u64, LatencySummary> =
        statuses.iter().filter_map(|s| s.clock.as_ref().map(|c| (s.id, c.lateness))).collect();
    let wall_clocks = statuses.iter().filter_map(|s| s.clock.as_ref().map(|c| (s.id, c.wall))).collect();
    let client_hiccup = summary_us(&hiccup_samples);
    let client_rtt = summary_us(&endpoints.iter().flat_map(|e| e.samples_us.iter().copied()).collect::<Vec<_>>());

    let worst =
        |f: &dyn Fn(&LatencySummary) -> u64, it: &mut dyn Iterator<Item = LatencySummary>| it.map(|s| f(&s)).max();
    let pair_p999 = worst(&|s| s.p999_us, &mut between.iter().map(|p| p.rtt).filter(|r| r.count > 0));
    let pair_max = worst(&|s| s.max_us, &mut between.iter().map(|p| p.rtt).filter(|r| r.count > 0));
    let fsync_p999 = worst(&|s| s.p999_us, &mut fsync.values().copied().filter(|f| f.count > 0)).unwrap_or(0);
    let fsync_max = worst(&|s| s.max_us, &mut fsync.values().copied().filter(|f| f.count > 0)).unwrap_or(0);
    let late_p999 = worst(&|s| s.p999_us, &mut lateness.values().copied()).unwrap_or(0).max(client_hiccup.p999_us);
    let late_max = worst(&|s| s.max_us, &mut lateness.values().copied()).unwrap_or(0).max(client_hiccup.max_us);
    let pair_p99 = worst(&|s| s.p99_us, &mut between.iter().map(|p| p.rtt).filter(|r| r.count > 0));
    let fsync_p99 = worst(&|s| s.p99_us, &mut fsync.values().copied().filter(|f| f.count > 0)).unwrap_or(0);
    let late_p99 = worst(&|s| s.p99_us, &mut lateness.values().copied()).unwrap_or(0).max(client_hiccup.p99_us);
    if fsync_p999 == 0 {
        eprintln!("warning: no replica reported fsyncs; run without --no-writes for fsync numbers");
    }
    let inputs = Inputs {
        rtt_p999_us: pair_p999.unwrap_or(client_rtt.p999_us),
        fsync_p999_us: fsync_p999,
        lateness_p999_us: late_p999,
        round_p99_us: pair_p99.unwrap_or(client_rtt.p99_us) + fsync_p99 + late_p99,
        worst_us: pair_max.unwrap_or(client_rtt.max_us) + fsync_max + late_max,
        client_hiccup_max_us: client_hiccup.max_us,
        client_hiccup_p999_us: client_hiccup.p999_us,
        client_rtt_p999_us: client_rtt.p999_us,
        rho: client.config().rho,
    };
    let recommendation = model::recommend(&inputs);
    let report = Report {
        duration_ms: a.duration.as_millis() as u64,
        endpoints,
        between_replicas: between,
        fsync,
        replica_lateness: lateness,
        wall_clocks,
        client_hiccup,
        write_latency: summary_us(&write_samples),
        write_errors,
        inputs,
        recommendation,
    };
    if let Some(path) = &a.write_config {
        let r = &report.recommendation;
        let file = TimingFile {
            heartbeat: Some(Duration::from_millis(r.heartbeat_ms)),
            election_timeout: Some(Duration::from_millis(r.election_timeout_min_ms)),
            min_lease_ttl: Some(Duration::from_millis(r.min_lease_ttl_ms)),
            client_margin: Some(Duration::from_millis(r.client_margin_ms)),
        };
        let header = format!(
            "written by `fenced calibrate --endpoints {} --duration {}s`\nd (p99.9 heartbeat round) = {} ms; \
             expected false elections per day = {:.2e}",
            a.endpoints,
            a.duration.as_secs(),
            r.heartbeat_round_p999_ms,
            r.expected_false_elections_per_day
        );
        file.write(path, &header).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, &hiccup_samples, &write_samples);
        if let Some(path) = &a.write_config {
            println!("\nwrote {} (use: fenced serve --config {})", path.display(), path.display());
        }
    }
    Ok(0)
}

fn print_report(r: &Report, hiccups: &[u64], writes: &[u64]) {
    println!("round trips from here (GET /v1/ping):");
    for e in &r.endpoints {
        let name = format!("  -> {} (id {})", e.endpoint, e.id.map(|i| i.to_string()).unwrap_or("?".into()));
        println!(
            "{}{}",
            line(&name, &e.rtt),
            if e.errors > 0 { format!("  {} errors", e.errors) } else { String::new() }
        );
    }
    println!("round trips between replicas (their probes):");
    for p in &r.between_replicas {
        println!("{}  phi {:.2}", line(&format!("  {} -> {}", p.from, p.to), &p.rtt), p.phi);
    }
    println!("fsync on each replica:");
    for (id, f) in &r.fsync {
        println!("{}", line(&format!("  replica {id}"), f));
    }
    println!("scheduling lateness (jHiccup):");
    for (id, l) in &r.replica_lateness {
        println!("{}", line(&format!("  replica {id} tick"), l));
    }
    println!("{}", line("  this process (1 ms sleeps)", &r.client_hiccup));
    println!("{}", line("write (lease grant) latency", &r.write_latency));
    println!("wall clocks:");
    for (id, w) in &r.wall_clocks {
        println!(
            "  replica {id}: ±{:.1} ms ({}), [{} .. {}]",
            w.max_error_us as f64 / 1000.0,
            if w.synchronized { "synchronized" } else { "NOT synchronized" },
            w.earliest_ms,
            w.latest_ms
        );
    }
    println!();
    let all: Vec<u64> = r.endpoints.iter().flat_map(|e| e.samples_us.iter().copied()).collect();
    histogram("client round trips", &all);
    histogram("this process's scheduling lateness", hiccups);
    histogram("write latency", writes);
    let rec = &r.recommendation;
    println!();
    println!("recommended:");
    println!("  heartbeat          {} ms", rec.heartbeat_ms);
    println!("  election timeout   {}..{} ms", rec.election_timeout_min_ms, rec.election_timeout_max_ms);
    println!("  minimum lease TTL  {} ms", rec.min_lease_ttl_ms);
    println!("  client margin      {} ms", rec.client_margin_ms);
    println!(
        "  detection time     {}..{} ms; expected false elections: {:.2e} per day",
        rec.detection_time_ms[0], rec.detection_time_ms[1], rec.expected_false_elections_per_day
    );
    println!();
    for e in &rec.explanations {
        println!("- {e}");
    }
}
