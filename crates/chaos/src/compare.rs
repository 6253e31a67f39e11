//! `fenced chaos --compare`: one row per target, run on the same seed and
//! schedule, rendered as text, JSON and HTML. Pure (rows are built from
//! outcomes; rendering takes rows).

use crate::metrics::Metrics;
use crate::run::Outcome;
use crate::target::Target;
use fenced_check::verdict::Status;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The properties shown, in order.
pub const PROPERTIES: [&str; 7] = ["S1", "S2", "S3", "S4", "S5", "S7", "L1"];

/// One target's line.
#[derive(Debug, Clone)]
pub struct Row {
    pub target: Target,
    /// Per property: its status and how many violations.
    pub verdicts: BTreeMap<String, (Status, usize)>,
    pub metrics: Metrics,
    pub faults: usize,
    pub dir: PathBuf,
}

impl Row {
    pub fn of(o: &Outcome, dir: &Path) -> Row {
        Row {
            target: o.target,
            verdicts: o.verdicts.iter().map(|v| (v.property.to_string(), (v.status, v.violations))).collect(),
            metrics: o.metrics.clone(),
            faults: o.schedule.len(),
            dir: dir.to_path_buf(),
        }
    }

    /// `0` valid, the violation count if invalid, `?` unknown, `-` not judged.
    pub fn cell(&self, property: &str) -> String {
        match self.verdicts.get(property) {
            Some((Status::Valid, _)) => "0".into(),
            Some((Status::Invalid, n)) => n.to_string(),
            Some((Status::Unknown, _)) => "?".into(),
            None => "-".into(),
        }
    }
}

fn pct(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{:.0}%", r * 100.0))
}

const HEADER: [&str; 6] =
    ["ops ok", "acq ok in faults", "acq ok otherwise", "acq p50 ms", "acq p99 ms", "stale refused"];

fn numbers(r: &Row) -> [String; 6] {
    let m = &r.metrics;
    [
        m.ops_ok.to_string(),
        pct(m.during_faults.ratio()),
        pct(m.outside_faults.ratio()),
        format!("{:.1}", m.acquire_latency.p50_ms),
        format!("{:.1}", m.acquire_latency.p99_ms),
        m.writes_refused_stale.to_string(),
    ]
}

fn legend(seed: u64, nodes: u64, duration: Duration) -> String {
    format!(
        "seed {seed}, {nodes} nodes, {:?} per target. Property cells: violations found (0 = valid, ? = unknown: \
         no log to read back). acq ok = share of acquires that succeeded.",
        duration
    )
}

/// The table as a Markdown-compatible text table.
pub fn text(seed: u64, nodes: u64, duration: Duration, rows: &[Row]) -> String {
    let mut s = format!("{}\n\n", legend(seed, nodes, duration));
    let head: Vec<String> = std::iter::once("target".to_string())
        .chain(PROPERTIES.iter().map(|p| p.to_string()))
        .chain(HEADER.iter().map(|h| h.to_string()))
        .collect();
    s.push_str(&format!("| {} |\n", head.join(" | ")));
    s.push_str(&format!("|{}\n", "---|".repeat(head.len())));
    for r in rows {
        let cells: Vec<String> = std::iter::once(r.target.name().to_string())
            .chain(PROPERTIES.iter().map(|p| r.cell(p)))
            .chain(numbers(r))
            .collect();
        s.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    s
}

pub fn json(seed: u64, nodes: u64, duration: Duration, rows: &[Row]) -> Value {
    json!({
        "seed": seed,
        "nodes": nodes,
        "duration_s": duration.as_secs_f64(),
        "rows": rows.iter().map(|r| json!({
            "target": r.target,
            "store_mode": r.target.store_mode(),
            "token": r.target.token_meaning(),
            "faults": r.faults,
            "verdicts": r.verdicts.iter().map(|(p, (st, n))| (p.clone(), json!({"status": st, "violations": n}))).collect::<serde_json::Map<_, _>>(),
            "metrics": r.metrics,
            "report": r.dir.join("report.html").display().to_string(),
        })).collect::<Vec<_>>(),
    })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn html(seed: u64, nodes: u64, duration: Duration, rows: &[Row]) -> String {
    let mut s = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>fenced chaos --compare</title><style>\
         body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;\
         padding:4px 8px;text-align:right}td:first-child{text-align:left}.bad{background:#fbb}.unk{color:#888}\
         </style></head><body><h1>fenced chaos --compare</h1>",
    );
    s.push_str(&format!("<p>{}</p><table><tr><th>target</th>", esc(&legend(seed, nodes, duration))));
    for h in PROPERTIES.iter().copied().chain(HEADER) {
        s.push_str(&format!("<th>{}</th>", esc(h)));
    }
    s.push_str("</tr>");
    for r in rows {
        // Each target's report sits in a directory named after it, next to this page.
        s.push_str(&format!("<tr><td><a href=\"{0}/report.html\">{0}</a></td>", esc(r.target.name())));
        for p in PROPERTIES {
            let class = match r.verdicts.get(p) {
                Some((Status::Invalid, _)) => " class=\"bad\"",
                Some((Status::Unknown, _)) => " class=\"unk\"",
                _ => "",
            };
            s.push_str(&format!("<td{class}>{}</td>", esc(&r.cell(p))));
        }
        for n in numbers(r) {
            s.push_str(&format!("<td>{}</td>", esc(&n)));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table><ul>");
    for r in rows {
        s.push_str(&format!("<li><b>{}</b>: token = {}</li>", esc(r.target.name()), esc(r.target.token_meaning())));
    }
    s.push_str("</ul></body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(target: Target, s3: (Status, usize)) -> Row {
        let mut verdicts = BTreeMap::new();
        verdicts.insert("S3".to_string(), s3);
        verdicts.insert("S4".to_string(), (Status::Unknown, 0));
        Row { target, verdicts, metrics: Metrics::default(), faults: 3, dir: PathBuf::from("x") }
    }

    #[test]
    fn cells_and_renderings() {
        let rows = [row(Target::Fenced, (Status::Valid, 0)), row(Target::Redlock, (Status::Invalid, 4))];
        assert_eq!(rows[1].cell("S3"), "4");
        assert_eq!(rows[0].cell("S3"), "0");
        assert_eq!(rows[0].cell("S4"), "?");
        assert_eq!(rows[0].cell("L1"), "-");
        let t = text(1, 5, Duration::from_secs(60), &rows);
        assert!(t.contains("| redlock | - | - | 4 | ? |"), "{t}");
        let j = json(1, 5, Duration::from_secs(60), &rows);
        assert_eq!(j["rows"][1]["verdicts"]["S3"]["violations"], 4);
        assert_eq!(j["rows"][1]["store_mode"], "unfenced");
        let h = html(1, 5, Duration::from_secs(60), &rows);
        assert!(h.contains("<td class=\"bad\">4</td>"));
        assert!(h.contains("href=\"redlock/report.html\""));
    }
}
