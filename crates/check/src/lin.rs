//! S6, linearizability: maps a [`History`] in Jepsen's conventions onto a
//! `fenced-linear` model and runs the search.
//!
//! Only client processes' operations count (nemesis, log read-back and
//! final reads are not operations on the object). `fail` operations did not
//! happen and are dropped, except a fenced-store write rejected as
//! `stale_token`: the store decided it, so the model checks that a higher
//! token had indeed been accepted. `info` and pending operations may have
//! happened at any point after their invoke, or never.
//!
//! What each model reads (`value` of invoke → completion):
//!
//! | model | `f` | invoke value | ok value |
//! |---|---|---|---|
//! | `register`, `cas-register` | `read`/`r` | any | the value read; `null` is nil |
//! | | `write`/`w` | the value | any |
//! | `cas-register` | `cas` | `[old, new]` | any (ok = swapped) |
//! | `kv` | `get`/`read`, `put`/`write`, `append` | `{"key": k, "value": v}` (what the EDN importer makes of `:key`) or `[k, v]` (Jepsen `independent`) | same shape; for `get` the value read |
//! | `multi-register` | any (`txn`) | `[[f, k, v], …]`, `f` = `r`/`read`/`w`/`write` | the same list with the values read |
//! | `mutex` | `acquire`/`lock`, `release`/`unlock` | `null` (one lock), a lock name, or `{"lock": name}` | any |
//! | `fenced-mutex` | same | same; release may carry `{"token"}` | acquire: `{"token": t}` or `t` |
//! | `fenced-store` | `write`, `read` | `{"key", "token", "value"}` | write: accepted; read: `{"value", "token"}` |
//!
//! `kv` appends concatenate strings, extend arrays and push anything else
//! onto an array. Porcupine's kv histories read `""` for a missing key: use
//! `init = ""`.

use crate::history::{EventType, History, Op, Outcome, Process, SequenceError};
use fenced_linear::models::{
    Append, FencedMutex, FencedStore, Kv, KvF, KvOp, KvRet, LockF, LockOp, LockRet, Micro, MultiRegister, Mutex,
    Register, RegisterOp, RegisterRet, StoreOp, StoreRet, WriteResult,
};
pub use fenced_linear::NilRead;
use fenced_linear::{Completion, Model, Operation, Options, PartitionResult, Verdict};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::time::Duration;
use thiserror::Error;

/// The sequential specification to check against (`--model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    Register,
    CasRegister,
    Kv,
    MultiRegister,
    Mutex,
    FencedMutex,
    FencedStore,
}

impl ModelKind {
    pub const ALL: [ModelKind; 7] = [
        ModelKind::Register,
        ModelKind::CasRegister,
        ModelKind::Kv,
        ModelKind::MultiRegister,
        ModelKind::Mutex,
        ModelKind::FencedMutex,
        ModelKind::FencedStore,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
            ModelKind::MultiRegister => "multi-register",
            ModelKind::Mutex => "mutex",
            ModelKind::FencedMutex => "fenced-mutex",
            ModelKind::FencedStore => "fenced-store",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelKind::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            let all: Vec<_> = ModelKind::ALL.iter().map(|m| m.as_str()).collect();
            format!("unknown model `{s}` (expected one of: {})", all.join(", "))
        })
    }
}

/// Parses `--nil-read unknown|absent`.
pub fn parse_nil_read(s: &str) -> Result<NilRead, String> {
    match s {
        "unknown" => Ok(NilRead::Unknown),
        "absent" => Ok(NilRead::Absent),
        _ => Err(format!("unknown nil-read convention `{s}` (expected unknown or absent)")),
    }
}

/// What to check and with which budget.
#[derive(Debug, Clone, PartialEq)]
pub struct LinOptions {
    pub model: ModelKind,
    pub nil_read: NilRead,
    /// The initial value (`--init`): of the register, of every key (kv,
    /// fenced-store), or a map of registers (multi-register). `None`: absent.
    pub init: Option<Value>,
    /// Wall-clock budget; `None` is unlimited.
    pub deadline: Option<Duration>,
    /// Memory budget, in memoized states per key.
    pub max_cache_entries: usize,
    /// Threads for keys; 0 = all cores.
    pub threads: usize,
}

