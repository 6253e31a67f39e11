use crate::history::History;
use crate::verdict::{exit_code, overall, Verdict};
use serde_json::{json, Value};

/// The machine report: the overall status, the exit code `fenced check`
/// uses for it, and every verdict with its evidence. Evidence carries the
/// events themselves too, so the report can be read without the history.
pub fn report_json(history: &History, verdicts: &[Verdict]) -> Value {
    let rendered: Vec<Value> = verdicts
        .iter()
        .map(|v| {
            let evidence: Vec<Value> = v
                .evidence
                .iter()
                .map(|ev| {
                    let events: Vec<Value> = ev
                        .events
                        .iter()
                        .filter_map(|&i| Some(json!({"index": i, "event": history.events.get(i)?})))
                        .collect();
                    json!({"note": ev.note, "ops": ev.ops, "events": events})
                })
                .collect();
            json!({
                "property": v.property,
                "name": v.property.name(),
                "status": v.status,
                "message": v.message,
                "violations": v.violations,
                "evidence": evidence,
            })
        })
        .collect();
    json!({
        "status": overall(verdicts),
        "exit_code": exit_code(verdicts),
        "events": history.events.len(),
        "verdicts": rendered,
    })
}
