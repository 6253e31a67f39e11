//! A typed view of a fenced history: the value conventions of
//! `docs/history.md`, read once, so that each checker works on fields rather
//! than on JSON.
//!
//! Only the operations the fenced checkers judge are read: client `acquire`,
//! `release`, `write`, `read` and `claim`; `log` entries; `nemesis` start and
//! stop; `final` reads. Other `f`s are left alone, so a history may carry
//! extra operations. A known operation whose value breaks the conventions is
//! an error naming the event: judging it with a guessed field could turn a
//! broken recorder into a wrong verdict.

use crate::history::{json_kind, History, Op, Outcome, Pos, Process, SequenceError};
use crate::nemesis::Fault;
use serde_json::Value;
use thiserror::Error;

/// A value that breaks the conventions, or events that do not pair up.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ViewError {
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error("{at}: `{f}`: {msg}")]
    Value { at: Pos, f: String, msg: String },
}

impl ViewError {
    /// Where the error is.
    pub fn pos(&self) -> Pos {
        match self {
            ViewError::Sequence(e) => e.pos(),
            ViewError::Value { at, .. } => *at,
        }
    }

    /// The same error with event indices turned into 1-based line numbers.
    pub fn with_lines(self, lines: &[usize]) -> ViewError {
        match self {
            ViewError::Value { at: Pos::Event(i), f, msg } => {
                ViewError::Value { at: lines.get(i).map_or(Pos::Event(i), |&l| Pos::Line(l)), f, msg }
            }
            e => e,
        }
    }
}

/// An `acquire` by a client.
#[derive(Debug, Clone)]
pub struct Acquire<'a> {
    pub op: Op<'a>,
    pub lock: &'a str,
    /// The granted token; present exactly when the outcome is ok.
    pub token: Option<u64>,
    /// For a fail: why (e.g. `"held"`).
    pub reason: Option<&'a str>,
}

/// A `release` by a client.
#[derive(Debug, Clone)]
pub struct Release<'a> {
    pub op: Op<'a>,
    pub lock: &'a str,
    pub token: u64,
}

/// A `write` to the fenced store.
#[derive(Debug, Clone)]
pub struct Write<'a> {
    pub op: Op<'a>,
    pub key: &'a str,
    /// The lock the token was issued for, if not the key itself.
    pub lock: Option<&'a str>,
    pub token: u64,
    pub value: &'a Value,
    /// For a fail: `stale_token`, `bad_token`, ….
    pub code: Option<&'a str>,
    /// The kind of grant the client wrote with, as it recorded it
    /// (`shared`, `permit`; absent: exclusive). S3 prefers the log's word.
    pub mode: Option<&'a str>,
}

impl Write<'_> {
    /// The lock whose grants authorise this write (S7).
    pub fn lock_name(&self) -> &str {
        self.lock.unwrap_or(self.key)
    }
}

/// An ok `read` of the fenced store (by a client, or a final read).
#[derive(Debug, Clone)]
pub struct Read<'a> {
    pub op: Op<'a>,
    pub key: &'a str,
    pub value: Option<&'a Value>,
    /// The token of the write that the read saw; 0 when the key is absent.
    pub token: u64,
    /// A fenced read's token (the invoke's `fence`): the store was asked to
    /// refuse the read if a later writer wrote under the key's lock.
    pub fence: Option<u64>,
    /// The lock fencing the read (the invoke's `lock`, else the key).
    pub lock: Option<&'a str>,
}

impl Read<'_> {
    /// The lock whose writes a fenced read is judged against (S3).
    pub fn lock_name(&self) -> &str {
        self.lock.unwrap_or(self.key)
    }
}

/// A `claim` (create-if-absent).
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    pub op: Op<'a>,
    pub name: &'a str,
    pub owner: Option<&'a Value>,
    pub token: Option<u64>,
}

/// What a log entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    Grant,
    Release,
    Expire,
    Revoke,
    /// A semaphore's permit count was set (`lock` names it, `permits` is the count).
    Permits,
}

