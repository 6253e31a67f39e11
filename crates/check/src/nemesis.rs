//! The nemesis in the history format: one fault vocabulary and one typed
//! nemesis event, written by the simulator and the chaos runner and read by
//! the checkers and reports.
//!
//! Each engine makes the faults it can and interprets them its own way (the
//! simulator on its simulated network and hosts, the chaos runner with
//! nftables, signals, libfaketime and netem); what a fault *means* is said
//! once, here. A fault an engine cannot make is refused by that engine with
//! an error naming it, never by a panic.
//!
//! The names are the history's: every variant serialises exactly as the
//! engines wrote it before this type existed (`{"fault": "crash", "node": 2}`),
//! so old histories read, and a simulator seed's history is the same bytes.

use crate::history::{Event, EventType, Process};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use thiserror::Error;

/// One fault, or a marker the nemesis writes about faults (`heal-all`,
/// `disaster`). Serialised with its kind in `fault`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    /// Replicas (for the simulator: every host) in different groups cannot
    /// talk, in both directions, until the fault ends.
    Partition { kind: PartitionKind },
    /// `node` hears everyone, but nothing it sends arrives ("I'm not dead!").
    OneWay { node: u64 },
    /// Every message is lost with probability `rate` (simulator).
    Loss { rate: f64 },
    /// Each new connection is duplicated with probability `rate`: every
    /// request on it is delivered twice (simulator).
    Duplicate { rate: f64 },
    /// Heavy-tailed latency on every link, up to `max_ms` (simulator).
    Delay { max_ms: u64 },
    /// One replica's links are slow but alive (the simulator's 800 ms links,
    /// the chaos runner's 200 ms of netem delay).
    Limp { node: u64 },
    /// `node` processes requests but its replies to clients are lost
    /// (simulator).
    LostReplies { node: u64 },
    /// `kill -9` a replica: it loses what its disk had not synced and is
    /// restarted when the fault ends (never, under the simulator's
    /// crash-stop model). The chaos runner wrote this as `kill`.
    #[serde(alias = "kill")]
    Crash { node: u64 },
    /// `kill -9` the fenced store, restarted when the fault ends (simulator).
    CrashStore,
    /// `kill -9` whichever replica leads when the fault starts, and restart
    /// it at once (a supervisor's `Restart=always`): it is back within an
    /// election timeout, with only what its disk had synced. The chaos
    /// runner wrote this as `kill-leader`.
    #[serde(alias = "kill-leader")]
    RestartLeader,
    /// Stop a replica's process (the simulator holds its links and freezes
    /// its clock; the chaos runner sends SIGSTOP), then let it run again:
    /// the stop-the-world GC pause.
    Pause { node: u64 },
    /// [`Fault::Pause`] of whichever replica leads when the fault starts
    /// (chaos runner).
    PauseLeader,
    /// Stop a client process while it may hold a lock (Figure 8-4's pause),
    /// for `ms`: the simulator's workload pauses `client`; the chaos runner
    /// SIGSTOPs a client that holds a lock when the fault starts (it names
    /// neither in the fault; its record says whom in `targets`). The chaos
    /// runner wrote this as `pause-client`.
    #[serde(alias = "pause-client")]
    ClientPause {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ms: Option<u64>,
    },
    /// Jump one host's wall clock by `ms`, once, for good; the monotonic
    /// clock leases use is untouched (simulator).
    WallJump { node: u64, ms: i64 },
    /// Shift a replica's wall clock by `offset_s` for the fault's duration,
    /// then back (chaos runner, libfaketime). Unlike [`Fault::WallJump`] it
    /// is undone when the fault ends.
    Clock { node: u64, offset_s: i64 },
    /// A membership change through the admin API `fenced cluster` uses.
    Membership {
        #[serde(flatten)]
        op: MembershipOp,
    },
    /// The whole cluster (restore), or all but one replica (recover), lost
    /// and brought back through the real backup code (simulator
    /// `--disaster`). Its start says what the restart began from.
    Disaster,
    /// Marker: every active fault is over (a stop only). With `majority_up`
    /// it says whether availability is promised from here (L1).
    HealAll,
    /// A fault kind this vocabulary does not know, read from a foreign or
    /// older history (a Jepsen `start-partition`, a hand-written test
    /// history): only its name is kept, which is enough to pair its start
    /// with its stop. Never written by an engine.
    #[serde(skip)]
    Other(String),
}

