//! Importers: histories written by other tools, as [`History`].
//!
//! - [`Format::Jsonl`]: fenced's own format (see `crate::history`).
//! - [`Format::JepsenEdn`]: a Jepsen `history.edn` — one vector or list of
//!   op maps, or a sequence of op maps (Porcupine's kv histories have one map
//!   per line). Jepsen 0.3's `#jepsen.history.Op{…}` records read as maps.
//! - [`Format::JepsenLog`]: Jepsen's console log, lines like
//!   `INFO  jepsen.util - 2\t:invoke\t:cas\t[4 4]`; other lines are skipped.
//!
//! How an op map becomes an [`Event`]:
//! - `:type` (`:invoke` `:ok` `:fail` `:info`) and `:f` are required;
//!   keywords become strings without the colon;
//! - `:process` is a non-negative integer (a client) or a keyword/string
//!   (named: `:nemesis` becomes `Named("nemesis")`); it defaults to `nemesis`
//!   when absent, since only nemesis ops lack a process in Jepsen histories;
//! - `:value` is converted to JSON (vectors, lists and sets become arrays);
//! - `:key`, if present (Porcupine kv, Jepsen `independent` unwrapped), is
//!   folded into the value as `{"key": k, "value": v}`, because [`Event`]
//!   has no key field;
//! - `:time` (ns) is kept; where it is missing the event's position in the
//!   file is its time, which preserves the real-time order a file's order
//!   implies. Porcupine's kv and etcd histories have no times at all;
//! - `:node` (a string) is kept, and so is `:wall` (`[earliest-ms latest-ms
//!   synced]`, fenced's wall-clock interval; Jepsen has none, so imports
//!   usually carry no wall bound); other fields (`:index`, `:error`) are dropped.

mod edn;

pub use edn::{Edn, EdnError, Reader};

use crate::history::{Event, EventType, History, ParseError, Process};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// An input format for `fenced check --format`.
///
/// It is also the CLI's value enum, so that the flag and the importer cannot
/// drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Format {
    /// fenced's own JSON Lines (`docs/history.md`).
    Jsonl,
    /// A Jepsen EDN history: a vector or sequence of op maps (also
    /// Porcupine-style kv histories, one EDN map per line).
    JepsenEdn,
    /// Jepsen's console log lines (`INFO  jepsen.util - <process>\t:<type>\t:<f>\t<value>`).
    JepsenLog,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Jsonl, Format::JepsenEdn, Format::JepsenLog];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::JepsenEdn => "jepsen-edn",
            Format::JepsenLog => "jepsen-log",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| format!("unknown format `{s}` (expected jsonl, jepsen-edn or jepsen-log)"))
    }
}