/// How a log grant is held (`value.mode`; absent means exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantMode {
    Exclusive,
    Shared,
    Permit,
}

/// An entry read back from the replicated log (process `"log"`).
#[derive(Debug, Clone)]
pub struct LogEntry<'a> {
    pub op: Op<'a>,
    pub kind: LogKind,
    pub lock: &'a str,
    pub token: u64,
    pub index: Option<u64>,
    /// For grants: how the grant is held.
    pub mode: GrantMode,
    /// For permit grants: the slot.
    pub slot: Option<u64>,
    /// For [`LogKind::Permits`]: the new count.
    pub permits: Option<u64>,
}

/// Two replicas' logs disagree about an entry both had committed (process
/// `"log"`, `f` = `"diverged"`): Raft's state-machine safety is broken, so
/// what the log "decided" depends on which replica is asked.
#[derive(Debug, Clone)]
pub struct Diverged<'a> {
    pub op: Op<'a>,
    pub index: u64,
    /// Which replicas, and what each holds there.
    pub detail: Option<&'a str>,
}

/// A nemesis start or stop.
#[derive(Debug, Clone)]
pub struct Nemesis<'a> {
    pub op: Op<'a>,
    /// True for a start, false for a stop.
    pub start: bool,
    /// The fault ([`Fault::HealAll`] for the end of every fault; a kind
    /// the vocabulary does not know, as in Jepsen's `start-partition`, is
    /// [`Fault::Other`] with its name).
    pub fault: Fault,
    /// On a stop: whether a majority is up afterwards, if the nemesis said.
    pub majority_up: Option<bool>,
    /// When it happened: the start of a start, the end of a stop.
    pub time: u64,
}

/// The typed view; each list is in history (invoke) order.
#[derive(Debug, Clone, Default)]
pub struct View<'a> {
    pub acquires: Vec<Acquire<'a>>,
    pub releases: Vec<Release<'a>>,
    pub writes: Vec<Write<'a>>,
    pub reads: Vec<Read<'a>>,
    pub claims: Vec<Claim<'a>>,
    pub log: Vec<LogEntry<'a>>,
    pub diverged: Vec<Diverged<'a>>,
    pub finals: Vec<Read<'a>>,
    pub nemesis: Vec<Nemesis<'a>>,
}