/// A scheduled fault and when it is active (from the start of the run for
/// the simulator, of the workload for the chaos runner). Each engine draws
/// its own schedule; serialised, it is the fault's record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Planned {
    #[serde(skip)]
    pub start: Duration,
    #[serde(skip)]
    pub end: Duration,
    #[serde(flatten)]
    pub fault: Fault,
}

/// How a [`Fault::Partition`] cuts the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    /// Two random groups (the simulator draws them over every host, the
    /// chaos runner over the replicas, cut in half). The chaos runner wrote
    /// this as `halves`.
    #[serde(alias = "halves")]
    RandomHalves,
    /// The current leader alone.
    IsolateLeader,
    /// Each replica keeps only its ring neighbours: everyone sees a
    /// majority, no two see the same one (Jepsen's majorities-ring; needs 5
    /// replicas to differ from a full mesh).
    MajoritiesRing,
    /// Two halves joined by one replica that sees both.
    Bridge,
}

/// What a [`Fault::Membership`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum MembershipOp {
    /// Remove voter `node`. The chaos runner switches it off and, when the
    /// fault ends, brings it back as a new machine and adds it.
    Remove { node: u64 },
    /// [`MembershipOp::Remove`] of whichever replica leads when the fault
    /// starts (chaos runner).
    RemoveLeader,
    /// Add `node` as a voter (the simulator's operator).
    Add { node: u64 },
    /// Replace voter `node` by `new` in one change (the simulator's
    /// operator).
    Replace { node: u64, new: u64 },
    /// Kill voter `node` and replace it by a spare; when the fault ends the
    /// spare is replaced by a new, empty `node` (chaos runner).
    ReplaceKilled { node: u64 },
}

impl Fault {
    /// The kind's name in the history (`crash`, `heal-all`, or an unknown
    /// fault's own name).
    pub fn name(&self) -> &str {
        match self {
            Fault::Partition { .. } => "partition",
            Fault::OneWay { .. } => "one-way",
            Fault::Loss { .. } => "loss",
            Fault::Duplicate { .. } => "duplicate",
            Fault::Delay { .. } => "delay",
            Fault::Limp { .. } => "limp",
            Fault::LostReplies { .. } => "lost-replies",
            Fault::Crash { .. } => "crash",
            Fault::CrashStore => "crash-store",
            Fault::RestartLeader => "restart-leader",
            Fault::Pause { .. } => "pause",
            Fault::PauseLeader => "pause-leader",
            Fault::ClientPause { .. } => "client-pause",
            Fault::WallJump { .. } => "wall-jump",
            Fault::Clock { .. } => "clock",
            Fault::Membership { .. } => "membership",
            Fault::Disaster => "disaster",
            Fault::HealAll => "heal-all",
            Fault::Other(name) => name,
        }
    }

    /// Whether a stop of `other` ends a start of `self`: the same kind (the
    /// same name, for kinds this vocabulary does not know).
    pub fn same_kind(&self, other: &Fault) -> bool {
        match (self, other) {
            (Fault::Other(a), Fault::Other(b)) => a == b,
            (Fault::Other(_), _) | (_, Fault::Other(_)) => false,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }

    /// Whether the fault stops a client process rather than a replica (for
    /// drawing it on the clients' lanes).
    pub fn on_client(&self) -> bool {
        match self {
            Fault::ClientPause { .. } => true,
            Fault::Other(name) => name.contains("client"),
            _ => false,
        }
    }

    /// What the fault did to whom it hit, as a report's label says it.
    pub fn verb(&self) -> &str {
        match self {
            Fault::Pause { .. } | Fault::PauseLeader | Fault::ClientPause { .. } => "paused",
            Fault::Crash { .. } | Fault::CrashStore => "crashed",
            Fault::Other(n) if n.contains("pause") => "paused",
            Fault::Other(n) if n.contains("kill") || n.contains("crash") => "crashed",
            f => f.name(),
        }
    }

    /// The fault as its history record (`{"fault": …, …}`).
    pub fn to_value(&self) -> Value {
        match self {
            Fault::Other(name) => serde_json::json!({ "fault": name }),
            // The derived serialisation of a vocabulary enum with finite
            // numbers cannot fail.
            f => serde_json::to_value(f).unwrap_or_else(|_| serde_json::json!({ "fault": f.name() })),
        }
    }

    /// Reads a fault from its record. A record whose `fault` names a kind
    /// this vocabulary does not know, or a known kind with other fields than
    /// ours (hand-written and imported histories), is [`Fault::Other`]:
    /// the checkers need only its kind.
    pub fn from_record(name: &str, record: &Value) -> Fault {
        match serde_json::from_value::<Fault>(record.clone()) {
            Ok(f) => f,
            Err(_) => Fault::Other(name.to_string()),
        }
    }
}

/// A fault's start or stop, as one nemesis event records it.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRecord {
    pub fault: Fault,
    /// On a stop: whether a majority of replicas is up afterwards, when the
    /// nemesis knows (L1 promises availability only then).
    pub majority_up: Option<bool>,
    /// What the engine observed doing it, beside the fault: whom it hit
    /// (`targets`, `leader`), why it was skipped (`skipped`), the outcome of
    /// a membership change (`outcome`), the undo (`undo`). Engine-specific
    /// and read only by reports.
    pub detail: Map<String, Value>,
}

