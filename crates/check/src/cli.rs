//! `fenced check FILE`: read a history, judge it, report.
//!
//! The binary owns the subcommand; this module owns its flags
//! ([`CheckArgs`]) and its behaviour ([`run`]), so the simulator and the
//! chaos runner can offer the same flags.
//!
//! Exit codes: 0 valid, 1 invalid, 2 unknown (data missing or budget
//! exhausted), 3 bad input (with the line number) or a failure to read or
//! write a file.

use crate::checkers::check_all;
use crate::history::{History, Pos};
pub use crate::import::Format;
use crate::lin::{parse_nil_read, try_check, LinError, LinOp, LinOptions, LinVerdict, ModelKind, NilRead};
use crate::report::{render_html, render_text_with_lines, report_json};
use crate::verdict::{exit_code, Evidence, OpRef, Options, Property, Status, TokenScope, Verdict};
use crate::view::View;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use thiserror::Error;

/// Exit code for bad input or an unusable command line.
pub const EXIT_BAD_INPUT: i32 = 3;

/// The flags of `fenced check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// The history file; `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The format of FILE.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,

    /// Check linearizability (S6) against this model instead of the fenced
    /// properties: register, cas-register, kv, multi-register, mutex,
    /// fenced-mutex or fenced-store.
    #[arg(long)]
    pub model: Option<String>,

    /// With --model: what a read that returns nil means: `unknown` (Knossos:
    /// matches any state) or `absent` (Porcupine's etcd model: the key is
    /// absent, which only the initial state is).
    #[arg(long, value_name = "unknown|absent", value_parser = parse_nil_read, default_value = "unknown")]
    pub nil_read: NilRead,

    /// With --model: the initial value, as JSON (`0`, `{"x":0,"y":0}`).
    #[arg(long, value_name = "VALUE")]
    pub init: Option<String>,

    /// With --model: the wall-clock budget of the search. Running out is
    /// `unknown` (exit 2), never a guess.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "30s")]
    pub time_limit: Duration,

    /// With --model: the memory budget, in memoized search states per key
    /// (roughly 64 bytes each plus the model state).
    #[arg(long, value_name = "N", default_value_t = LinOptions::new(ModelKind::Register).max_cache_entries)]
    pub max_states: usize,

    /// With --model: threads for checking keys in parallel; 0 = all cores.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,

    /// L1: how long an acquire may take once the last fault healed.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10s")]
    pub l1_bound: Duration,

    /// L1: how long after the heal before acquires are judged.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s")]
    pub l1_grace: Duration,

    /// S1 and S2: compare tokens across all locks (fenced, etcd) or per lock.
    #[arg(long, value_enum, default_value_t = TokenScope::Global)]
    pub token_scope: TokenScope,

    /// Most violations shown per property.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_evidence: usize,

    /// Write the machine report (JSON) to standard output instead of text.
    #[arg(long)]
    pub json: bool,

    /// Also write an HTML report with a timeline to this file.
    #[arg(long, value_name = "OUT.html")]
    pub html: Option<PathBuf>,
}

impl CheckArgs {
    /// The linearizability options these flags ask for, with `--model`
    /// given as `model`. An unknown model or an `--init` that is not JSON is
    /// bad input (exit 3), so it is parsed here rather than by clap (whose
    /// usage errors exit 2, the code for `unknown`).
    pub fn lin_options(&self, model: &str) -> Result<LinOptions, CliError> {
        let kind = ModelKind::from_str(model).map_err(CliError::BadModel)?;
        let init = match &self.init {
            None => None,
            Some(v) => {
                Some(serde_json::from_str(v).map_err(|e| CliError::BadInit { value: v.clone(), msg: e.to_string() })?)
            }
        };
        let mut opts = LinOptions::new(kind);
        opts.nil_read = self.nil_read;
        opts.init = init;
        opts.deadline = Some(self.time_limit);
        opts.max_cache_entries = self.max_states;
        opts.threads = self.threads;
        Ok(opts)
    }

    /// The checker options these flags ask for.
    pub fn options(&self) -> Options {
        Options {
            l1_bound: self.l1_bound,
            l1_grace: self.l1_grace,
            token_scope: self.token_scope,
            max_evidence: self.max_evidence,
        }
    }
}

/// Why `fenced check` could not judge the input (exit code 3).
#[derive(Debug, Error)]
pub enum CliError {
    #[error("{path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("{path}: {msg}")]
    BadInput { path: String, msg: String },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: io::Error },
    #[error("--model: {0}")]
    BadModel(String),
    #[error("--init {value:?} is not JSON: {msg}")]
    BadInit { value: String, msg: String },
}