impl LinOptions {
    pub fn new(model: ModelKind) -> Self {
        let d = Options::default();
        LinOptions {
            model,
            nil_read: NilRead::default(),
            init: None,
            deadline: None,
            max_cache_entries: d.max_cache_entries,
            threads: d.threads,
        }
    }
}

/// An operation named in a verdict, by the history's event indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinOp {
    pub invoke: Option<usize>,
    pub completion: Option<usize>,
    pub process: Process,
    /// `process f invoke-value -> completion-value`.
    pub description: String,
}

/// How one key (partition) fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key or lock name; empty for unpartitioned models.
    pub key: String,
    pub ops: usize,
    /// `valid`, `invalid`, `unknown: <reason>`.
    pub status: String,
    pub cache_entries: usize,
}

/// The verdict on S6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinVerdict {
    Valid {
        keys: Vec<KeyInfo>,
    },
    Invalid {
        /// The key whose sub-history is not linearizable.
        key: String,
        /// The longest linearizable prefix found, in linearization order.
        prefix: Vec<LinOp>,
        /// The model state after `prefix`.
        state: String,
        /// The operation that could not be placed after `prefix` first, then
        /// the concurrent candidates that did not help.
        unplaceable: Vec<LinOp>,
        keys: Vec<KeyInfo>,
    },
    Unknown {
        reason: String,
        keys: Vec<KeyInfo>,
    },
}

/// A history that does not fit the model's conventions.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LinError {
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error("event #{event}: `{f}`: {msg}")]
    BadOp { event: usize, f: String, msg: String },
    #[error("--init: {0}")]
    BadInit(String),
}

/// Checks `history`; input that does not fit the model is `Unknown` with
/// the reason. Use [`try_check`] to tell bad input apart.
pub fn check(history: &History, opts: &LinOptions) -> LinVerdict {
    try_check(history, opts).unwrap_or_else(|e| LinVerdict::Unknown { reason: e.to_string(), keys: Vec::new() })
}

/// Checks `history`, or says which event does not fit the model.
pub fn try_check(history: &History, opts: &LinOptions) -> Result<LinVerdict, LinError> {
    let ops: Vec<Op<'_>> = history
        .operations()?
        .into_iter()
        .filter(|o| matches!(o.process(), Process::Client(_)))
        .filter(|o| o.outcome() != Outcome::Fail || (opts.model == ModelKind::FencedStore && is_stale(o)))
        .collect();
    let mut values = Interner::default();
    let nil_read = opts.nil_read;
    match opts.model {
        ModelKind::Register | ModelKind::CasRegister => {
            let init = opts.init.as_ref().map(|v| values.id(v));
            let model = Register { init, nil_read, cas: opts.model == ModelKind::CasRegister };
            let conv = convert(&ops, |op| register_op(op, &mut values))?;
            Ok(run(&model, conv, opts, |_| String::new()))
        }
        ModelKind::Kv => {
            let model = Kv { init: opts.init.clone().map(Json), nil_read };
            let conv = convert(&ops, kv_op)?;
            Ok(run(&model, conv, opts, |i| i.key.clone()))
        }
        ModelKind::MultiRegister => {
            let init = match &opts.init {
                None | Some(Value::Null) => BTreeMap::new(),
                Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), values.id(v))).collect(),
                Some(other) => return Err(LinError::BadInit(format!("expected a map of registers, found {other}"))),
            };
            let conv = convert(&ops, |op| txn_op(op, &mut values))?;
            Ok(run(&MultiRegister { init, nil_read }, conv, opts, |_| String::new()))
        }
        ModelKind::Mutex => Ok(run(&Mutex, convert(&ops, lock_op)?, opts, |i| i.lock.clone())),
        ModelKind::FencedMutex => Ok(run(&FencedMutex, convert(&ops, lock_op)?, opts, |i| i.lock.clone())),
        ModelKind::FencedStore => {
            let init = opts.init.as_ref().map(|v| values.id(v));
            let conv = convert(&ops, |op| store_op(op, &mut values))?;
            Ok(run(&FencedStore { init, nil_read }, conv, opts, |i| i.key().to_string()))
        }
    }
}

