//! The history format: what happened, as data.
//!
//! One JSON object per line (JSON Lines). Every operation is an `invoke`
//! followed, for the same `process`, by at most one completion: `ok` (it took
//! effect), `fail` (it certainly did not take effect) or `info` (unknown: it may
//! have taken effect at any point after its invoke, or never). Nemesis events
//! (fault start and stop) use `process: "nemesis"` and `type: "info"`.
//! The full format is documented in `docs/history.md`.
//!
//! This module reads and writes that format ([`History::parse_jsonl`],
//! [`History::write_jsonl`]) and pairs invokes with their completions
//! ([`History::operations`]). Parsing is strict on purpose: a checker that
//! silently skipped a malformed line could call a broken run valid.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use thiserror::Error;

/// What kind of event a line records (Jepsen's `:type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The operation was sent.
    Invoke,
    /// The operation completed and took effect.
    Ok,
    /// The operation completed and certainly did not take effect.
    Fail,
    /// The outcome is unknown. Never treat this as a failure.
    Info,
}

impl EventType {
    /// The spelling used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who produced an event: a client process, or the nemesis.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    /// A client process, numbered from 0.
    Client(u64),
    /// A named actor: `"nemesis"` for faults, `"log"` for entries read back
    /// from the replicated log, `"final"` for end-of-run reads, `"clock"` for
    /// a replica's detection of a wall-clock jump.
    Named(String),
}

impl Process {
    /// The nemesis: fault start and stop events.
    pub const NEMESIS: &'static str = "nemesis";
    /// Entries read back from the replicated log at the end of a run.
    pub const LOG: &'static str = "log";
    /// End-of-run reads of the fenced store.
    pub const FINAL: &'static str = "final";
    /// A replica's clock-jump detections (`f: "jump"`, `node`, `value.jump_ms`),
    /// and in simulated histories the pauses it noticed by the end of the run
    /// (`f: "pauses"`, `value.pauses`, `value.pause_stepdowns`).
    pub const CLOCK: &'static str = "clock";

    /// True for the named process `name`.
    pub fn is_named(&self, name: &str) -> bool {
        matches!(self, Process::Named(n) if n == name)
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(n) => write!(f, "{n}"),
            Process::Named(s) => write!(f, "{s:?}"),
        }
    }
}

/// One line of a history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub process: Process,
    /// The operation, e.g. `acquire`, `release`, `write`, `read`; for the
    /// nemesis, `start` or `stop`.
    pub f: String,
    /// Operation-specific payload; see `docs/history.md`.
    #[serde(default)]
    pub value: serde_json::Value,
    /// Monotonic time in nanoseconds since the start of the run.
    pub time: u64,
    /// The node that served the request, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The recording process's wall clock with its error bound, read through
    /// its clock seam when the event was recorded; absent in histories written
    /// before it existed, in imports, and for actors without a clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall: Option<Wall>,
}

impl Event {
    /// A decision read back from the replicated log (process `"log"`), as
    /// the S4/S5 checkers expect it: `f` is the decision's kind.
    pub fn from_log(f: impl Into<String>, value: serde_json::Value, time: u64) -> Event {
        Event {
            kind: EventType::Ok,
            process: Process::Named("log".into()),
            f: f.into(),
            value,
            time,
            node: None,
            wall: None,
        }
    }
}

/// A wall-clock reading as an interval: the true time was somewhere in
/// `[earliest_ms, latest_ms]` (ms since the Unix epoch) *if* `synced` (the
/// recorder's clock was disciplined, e.g. by NTP). Written compactly as
/// `[earliest_ms, latest_ms, synced]`. `time` (monotonic, one clock per run)
/// orders events; the interval is what a wall clock can honestly say, and
/// what to order by when events come from machines with different clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(u64, u64, bool)", into = "(u64, u64, bool)")]
pub struct Wall {
    pub earliest_ms: u64,
    pub latest_ms: u64,
    pub synced: bool,
}

