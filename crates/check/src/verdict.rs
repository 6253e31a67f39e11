//! Verdicts: what a checker concluded, and the evidence for it.

use crate::history::{History, Op};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The properties of `DESIGN.md`, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Property {
    S1,
    S2,
    S3,
    S4,
    S5,
    /// Linearizability; judged by `crate::lin`, listed here so that reports
    /// can show it next to the others.
    S6,
    S7,
    L1,
}

impl Property {
    /// Every property with a checker in [`crate::checkers`], in report order.
    pub const CHECKED: [Property; 7] =
        [Property::S1, Property::S2, Property::S3, Property::S4, Property::S5, Property::S7, Property::L1];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Property::S1 => "uniqueness of tokens",
            Property::S2 => "monotonic tokens in real-time order",
            Property::S3 => "fenced resource rejects older tokens",
            Property::S4 => "exclusion in the log",
            Property::S5 => "durability of acknowledged operations",
            Property::S6 => "linearizability",
            Property::S7 => "authenticity of tokens",
            Property::L1 => "availability after heal",
        }
    }

    /// Parses `S1`…`L1` (case-insensitive).
    pub fn parse(s: &str) -> Option<Property> {
        let all = [Property::S6].into_iter().chain(Property::CHECKED);
        all.into_iter().find(|p| p.to_string().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Property::S1 => "S1",
            Property::S2 => "S2",
            Property::S3 => "S3",
            Property::S4 => "S4",
            Property::S5 => "S5",
            Property::S6 => "S6",
            Property::S7 => "S7",
            Property::L1 => "L1",
        })
    }
}

/// The conclusion about one property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The property holds on this history.
    Valid,
    /// The history shows a violation; see the evidence.
    Invalid,
    /// The history cannot decide: data missing, bad input, or budget exhausted.
    Unknown,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Status::Valid => "valid",
            Status::Invalid => "invalid",
            Status::Unknown => "unknown",
        })
    }
}

/// One operation named by the evidence, by event indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRef {
    /// Index of the invoke in the history, if the operation had one.
    pub invoke: Option<usize>,
    /// Index of the completion (or of a standalone event such as a log entry).
    pub completion: Option<usize>,
}

impl OpRef {
    pub fn of(op: &Op<'_>) -> OpRef {
        OpRef { invoke: op.invoke, completion: op.completion }
    }

    /// The event indices, in order.
    pub fn events(&self) -> impl Iterator<Item = usize> {
        self.invoke.into_iter().chain(self.completion)
    }
}

/// One violation (or one reason for `unknown`): the operations involved and
/// the fewest events that show the problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// What these events show, in one sentence.
    pub note: String,
    /// The operations involved, most important first.
    pub ops: Vec<OpRef>,
    /// The smallest set of events that shows the problem: indices into
    /// [`History::events`], sorted. Reading `events[first..=last]` shows the
    /// interleaving around it.
    pub events: Vec<usize>,
}

impl Evidence {
    pub fn new(note: impl Into<String>) -> Evidence {
        Evidence { note: note.into(), ops: Vec::new(), events: Vec::new() }
    }

    /// Adds an operation and its events.
    pub fn op(mut self, op: &Op<'_>) -> Evidence {
        let r = OpRef::of(op);
        self.events.extend(r.events());
        self.ops.push(r);
        self.events.sort_unstable();
        self.events.dedup();
        self
    }

    /// Adds an operation given only as a reference (e.g. from a typed view).
    pub fn op_ref(mut self, r: OpRef) -> Evidence {
        self.events.extend(r.events());
        self.ops.push(r);
        self.events.sort_unstable();
        self.events.dedup();
        self
    }

    /// The JSONL lines of the evidence (1-based), valid when the history was
    /// parsed from a file without blank lines.
    pub fn lines(&self) -> impl Iterator<Item = usize> + '_ {
        self.events.iter().map(|e| e + 1)
    }
}

/// A checker's conclusion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub property: Property,
    pub status: Status,
    /// A human sentence: what was checked and what was found.
    pub message: String,
    /// The violations (for `invalid`) or the reasons (for `unknown`), at most
    /// [`Options::max_evidence`] of them.
    pub evidence: Vec<Evidence>,
    /// How many violations there were in all (evidence may be cut short).
    pub violations: usize,
}

impl Verdict {
    pub fn valid(property: Property, message: impl Into<String>) -> Verdict {
        Verdict { property, status: Status::Valid, message: message.into(), evidence: Vec::new(), violations: 0 }
    }

    pub fn unknown(property: Property, message: impl Into<String>) -> Verdict {
        Verdict { property, status: Status::Unknown, message: message.into(), evidence: Vec::new(), violations: 0 }
    }

    /// Invalid if there is any evidence, else valid with `ok_message`.
    /// `violations` is the full count; evidence is cut to `opts.max_evidence`.
    pub fn from_violations(
        property: Property,
        opts: &Options,
        mut evidence: Vec<Evidence>,
        ok_message: impl Into<String>,
    ) -> Verdict {
        if evidence.is_empty() {
            return Verdict::valid(property, ok_message);
        }
        let violations = evidence.len();
        evidence.truncate(opts.max_evidence.max(1));
        let message = if violations == 1 {
            evidence[0].note.clone()
        } else {
            format!("{violations} violations; the first: {}", evidence[0].note)
        };
        Verdict { property, status: Status::Invalid, message, evidence, violations }
    }
}

/// How tokens are compared by S1 and S2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[derive(clap::ValueEnum)]
pub enum TokenScope {
    /// Tokens are unique and monotonic across all locks (fenced: the token is
    /// the Raft log index; etcd: the revision).
    #[default]
    Global,
    /// Tokens are only compared between grants of the same lock.
    PerLock,
}

/// Settings shared by the checkers.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// L1: how long an acquire may take after the heal.
    pub l1_bound: Duration,
    /// L1: how long after the heal before acquires are judged (elections,
    /// lease waits of the old leader).
    pub l1_grace: Duration,
    /// S1 and S2: compare tokens across all locks, or per lock.
    pub token_scope: TokenScope,
    /// Most pieces of evidence kept per verdict.
    pub max_evidence: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            l1_bound: Duration::from_secs(10),
            l1_grace: Duration::ZERO,
            token_scope: TokenScope::Global,
            max_evidence: 20,
        }
    }
}

/// The overall status: invalid if any is invalid, else unknown if any is
/// unknown, else valid (also for no verdicts at all).
pub fn overall(verdicts: &[Verdict]) -> Status {
    verdicts
        .iter()
        .map(|v| v.status)
        .max_by_key(|s| match s {
            Status::Valid => 0,
            Status::Unknown => 1,
            Status::Invalid => 2,
        })
        .unwrap_or(Status::Valid)
}

/// The exit code of `fenced check` for these verdicts: 0 valid, 1 invalid,
/// 2 unknown. (3, bad input, is decided before any checker runs.)
pub fn exit_code(verdicts: &[Verdict]) -> i32 {
    match overall(verdicts) {
        Status::Valid => 0,
        Status::Invalid => 1,
        Status::Unknown => 2,
    }
}

/// The events of a history named by a verdict's evidence, for reports.
pub fn evidence_events<'h>(history: &'h History, ev: &Evidence) -> Vec<(usize, &'h crate::history::Event)> {
    ev.events.iter().filter_map(|&i| history.events.get(i).map(|e| (i, e))).collect()
}
