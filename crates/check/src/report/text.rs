use crate::history::History;
use crate::verdict::{overall, Verdict};
use std::fmt::Write;

/// The human report: one line per property with its verdict, then the
/// evidence, each event shown as its JSONL line.
pub fn render_text(history: &History, verdicts: &[Verdict]) -> String {
    render_text_with_lines(history, verdicts, None)
}

/// [`render_text`], naming events by their line in the input file (from
/// [`History::parse_jsonl_with_lines`]) rather than by index.
pub fn render_text_with_lines(history: &History, verdicts: &[Verdict], lines: Option<&[usize]>) -> String {
    let mut out = String::new();
    for v in verdicts {
        let _ = writeln!(
            out,
            "{:<3} {:<38} {:<8} {}",
            v.property,
            v.property.name(),
            v.status.to_string().to_uppercase(),
            v.message
        );
    }
    for v in verdicts.iter().filter(|v| !v.evidence.is_empty()) {
        let _ = writeln!(out, "\n{} {}: {} violation(s)", v.property, v.status, v.violations);
        for ev in &v.evidence {
            let _ = writeln!(out, "  - {}", ev.note);
            for &i in &ev.events {
                if let Some(e) = history.events.get(i) {
                    let line = serde_json::to_string(e).unwrap_or_default();
                    match lines.and_then(|l| l.get(i)) {
                        Some(n) => writeln!(out, "      line {n}: {line}"),
                        None => writeln!(out, "      event #{i}: {line}"),
                    }
                    .ok();
                }
            }
        }
        if v.violations > v.evidence.len() {
            let _ = writeln!(out, "  … and {} more", v.violations - v.evidence.len());
        }
    }
    let _ = writeln!(out, "\noverall: {}", overall(verdicts));
    out
}
