//! Membership changes during a simulated run (`SimConfig::membership`): an
//! operator outside the cluster removes a random voter and adds it back,
//! again and again until the faults stop, through the real client's
//! maintenance API and the replicas' real membership handlers, while the
//! nemesis crashes and partitions replicas (so changes meet crashes in the
//! middle of a joint configuration, and partitions during a change). Each
//! change is a nemesis `start`/`stop` pair (`fault: "membership"`) in the
//! history; the checkers judge the run as any other.

use crate::recorder::Recorder;
use fenced_client::Client;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
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

/// Remove and re-add voters until `until`, then make sure every replica is
/// a voter again (bounded by `deadline`).
pub async fn drive(
    peers: BTreeMap<u64, String>,
    client: Client,
    rec: Recorder,
    until: Duration,
    deadline: Duration,
    seed: u64,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6d65_6d62);
    let ids: Vec<u64> = peers.keys().copied().collect();
    let mut removed: Option<u64> = None;
    tokio::time::sleep(Duration::from_secs(2)).await;
    while now() < deadline {
        if removed.is_none() && now() >= until {
            return;
        }
        let (op, id, result) = match removed {
            None => {
                let id = ids[rng.gen_range(0..ids.len())];
                rec.nemesis("start", json!({"fault": "membership", "op": "remove", "node": id}), now());
                let r = bounded(client.remove_member(id, false)).await;
                if r.as_ref().is_ok_and(|m| !m.nodes.contains_key(&id)) {
                    removed = Some(id);
                }
                ("remove", id, r)
            }
            Some(id) => {
                rec.nemesis("start", json!({"fault": "membership", "op": "add", "node": id}), now());
                let r = bounded(client.add_member(id, &peers[&id], false)).await;
                if r.as_ref().is_ok_and(|m| m.voters.contains(&id)) {
                    removed = None;
                }
                ("add", id, r)
            }
        };
        let outcome = match &result {
            Ok(m) => json!({"voters": m.voters}),
            Err(e) => json!({"error": e}),
        };
        rec.nemesis("stop", json!({"fault": "membership", "op": op, "node": id, "outcome": outcome}), now());
        tokio::time::sleep(Duration::from_millis(rng.gen_range(500..2500))).await;
    }
}