impl FaultRecord {
    pub fn new(fault: Fault) -> Self {
        FaultRecord { fault, majority_up: None, detail: Map::new() }
    }

    /// Adds a detail (a key the fault itself does not use).
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.set(key, value);
        self
    }

    /// Sets a detail.
    pub fn set(&mut self, key: &str, value: Value) {
        self.detail.insert(key.to_string(), value);
    }

    /// The history value: the fault's fields, `majority_up`, and the details.
    pub fn to_value(&self) -> Value {
        let mut v = self.fault.to_value();
        if let Some(obj) = v.as_object_mut() {
            for (k, x) in &self.detail {
                obj.insert(k.clone(), x.clone());
            }
            if let Some(up) = self.majority_up {
                obj.insert("majority_up".into(), Value::Bool(up));
            }
        }
        v
    }
}

/// One nemesis event: the `f` and `value` of an `info` event of process
/// `nemesis`.
#[derive(Debug, Clone, PartialEq)]
pub enum NemesisEvent {
    /// `f: "start"`: a fault began.
    Start(FaultRecord),
    /// `f: "stop"`: a fault ended (or `heal-all`: every fault did).
    Stop(FaultRecord),
    /// `f: "backup"`: the operator's backup before a restore disaster,
    /// taken through the leader.
    Backup { index: u64, highest_token: u64, locks: u64 },
    /// `f: "added-back"`: a replica lost in a recover disaster was added
    /// back as a voter.
    AddedBack { node: u64, voters: BTreeSet<u64> },
}

/// A nemesis event that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NemesisError {
    #[error("not a nemesis event (process {0})")]
    NotNemesis(String),
    #[error("nemesis `{f}`: {msg}")]
    Value { f: String, msg: String },
}

