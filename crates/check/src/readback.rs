//! The read-back of replicas' Raft logs as history events (process `"log"`,
//! docs/history.md): what the log decided, for S4, S5 and S7 to judge by the
//! log itself.
//!
//! Pure: each caller reads its logs its own way (the simulator from its
//! in-memory disks, the chaos runner and `fenced debug history` through
//! `fenced debug log --json`) into [`ReplicaLog`]s, and [`read_back`] does
//! the rest, the same for all: every pair of replicas' committed entries
//! compared ([`audit::divergences`], `diverged` events), then the committed
//! requests of the most up-to-date log replayed through the real state
//! machine ([`audit::replay`]: `grant`, `release`, `expire`, `revoke`,
//! `permits` events).

use crate::history::Event;
use fenced_core::machine::audit;
use fenced_core::machine::command::Request;
use std::collections::BTreeMap;

/// One replica's log as read back from its disk.
#[derive(Debug, Clone)]
pub struct ReplicaLog {
    pub id: u64,
    /// The highest index this replica knew committed (recorded lazily, so it
    /// may lag); `None` when it recorded none. The replica vouches for its
    /// entries up to it.
    pub committed: Option<u64>,
    /// In log order.
    pub entries: Vec<LogEntry>,
}

/// One entry of a [`ReplicaLog`].
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub index: u64,
    pub term: u64,
    /// The payload as text, for comparing replicas' entries and naming a
    /// difference: any faithful rendering, the same for every replica.
    pub payload: String,
    pub request: Payload,
}

/// What an entry carries, for the replay.
#[derive(Debug, Clone)]
pub enum Payload {
    /// A client's or the leader's request.
    Request(Request),
    /// Nothing the lock table applies (blank, membership).
    Other,
    /// A request that could not be decoded (a note when it is committed).
    Unreadable,
}

/// Which entries count as committed, and whose log is replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Each replica vouches for its log up to its own committed index: the
    /// log with the highest one (the last of equals) is replayed up to it.
    Vouched,
    /// The cluster reported this commit index: the most up-to-date log (the
    /// highest last entry by term, then index; the first of equals) is
    /// replayed up to it.
    Reported(u64),
    /// No commit index known: the most up-to-date log, as for `Reported`,
    /// each entry committed when a majority of `voters` hold the same index
    /// and term.
    Majority { voters: u64 },
}

/// The events read back, and what could not be judged.
#[derive(Debug, Clone, Default)]
pub struct ReadBack {
    /// `diverged` events first, then the replayed decisions in log order;
    /// all at the read-back time.
    pub events: Vec<Event>,
    pub notes: Vec<String>,
}

