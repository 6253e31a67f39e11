//! The report: text for people, JSON for tools, Markdown for the docs.

use crate::error::BenchError;
use crate::stats::civil_from_days;
use crate::workload::WorkloadResult;
use crate::Config;
use fenced_core::toolbox::clock::Clock;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// The machine the run happened on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
}

impl Machine {
    pub fn probe() -> Self {
        let nproc = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_string(), |(_, v)| v.trim().to_string());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
        Machine { nproc, cpu, kernel }
    }
}

/// fenced against etcd on one metric.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub workload: String,
    pub metric: String,
    pub fenced: f64,
    pub etcd: f64,
    /// `fenced / etcd`.
    pub ratio: f64,
    /// The target, in words, and whether this run met it.
    pub target: Option<String>,
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// UTC, `YYYY-MM-DD HH:MM`.
    pub date: String,
    pub machine: Machine,
    pub config: Config,
    pub results: Vec<WorkloadResult>,
    pub comparisons: Vec<Comparison>,
}

fn utc_now() -> String {
    let secs = (fenced_io::clock::system().wall_ms() / 1000) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", sod / 3600, (sod % 3600) / 60)
}

/// A target: its wording and a test of `(fenced, etcd, ratio)`.
type Target<'a> = (&'a str, &'a dyn Fn(f64, f64, f64) -> bool);

fn find<'a>(rs: &'a [WorkloadResult], system: &str, workload: &str) -> Option<&'a WorkloadResult> {
    rs.iter().find(|r| r.system == system && r.workload == workload)
}

/// The fenced/etcd ratios, with the targets where it sets one.
pub fn compare(results: &[WorkloadResult]) -> Vec<Comparison> {
    let mut out = Vec::new();
    let mut push = |workload: &str, metric: &str, get: &dyn Fn(&WorkloadResult) -> f64, target: Option<Target>| {
        if let (Some(f), Some(e)) = (find(results, "fenced", workload), find(results, "etcd", workload)) {
            let (fv, ev) = (get(f), get(e));
            let ratio = if ev != 0.0 { fv / ev } else { f64::NAN };
            out.push(Comparison {
                workload: workload.into(),
                metric: metric.into(),
                fenced: fv,
                etcd: ev,
                ratio,
                target: target.map(|t| t.0.to_string()),
                met: target.map(|t| t.1(fv, ev, ratio)),
            });
        }
    };
    let tput = |r: &WorkloadResult| r.throughput;
    let p99 = |r: &WorkloadResult| r.latency.p99_ms;
    let p50 = |r: &WorkloadResult| r.latency.p50_ms;
    let extra = |k: &'static str| move |r: &WorkloadResult| r.extra.get(k).copied().unwrap_or(f64::NAN);
    push("uncontended", "grants/s", &tput, Some(("≥ 3× etcd", &|_, _, r| r >= 3.0)));
    push("uncontended", "acquire p50 ms", &p50, None);
    push("uncontended", "acquire p99 ms", &p99, Some(("≤ etcd", &|f, e, _| f <= e)));
    push("contended", "handoffs/s", &tput, Some(("≥ 2× etcd", &|_, _, r| r >= 2.0)));
    push("contended", "Jain fairness", &extra("jain_fairness"), None);
    push("lease-grant", "leases/s", &tput, None);
    push("keepalive", "keepalives/s", &tput, None);
    push("keepalive", "keepalive p99 ms", &p99, None);
    push(
        "failover",
        "time to first grant ms",
        &extra("time_to_first_grant_ms"),
        Some(("≤ etcd and < 1500 ms", &|f, e, _| f <= e && f < 1500.0)),
    );
    push("failover", "longest grant gap ms", &extra("max_grant_gap_ms"), None);
    push("failover", "error rate 5 s after kill", &extra("error_rate_5s_after_kill"), None);
    push("memory", "max replica RSS KiB", &extra("rss_kib_max"), Some(("≤ 0.5× etcd", &|_, _, r| r <= 0.5)));
    push("memory", "locks held", &extra("held"), None);
    out
}