/// A fenced-store write the store rejected for an older token.
fn is_stale(op: &Op<'_>) -> bool {
    op.f() == "write"
        && op.outcome() == Outcome::Fail
        && op.done.and_then(|e| e.value.get("code")).and_then(Value::as_str) == Some("stale_token")
}

/// Interns JSON values as small integers, so that model states are cheap to
/// clone and hash. Keys are the compact JSON text: serde_json's maps are
/// sorted, so equal values have equal text.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
}

impl Interner {
    fn id(&mut self, v: &Value) -> u32 {
        let n = self.ids.len() as u32;
        *self.ids.entry(v.to_string()).or_insert(n)
    }

    /// `None` for JSON null: a nil read.
    fn read(&mut self, v: &Value) -> Option<u32> {
        (!v.is_null()).then(|| self.id(v))
    }
}

/// A JSON value as a kv value: hashable, appendable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Json(pub Value);

impl Hash for Json {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_string().hash(state);
    }
}

impl Append for Json {
    fn append(base: Option<&Self>, suffix: &Self) -> Self {
        match (base.map(|b| &b.0), &suffix.0) {
            (None | Some(Value::Null), Value::String(s)) => Json(Value::String(s.clone())),
            (Some(Value::String(a)), Value::String(b)) => Json(Value::String(format!("{a}{b}"))),
            (None | Some(Value::Null), Value::Array(b)) => Json(Value::Array(b.clone())),
            (None | Some(Value::Null), x) => Json(Value::Array(vec![x.clone()])),
            (Some(Value::Array(a)), Value::Array(b)) => Json(Value::Array(a.iter().chain(b).cloned().collect())),
            (Some(Value::Array(a)), x) => Json(Value::Array(a.iter().chain([x]).cloned().collect())),
            (Some(a), x) => Json(Value::Array(vec![a.clone(), x.clone()])),
        }
    }
}

/// A converted operation and where it came from.
struct Conv<I, O> {
    ops: Vec<Operation<I, O>>,
    refs: Vec<LinOp>,
}

/// What a model's converter returns for one op: input and (if it returned)
/// output.
type Mapped<I, O> = (I, Option<O>);

fn convert<'h, I, O>(
    ops: &[Op<'h>],
    mut f: impl FnMut(&Op<'h>) -> Result<Mapped<I, O>, String>,
) -> Result<Conv<I, O>, LinError> {
    let mut out = Conv { ops: Vec::with_capacity(ops.len()), refs: Vec::with_capacity(ops.len()) };
    for op in ops {
        let event = op.invoke.or(op.completion).unwrap_or(0);
        let (input, output) = f(op).map_err(|msg| LinError::BadOp { event, f: op.f().to_string(), msg })?;
        let process = match op.process() {
            Process::Client(n) => *n,
            Process::Named(_) => u64::MAX,
        };
        let completion = match (op.outcome(), output, op.end()) {
            (Outcome::Ok | Outcome::Fail, Some(output), Some(time)) => Completion::Returned { time, output },
            _ => Completion::Unknown,
        };
        out.ops.push(Operation { process, input, call: op.start(), completion });
        out.refs.push(LinOp {
            invoke: op.invoke,
            completion: op.completion,
            process: op.process().clone(),
            description: describe(op),
        });
    }
    Ok(out)
}

fn describe(op: &Op<'_>) -> String {
    let done = match op.done {
        Some(e) if e.kind == EventType::Invoke => String::new(),
        Some(e) => format!(" -> {} {}", e.kind, e.value),
        None => " -> pending".to_string(),
    };
    format!("process {} {} {}{done}", op.process(), op.f(), op.first.value)
}

/// The completion's value, for outputs: only what the server answered.
fn answer<'h>(op: &Op<'h>) -> &'h Value {
    static NULL: Value = Value::Null;
    match op.done {
        Some(e) if e.kind != EventType::Invoke => &e.value,
        _ => &NULL,
    }
}