impl<'a> View<'a> {
    /// Reads the conventions from a history.
    pub fn build(history: &'a History) -> Result<View<'a>, ViewError> {
        let mut view = View::default();
        for op in history.operations()? {
            let f = FieldReader { op: &op };
            match op.process() {
                Process::Client(_) => view.client_op(op, &f)?,
                Process::Named(n) if n == Process::LOG => view.log_op(op, &f)?,
                Process::Named(n) if n == Process::NEMESIS => view.nemesis_op(op, &f)?,
                Process::Named(n) if n == Process::FINAL && op.f() == "read" => {
                    if let Some(r) = read(op, &f)? {
                        view.finals.push(r);
                    }
                }
                Process::Named(_) => {}
            }
        }
        Ok(view)
    }

    fn client_op(&mut self, op: Op<'a>, f: &FieldReader<'_, 'a>) -> Result<(), ViewError> {
        let ok = op.outcome() == Outcome::Ok;
        match op.f() {
            "acquire" => self.acquires.push(Acquire {
                op,
                lock: f.str("lock")?,
                token: if ok { Some(f.u64("token")?) } else { None },
                reason: f.opt_str("reason")?,
            }),
            "release" => self.releases.push(Release { op, lock: f.str("lock")?, token: f.u64("token")? }),
            "write" => self.writes.push(Write {
                op,
                key: f.str("key")?,
                lock: f.opt_str("lock")?,
                token: f.u64_invoked("token")?,
                value: op.first.value.get("value").unwrap_or(&Value::Null),
                code: f.opt_str("code")?,
                mode: f.opt_str("mode")?,
            }),
            "read" => {
                if let Some(r) = read(op, f)? {
                    self.reads.push(r);
                }
            }
            "claim" => self.claims.push(Claim {
                op,
                name: f.str("name")?,
                owner: op.field("owner"),
                token: f.opt_u64("token")?,
            }),
            _ => {}
        }
        Ok(())
    }

    fn log_op(&mut self, op: Op<'a>, f: &FieldReader<'_, 'a>) -> Result<(), ViewError> {
        let kind = match op.f() {
            "grant" => LogKind::Grant,
            "release" => LogKind::Release,
            "expire" => LogKind::Expire,
            "revoke" => LogKind::Revoke,
            "permits" => LogKind::Permits,
            "diverged" => {
                self.diverged.push(Diverged { op, index: f.u64("index")?, detail: f.opt_str("detail")? });
                return Ok(());
            }
            other => {
                return Err(f.err(format!(
                    "a log entry is grant, release, expire, revoke, permits or diverged, found {other:?}"
                )))
            }
        };
        let mode = match f.opt_str("mode")? {
            None | Some("exclusive") => GrantMode::Exclusive,
            Some("shared") => GrantMode::Shared,
            Some("permit") => GrantMode::Permit,
            Some(other) => return Err(f.err(format!("a grant's mode is exclusive, shared or permit, found {other:?}"))),
        };
        self.log.push(LogEntry {
            op,
            kind,
            lock: f.str("lock")?,
            token: f.u64("token")?,
            index: f.opt_u64("index")?,
            mode,
            slot: f.opt_u64("slot")?,
            permits: f.opt_u64("permits")?,
        });
        Ok(())
    }

    fn nemesis_op(&mut self, op: Op<'a>, f: &FieldReader<'_, 'a>) -> Result<(), ViewError> {
        // Jepsen-style nemeses name the fault in `f` (`start-partition`).
        let (start, suffix) = if let Some(rest) = op.f().strip_prefix("start") {
            (true, rest)
        } else if let Some(rest) = op.f().strip_prefix("stop") {
            (false, rest)
        } else {
            return Ok(());
        };
        let fault = match f.opt_str("fault")? {
            Some(name) => Fault::from_record(name, &op.first.value),
            None => Fault::Other(suffix.trim_start_matches(['-', '_']).to_string()),
        };
        let majority_up = match op.field("majority_up") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => return Err(f.err(format!("`majority_up` must be a boolean, found {}", json_kind(v)))),
        };
        let time = if start { op.start() } else { op.end().unwrap_or(op.start()) };
        self.nemesis.push(Nemesis { op, start, fault, majority_up, time });
        Ok(())
    }
}

/// An ok read as a [`Read`]; other outcomes say nothing about the store.
fn read<'a>(op: Op<'a>, f: &FieldReader<'_, 'a>) -> Result<Option<Read<'a>>, ViewError> {
    if op.outcome() != Outcome::Ok {
        return Ok(None);
    }
    Ok(Some(Read {
        op,
        key: f.str("key")?,
        value: op.done.and_then(|e| e.value.get("value")),
        token: f.opt_u64("token")?.unwrap_or(0),
        fence: f.opt_u64("fence")?,
        lock: f.opt_str("lock")?,
    }))
}

/// Reads fields of an operation's value with errors that name the event.
struct FieldReader<'o, 'a> {
    op: &'o Op<'a>,
}