/// Runs `fenced check` and returns its exit code, writing the report to
/// standard output and errors to standard error.
pub fn run(args: &CheckArgs) -> i32 {
    let stdout = io::stdout();
    let stderr = io::stderr();
    run_with(args, &mut stdout.lock(), &mut stderr.lock())
}

/// [`run`] with the output streams given, for tests and embedding.
pub fn run_with(args: &CheckArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match judge(args) {
        Ok(j) => match report(args, &j, out) {
            Ok(()) => exit_code(&j.verdicts),
            Err(e) => {
                let _ = writeln!(err, "fenced check: {e}");
                EXIT_BAD_INPUT
            }
        },
        Err(e) => {
            let _ = writeln!(err, "fenced check: {e}");
            EXIT_BAD_INPUT
        }
    }
}

/// Reads the history and runs the checkers the flags ask for.
fn judge(args: &CheckArgs) -> Result<Judged, CliError> {
    let path = args.file.display().to_string();
    let text = read_input(&args.file).map_err(|source| CliError::Read { path: path.clone(), source })?;
    let bad = |msg: String| CliError::BadInput { path: path.clone(), msg };
    let (history, lines) = match args.format {
        Format::Jsonl => {
            let (h, lines) = History::parse_jsonl_with_lines(&text).map_err(|e| bad(e.to_string()))?;
            (h, Some(lines))
        }
        other => (crate::import::parse(other, &text).map_err(|e| bad(e.to_string()))?, None),
    };
    if let Some(model) = &args.model {
        let opts = args.lin_options(model)?;
        let verdict = check_linearizability(&history, &opts, lines.as_deref()).map_err(bad)?;
        return Ok(Judged { history, lines, verdicts: vec![verdict] });
    }
    // The fenced conventions are checked before any checker runs, so that a
    // malformed value is bad input (exit 3, with its line), not `unknown`.
    if let Err(e) = View::build(&history) {
        let e = match &lines {
            Some(lines) => e.with_lines(lines),
            None => e,
        };
        return Err(bad(match e.pos() {
            Pos::Line(_) => e.to_string(),
            Pos::Event(_) => format!("{e} (events counted from 0 in the imported history)"),
        }));
    }
    let verdicts = check_all(&history, &args.options());
    Ok(Judged { history, lines, verdicts })
}

/// A judged history, with the line of each event when read from JSONL.
struct Judged {
    history: History,
    lines: Option<Vec<usize>>,
    verdicts: Vec<Verdict>,
}

fn report(args: &CheckArgs, j: &Judged, out: &mut dyn Write) -> Result<(), CliError> {
    let (history, verdicts) = (&j.history, &j.verdicts[..]);
    let stdout_err = |source| CliError::Write { path: "standard output".into(), source };
    if args.json {
        let json = report_json(history, verdicts);
        writeln!(out, "{json:#}").map_err(stdout_err)?;
    } else {
        let text = render_text_with_lines(history, verdicts, j.lines.as_deref());
        out.write_all(text.as_bytes()).map_err(stdout_err)?;
    }
    if let Some(html) = &args.html {
        std::fs::write(html, render_html(history, verdicts))
            .map_err(|source| CliError::Write { path: html.display().to_string(), source })?;
    }
    Ok(())
}

fn read_input(path: &Path) -> io::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        io::stdin().read_to_string(&mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path)
    }
}

/// Checks linearizability (S6) and states the result as a [`Verdict`].
///
/// A history that does not fit the model's conventions is bad input (the
/// `Err`, with the line when `lines` maps events to lines), not `unknown`:
/// the user gave the wrong model or a malformed file, and should be told.
fn check_linearizability(history: &History, opts: &LinOptions, lines: Option<&[usize]>) -> Result<Verdict, String> {
    let model = opts.model;
    let verdict = try_check(history, opts).map_err(|e| match (&e, lines) {
        (LinError::BadOp { event, .. }, Some(lines)) => match lines.get(*event) {
            Some(line) => format!("line {line}: {e}"),
            None => e.to_string(),
        },
        (LinError::BadOp { .. }, None) => format!("{e} (events counted from 0 in the imported history)"),
        _ => e.to_string(),
    })?;
    Ok(lin_verdict(model, verdict))
}