/// The value the client sent: the invoke's, or the completion's if the
/// invoke's is null.
fn request<'h>(op: &Op<'h>) -> &'h Value {
    if op.first.value.is_null() {
        answer(op)
    } else {
        &op.first.value
    }
}

fn ok(op: &Op<'_>) -> bool {
    matches!(op.outcome(), Outcome::Ok | Outcome::Fail)
}

fn register_op(op: &Op<'_>, values: &mut Interner) -> Result<Mapped<RegisterOp<u32>, RegisterRet<u32>>, String> {
    match op.f() {
        "read" | "r" => Ok((RegisterOp::Read, ok(op).then(|| RegisterRet::Read(values.read(answer(op)))))),
        "write" | "w" => Ok((RegisterOp::Write(values.id(request(op))), Some(RegisterRet::Write))),
        "cas" => match request(op) {
            Value::Array(pair) if pair.len() == 2 => {
                let (from, to) = (values.id(&pair[0]), values.id(&pair[1]));
                Ok((RegisterOp::Cas { from, to }, Some(RegisterRet::Cas(true))))
            }
            other => Err(format!("expected [old, new], found {other}")),
        },
        other => Err(format!("not an operation of a register (read, write, cas): `{other}`")),
    }
}

/// `{"key": k, "value": v}` or `[k, v]`.
fn key_value(v: &Value) -> Option<(&Value, &Value)> {
    static NULL: Value = Value::Null;
    match v {
        Value::Object(m) => m.get("key").map(|k| (k, m.get("value").unwrap_or(&NULL))),
        Value::Array(a) if a.len() == 2 => Some((&a[0], &a[1])),
        _ => None,
    }
}

