//! Losing the whole cluster, or a majority's disks, in the middle of a run,
//! and bringing it back through the real code (`fenced_replica::storage::backup`):
//!
//! - **restore**: a backup is taken through the leader over the simulated
//!   network (`GET /v1/cluster/snapshot`, what `fenced cluster snapshot
//!   save` calls), the clients go on, then every replica and its disk is
//!   lost; each member of a new cluster is written by [`backup::restore`]
//!   onto a fresh disk, as `fenced snapshot restore` does, and started.
//! - **recover**: every replica is lost but one, whose disk
//!   [`backup::recover`] rewrites as a one-member cluster, as `fenced
//!   cluster recover` does; the others never come back.
//!
//! The harness keeps what the lost disks held (an oracle no operator has),
//! so that the checkers judge the whole history: the old cluster's log, the
//! restore's end of every lease it held, and the new cluster's log, in that
//! order. What a restore may lose by design is then *stated*, not waived:
//! the old cluster's grants that the new cluster's starting state does not
//! hold (after the backup's index, or missing from the survivor's log).
//! [`judge`] lists them and requires each to lie below the token floor,
//! every grant of the new cluster to lie above it, and a restored backup to
//! be exactly the old log's prefix up to its index.

use crate::config::DisasterKind;
use fenced_check::history::Event;
use fenced_core::machine::audit::{self, Decision};
use fenced_core::machine::table::LockTable;
use fenced_io::disk::{Disk, MemDisk};
use fenced_replica::storage::backup::{self, Backup, Started};
use fenced_replica::storage::log_store::LogStore;
use fenced_replica::storage::state_machine::{decode_snapshot_file, SNAPSHOT};
use fenced_replica::storage::types::Entry;
use openraft::EntryPayload;
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The cluster name a restore gives the new cluster (`--cluster-name`).
pub const RESTORED_CLUSTER: &str = "restored";

/// One lost replica's log as its disk held it when it was lost (what was
/// synced only).
#[derive(Debug, Clone)]
pub struct OldLog {
    pub committed: u64,
    pub entries: Vec<Entry>,
}

/// Read a replica's log from its disk.
pub fn read_log(disk: &MemDisk) -> Result<OldLog, String> {
    let log = LogStore::open(Arc::new(disk.clone())).map_err(|e| e.to_string())?;
    let committed = log.committed_index().map_err(|e| e.to_string())?.unwrap_or(0);
    Ok(OldLog { committed, entries: log.entries().map_err(|e| e.to_string())? })
}

/// What the disaster did, kept to judge the history at the end.
#[derive(Debug, Clone)]
pub struct Aftermath {
    pub kind: DisasterKind,
    /// Every lost replica's log (the survivor's too, as it was before recovery).
    pub old: BTreeMap<u64, OldLog>,
    /// Restore: the backup the new cluster started from.
    pub backup: Option<Backup>,
    /// Recover: the surviving replica.
    pub survivor: Option<u64>,
    /// What the real restore or recovery reported.
    pub started: Started,
    /// The state the new cluster starts from, read back from a new disk.
    pub start_table: LockTable,
}

fn start_table_of(disk: &MemDisk) -> Result<LockTable, String> {
    let bytes = disk.read(SNAPSHOT).map_err(|e| e.to_string())?.ok_or("the restore wrote no snapshot")?;
    Ok(decode_snapshot_file(&bytes).map_err(|e| e.to_string())?.1)
}

/// `fenced snapshot restore` for every member: fresh disks of a new cluster.
pub fn restore_all(
    backup: &Backup,
    peers: &BTreeMap<u64, String>,
    bump: u64,
) -> Result<(BTreeMap<u64, MemDisk>, Started, LockTable), String> {
    let mut disks = BTreeMap::new();
    let mut first = None;
    for id in peers.keys() {
        let disk = MemDisk::new();
        let started = backup::restore(&disk, backup, RESTORED_CLUSTER, *id, peers, bump).map_err(|e| e.to_string())?;
        if first.is_none() {
            first = Some((started, start_table_of(&disk)?));
        }
        disks.insert(*id, disk);
    }
    let (started, table) = first.ok_or("a restore needs at least one member")?;
    Ok((disks, started, table))
}

/// `fenced cluster recover` on the survivor's disk.
pub fn recover(disk: &MemDisk, id: u64, bump: u64) -> Result<(Started, LockTable), String> {
    let started = backup::recover(Arc::new(disk.clone()), id, None, bump).map_err(|e| e.to_string())?;
    Ok((started, start_table_of(disk)?))
}