/// The log read-back of `logs` (no log: nothing), every event at time `at`.
/// A log whose start was compacted away cannot be replayed from an empty
/// table: a note then, and no events.
pub fn read_back(logs: &[ReplicaLog], commit: Commit, at: u64) -> ReadBack {
    let mut out = ReadBack::default();
    let best = match commit {
        Commit::Vouched => logs.iter().max_by_key(|l| l.committed.unwrap_or(0)),
        Commit::Reported(_) | Commit::Majority { .. } => {
            let last = |l: &ReplicaLog| l.entries.last().map_or((0, 0), |e| (e.term, e.index));
            logs.iter().fold(None, |best: Option<&ReplicaLog>, l| match best {
                Some(b) if last(l) <= last(b) => Some(b),
                _ => Some(l),
            })
        }
    };
    let Some(best) = best else { return out };
    if best.entries.first().is_some_and(|e| e.index > 1) {
        out.notes.push("the log was compacted; the read-back misses its start, so S4/S5/S7 may be unknown".into());
        return out;
    }
    // What each replica knew committed, compared (state-machine safety).
    let committed_logs: BTreeMap<u64, audit::CommittedLog> = logs
        .iter()
        .map(|l| {
            let vouched = l.entries.iter().filter(|e| l.committed.is_some_and(|c| e.index <= c));
            (l.id, vouched.map(|e| (e.index, format!("t{} {}", e.term, e.payload))).collect())
        })
        .collect();
    out.events = audit::divergences(&committed_logs)
        .into_iter()
        .map(|d| Event::from_log("diverged", serde_json::to_value(&d).unwrap_or_default(), at))
        .collect();
    let mut agree: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    if let Commit::Majority { .. } = commit {
        for e in logs.iter().flat_map(|l| &l.entries) {
            *agree.entry((e.index, e.term)).or_default() += 1;
        }
    }
    let is_committed = |e: &LogEntry| match commit {
        Commit::Vouched => e.index <= best.committed.unwrap_or(0),
        Commit::Reported(c) => e.index <= c,
        Commit::Majority { voters } => agree.get(&(e.index, e.term)).is_some_and(|n| n * 2 > voters),
    };
    let mut requests = Vec::new();
    for e in best.entries.iter().filter(|e| is_committed(e)) {
        match &e.request {
            Payload::Request(r) => requests.push((e.index, r)),
            Payload::Other => {}
            Payload::Unreadable => out.notes.push(format!("log entry {}: request not understood", e.index)),
        }
    }
    out.events.extend(
        audit::replay(requests)
            .into_iter()
            .map(|d| Event::from_log(d.kind, serde_json::to_value(&d).unwrap_or_default(), at)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fenced_core::machine::command::Command;
    use fenced_core::machine::ids::LeaseId;

    /// `key` (the signing key, at index 1), `lease` (the lease, granted at
    /// index 2) or `lock NAME` for that lease.
    fn payload(what: &str) -> Payload {
        let cmd = match what.strip_prefix("lock ") {
            Some(lock) => Command::Acquire { lock: lock.into(), lease: LeaseId(2), wait: false, value: String::new() },
            None if what == "key" => Command::SetSigningKey { secret: [7; 32] },
            None => Command::LeaseGrant { ttl_ms: 10_000 },
        };
        Payload::Request(Request { origin: None, at_ms: 0, cmd })
    }

    fn log(id: u64, committed: Option<u64>, entries: &[(u64, u64, &str)]) -> ReplicaLog {
        let entries = entries
            .iter()
            .map(|(index, term, what)| LogEntry {
                index: *index,
                term: *term,
                payload: what.to_string(),
                request: payload(what),
            })
            .collect();
        ReplicaLog { id, committed, entries }
    }

    fn grants(r: &ReadBack) -> Vec<String> {
        r.events.iter().map(|e| format!("{} {}", e.f, e.value["lock"].as_str().unwrap_or("?"))).collect()
    }

    #[test]
    fn vouched_replays_the_log_with_the_highest_committed_index_up_to_it() {
        let logs = [
            log(1, Some(4), &[(1, 1, "key"), (2, 1, "lease"), (3, 1, "lock a"), (4, 1, "lock b"), (5, 1, "lock c")]),
            log(2, Some(3), &[(1, 1, "key"), (2, 1, "lease"), (3, 1, "lock a")]),
        ];
        let r = read_back(&logs, Commit::Vouched, 7);
        assert_eq!(grants(&r), ["grant a", "grant b"]);
        assert!(r.events.iter().all(|e| e.time == 7 && e.process == crate::history::Process::Named("log".into())));
        assert!(r.notes.is_empty());
    }

    #[test]
    fn without_a_commit_index_an_entry_a_majority_holds_is_committed() {
        let logs = [
            log(1, None, &[(1, 1, "key"), (2, 1, "lease"), (3, 1, "lock a"), (4, 1, "lock b"), (5, 2, "lock c")]),
            log(2, None, &[(1, 1, "key"), (2, 1, "lease"), (3, 1, "lock a"), (4, 1, "lock b")]),
            log(3, None, &[(1, 1, "key"), (2, 1, "lease"), (3, 1, "lock a")]),
        ];
        assert_eq!(grants(&read_back(&logs, Commit::Majority { voters: 3 }, 0)), ["grant a", "grant b"]);
        assert_eq!(grants(&read_back(&logs, Commit::Reported(5), 0)), ["grant a", "grant b", "grant c"]);
    }

    #[test]
    fn differing_committed_entries_are_named_and_a_compacted_log_is_a_note() {
        let logs = [log(1, Some(1), &[(1, 1, "lease")]), log(2, Some(1), &[(1, 2, "lease")])];
        let r = read_back(&logs, Commit::Vouched, 0);
        assert_eq!(r.events[0].f, "diverged");
        assert_eq!(r.events[0].value["detail"], "n1 holds t1 lease; n2 holds t2 lease");
        let compacted = [log(1, Some(5), &[(4, 1, "lock a"), (5, 1, "lock b")])];
        let r = read_back(&compacted, Commit::Reported(5), 0);
        assert!(r.events.is_empty());
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    }
}
