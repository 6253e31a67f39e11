//! The replicas' clock-jump detections, written into the history. A fenced
//! replica counts the wall-clock jumps it detects (`clock.jumps` in its
//! status; the `clock` nemesis makes them with libfaketime). This task polls
//! every replica's status once a second and records each new detection as a
//! standalone event of the `clock` process: `f: "jump"`, the replica as
//! `node`, the jump in `value`, and the replica's own wall-clock bound as
//! `wall`. Its `time` is the poll's, up to a second after the detection.

use crate::worker::mono_ns;
use fenced_check::history::{Event, EventType, Process, Wall};
use fenced_client::Client;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// How often the replicas' status is read.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// Poll `replicas` (id, address) until the receiver is gone or the task is aborted.
pub fn spawn(
    client: Client,
    replicas: Vec<(u64, String)>,
    epoch: u64,
    tx: UnboundedSender<Event>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
        loop {
            for (id, addr) in &replicas {
                let Ok(status) = client.cluster_status_of(addr).await else { continue };
                let Some(clock) = status.clock else { continue };
                let before = seen.insert(*id, clock.jumps).unwrap_or(0);
                if clock.jumps <= before {
                    continue;
                }
                let w = clock.wall;
                let e = Event {
                    kind: EventType::Info,
                    process: Process::Named(Process::CLOCK.into()),
                    f: "jump".into(),
                    value: json!({"node": id, "jump_ms": clock.last_jump_ms, "detections": clock.jumps - before}),
                    time: mono_ns().saturating_sub(epoch),
                    node: Some(format!("n{id}")),
                    wall: Some(Wall::new(w.earliest_ms, w.latest_ms, w.synchronized)),
                };
                if tx.send(e).is_err() {
                    return;
                }
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    })
}