/// What [`judge`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub kind: &'static str,
    /// The highest index the new cluster's starting state knew (the backup's
    /// index; the survivor's last index).
    pub known_index: u64,
    /// Every token of the new cluster must exceed this.
    pub floor: u64,
    /// The old cluster's log was judged up to here (committed, or held by a
    /// majority, so every acknowledged entry is in it).
    pub old_end: u64,
    pub old_grants: usize,
    /// Old grants the new cluster's state does not hold: what the restore
    /// loses by design. Each ended with the old cluster (its holder's lease
    /// is unknown to the new one) and lies below the floor.
    pub lost_grants: Vec<(String, u64)>,
    /// Locks the restore freed (held at the end of the old log).
    pub ended_by_restore: usize,
    pub new_grants: usize,
    /// Broken promises of the restore; empty when it kept them all.
    pub violations: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn message(&self) -> String {
        if self.ok() {
            format!(
                "{}: floor {} above every old token (old log judged to {}); {} of {} old grants lost by design \
                 (not in the starting state, all below the floor), {} locks ended by the restore, {} new grants \
                 all above the floor",
                self.kind,
                self.floor,
                self.old_end,
                self.lost_grants.len(),
                self.old_grants,
                self.ended_by_restore,
                self.new_grants
            )
        } else {
            self.violations.join("; ")
        }
    }
}

fn event(d: &Decision, at: u64) -> Event {
    Event::from_log(d.kind, serde_json::to_value(d).unwrap_or_default(), at)
}

fn requests(entries: &[Entry], upto: u64) -> impl Iterator<Item = (u64, &fenced_core::machine::command::Request)> {
    entries.iter().filter(move |e| e.log_id.index <= upto).filter_map(|e| match &e.payload {
        EntryPayload::Normal(req) => Some((e.log_id.index, req)),
        _ => None,
    })
}

fn describe(e: &Entry) -> String {
    format!("t{} {}", e.log_id.leader_id.term, serde_json::to_string(&e.payload).unwrap_or_default())
}

/// `diverged` events for one cluster's logs, each vouched for up to its own
/// committed index.
fn divergence_events(logs: &BTreeMap<u64, OldLog>, at: u64) -> Vec<Event> {
    let committed: BTreeMap<u64, audit::CommittedLog> = logs
        .iter()
        .map(|(id, l)| {
            (
                *id,
                l.entries
                    .iter()
                    .filter(|e| e.log_id.index <= l.committed)
                    .map(|e| (e.log_id.index, describe(e)))
                    .collect(),
            )
        })
        .collect();
    audit::divergences(&committed)
        .into_iter()
        .map(|d| Event::from_log("diverged", serde_json::to_value(&d).unwrap_or_default(), at))
        .collect()
}

/// The old cluster's decided log: the most up-to-date log (the one that
/// would win an election, so it holds every committed entry), up to the
/// highest index that some replica had committed or that a majority holds
/// with the same log id (an acknowledged entry is on a majority's disks).
fn decided(old: &BTreeMap<u64, OldLog>) -> Option<(&OldLog, u64)> {
    let last = |l: &OldLog| l.entries.last().map(|e| (e.log_id.leader_id.term, e.log_id.index));
    let best = old.values().max_by_key(|l| last(l))?;
    let majority = old.len() / 2 + 1;
    let mut held: BTreeMap<fenced_replica::storage::types::LogId, usize> = BTreeMap::new();
    for e in old.values().flat_map(|l| l.entries.iter()) {
        *held.entry(e.log_id).or_default() += 1;
    }
    let by_majority = best
        .entries
        .iter()
        .filter(|e| held.get(&e.log_id).is_some_and(|n| *n >= majority))
        .map(|e| e.log_id.index)
        .max()
        .unwrap_or(0);
    let committed = old.values().map(|l| l.committed).max().unwrap_or(0);
    Some((best, by_majority.max(committed)))
}