/// Turns the search's result into a report verdict. The evidence of an
/// invalid history is the operations that cannot be placed after the longest
/// linearizable prefix (the first is the one that failed, the rest are the
/// concurrent candidates that did not help), so that a reader looks at the
/// few events that matter rather than at the whole key.
fn lin_verdict(model: ModelKind, v: LinVerdict) -> Verdict {
    let ops_in = |keys: &[crate::lin::KeyInfo]| keys.iter().map(|k| k.ops).sum::<usize>();
    match v {
        LinVerdict::Valid { keys } => Verdict::valid(
            Property::S6,
            format!("linearizable as {model}: {} operations in {} key(s)", ops_in(&keys), keys.len()),
        ),
        LinVerdict::Unknown { reason, keys } => {
            Verdict::unknown(Property::S6, format!("{model}: undecided after checking {} key(s): {reason}", keys.len()))
        }
        LinVerdict::Invalid { key, prefix, state, unplaceable, keys: _ } => {
            let key_name = if key.is_empty() { "the whole history".to_string() } else { format!("key {key:?}") };
            let first = unplaceable.first().map(|op| op.description.as_str()).unwrap_or("no operation");
            let message = format!(
                "not linearizable as {model}: {key_name}: the longest linearizable prefix has {} operation(s) \
                 (state after it: {state}); then `{first}` cannot be placed",
                prefix.len()
            );
            let mut ev = Evidence::new(format!(
                "{key_name}: after a linearizable prefix of {} operation(s), none of these {} can be placed",
                prefix.len(),
                unplaceable.len()
            ));
            for op in &unplaceable {
                ev = ev.op_ref(op_ref(op));
            }
            Verdict { property: Property::S6, status: Status::Invalid, message, evidence: vec![ev], violations: 1 }
        }
    }
}