impl Report {
    pub fn new(config: Config, results: Vec<WorkloadResult>) -> Self {
        let comparisons = compare(&results);
        Report { date: utc_now(), machine: Machine::probe(), config, results, comparisons }
    }

    /// The per-workload table and the ratios, as Markdown-compatible text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} · {} CPUs · {} · {} clients (contended {}), {:.0} s per workload, {} leases, {} held locks",
            self.date,
            self.machine.nproc,
            self.machine.cpu,
            self.config.clients,
            self.config.contended_clients,
            self.config.duration.as_secs_f64(),
            self.config.leases,
            self.config.mem_locks
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "| system | workload | ops | errors | ops/s | p50 ms | p90 ms | p99 ms | max ms |");
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.results {
            let l = &r.latency;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
                r.system, r.workload, r.ops, r.errors, r.throughput, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
            );
        }
        let _ = writeln!(s);
        for r in self.results.iter().filter(|r| !r.extra.is_empty()) {
            let kv: Vec<String> = r.extra.iter().map(|(k, v)| format!("{k}={}", fmt_num(*v))).collect();
            let _ = writeln!(s, "- {} {}: {}", r.system, r.workload, kv.join(", "));
        }
        if !self.comparisons.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(s, "| workload | metric | fenced | etcd | fenced/etcd | target | met |");
            let _ = writeln!(s, "|---|---|---:|---:|---:|---|---|");
            for c in &self.comparisons {
                let met = match c.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "",
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {:.2} | {} | {met} |",
                    c.workload,
                    c.metric,
                    fmt_num(c.fenced),
                    fmt_num(c.etcd),
                    c.ratio,
                    c.target.as_deref().unwrap_or("")
                );
            }
        }
        s
    }

    /// Insert a dated run at the end of the `## Lock service vs etcd`
    /// section of `path` (created if absent), leaving other sections alone.
    pub fn append_docs(&self, path: &Path) -> Result<(), BenchError> {
        let io = |source| BenchError::Io { path: path.to_path_buf(), source };
        let doc = match std::fs::read_to_string(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n".to_string(),
            Err(e) => return Err(io(e)),
        };
        let run = format!(
            "\n### Run {} (`fenced bench{}`, {} CPUs, {})\n\n{}",
            self.date,
            if self.config.vs_etcd { " --vs etcd" } else { "" },
            self.machine.nproc,
            self.machine.cpu,
            self.to_text()
        );
        std::fs::write(path, insert_run(&doc, &run)).map_err(io)
    }
}

pub const SECTION: &str = "## Lock service vs etcd (`fenced bench`)";

/// `doc` with `run` appended to the end of [`SECTION`] (added at the end of
/// the document when missing).
pub fn insert_run(doc: &str, run: &str) -> String {
    let Some(start) = doc.find(SECTION) else {
        let mut d = doc.trim_end().to_string();
        let _ = write!(d, "\n\n{SECTION}\n{run}");
        return d;
    };
    let body = start + SECTION.len();
    let end = doc[body..].find("\n## ").map_or(doc.len(), |i| body + i + 1);
    let mut d = doc[..end].trim_end().to_string();
    d.push('\n');
    d.push_str(run);
    if end < doc.len() {
        d.push('\n');
        d.push_str(&doc[end..]);
    }
    d
}

fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if (v.fract() == 0.0 && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_goes_into_own_section_only() {
        let doc = format!("# B\n\n## Store\nx\n\n{SECTION}\nintro\n\n## Other\ny\n");
        let d = insert_run(&doc, "\n### Run 1\nz\n");
        assert!(d.contains("intro\n\n### Run 1\nz\n\n## Other\ny\n"), "{d}");
        let fresh = insert_run("# B\n\n## Store\nx\n", "\n### Run 1\n");
        assert!(fresh.ends_with(&format!("x\n\n{SECTION}\n\n### Run 1\n")), "{fresh}");
    }
}