/// The log events of the whole run (old log, the restore's ends, new log)
/// and the judgement of the restore's promises.
pub fn judge(a: &Aftermath, new: &BTreeMap<u64, OldLog>, at: u64) -> (Vec<Event>, Report) {
    let floor = a.started.floor;
    let mut violations = Vec::new();
    let mut out = divergence_events(&a.old, at);
    // The old cluster, replayed from its first entry.
    let mut old_table = LockTable::new(Default::default());
    let (old_decisions, old_end, old_log) = match decided(&a.old) {
        Some((log, end)) => (audit::replay_onto(&mut old_table, requests(&log.entries, end)), end, Some(log)),
        None => (Vec::new(), 0, None),
    };
    out.extend(old_decisions.iter().map(|d| event(d, at)));
    // No token the old cluster issued, or could have: any index on any lost disk.
    let old_max = a.old.values().filter_map(|l| l.entries.last()).map(|e| e.log_id.index).max().unwrap_or(0);
    if old_max >= floor {
        violations.push(format!(
            "the token floor {floor} is not above index {old_max} of the lost cluster's logs: the new cluster can \
             issue token {old_max} again"
        ));
    }
    // What the new cluster's starting state holds of the old log.
    let in_source = |d: &Decision| -> bool {
        match (a.kind, a.survivor) {
            (DisasterKind::Restore, _) => d.index <= a.started.known_index,
            (DisasterKind::Recover, Some(s)) => a.old.get(&s).is_some_and(|l| {
                let theirs = old_log.and_then(|o| o.entries.iter().find(|e| e.log_id.index == d.index));
                l.entries.iter().any(|e| Some(e.log_id) == theirs.map(|t| t.log_id))
            }),
            (DisasterKind::Recover, None) => false,
        }
    };
    let old_grants: Vec<&Decision> = old_decisions.iter().filter(|d| d.kind == "grant").collect();
    let lost: Vec<(String, u64)> =
        old_grants.iter().filter(|d| !in_source(d)).map(|d| (d.lock.clone(), d.token)).collect();
    // A restored backup is exactly the old log's prefix up to its index.
    if let (Some(b), Some(log)) = (&a.backup, old_log) {
        let index = b.index();
        if old_end >= index {
            let mut prefix = LockTable::new(Default::default());
            audit::replay_onto(&mut prefix, requests(&log.entries, index));
            let held = |t: &LockTable| -> BTreeSet<(String, u64)> {
                t.held_locks().map(|g| (g.lock.clone(), g.token.0)).collect()
            };
            if held(&prefix) != held(&b.table) || prefix.highest_token() != b.table.highest_token() {
                violations.push(format!(
                    "the backup at index {index} is not the old log's prefix: it holds {:?} (highest token {}), \
                     the log up to {index} holds {:?} (highest token {})",
                    held(&b.table),
                    b.table.highest_token(),
                    held(&prefix),
                    prefix.highest_token()
                ));
            }
        } else {
            violations.push(format!(
                "the backup is at index {index}, beyond every entry the lost cluster decided ({old_end}): it holds \
                 state no majority had"
            ));
        }
    }
    // The restore ends every lease: each lock still held at the end of the
    // old log is freed at the floor (its holder is unknown to the new cluster).
    let by = match a.kind {
        DisasterKind::Restore => "restore",
        DisasterKind::Recover => "recover",
    };
    let mut ended = 0;
    for g in old_table.held_locks() {
        ended += 1;
        out.push(Event::from_log(
            "revoke",
            json!({"lock": g.lock, "token": g.token.0, "lease": g.lease.0, "index": floor, "by": by}),
            at,
        ));
    }
    // The new cluster, replayed from the state it started in.
    out.extend(divergence_events(new, at));
    let mut new_decisions = Vec::new();
    if let Some(best) = new.values().max_by_key(|l| l.committed) {
        let mut table = a.start_table.clone();
        new_decisions = audit::replay_onto(&mut table, requests(&best.entries, best.committed));
        if let Some(low) = best.entries.iter().map(|e| e.log_id.index).find(|i| *i <= floor) {
            violations.push(format!("the new cluster's log holds index {low}, at or below the floor {floor}"));
        }
    }
    for d in new_decisions.iter().filter(|d| d.kind == "grant" && d.token <= floor) {
        violations.push(format!("the new cluster granted {:?} token {}, not above the floor {floor}", d.lock, d.token));
    }
    out.extend(new_decisions.iter().map(|d| event(d, at)));
    let report = Report {
        kind: by,
        known_index: a.started.known_index,
        floor,
        old_end,
        old_grants: old_grants.len(),
        lost_grants: lost,
        ended_by_restore: ended,
        new_grants: new_decisions.iter().filter(|d| d.kind == "grant").count(),
        violations,
    };
    (out, report)
}