impl<'a> FieldReader<'_, 'a> {
    fn err(&self, msg: String) -> ViewError {
        let at = self.op.completion.or(self.op.invoke).unwrap_or(0);
        ViewError::Value { at: Pos::Event(at), f: self.op.f().to_string(), msg }
    }

    fn str(&self, name: &str) -> Result<&'a str, ViewError> {
        self.opt_str(name)?.ok_or_else(|| self.err(format!("value has no string field `{name}`")))
    }

    fn opt_str(&self, name: &str) -> Result<Option<&'a str>, ViewError> {
        match self.op.field(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.err(format!("`{name}` must be a string, found {}", json_kind(v)))),
        }
    }

    fn u64(&self, name: &str) -> Result<u64, ViewError> {
        self.opt_u64(name)?.ok_or_else(|| self.err(format!("value has no integer field `{name}`")))
    }

    fn opt_u64(&self, name: &str) -> Result<Option<u64>, ViewError> {
        match self.op.field(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.err(format!("`{name}` must be a non-negative integer, found {n}"))),
            Some(v) => Err(self.err(format!("`{name}` must be a non-negative integer, found {}", json_kind(v)))),
        }
    }

    /// A field that the invoke must carry (what the client sent), such as a
    /// write's token: a completion's `current` token must not replace it.
    fn u64_invoked(&self, name: &str) -> Result<u64, ViewError> {
        match self.op.first.value.get(name) {
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or_else(|| self.err(format!("the invoke's `{name}` must be a non-negative integer, found {n}"))),
            Some(v) => {
                Err(self.err(format!("the invoke's `{name}` must be a non-negative integer, found {}", json_kind(v))))
            }
            None => Err(self.err(format!("the invoke's value has no integer field `{name}`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Event, EventType};
    use crate::nemesis::{FaultRecord, MembershipOp, NemesisEvent};
    use serde_json::json;

    fn nemesis(f: &str, value: Value) -> Event {
        Event {
            kind: EventType::Info,
            process: Process::Named(Process::NEMESIS.into()),
            f: f.into(),
            value,
            time: 5,
            node: None,
            wall: None,
        }
    }

    fn faults(events: Vec<Event>) -> Result<Vec<(bool, Fault, Option<bool>)>, ViewError> {
        let h = History::new(events);
        let view = View::build(&h)?;
        Ok(view.nemesis.iter().map(|n| (n.start, n.fault.clone(), n.majority_up)).collect())
    }

    #[test]
    fn nemesis_events_read_as_typed_faults() {
        let remove = Fault::Membership { op: MembershipOp::Remove { node: 2 } };
        let events = vec![
            NemesisEvent::Start(FaultRecord::new(Fault::Crash { node: 3 }).with("leader", json!(true))).to_event(1),
            NemesisEvent::Stop(FaultRecord::new(remove.clone()).with("outcome", json!({"voters": [1, 3]}))).to_event(2),
            NemesisEvent::Stop(FaultRecord { majority_up: Some(true), ..FaultRecord::new(Fault::HealAll) }).to_event(3),
            // The chaos runner's old names.
            nemesis("start", json!({"fault": "kill-leader", "targets": [2]})),
            // Neither start nor stop: not a fault.
            NemesisEvent::Backup { index: 1, highest_token: 1, locks: 0 }.to_event(4),
        ];
        assert_eq!(
            faults(events),
            Ok(vec![
                (true, Fault::Crash { node: 3 }, None),
                (false, remove, None),
                (false, Fault::HealAll, Some(true)),
                (true, Fault::RestartLeader, None),
            ])
        );
    }

    #[test]
    fn unknown_kinds_keep_their_name_and_bad_fields_are_errors() {
        let events = vec![
            nemesis("start-partition", json!(null)),
            nemesis("start", json!({"fault": "gremlins", "node": 1})),
            nemesis("stop", json!({"fault": "kill", "targets": ["n1"]})),
        ];
        assert_eq!(
            faults(events),
            Ok(vec![
                (true, Fault::Other("partition".into()), None),
                (true, Fault::Other("gremlins".into()), None),
                (false, Fault::Other("kill".into()), None),
            ])
        );
        assert!(faults(vec![nemesis("start", json!({"fault": 7}))]).is_err());
        assert!(faults(vec![nemesis("stop", json!({"fault": "heal-all", "majority_up": "yes"}))]).is_err());
    }
}