impl NemesisEvent {
    /// The event's `f`.
    pub fn f(&self) -> &'static str {
        match self {
            NemesisEvent::Start(_) => "start",
            NemesisEvent::Stop(_) => "stop",
            NemesisEvent::Backup { .. } => "backup",
            NemesisEvent::AddedBack { .. } => "added-back",
        }
    }

    /// The event's value.
    pub fn value(&self) -> Value {
        match self {
            NemesisEvent::Start(r) | NemesisEvent::Stop(r) => r.to_value(),
            NemesisEvent::Backup { index, highest_token, locks } => {
                serde_json::json!({"index": index, "highest_token": highest_token, "locks": locks})
            }
            NemesisEvent::AddedBack { node, voters } => serde_json::json!({"node": node, "voters": voters}),
        }
    }

    /// The history event at `time` (ns), without a wall interval.
    pub fn to_event(&self, time: u64) -> Event {
        Event {
            kind: EventType::Info,
            process: Process::Named(Process::NEMESIS.into()),
            f: self.f().to_string(),
            value: self.value(),
            time,
            node: None,
            wall: None,
        }
    }

    /// Reads a nemesis event of ours back. Faults this vocabulary does not
    /// know read as [`Fault::Other`]; `f`s other than ours are an error.
    pub fn from_event(e: &Event) -> Result<NemesisEvent, NemesisError> {
        if !e.process.is_named(Process::NEMESIS) {
            return Err(NemesisError::NotNemesis(e.process.to_string()));
        }
        let err = |msg: String| NemesisError::Value { f: e.f.clone(), msg };
        let record = |v: &Value| -> Result<FaultRecord, NemesisError> {
            let name = v.get("fault").and_then(Value::as_str).ok_or_else(|| err("no `fault` kind".into()))?;
            let fault = Fault::from_record(name, v);
            let majority_up = v.get("majority_up").and_then(Value::as_bool);
            let fields = fault.to_value();
            let detail = v
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.as_str() != "majority_up" && fields.get(k.as_str()).is_none())
                .map(|(k, x)| (k.clone(), x.clone()))
                .collect();
            Ok(FaultRecord { fault, majority_up, detail })
        };
        let num = |k: &str| e.value.get(k).and_then(Value::as_u64).ok_or_else(|| err(format!("no number `{k}`")));
        Ok(match e.f.as_str() {
            "start" => NemesisEvent::Start(record(&e.value)?),
            "stop" => NemesisEvent::Stop(record(&e.value)?),
            "backup" => NemesisEvent::Backup {
                index: num("index")?,
                highest_token: num("highest_token")?,
                locks: num("locks")?,
            },
            "added-back" => NemesisEvent::AddedBack {
                node: num("node")?,
                voters: serde_json::from_value(e.value.get("voters").cloned().unwrap_or(Value::Null))
                    .map_err(|x| err(format!("`voters`: {x}")))?,
            },
            other => return Err(err(format!("unknown nemesis event {other:?}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every variant, with the record the engines wrote before this type.
    fn every_variant() -> Vec<(Fault, Value)> {
        vec![
            (
                Fault::Partition { kind: PartitionKind::RandomHalves },
                json!({"fault": "partition", "kind": "random-halves"}),
            ),
            (
                Fault::Partition { kind: PartitionKind::IsolateLeader },
                json!({"fault": "partition", "kind": "isolate-leader"}),
            ),
            (
                Fault::Partition { kind: PartitionKind::MajoritiesRing },
                json!({"fault": "partition", "kind": "majorities-ring"}),
            ),
            (Fault::Partition { kind: PartitionKind::Bridge }, json!({"fault": "partition", "kind": "bridge"})),
            (Fault::OneWay { node: 2 }, json!({"fault": "one-way", "node": 2})),
            (Fault::Loss { rate: 0.125 }, json!({"fault": "loss", "rate": 0.125})),
            (Fault::Duplicate { rate: 0.5 }, json!({"fault": "duplicate", "rate": 0.5})),
            (Fault::Delay { max_ms: 40 }, json!({"fault": "delay", "max_ms": 40})),
            (Fault::Limp { node: 3 }, json!({"fault": "limp", "node": 3})),
            (Fault::LostReplies { node: 1 }, json!({"fault": "lost-replies", "node": 1})),
            (Fault::Crash { node: 1 }, json!({"fault": "crash", "node": 1})),
            (Fault::CrashStore, json!({"fault": "crash-store"})),
            (Fault::RestartLeader, json!({"fault": "restart-leader"})),
            (Fault::Pause { node: 2 }, json!({"fault": "pause", "node": 2})),
            (Fault::PauseLeader, json!({"fault": "pause-leader"})),
            (
                Fault::ClientPause { client: Some(3), ms: Some(2500) },
                json!({"fault": "client-pause", "client": 3, "ms": 2500}),
            ),
            (Fault::ClientPause { client: None, ms: None }, json!({"fault": "client-pause"})),
            (Fault::WallJump { node: 1, ms: -3000 }, json!({"fault": "wall-jump", "node": 1, "ms": -3000})),
            (Fault::Clock { node: 1, offset_s: 45 }, json!({"fault": "clock", "node": 1, "offset_s": 45})),
            (
                Fault::Membership { op: MembershipOp::Remove { node: 2 } },
                json!({"fault": "membership", "op": "remove", "node": 2}),
            ),
            (
                Fault::Membership { op: MembershipOp::RemoveLeader },
                json!({"fault": "membership", "op": "remove-leader"}),
            ),
            (
                Fault::Membership { op: MembershipOp::Add { node: 4 } },
                json!({"fault": "membership", "op": "add", "node": 4}),
            ),
            (
                Fault::Membership { op: MembershipOp::Replace { node: 1, new: 4 } },
                json!({"fault": "membership", "op": "replace", "node": 1, "new": 4}),
            ),
            (
                Fault::Membership { op: MembershipOp::ReplaceKilled { node: 3 } },
                json!({"fault": "membership", "op": "replace-killed", "node": 3}),
            ),
            (Fault::Disaster, json!({"fault": "disaster"})),
            (Fault::HealAll, json!({"fault": "heal-all"})),
        ]
    }

    #[test]
    fn every_variant_round_trips_under_its_old_name() {
        for (fault, record) in every_variant() {
            assert_eq!(fault.to_value(), record, "{fault:?} writes another record");
            let name = record["fault"].as_str().unwrap_or_default();
            assert_eq!(fault.name(), name);
            assert_eq!(Fault::from_record(name, &record), fault, "{record} reads back as another fault");
        }
    }

    #[test]
    fn the_chaos_runners_old_names_read_as_the_shared_kinds() {
        let read = |v: Value| Fault::from_record(v["fault"].as_str().unwrap_or_default(), &v);
        assert_eq!(read(json!({"fault": "kill", "node": 2})), Fault::Crash { node: 2 });
        assert_eq!(read(json!({"fault": "kill-leader", "targets": [1]})), Fault::RestartLeader);
        assert_eq!(read(json!({"fault": "pause-client"})), Fault::ClientPause { client: None, ms: None });
        assert_eq!(
            read(json!({"fault": "partition", "kind": "halves"})),
            Fault::Partition { kind: PartitionKind::RandomHalves }
        );
        // Hand-written histories: a known name with other fields, an unknown name.
        assert_eq!(read(json!({"fault": "kill", "targets": ["n1"]})), Fault::Other("kill".into()));
        assert_eq!(read(json!({"fault": "gremlins"})), Fault::Other("gremlins".into()));
    }

    #[test]
    fn kinds_pair_by_type_and_unknown_ones_by_name() {
        assert!(Fault::Crash { node: 1 }.same_kind(&Fault::Crash { node: 2 }));
        assert!(!Fault::Crash { node: 1 }.same_kind(&Fault::Pause { node: 1 }));
        assert!(Fault::Other("x".into()).same_kind(&Fault::Other("x".into())));
        assert!(!Fault::Other("crash".into()).same_kind(&Fault::Crash { node: 1 }));
    }

    #[test]
    fn events_keep_their_f_value_and_details() {
        let start = NemesisEvent::Start(FaultRecord::new(Fault::Crash { node: 2 }).with("leader", json!(true)));
        let e = start.to_event(7);
        assert_eq!((e.f.as_str(), e.time), ("start", 7));
        assert_eq!(e.value, json!({"fault": "crash", "node": 2, "leader": true}));
        assert_eq!(NemesisEvent::from_event(&e), Ok(start));

        let mut heal = FaultRecord::new(Fault::HealAll);
        heal.majority_up = Some(false);
        let e = NemesisEvent::Stop(heal.clone()).to_event(9);
        assert_eq!(e.value, json!({"fault": "heal-all", "majority_up": false}));
        assert_eq!(NemesisEvent::from_event(&e), Ok(NemesisEvent::Stop(heal)));

        let b = NemesisEvent::Backup { index: 10, highest_token: 8, locks: 2 };
        assert_eq!(b.to_event(1).value, json!({"index": 10, "highest_token": 8, "locks": 2}));
        assert_eq!(NemesisEvent::from_event(&b.to_event(1)), Ok(b));
        let a = NemesisEvent::AddedBack { node: 2, voters: [1, 2, 3].into_iter().collect() };
        assert_eq!(a.to_event(1).value, json!({"node": 2, "voters": [1, 2, 3]}));
        assert_eq!((a.f(), NemesisEvent::from_event(&a.to_event(1))), ("added-back", Ok(a)));
    }

    #[test]
    fn foreign_events_are_errors_not_guesses() {
        let mut e = NemesisEvent::Start(FaultRecord::new(Fault::HealAll)).to_event(0);
        e.f = "start-partition".into();
        assert!(matches!(NemesisEvent::from_event(&e), Err(NemesisError::Value { .. })));
        e.f = "start".into();
        e.value = json!({"targets": [1]});
        assert!(NemesisEvent::from_event(&e).is_err());
        e.process = Process::Client(1);
        assert!(matches!(NemesisEvent::from_event(&e), Err(NemesisError::NotNemesis(_))));
    }
}