fn key_string(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn kv_op(op: &Op<'_>) -> Result<Mapped<KvOp<Json>, KvRet<Json>>, String> {
    let shape = "expected {\"key\": k, \"value\": v} or [k, v]";
    let (key, value) = key_value(request(op)).ok_or_else(|| format!("{shape}, found {}", request(op)))?;
    let key = key_string(key);
    let value = Json(value.clone());
    match op.f() {
        "get" | "read" | "r" => {
            let output = if ok(op) {
                let (_, seen) = key_value(answer(op)).ok_or_else(|| format!("{shape}, found {}", answer(op)))?;
                Some(KvRet::Get((!seen.is_null()).then(|| Json(seen.clone()))))
            } else {
                None
            };
            Ok((KvOp { key, f: KvF::Get }, output))
        }
        "put" | "write" | "w" => Ok((KvOp { key, f: KvF::Put(value) }, Some(KvRet::Done))),
        "append" => Ok((KvOp { key, f: KvF::Append(value) }, Some(KvRet::Done))),
        other => Err(format!("not an operation of a kv map (get, put, append): `{other}`")),
    }
}

/// A transaction and the values its reads returned.
type Txn = Mapped<Vec<Micro<String, u32>>, Vec<Option<u32>>>;

fn txn_op(op: &Op<'_>, values: &mut Interner) -> Result<Txn, String> {
    let micro = |v: &Value| -> Result<Vec<(bool, String, Value)>, String> {
        let Value::Array(items) = v else { return Err(format!("expected a list of [f, k, v], found {v}")) };
        items
            .iter()
            .map(|m| match m.as_array().map(Vec::as_slice) {
                Some([Value::String(f), k, v]) => match f.as_str() {
                    "r" | "read" => Ok((false, key_string(k), v.clone())),
                    "w" | "write" => Ok((true, key_string(k), v.clone())),
                    _ => Err(format!("unknown micro-operation `{f}` (expected r, read, w, write)")),
                },
                _ => Err(format!("expected [f, k, v], found {m}")),
            })
            .collect()
    };
    let asked = micro(request(op))?;
    let input = asked
        .iter()
        .map(|(w, k, v)| if *w { Micro::Write(k.clone(), values.id(v)) } else { Micro::Read(k.clone()) })
        .collect();
    let output = if ok(op) {
        let got = micro(answer(op))?;
        if got.len() != asked.len() {
            return Err(format!("the completion has {} micro-operations, the invoke {}", got.len(), asked.len()));
        }
        Some(got.iter().map(|(_, _, v)| values.read(v)).collect())
    } else {
        None
    };
    Ok((input, output))
}

fn lock_op(op: &Op<'_>) -> Result<Mapped<LockOp, LockRet>, String> {
    let lock = match request(op) {
        Value::Null => String::new(),
        Value::Object(m) => m.get("lock").map(key_string).unwrap_or_default(),
        other => key_string(other),
    };
    let token = |v: &Value| match v {
        Value::Object(m) => m.get("token").and_then(Value::as_u64),
        other => other.as_u64(),
    };
    match op.f() {
        "acquire" | "lock" => Ok((LockOp { lock, f: LockF::Acquire }, Some(LockRet::Acquired(token(answer(op)))))),
        "release" | "unlock" => {
            let t = token(&op.first.value).or_else(|| token(answer(op)));
            Ok((LockOp { lock, f: LockF::Release(t) }, Some(LockRet::Released)))
        }
        other => Err(format!("not an operation of a lock (acquire, release): `{other}`")),
    }
}

fn store_op(op: &Op<'_>, values: &mut Interner) -> Result<Mapped<StoreOp<u32>, StoreRet<u32>>, String> {
    let asked = &op.first.value;
    let key = asked.get("key").map(key_string).unwrap_or_default();
    match op.f() {
        "write" => {
            let token = asked.get("token").and_then(Value::as_u64).ok_or("the invoke has no integer `token`")?;
            let value = values.id(asked.get("value").unwrap_or(&Value::Null));
            let result = if is_stale(op) { WriteResult::Stale } else { WriteResult::Accepted };
            Ok((StoreOp::Write { key, token, value }, Some(StoreRet::Write(result))))
        }
        "read" => {
            let got = answer(op);
            let value = values.read(got.get("value").unwrap_or(&Value::Null));
            let token = got.get("token").and_then(Value::as_u64);
            Ok((StoreOp::Read { key }, Some(StoreRet::Read { value, token })))
        }
        other => Err(format!("not an operation of the fenced store (write, read): `{other}`")),
    }
}

fn run<M: Model>(
    model: &M,
    conv: Conv<M::Input, M::Output>,
    opts: &LinOptions,
    key: impl Fn(&M::Input) -> String,
) -> LinVerdict {
    let options = Options {
        deadline: opts.deadline,
        max_cache_entries: opts.max_cache_entries,
        threads: opts.threads,
        stop_on_failure: true,
    };
    let report = fenced_linear::check(model, &conv.ops, &options);
    let keys: Vec<KeyInfo> = report
        .partitions
        .iter()
        .map(|p| KeyInfo {
            key: p.ops.first().map(|&i| key(&conv.ops[i].input)).unwrap_or_default(),
            ops: p.ops.len(),
            status: match &p.result {
                PartitionResult::Linearizable => "valid".to_string(),
                PartitionResult::NotLinearizable(_) => "invalid".to_string(),
                PartitionResult::Unknown(r) => format!("unknown: {r}"),
            },
            cache_entries: p.cache_entries,
        })
        .collect();
    match report.verdict {
        Verdict::Linearizable => LinVerdict::Valid { keys },
        Verdict::Unknown(r) => LinVerdict::Unknown { reason: r.to_string(), keys },
        Verdict::NotLinearizable { partition } => {
            let Some(cex) = report.counterexample() else {
                return LinVerdict::Unknown { reason: "the checker lost its counterexample".into(), keys };
            };
            let pick = |i: usize| conv.refs.get(i).cloned();
            LinVerdict::Invalid {
                key: keys[partition].key.clone(),
                prefix: cex.prefix.iter().filter_map(|&i| pick(i)).collect(),
                state: cex.state.clone(),
                unplaceable: std::iter::once(cex.stuck)
                    .chain(cex.concurrent.iter().copied())
                    .filter_map(pick)
                    .collect(),
                keys,
            }
        }
    }
}