fn op_ref(op: &LinOp) -> OpRef {
    OpRef { invoke: op.invoke, completion: op.completion }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        check: CheckArgs,
    }

    fn run_on(args: &[&str]) -> (i32, String, String) {
        let cli = Cli::try_parse_from(std::iter::once("check").chain(args.iter().copied())).expect("flags parse");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(&cli.check, &mut out, &mut err);
        (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
    }

    fn data(name: &str) -> String {
        format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn exit_codes() {
        let (code, out, _) = run_on(&[&data("fig-8-5-fenced.jsonl")]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("S3  fenced resource rejects older tokens   VALID"), "{out}");
        let (code, out, _) = run_on(&[&data("fig-8-4-unfenced.jsonl")]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("INVALID"), "{out}");
        let (code, _, _) = run_on(&[&data("s5-no-log.jsonl")]);
        assert_eq!(code, 2);
        let (code, _, err) = run_on(&[&data("bad-truncated.jsonl")]);
        assert_eq!(code, 3);
        assert!(err.contains("bad-truncated.jsonl: line 2: truncated line"), "{err}");
        let (code, _, err) = run_on(&[&data("bad-missing-token.jsonl")]);
        assert_eq!(code, 3);
        assert!(err.contains("line 3: `acquire`"), "{err}");
        let (code, _, err) = run_on(&[&data("no-such-file.jsonl")]);
        assert_eq!(code, 3, "{err}");
    }

    #[test]
    fn json_and_html_reports() {
        let dir = std::env::temp_dir().join(format!("fenced-check-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let html = dir.join("report.html");
        let html_s = html.display().to_string();
        let (code, out, err) =
            run_on(&[&data("fig-8-4-unfenced.jsonl"), "--json", "--html", &html_s, "--l1-bound", "2s"]);
        assert_eq!(code, 1, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
        assert_eq!(v["status"], "invalid");
        assert_eq!(v["verdicts"][2]["property"], "S3");
        assert_eq!(v["verdicts"][2]["evidence"][0]["ops"].as_array().map(Vec::len), Some(2));
        let page = std::fs::read_to_string(&html).expect("HTML written");
        assert!(page.starts_with("<!DOCTYPE html>"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn lin(name: &str) -> String {
        data(&format!("lin/{name}"))
    }

    #[test]
    fn bad_model_flags_are_bad_input() {
        let (code, _, err) = run_on(&[&data("fig-8-5-fenced.jsonl"), "--model", "no-such-model"]);
        assert_eq!(code, 3);
        assert!(err.contains("unknown model `no-such-model`"), "{err}");
        let (code, _, err) = run_on(&[&data("fig-8-5-fenced.jsonl"), "--model", "register", "--init", "{x"]);
        assert_eq!(code, 3);
        assert!(err.contains("--init"), "{err}");
        // A history that does not fit the model names the line.
        let (code, _, err) = run_on(&[&lin("fenced-mutex-valid.jsonl"), "--model", "multi-register"]);
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("line 1:"), "{err}");
    }

    #[test]
    fn foreign_formats_and_models() {
        let cases: &[(&[&str], i32)] = &[
            (&["--format", "jepsen-edn", "--model", "cas-register"], 0),
            (&["--format", "jepsen-log", "--model", "cas-register", "--nil-read", "absent"], 0),
            (&["--format", "jepsen-edn", "--model", "kv", "--init", "\"\""], 0),
            (&["--format", "jepsen-edn", "--model", "multi-register", "--init", r#"{"x":0,"y":0}"#], 0),
            (&["--format", "jepsen-edn", "--model", "mutex"], 0),
            (&["--model", "fenced-mutex"], 0),
            (&["--model", "fenced-store"], 0),
        ];
        let files = [
            ("cas-register-valid.edn", "cas-register-invalid.edn"),
            ("etcd-valid.log", "etcd-invalid.log"),
            ("kv-valid.edn", "kv-invalid.edn"),
            ("multi-register-valid.edn", "multi-register-torn.edn"),
            ("mutex-valid.edn", "mutex-double-grant.edn"),
            ("fenced-mutex-valid.jsonl", "fenced-mutex-token-regress.jsonl"),
            ("fenced-store-fig-8-5.jsonl", "fenced-store-fig-8-4.jsonl"),
        ];
        for ((flags, _), (valid, invalid)) in cases.iter().zip(files) {
            for (file, want) in [(valid, 0), (invalid, 1)] {
                let path = lin(file);
                let args: Vec<&str> = std::iter::once(path.as_str()).chain(flags.iter().copied()).collect();
                let (code, out, err) = run_on(&args);
                assert_eq!(code, want, "{file} {flags:?}: {out}{err}");
                assert!(out.contains("S6"), "{out}");
            }
        }
    }

    #[test]
    fn nil_read_convention_changes_the_verdict() {
        let f = lin("nil-read.log");
        let (code, _, err) = run_on(&[&f, "--format", "jepsen-log", "--model", "register"]);
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = run_on(&[&f, "--format", "jepsen-log", "--model", "register", "--nil-read", "absent"]);
        assert_eq!(code, 1, "{err}");
    }

    #[test]
    fn invalid_s6_names_prefix_key_and_unplaceable_events() {
        let dir = std::env::temp_dir().join(format!("fenced-check-cli-lin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let html = dir.join("lin.html");
        let html_s = html.display().to_string();
        let (code, out, err) = run_on(&[
            &lin("kv-invalid.edn"),
            "--format",
            "jepsen-edn",
            "--model",
            "kv",
            "--init",
            "\"\"",
            "--json",
            "--html",
            &html_s,
        ]);
        assert_eq!(code, 1, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
        let s6 = &v["verdicts"][0];
        assert_eq!(s6["property"], "S6");
        assert_eq!(s6["status"], "invalid");
        let msg = s6["message"].as_str().unwrap_or_default();
        assert!(msg.contains("longest linearizable prefix has"), "{msg}");
        assert!(msg.contains("key "), "{msg}");
        let events = s6["evidence"][0]["events"].as_array().map(Vec::len).unwrap_or(0);
        assert!(events > 0, "{s6}");
        let page = std::fs::read_to_string(&html).expect("HTML written");
        assert!(page.starts_with("<!DOCTYPE html>"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn exhausted_budget_is_unknown() {
        let (code, out, err) = run_on(&[
            &lin("cas-register-valid.edn"),
            "--format",
            "jepsen-edn",
            "--model",
            "cas-register",
            "--time-limit",
            "0s",
        ]);
        // A zero budget may still finish a tiny history; it must never be a wrong answer.
        assert!(code == 0 || code == 2, "{out}{err}");
    }

    #[test]
    fn foreign_format_errors_name_the_line() {
        let dir = std::env::temp_dir().join(format!("fenced-check-cli-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let f = dir.join("bad.edn");
        std::fs::write(&f, "[{:process 0 :type :invoke :f :read}\n {:process 0 :type}]").expect("write");
        let (code, _, err) = run_on(&[&f.display().to_string(), "--format", "jepsen-edn", "--model", "register"]);
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("line 2"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
