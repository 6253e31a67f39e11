//! The probe loop: every heartbeat interval, ask each other member for its
//! vital signs (round trip, phi), and now and then measure the link's
//! throughput. What it learns goes into [`PeerStats`](crate::peer::health::PeerStats).

use crate::node::Replica;
use crate::peer::health::{probe, probe_bandwidth, BANDWIDTH_EVERY};
use crate::storage::types::NodeId;
use fenced_core::toolbox::clock::Mono;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The least time a probe is given before it counts as lost: a probe lost
/// to a timeout shorter than a loaded machine's scheduling delay would make
/// a live peer look dead.
const PROBE_TIMEOUT_MIN: Duration = Duration::from_secs(1);

/// Probe every other member once per `interval` until `shutdown`, and send
/// each a bandwidth probe every [`BANDWIDTH_EVERY`]. At most one probe of
/// each kind per peer is in flight, so a stopped peer costs two pending
/// requests.
pub async fn run(replica: Arc<Replica>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let in_flight: Arc<Mutex<BTreeSet<NodeId>>> = Arc::default();
    let bw_in_flight: Arc<Mutex<BTreeSet<NodeId>>> = Arc::default();
    let mut last_bandwidth: Option<Mono> = None;
    let interval = replica.config.heartbeat;
    let timeout = replica.config.election_timeout_max.max(PROBE_TIMEOUT_MIN);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let now = replica.seams.clock.now();
        if last_bandwidth.is_none_or(|t| now.since(t) >= BANDWIDTH_EVERY) {
            last_bandwidth = Some(now);
            for (id, addr) in replica.member_addrs() {
                if id == replica.config.id || !bw_in_flight.lock().map(|mut s| s.insert(id)).unwrap_or(false) {
                    continue;
                }
                let (r, bw_in_flight) = (replica.clone(), bw_in_flight.clone());
                tokio::spawn(async move {
                    let me = r.config.id;
                    if let Some((reply, took, bytes)) =
                        probe_bandwidth(&r.http, r.seams.clock.as_ref(), me, &addr).await
                    {
                        r.vitals.peers.bandwidth_measured(id, took, bytes, reply);
                    }
                    if let Ok(mut s) = bw_in_flight.lock() {
                        s.remove(&id);
                    }
                });
            }
        }
        for (id, addr) in replica.member_addrs() {
            if id == replica.config.id || !in_flight.lock().map(|mut s| s.insert(id)).unwrap_or(false) {
                continue;
            }
            let (r, in_flight) = (replica.clone(), in_flight.clone());
            tokio::spawn(async move {
                let me = r.config.id;
                if let Some((reply, rtt)) = probe(&r.http, r.seams.clock.as_ref(), me, &addr, timeout).await {
                    r.vitals.peers.probe_answered(id, rtt, reply);
                }
                if let Ok(mut s) = in_flight.lock() {
                    s.remove(&id);
                }
            });
        }
    }
}
