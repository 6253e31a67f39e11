//! Membership changes during a simulated run (`SimConfig::membership`): an
//! operator outside the cluster removes a voter (the leader half of the
//! time) and adds it back, or replaces a voter by a replica that is not a
//! member (a spare, or one replaced earlier), again and again until the
//! faults stop, through the real client's maintenance API and the replicas'
//! real membership handlers. Meanwhile the nemesis crashes and partitions
//! replicas, and the driver in `run.rs` adds a crash or a partition at the
//! moment a joint configuration appears, so that changes meet crashes in
//! the middle of a joint configuration and partitions during a change. Each
//! change is a nemesis `start`/`stop` pair (`fault: "membership"`) in the
//! history; the checkers judge the run as any other.

use crate::recorder::Recorder;
use fenced_check::nemesis::{Fault, FaultRecord, MembershipOp, NemesisEvent};
use fenced_client::Client;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

fn now() -> Duration {
    crate::time::elapsed()
}

/// How long the operator waits for one change; a change still running after
/// that is recorded as timed out (it may yet complete: the next step is
/// idempotent either way).
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

async fn bounded<T>(f: impl std::future::Future<Output = Result<T, fenced_client::ClientError>>) -> Result<T, String> {
    match tokio::time::timeout(STEP_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {STEP_TIMEOUT:?}")),
    }
}

/// One change the operator makes.
enum Op {
    Remove(u64),
    Add(u64),
    Replace { old: u64, new: u64 },
}

/// The voters and leader: the latest membership any replica reports (a
/// removed replica keeps reporting the configuration it last saw).
async fn voters_and_leader(client: &Client, peers: &BTreeMap<u64, String>) -> Option<(BTreeSet<u64>, Option<u64>)> {
    let mut latest: Option<fenced_core::admin::Membership> = None;
    for addr in peers.values() {
        if let Ok(m) = bounded(client.members_of(addr)).await {
            if latest.as_ref().is_none_or(|l| m.log_index > l.log_index) {
                latest = Some(m);
            }
        }
    }
    latest.filter(|m| !m.voters.is_empty()).map(|m| (m.voters, m.leader))
}

/// Pick a voter to take out: the leader half of the time (the change that
/// costs the most: it hands leadership off first).
fn victim(rng: &mut ChaCha8Rng, voters: &BTreeSet<u64>, leader: Option<u64>) -> Option<u64> {
    if let Some(l) = leader.filter(|l| voters.contains(l) && rng.gen_bool(0.5)) {
        return Some(l);
    }
    let v: Vec<u64> = voters.iter().copied().collect();
    (!v.is_empty()).then(|| v[rng.gen_range(0..v.len())])
}

/// Change the membership until `until`, then make sure there are `voters`
/// voters again (bounded by `deadline`). `peers` holds every replica that
/// may be a member, spares included; `voters` is the cluster's size.
pub async fn drive(
    peers: BTreeMap<u64, String>,
    voters: usize,
    client: Client,
    rec: Recorder,
    until: Duration,
    deadline: Duration,
    seed: u64,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6d65_6d62);
    tokio::time::sleep(Duration::from_secs(2)).await;
    while now() < deadline {
        let Some((current, leader)) = voters_and_leader(&client, &peers).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let outsiders: Vec<u64> = peers.keys().copied().filter(|id| !current.contains(id)).collect();
        let op = if current.len() < voters {
            match outsiders.first() {
                Some(id) => Op::Add(*id),
                None => return,
            }
        } else if now() >= until {
            return;
        } else {
            let Some(v) = victim(&mut rng, &current, leader) else { return };
            match outsiders.get(rng.gen_range(0..outsiders.len().max(1))) {
                Some(new) if rng.gen_bool(0.4) => Op::Replace { old: v, new: *new },
                _ => Op::Remove(v),
            }
        };
        let change = |op| FaultRecord::new(Fault::Membership { op });
        let (desc, result) = match op {
            Op::Remove(id) => {
                let d = change(MembershipOp::Remove { node: id }).with("leader", json!(leader == Some(id)));
                rec.nemesis(NemesisEvent::Start(d.clone()), now());
                (d, bounded(client.remove_member(id, false)).await)
            }
            Op::Add(id) => {
                let d = change(MembershipOp::Add { node: id });
                rec.nemesis(NemesisEvent::Start(d.clone()), now());
                (d, bounded(client.add_member(id, &peers[&id], false)).await)
            }
            Op::Replace { old, new } => {
                let d = change(MembershipOp::Replace { node: old, new }).with("leader", json!(leader == Some(old)));
                rec.nemesis(NemesisEvent::Start(d.clone()), now());
                (d, bounded(client.replace_member(old, new, &peers[&new], false)).await)
            }
        };
        let outcome = match &result {
            Ok(m) => json!({"voters": m.voters}),
            Err(e) => json!({"error": e}),
        };
        rec.nemesis(NemesisEvent::Stop(desc.with("outcome", outcome)), now());
        tokio::time::sleep(Duration::from_millis(rng.gen_range(500..2500))).await;
    }
}