impl Wall {
    /// An interval; `earliest_ms` and `latest_ms` are put in order.
    pub fn new(earliest_ms: u64, latest_ms: u64, synced: bool) -> Wall {
        Wall { earliest_ms: earliest_ms.min(latest_ms), latest_ms: earliest_ms.max(latest_ms), synced }
    }

    /// Certainly earlier in real time than `other`: both synced and the
    /// intervals do not overlap (TrueTime's rule). Overlapping or unsynced
    /// intervals order nothing.
    pub fn certainly_before(&self, other: &Wall) -> bool {
        self.synced && other.synced && self.latest_ms < other.earliest_ms
    }

    /// The interval's width in ms (twice the error bound).
    pub fn width_ms(&self) -> u64 {
        self.latest_ms - self.earliest_ms
    }
}

impl From<(u64, u64, bool)> for Wall {
    fn from((e, l, s): (u64, u64, bool)) -> Wall {
        Wall::new(e, l, s)
    }
}

impl From<Wall> for (u64, u64, bool) {
    fn from(w: Wall) -> Self {
        (w.earliest_ms, w.latest_ms, w.synced)
    }
}

/// A whole history, in the order the events were recorded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub events: Vec<Event>,
}

/// Where in the input a problem is: a line of a JSONL file, or (for
/// histories built in memory or imported from other formats) an event index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pos {
    /// 1-based line number in the input file.
    Line(usize),
    /// 0-based index into [`History::events`].
    Event(usize),
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pos::Line(n) => write!(f, "line {n}"),
            Pos::Event(n) => write!(f, "event #{n}"),
        }
    }
}

/// A history whose events do not pair up into operations.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SequenceError {
    #[error("{at}: `{kind}` of `{f}` by process {process} has no matching invoke")]
    CompletionWithoutInvoke { at: Pos, kind: EventType, f: String, process: Process },
    #[error("{at}: process {process} invokes `{f}` while its invoke at {pending} is still pending (a process runs one operation at a time)")]
    DoubleInvoke { at: Pos, f: String, process: Process, pending: Pos },
    #[error(
        "{at}: completion of `{f}` by process {process} does not match its pending invoke of `{invoke_f}` at {pending}"
    )]
    MismatchedF { at: Pos, f: String, invoke_f: String, process: Process, pending: Pos },
    #[error("{at}: completion at time {time} ns is before its invoke at {pending} (time {invoke_time} ns)")]
    CompletionBeforeInvoke { at: Pos, time: u64, pending: Pos, invoke_time: u64 },
}

impl SequenceError {
    /// Where the offending event is.
    pub fn pos(&self) -> Pos {
        match self {
            SequenceError::CompletionWithoutInvoke { at, .. }
            | SequenceError::DoubleInvoke { at, .. }
            | SequenceError::MismatchedF { at, .. }
            | SequenceError::CompletionBeforeInvoke { at, .. } => *at,
        }
    }
}