/// Why a history could not be imported. Every variant names a line.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ImportError {
    #[error(transparent)]
    Jsonl(#[from] ParseError),
    #[error(transparent)]
    Edn(#[from] EdnError),
    #[error("line {line}: expected an op map, found {found}")]
    NotAMap { line: usize, found: &'static str },
    #[error("line {line}: missing `:{field}`")]
    Missing { line: usize, field: &'static str },
    #[error("line {line}: `:{field}`: {msg}")]
    BadField { line: usize, field: &'static str, msg: String },
    #[error("line {line}: {msg}")]
    BadLine { line: usize, msg: String },
    /// Invokes and completions do not pair up (`at` is the line).
    #[error("line {line}: {msg}")]
    Sequence { line: usize, msg: String },
}

impl ImportError {
    /// The 1-based line of the problem.
    pub fn line(&self) -> usize {
        match self {
            ImportError::Jsonl(e) => e.line(),
            ImportError::Edn(e) => e.line(),
            ImportError::NotAMap { line, .. }
            | ImportError::Missing { line, .. }
            | ImportError::BadField { line, .. }
            | ImportError::BadLine { line, .. }
            | ImportError::Sequence { line, .. } => *line,
        }
    }
}

/// Reads `text` in `format`. The events must pair up (every completion has
/// an invoke of the same process and `f`), as in [`History::parse_jsonl`].
pub fn parse(format: Format, text: &str) -> Result<History, ImportError> {
    let (events, lines) = match format {
        Format::Jsonl => return Ok(History::parse_jsonl(text)?),
        Format::JepsenEdn => parse_edn(text)?,
        Format::JepsenLog => parse_log(text)?,
    };
    let history = History::new(events);
    if let Err(e) = history.validate() {
        // Name the line, not the event index.
        let line = match e.pos() {
            crate::history::Pos::Event(i) => lines.get(i).copied().unwrap_or(0),
            crate::history::Pos::Line(l) => l,
        };
        let msg = e.to_string();
        let msg = msg.split_once(": ").map_or(msg.as_str(), |(_, m)| m).to_string();
        return Err(ImportError::Sequence { line, msg });
    }
    Ok(history)
}

/// Events and the line each starts on.
type Lined = (Vec<Event>, Vec<usize>);

fn parse_edn(text: &str) -> Result<Lined, ImportError> {
    let mut r = Reader::new(text);
    let mut out = (Vec::new(), Vec::new());
    let mut last_time = 0;
    // One top-level vector or list holds the ops; otherwise every top-level
    // form is an op.
    if let Some(close) = r.open_seq()? {
        while !r.close_seq(close)? {
            let Some((line, form)) = r.read()? else {
                return Err(EdnError::Eof { line: r.line(), context: "the history" }.into());
            };
            push_op(&mut out, &mut last_time, line, &form)?;
        }
        if let Some((line, form)) = r.read()? {
            return Err(ImportError::BadLine {
                line,
                msg: format!("{} after the history's closing `{close}`", form.kind()),
            });
        }
        return Ok(out);
    }
    while let Some((line, form)) = r.read()? {
        push_op(&mut out, &mut last_time, line, &form)?;
    }
    Ok(out)
}

fn push_op(out: &mut Lined, last_time: &mut u64, line: usize, form: &Edn) -> Result<(), ImportError> {
    let Edn::Map(_) = form else {
        return Err(ImportError::NotAMap { line, found: form.kind() });
    };
    let name = |field: &'static str| -> Result<Option<String>, ImportError> {
        match form.get(field) {
            None | Some(Edn::Nil) => Ok(None),
            Some(Edn::Keyword(s) | Edn::Str(s) | Edn::Symbol(s)) => Ok(Some(s.clone())),
            Some(other) => Err(ImportError::BadField {
                line,
                field,
                msg: format!("expected a keyword or string, found {}", other.kind()),
            }),
        }
    };
    let kind = event_type(&name("type")?.ok_or(ImportError::Missing { line, field: "type" })?).ok_or_else(|| {
        bad(line, "type", format!("expected :invoke, :ok, :fail or :info, found {:?}", form.get("type")))
    })?;
    let f = name("f")?.ok_or(ImportError::Missing { line, field: "f" })?;
    let process = match form.get("process") {
        None | Some(Edn::Nil) => Process::Named(Process::NEMESIS.to_string()),
        Some(Edn::Int(n)) => {
            Process::Client(u64::try_from(*n).map_err(|_| bad(line, "process", format!("negative process {n}")))?)
        }
        Some(Edn::Keyword(s) | Edn::Str(s) | Edn::Symbol(s)) => Process::Named(s.clone()),
        Some(other) => {
            return Err(bad(line, "process", format!("expected an integer or keyword, found {}", other.kind())))
        }
    };
    let index = out.0.len() as u64;
    let time = match form.get("time") {
        None | Some(Edn::Nil) => (*last_time).max(index),
        Some(Edn::Int(t)) => u64::try_from(*t).map_err(|_| bad(line, "time", format!("negative time {t}")))?,
        Some(other) => return Err(bad(line, "time", format!("expected an integer of ns, found {}", other.kind()))),
    };
    *last_time = time;
    let value = form.get("value").map_or(serde_json::Value::Null, Edn::to_json);
    let value = match form.get("key") {
        Some(k) => serde_json::json!({ "key": k.to_json(), "value": value }),
        None => value,
    };
    let node = name("node")?;
    let wall = match form.get("wall") {
        None | Some(Edn::Nil) => None,
        Some(w) => Some(crate::history::parse_wall(&w.to_json()).map_err(|msg| bad(line, "wall", msg))?),
    };
    out.0.push(Event { kind, process, f, value, time, node, wall });
    out.1.push(line);
    Ok(())
}

fn bad(line: usize, field: &'static str, msg: String) -> ImportError {
    ImportError::BadField { line, field, msg }
}

fn event_type(s: &str) -> Option<EventType> {
    match s {
        "invoke" => Some(EventType::Invoke),
        "ok" => Some(EventType::Ok),
        "fail" => Some(EventType::Fail),
        "info" => Some(EventType::Info),
        _ => None,
    }
}

/// Jepsen's `util/log-op`: `process \t :type \t :f \t value [\t error]`
/// after a logger prefix ending in `jepsen.util - ` (Porcupine's copies) or
/// `jepsen.util: ` (logback's default pattern). Lines without the marker are
/// other log output and are skipped; a marked line whose fields do not
/// parse is an error. Times are line positions (the log's clock has ms
/// resolution at best; order is what matters).
fn parse_log(text: &str) -> Result<Lined, ImportError> {
    let mut out: Lined = (Vec::new(), Vec::new());
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let Some(at) = raw.find("jepsen.util") else { continue };
        let rest = raw[at + "jepsen.util".len()..].trim_start();
        let rest = rest.strip_prefix('-').or_else(|| rest.strip_prefix(':')).unwrap_or(rest).trim_start();
        let fields: Vec<&str> = rest.split('\t').collect();
        if fields.len() < 3 || !fields[1].starts_with(':') {
            // jepsen.util also logs other messages (e.g. timings).
            continue;
        }
        let process = parse_log_process(fields[0].trim(), line)?;
        let kind = event_type(&fields[1][1..])
            .ok_or_else(|| bad(line, "type", format!("expected :invoke, :ok, :fail or :info, found {}", fields[1])))?;
        let f = fields[2].trim();
        let f = f.strip_prefix(':').unwrap_or(f).to_string();
        let value = match fields.get(3) {
            None => serde_json::Value::Null,
            Some(v) => {
                let mut r = Reader::new(v);
                match r.read() {
                    Ok(Some((_, edn))) => edn.to_json(),
                    Ok(None) => serde_json::Value::Null,
                    Err(e) => return Err(ImportError::BadLine { line, msg: format!("value `{v}`: {e}") }),
                }
            }
        };
        let time = out.0.len() as u64;
        out.0.push(Event { kind, process, f, value, time, node: None, wall: None });
        out.1.push(line);
    }
    Ok(out)
}

fn parse_log_process(s: &str, line: usize) -> Result<Process, ImportError> {
    if let Some(name) = s.strip_prefix(':') {
        return Ok(Process::Named(name.to_string()));
    }
    s.parse::<u64>()
        .map(Process::Client)
        .map_err(|_| bad(line, "process", format!("expected a process number or keyword, found `{s}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edn_vector_history() {
        let text = "[{:type :invoke, :f :read, :value nil, :process 0, :time 10, :index 0}\n\
                    {:type :info, :f :start, :process :nemesis, :time 11}\n\
                    {:type :ok, :f :read, :value 3, :process 0, :time 12, :index 1}\n\
                    {:type :invoke, :f :cas, :value [1 2], :process 1, :time 13}]";
        let h = parse(Format::JepsenEdn, text).expect("parses");
        assert_eq!(h.events.len(), 4);
        assert_eq!(h.events[1].process, Process::Named("nemesis".into()));
        assert_eq!(h.events[2].value, serde_json::json!(3));
        assert_eq!(h.events[3].value, serde_json::json!([1, 2]));
        assert_eq!(h.events[3].time, 13);
        assert!(h.events.iter().all(|e| e.wall.is_none()), "Jepsen has no wall bound");
    }

    #[test]
    fn edn_keeps_a_wall_interval_and_checks_it() {
        let text = "{:type :info, :f :jump, :process :clock, :time 1, :wall [100 120 true]}";
        let h = parse(Format::JepsenEdn, text).expect("parses");
        assert_eq!(h.events[0].wall, Some(crate::history::Wall::new(100, 120, true)));
        let e = parse(Format::JepsenEdn, "{:type :info, :f :jump, :time 1, :wall [120 100 true]}").expect_err("bad");
        assert!(e.to_string().contains("wall"), "{e}");
    }

    #[test]
    fn porcupine_kv_lines_fold_the_key() {
        let text = "{:process 0, :type :invoke, :f :get, :key \"6\", :value nil}\n\
                    {:process 0, :type :ok, :f :get, :key \"6\", :value \"x 0 0 y\"}\n";
        let h = parse(Format::JepsenEdn, text).expect("parses");
        assert_eq!(h.events[1].value, serde_json::json!({"key": "6", "value": "x 0 0 y"}));
        assert_eq!((h.events[0].time, h.events[1].time), (0, 1));
    }

    #[test]
    fn edn_errors_name_lines() {
        let e = parse(Format::JepsenEdn, "[{:type :invoke :f :read :process 0}\n 3]").expect_err("not a map");
        assert_eq!(e, ImportError::NotAMap { line: 2, found: "an integer" });
        let e = parse(Format::JepsenEdn, "{:type :invoke :process 0}\n{:type :bogus :f :x}").expect_err("no f");
        assert_eq!(e.to_string(), "line 1: missing `:f`");
        let e = parse(Format::JepsenEdn, "{:type :invoke :f :r :process 0}\n{:type :ok :f :r :process 1}")
            .expect_err("unpaired");
        assert_eq!(e.line(), 2);
        assert!(e.to_string().contains("no matching invoke"), "{e}");
        let e = parse(Format::JepsenEdn, "[{:type :invoke :f :r :process 0}\n").expect_err("eof");
        assert!(matches!(e, ImportError::Edn(EdnError::Eof { line: 2, .. })), "{e:?}");
    }

    #[test]
    fn console_log() {
        let text = "INFO  jepsen.util - 2\t:invoke\t:cas\t[4 4]\n\
                    some other line\n\
                    INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
                    2017-03-16 16:39:59,893{GMT}\tINFO\t[jepsen worker 2] jepsen.util: 2\t:info\t:cas\t[4 4]\t:timed-out\n";
        let h = parse(Format::JepsenLog, text).expect("parses");
        assert_eq!(h.events.len(), 3);
        assert_eq!(h.events[0].value, serde_json::json!([4, 4]));
        assert_eq!(h.events[2].kind, EventType::Info);
        assert_eq!(h.events[2].time, 2);
        let e = parse(Format::JepsenLog, "x\nINFO  jepsen.util - 2\t:okay\t:read\tnil").expect_err("bad type");
        assert_eq!(e.line(), 2);
        let e = parse(Format::JepsenLog, "INFO  jepsen.util - 2\t:invoke\t:read\t[1").expect_err("bad value");
        assert!(e.to_string().starts_with("line 1: value `[1`"), "{e}");
    }

    #[test]
    fn formats() {
        assert_eq!("jepsen-edn".parse::<Format>(), Ok(Format::JepsenEdn));
        assert!("edn".parse::<Format>().is_err());
    }
}