/// Why one line of a JSONL history could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineError {
    #[error("truncated line: the JSON ends early ({0})")]
    Truncated(String),
    #[error("not valid JSON: {0}")]
    Syntax(String),
    #[error("expected a JSON object, found {0}")]
    NotObject(&'static str),
    #[error("unknown field `{0}` (the fields are: type, process, f, value, time, node, wall)")]
    UnknownField(String),
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}`: {msg}")]
    BadField { field: &'static str, msg: String },
}

/// Why a JSONL history could not be read. Always names the line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("line {line}: {error}")]
    Line { line: usize, error: LineError },
    #[error(transparent)]
    Sequence(#[from] SequenceError),
}

impl ParseError {
    /// The 1-based line the error is on.
    pub fn line(&self) -> usize {
        match self {
            ParseError::Line { line, .. } => *line,
            ParseError::Sequence(e) => match e.pos() {
                Pos::Line(n) => n,
                Pos::Event(n) => n + 1,
            },
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Fail,
    /// Completed with `info`: unknown whether it took effect.
    Info,
    /// Never completed before the history ended: like `info`.
    Pending,
}

impl Outcome {
    /// True for an ok completion.
    pub fn is_ok(self) -> bool {
        self == Outcome::Ok
    }

    /// True if the operation may have taken effect (ok, info or pending).
    pub fn may_have_happened(self) -> bool {
        !matches!(self, Outcome::Fail)
    }
}

/// An invoke paired with its completion, or a standalone event of a named
/// process (the nemesis, the log read-back, final reads), which has no invoke.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Op<'a> {
    /// Index of the invoke in [`History::events`], if there was one.
    pub invoke: Option<usize>,
    /// Index of the completion in [`History::events`], if there was one; for
    /// a standalone event, the event itself.
    pub completion: Option<usize>,
    /// The first event of the operation (the invoke, or the standalone event).
    pub first: &'a Event,
    /// The completion event, if any.
    pub done: Option<&'a Event>,
}

impl<'a> Op<'a> {
    pub fn process(&self) -> &'a Process {
        &self.first.process
    }

    pub fn f(&self) -> &'a str {
        &self.first.f
    }

    /// How the operation ended. A standalone event ends as its own type.
    pub fn outcome(&self) -> Outcome {
        let kind = match (self.invoke, self.done) {
            (Some(_), None) => return Outcome::Pending,
            (_, Some(e)) => e.kind,
            (None, None) => self.first.kind,
        };
        match kind {
            EventType::Ok => Outcome::Ok,
            EventType::Fail => Outcome::Fail,
            EventType::Info | EventType::Invoke => Outcome::Info,
        }
    }

    /// When it was invoked (ns).
    pub fn start(&self) -> u64 {
        self.first.time
    }

    /// When it completed (ns), if it did. Standalone events end when they start.
    pub fn end(&self) -> Option<u64> {
        match (self.invoke, self.done) {
            (_, Some(e)) => Some(e.time),
            (None, None) => Some(self.first.time),
            (Some(_), None) => None,
        }
    }

    /// A field of the value: the completion's value wins over the invoke's,
    /// because completions carry what the server decided (token, code) while
    /// invokes carry what was asked (key, value).
    pub fn field(&self, name: &str) -> Option<&'a serde_json::Value> {
        self.done
            .and_then(|e| e.value.get(name))
            .filter(|v| !v.is_null())
            .or_else(|| self.first.value.get(name).filter(|v| !v.is_null()))
    }

    /// The event indices of this operation, in order.
    pub fn event_indices(&self) -> Vec<usize> {
        self.invoke.into_iter().chain(self.completion).collect()
    }
}

impl History {
    pub fn new(events: Vec<Event>) -> Self {
        History { events }
    }

    /// Reads a JSONL history and checks that its events pair up.
    ///
    /// Blank lines are skipped (so event indices may differ from line
    /// numbers); every error names the 1-based line.
    pub fn parse_jsonl(text: &str) -> Result<History, ParseError> {
        History::parse_jsonl_with_lines(text).map(|(h, _)| h)
    }

    /// Like [`History::parse_jsonl`], and also returns the 1-based line of
    /// each event, to report later errors (bad values) by line.
    pub fn parse_jsonl_with_lines(text: &str) -> Result<(History, Vec<usize>), ParseError> {
        let mut events = Vec::new();
        let mut lines = Vec::new();
        let ends_with_newline = text.ends_with('\n');
        let all: Vec<&str> = text.split('\n').collect();
        let last = all.len().saturating_sub(1);
        for (i, raw) in all.iter().enumerate() {
            let line = i + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.trim().is_empty() {
                continue;
            }
            let event = parse_line(raw).map_err(|error| {
                // A last line without a newline that fails to parse was most
                // likely cut off by a crash of the recorder: say so.
                let error = match error {
                    LineError::Syntax(m) if i == last && !ends_with_newline => LineError::Truncated(m),
                    e => e,
                };
                ParseError::Line { line, error }
            })?;
            events.push(event);
            lines.push(line);
        }
        let history = History { events };
        pair(&history.events, &|i| Pos::Line(lines[i]))?;
        Ok((history, lines))
    }

    /// Reads a JSONL history from a reader.
    pub fn read_jsonl<R: io::Read>(mut reader: R) -> Result<History, ReadError> {
        let mut text = String::new();
        reader.read_to_string(&mut text)?;
        Ok(History::parse_jsonl(&text)?)
    }

    /// Writes the history as JSON Lines, one event per line.
    pub fn write_jsonl<W: io::Write>(&self, mut w: W) -> io::Result<()> {
        for e in &self.events {
            serde_json::to_writer(&mut w, e)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }

    /// The history as a JSONL string.
    pub fn to_jsonl(&self) -> String {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail, and every Event serializes.
        self.write_jsonl(&mut out).expect("writing to memory");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    /// Checks that invokes and completions pair up; errors name event indices.
    pub fn validate(&self) -> Result<(), SequenceError> {
        pair(&self.events, &Pos::Event).map(|_| ())
    }

    /// Pairs every invoke with its completion, in invoke order. Events of
    /// named processes without an invoke become standalone operations.
    pub fn operations(&self) -> Result<Vec<Op<'_>>, SequenceError> {
        let pairs = pair(&self.events, &Pos::Event)?;
        Ok(pairs
            .into_iter()
            .map(|(first, completion)| {
                let is_invoke = self.events[first].kind == EventType::Invoke;
                Op {
                    invoke: is_invoke.then_some(first),
                    completion,
                    first: &self.events[first],
                    done: completion.map(|c| &self.events[c]),
                }
            })
            .collect())
    }

    /// Pairs `(a, b)` of events whose wall intervals contradict the recorded
    /// order: `a` was recorded before `b` (by `time`, the run's one monotonic
    /// clock) yet `b`'s interval lies certainly before `a`'s. Each means a
    /// clock was wrong by more than the bound it claimed (a jump, or a bad
    /// `maxerror`). At most one pair per event `b`, against the recorded
    /// event with the latest `earliest_ms` so far.
    pub fn wall_contradictions(&self) -> Vec<(usize, usize)> {
        let mut order: Vec<usize> = (0..self.events.len()).collect();
        order.sort_by_key(|&i| self.events[i].time);
        let mut out = Vec::new();
        // The event with the latest `earliest_ms` among those recorded at an
        // earlier `time` (ties in `time` are not ordered, so not compared).
        let mut best: Option<(usize, Wall)> = None;
        let mut pending: Option<(usize, Wall)> = None;
        let mut pending_time = None;
        for i in order {
            let e = &self.events[i];
            if pending_time != Some(e.time) {
                if let Some((j, w)) = pending.take() {
                    if best.is_none_or(|(_, b)| w.earliest_ms > b.earliest_ms) {
                        best = Some((j, w));
                    }
                }
                pending_time = Some(e.time);
            }
            let Some(w) = e.wall.filter(|w| w.synced) else { continue };
            if let Some((j, b)) = best {
                if w.certainly_before(&b) {
                    out.push((j, i));
                }
            }
            if pending.is_none_or(|(_, p)| w.earliest_ms > p.earliest_ms) {
                pending = Some((i, w));
            }
        }
        out
    }

    /// The time of the last event (ns), or 0 for an empty history.
    pub fn end_time(&self) -> u64 {
        self.events.iter().map(|e| e.time).max().unwrap_or(0)
    }
}

/// Reading a history from a file or stream failed.
#[derive(Debug, Error)]
pub enum ReadError {
    #[error("cannot read the history: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// Pairs events into operations: `(first event, completion)` per operation,
/// ordered by first event. A standalone event of a named process is
/// `(i, Some(i))`.
fn pair(events: &[Event], pos: &dyn Fn(usize) -> Pos) -> Result<Vec<(usize, Option<usize>)>, SequenceError> {
    let mut out: Vec<(usize, Option<usize>)> = Vec::with_capacity(events.len() / 2 + 1);
    // process -> index into `out` of its pending invoke
    let mut pending: BTreeMap<&Process, usize> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        if e.kind == EventType::Invoke {
            if let Some(&slot) = pending.get(&e.process) {
                return Err(SequenceError::DoubleInvoke {
                    at: pos(i),
                    f: e.f.clone(),
                    process: e.process.clone(),
                    pending: pos(out[slot].0),
                });
            }
            pending.insert(&e.process, out.len());
            out.push((i, None));
            continue;
        }
        match pending.remove(&e.process) {
            Some(slot) => {
                let inv = &events[out[slot].0];
                if inv.f != e.f {
                    return Err(SequenceError::MismatchedF {
                        at: pos(i),
                        f: e.f.clone(),
                        invoke_f: inv.f.clone(),
                        process: e.process.clone(),
                        pending: pos(out[slot].0),
                    });
                }
                if e.time < inv.time {
                    return Err(SequenceError::CompletionBeforeInvoke {
                        at: pos(i),
                        time: e.time,
                        pending: pos(out[slot].0),
                        invoke_time: inv.time,
                    });
                }
                out[slot].1 = Some(i);
            }
            None if matches!(e.process, Process::Named(_)) => out.push((i, Some(i))),
            None => {
                return Err(SequenceError::CompletionWithoutInvoke {
                    at: pos(i),
                    kind: e.kind,
                    f: e.f.clone(),
                    process: e.process.clone(),
                })
            }
        }
    }
    Ok(out)
}

const FIELDS: [&str; 7] = ["type", "process", "f", "value", "time", "node", "wall"];

/// Parses one line field by field, so that every error names the field and
/// what was wrong with it (serde's derive reports these less precisely).
fn parse_line(raw: &str) -> Result<Event, LineError> {
    let v: serde_json::Value = serde_json::from_str(raw).map_err(|e| match e.classify() {
        serde_json::error::Category::Eof => LineError::Truncated(e.to_string()),
        _ => LineError::Syntax(e.to_string()),
    })?;
    let serde_json::Value::Object(mut map) = v else {
        return Err(LineError::NotObject(json_kind(&v)));
    };
    if let Some(k) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(LineError::UnknownField(k.clone()));
    }
    let kind = match map.get("type").ok_or(LineError::MissingField("type"))? {
        serde_json::Value::String(s) => match s.as_str() {
            "invoke" => EventType::Invoke,
            "ok" => EventType::Ok,
            "fail" => EventType::Fail,
            "info" => EventType::Info,
            other => return Err(bad("type", format!("expected invoke, ok, fail or info, found {other:?}"))),
        },
        other => return Err(bad("type", format!("expected a string, found {}", json_kind(other)))),
    };
    let process = match map.get("process").ok_or(LineError::MissingField("process"))? {
        serde_json::Value::Number(n) => Process::Client(
            n.as_u64()
                .ok_or_else(|| bad("process", format!("a client process is a non-negative integer, found {n}")))?,
        ),
        serde_json::Value::String(s) => Process::Named(s.clone()),
        other => return Err(bad("process", format!("expected an integer or a string, found {}", json_kind(other)))),
    };
    let f = match map.get("f").ok_or(LineError::MissingField("f"))? {
        serde_json::Value::String(s) => s.clone(),
        other => return Err(bad("f", format!("expected a string, found {}", json_kind(other)))),
    };
    let time = match map.get("time").ok_or(LineError::MissingField("time"))? {
        serde_json::Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| bad("time", format!("expected a non-negative integer of nanoseconds, found {n}")))?,
        other => return Err(bad("time", format!("expected an integer of nanoseconds, found {}", json_kind(other)))),
    };
    let node = match map.get("node") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(bad("node", format!("expected a string, found {}", json_kind(other)))),
    };
    let wall = match map.get("wall") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(parse_wall(v).map_err(|msg| bad("wall", msg))?),
    };
    let value = map.remove("value").unwrap_or(serde_json::Value::Null);
    Ok(Event { kind, process, f, value, time, node, wall })
}

/// `[earliest_ms, latest_ms, synced]`, with earliest ≤ latest.
pub(crate) fn parse_wall(v: &serde_json::Value) -> Result<Wall, String> {
    let expected = "expected [earliest_ms, latest_ms, synced] (two non-negative integers and a boolean)";
    let serde_json::Value::Array(items) = v else {
        return Err(format!("{expected}, found {}", json_kind(v)));
    };
    match items.as_slice() {
        [e, l, s] => match (e.as_u64(), l.as_u64(), s.as_bool()) {
            (Some(e), Some(l), Some(s)) if e <= l => Ok(Wall::new(e, l, s)),
            (Some(e), Some(l), Some(_)) => Err(format!("earliest {e} is after latest {l}")),
            _ => Err(format!("{expected}, found {v}")),
        },
        _ => Err(format!("{expected}, found an array of {}", items.len())),
    }
}

fn bad(field: &'static str, msg: String) -> LineError {
    LineError::BadField { field, msg }
}

/// The JSON type of a value, for error messages.
pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"type":"invoke","process":0,"f":"acquire","value":{"lock":"a"},"time":1}
{"type":"ok","process":0,"f":"acquire","value":{"lock":"a","token":3,"lease":3},"time":5,"node":"n1"}
{"type":"info","process":"nemesis","f":"start","value":{"fault":"partition"},"time":6}
"#;

    #[test]
    fn round_trip() {
        let h = History::parse_jsonl(GOOD).expect("parses");
        assert_eq!(h.events.len(), 3);
        // serde_json sorts object keys, so compare parsed, not text.
        assert_eq!(History::parse_jsonl(&h.to_jsonl()).expect("reparses"), h);
        let ops = h.operations().expect("pairs");
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].outcome(), Outcome::Ok);
        assert_eq!(ops[0].field("token"), Some(&serde_json::json!(3)));
        assert_eq!(ops[0].field("lock"), Some(&serde_json::json!("a")));
        assert_eq!(ops[1].invoke, None);
        assert_eq!(ops[1].end(), Some(6));
    }

    fn err(text: &str) -> ParseError {
        History::parse_jsonl(text).expect_err("must not parse")
    }

    #[test]
    fn truncated_last_line() {
        let text = &GOOD[..GOOD.len() - 10];
        let e = err(text);
        assert_eq!(e.line(), 3);
        assert!(matches!(e, ParseError::Line { error: LineError::Truncated(_), .. }), "{e}");
    }

    #[test]
    fn unknown_field() {
        let e = err("{\"type\":\"ok\",\"process\":\"log\",\"f\":\"grant\",\"time\":1,\"tiem\":2}\n");
        assert_eq!(
            e.to_string(),
            "line 1: unknown field `tiem` (the fields are: type, process, f, value, time, node, wall)"
        );
    }

    #[test]
    fn bad_types() {
        let e = err("\n{\"type\":\"okay\",\"process\":0,\"f\":\"x\",\"time\":1}\n");
        assert_eq!(e.line(), 2);
        assert!(e.to_string().contains("found \"okay\""), "{e}");
        let e = err("{\"type\":\"invoke\",\"process\":-1,\"f\":\"x\",\"time\":1}\n");
        assert!(e.to_string().contains("`process`"), "{e}");
        let e = err("{\"type\":\"invoke\",\"process\":1,\"f\":\"x\",\"time\":\"1\"}\n");
        assert!(e.to_string().contains("`time`"), "{e}");
        let e = err("{\"type\":\"invoke\",\"process\":1,\"f\":\"x\"}\n");
        assert_eq!(e.to_string(), "line 1: missing field `time`");
        let e = err("[1]\n");
        assert!(matches!(e, ParseError::Line { error: LineError::NotObject(_), .. }));
    }

    #[test]
    fn completion_without_invoke() {
        let text = "{\"type\":\"invoke\",\"process\":1,\"f\":\"x\",\"time\":1}\n{\"type\":\"ok\",\"process\":2,\"f\":\"x\",\"time\":2}\n";
        let e = err(text);
        assert_eq!(e.line(), 2);
        assert!(e.to_string().contains("no matching invoke"), "{e}");
    }

    #[test]
    fn completion_before_invoke_in_time() {
        let text = "{\"type\":\"invoke\",\"process\":1,\"f\":\"x\",\"time\":5}\n{\"type\":\"ok\",\"process\":1,\"f\":\"x\",\"time\":2}\n";
        let e = err(text);
        assert_eq!(e.to_string(), "line 2: completion at time 2 ns is before its invoke at line 1 (time 5 ns)");
    }

    #[test]
    fn double_invoke_and_mismatch() {
        let text = "{\"type\":\"invoke\",\"process\":1,\"f\":\"x\",\"time\":1}\n{\"type\":\"invoke\",\"process\":1,\"f\":\"x\",\"time\":2}\n";
        assert!(matches!(err(text), ParseError::Sequence(SequenceError::DoubleInvoke { .. })));
        let text = "{\"type\":\"invoke\",\"process\":1,\"f\":\"x\",\"time\":1}\n{\"type\":\"ok\",\"process\":1,\"f\":\"y\",\"time\":2}\n";
        assert!(matches!(err(text), ParseError::Sequence(SequenceError::MismatchedF { .. })));
    }

    #[test]
    fn the_wall_bound_is_optional_compact_and_checked() {
        // Old histories have no `wall`: they still parse, with none.
        let h = History::parse_jsonl(GOOD).expect("parses");
        assert!(h.events.iter().all(|e| e.wall.is_none()));
        assert!(!h.to_jsonl().contains("wall"), "absent stays absent");
        let line = "{\"type\":\"info\",\"process\":\"clock\",\"f\":\"jump\",\"time\":1,\"wall\":[100,140,true]}\n";
        let h = History::parse_jsonl(line).expect("parses");
        assert_eq!(h.events[0].wall, Some(Wall::new(100, 140, true)));
        assert!(h.to_jsonl().contains("\"wall\":[100,140,true]"), "{}", h.to_jsonl());
        assert_eq!(History::parse_jsonl(&h.to_jsonl()).expect("reparses"), h);
        for bad in ["[140,100,true]", "[1,2]", "{\"earliest\":1}", "[1,2,\"yes\"]"] {
            let e = err(&line.replace("[100,140,true]", bad));
            assert!(e.to_string().contains("field `wall`"), "{bad}: {e}");
        }
    }

    #[test]
    fn intervals_order_events_only_when_they_do_not_overlap() {
        let a = Wall::new(100, 110, true);
        assert!(a.certainly_before(&Wall::new(111, 120, true)));
        assert!(!a.certainly_before(&Wall::new(110, 120, true)), "touching intervals overlap");
        assert!(!Wall::new(111, 120, true).certainly_before(&a));
        assert!(!a.certainly_before(&Wall::new(500, 600, false)), "an unsynced clock orders nothing");
    }

    #[test]
    fn wall_intervals_that_contradict_the_recorded_order_are_found() {
        let ev = |time: u64, wall: Option<Wall>| Event {
            kind: EventType::Info,
            process: Process::Named(Process::CLOCK.into()),
            f: "x".into(),
            value: serde_json::Value::Null,
            time,
            node: None,
            wall,
        };
        let w = |e, l| Some(Wall::new(e, l, true));
        let h = History::new(vec![
            ev(1, w(1000, 1010)),
            ev(2, w(1005, 1015)), // overlaps: fine
            ev(3, None),          // no bound: ignored
            ev(4, w(2000, 2010)),
            ev(5, w(1500, 1510)),                // certainly before the event at time 4: a jump back
            ev(5, Some(Wall::new(0, 1, false))), // unsynced: claims nothing
            ev(6, w(2005, 2015)),
        ]);
        assert_eq!(h.wall_contradictions(), vec![(3, 4)]);
        // Events recorded at the same `time` are not ordered against each other.
        let same = History::new(vec![ev(1, w(2000, 2010)), ev(1, w(1000, 1010))]);
        assert!(same.wall_contradictions().is_empty());
    }

    #[test]
    fn pending_operation() {
        let h = History::parse_jsonl("{\"type\":\"invoke\",\"process\":1,\"f\":\"x\",\"time\":1}").expect("parses");
        let ops = h.operations().expect("pairs");
        assert_eq!(ops[0].outcome(), Outcome::Pending);
        assert_eq!(ops[0].end(), None);
    }
}
