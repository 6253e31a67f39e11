//! Each replica's view of its peers: a phi-accrual failure detector, when it
//! last heard from each, round-trip times, and replication latency.
//!
//! The detector needs a regular heartbeat stream in *both* roles. openraft's
//! heartbeats flow only from the leader, so a follower would hear nothing
//! from other followers, and the leader's AppendEntries replies mix
//! heartbeats with fsync-bound writes. So every replica probes every peer
//! (`POST /raft/v1/probe`) once per heartbeat interval, and the replies feed
//! the detector and the RTT window: the same measurement whatever the role.
//! Any other message from a peer (a Raft request it sent, a reply to ours)
//! still counts as "heard from". AppendEntries round trips are recorded
//! separately as replication latency (the leader's outbound links, for the
//! limping-leader judgement).

use crate::peer::handshake::RAFT_PREFIX;
use crate::storage::types::NodeId;
use bytes::Bytes;
use fenced_core::api::PeerHealth;
use fenced_core::toolbox::clock::{Clock, Mono};
use fenced_core::toolbox::latency::LatencyWindow;
use fenced_core::toolbox::phi::{PhiConfig, PhiDetector};
use fenced_core::toolbox::throughput::RateWindow;
use fenced_io::frame;
use fenced_io::http::HttpClient;
use hyper::{Method, Request, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The least jitter the phi detector assumes of a peer: never suspect a
/// peer on the scheduling noise of a loaded machine alone.
const PHI_JITTER_MIN: Duration = Duration::from_millis(100);

/// RTT and replication samples kept per peer.
pub const PEER_WINDOW: usize = 1024;
/// The window replication and link throughput are averaged over.
pub const THROUGHPUT_SPAN: Duration = Duration::from_secs(30);
/// Transfers kept per peer in a throughput window.
const THROUGHPUT_SAMPLES: usize = 4096;
/// The padding of a bandwidth probe: large enough that its transfer time,
/// not the round trip's latency, dominates on a slow link.
pub const BANDWIDTH_PAD: usize = 64 * 1024;
/// How often each replica sends every peer a bandwidth probe.
pub const BANDWIDTH_EVERY: Duration = Duration::from_secs(2);
/// A bandwidth probe still unanswered after this is recorded as having taken
/// this long (the link carries at most `BANDWIDTH_PAD` per this), so a link
/// too slow to finish one still reads as slow rather than as unmeasured.
pub const BANDWIDTH_TIMEOUT: Duration = Duration::from_secs(10);

/// A probe: who is asking.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeRequest {
    pub from: NodeId,
}

/// A probe's answer: the responder's own vital signs, so that a leader can
/// compare itself with its peers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeReply {
    pub id: NodeId,
    /// Median of the responder's recent fsyncs, if it has done any.
    pub fsync_p50_us: Option<u64>,
    /// Median over its peers of its recent probe RTT medians.
    pub rtt_p50_us: Option<u64>,
}

/// A bandwidth probe: who is asking, and padding to carry.
///
/// The padding is (de)serialized as one byte string, not element by element:
/// the encoding is the same (postcard writes a `Vec<u8>` as its length and
/// its bytes either way), but a byte at a time cost about 5 % of a simulated
/// cluster's CPU.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BandwidthRequest {
    pub from: NodeId,
    #[serde(with = "serde_bytes")]
    pub pad: Vec<u8>,
}

/// A bandwidth probe's answer: the responder's own outbound link rate, so
/// that a leader can compare its links with its peers'.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BandwidthReply {
    pub id: NodeId,
    /// Median over the responder's peers of its bandwidth-probe rates (bytes/s).
    pub link_bytes_per_s: Option<u64>,
}

struct PeerState {
    phi: PhiDetector,
    last_heard: Option<Mono>,
    rtt: LatencyWindow,
    replication: LatencyWindow,
    reported: Option<ProbeReply>,
    replication_rate: RateWindow,
    link_rate: RateWindow,
    reported_link: Option<u64>,
}

impl PeerState {
    fn new(phi: PhiConfig) -> Self {
        PeerState {
            phi: PhiDetector::new(phi),
            last_heard: None,
            rtt: LatencyWindow::new(PEER_WINDOW),
            replication: LatencyWindow::new(PEER_WINDOW),
            reported: None,
            replication_rate: RateWindow::new(THROUGHPUT_SPAN, THROUGHPUT_SAMPLES),
            link_rate: RateWindow::new(THROUGHPUT_SPAN, THROUGHPUT_SAMPLES),
            reported_link: None,
        }
    }
}

/// The per-peer measurements of one replica.
pub struct PeerStats {
    me: NodeId,
    clock: Arc<dyn Clock>,
    phi: PhiConfig,
    peers: Mutex<BTreeMap<NodeId, PeerState>>,
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl PeerStats {
    /// Probes are sent every `interval`: the detector's first estimate.
    pub fn new(me: NodeId, clock: Arc<dyn Clock>, interval: Duration) -> Self {
        let phi = PhiConfig {
            first_heartbeat_estimate: interval,
            // Never suspect a peer on scheduling noise of a loaded machine
            // alone: at least 100 ms of jitter is assumed.
            min_std_dev: PHI_JITTER_MIN.max(interval / 2),
            ..PhiConfig::default()
        };
        PeerStats { me, clock, phi, peers: Mutex::new(BTreeMap::new()) }
    }

    fn with<T>(&self, peer: NodeId, f: impl FnOnce(&mut PeerState, Mono) -> T) -> Option<T> {
        if peer == self.me {
            return None;
        }
        let now = self.clock.now();
        let mut peers = self.peers.lock().ok()?;
        Some(f(peers.entry(peer).or_insert_with(|| PeerState::new(self.phi)), now))
    }

    /// Something arrived from `peer` (a request it sent, or a reply).
    pub fn heard(&self, peer: NodeId) {
        self.with(peer, |p, now| p.last_heard = Some(now));
    }

    /// A probe to `peer` was answered after `rtt`.
    pub fn probe_answered(&self, peer: NodeId, rtt: Duration, reply: ProbeReply) {
        self.with(peer, |p, now| {
            p.last_heard = Some(now);
            p.phi.heartbeat(now);
            p.rtt.record(rtt);
            p.reported = Some(reply);
        });
    }

    /// An AppendEntries to `peer` (sent as leader) of `bytes` carrying
    /// `entries` was answered after `took`.
    pub fn replicated(&self, peer: NodeId, took: Duration, bytes: u64, entries: u64) {
        self.with(peer, |p, now| {
            p.last_heard = Some(now);
            p.replication.record(took);
            p.replication_rate.record(now, bytes, entries, took);
        });
    }

    /// A bandwidth probe of `bytes` to `peer` took `took` (answered, or
    /// given up on after [`BANDWIDTH_TIMEOUT`]: `reply` is then `None`).
    pub fn bandwidth_measured(&self, peer: NodeId, took: Duration, bytes: u64, reply: Option<BandwidthReply>) {
        self.with(peer, |p, now| {
            p.link_rate.record(now, bytes, 0, took);
            if let Some(r) = reply {
                p.last_heard = Some(now);
                p.reported_link = r.link_bytes_per_s;
            }
        });
    }

    /// This replica's outbound link rate to each unsuspected peer it has
    /// measured (bytes/s, from bandwidth probes).
    pub fn link_rates(&self) -> BTreeMap<NodeId, f64> {
        let now = self.clock.now();
        let Ok(mut peers) = self.peers.lock() else { return BTreeMap::new() };
        peers
            .iter_mut()
            .filter(|(_, p)| p.phi.is_available(now))
            .filter_map(|(id, p)| p.link_rate.summary(now).busy_bytes_per_s.map(|r| (*id, r)))
            .collect()
    }

    /// The median of [`PeerStats::link_rates`]: what this replica reports.
    pub fn link_p50(&self) -> Option<u64> {
        let mut rates: Vec<f64> = self.link_rates().into_values().collect();
        rates.sort_unstable_by(f64::total_cmp);
        rates.get(rates.len().checked_sub(1)? / 2).map(|r| *r as u64)
    }

    /// Each unsuspected peer's reported outbound link rate (bytes/s).
    pub fn reported_link_rates(&self) -> BTreeMap<NodeId, u64> {
        let now = self.clock.now();
        let Ok(peers) = self.peers.lock() else { return BTreeMap::new() };
        peers
            .iter()
            .filter(|(_, p)| p.phi.is_available(now))
            .filter_map(|(id, p)| p.reported_link.map(|r| (*id, r)))
            .collect()
    }

    /// This replica's answer to a bandwidth probe.
    pub fn bandwidth_reply(&self) -> BandwidthReply {
        BandwidthReply { id: self.me, link_bytes_per_s: self.link_p50() }
    }

    /// The median over peers of each peer's recent RTT median.
    pub fn rtt_p50(&self) -> Option<Duration> {
        let peers = self.peers.lock().ok()?;
        let mut medians: Vec<Duration> = peers.values().filter_map(|p| p.rtt.recent_median(64)).collect();
        medians.sort_unstable();
        medians.get(medians.len().checked_sub(1)? / 2).copied()
    }

    /// The median over peers of each peer's recent replication latency median
    /// (only meaningful on a leader).
    pub fn replication_p50s(&self) -> BTreeMap<NodeId, Duration> {
        let Ok(peers) = self.peers.lock() else { return BTreeMap::new() };
        peers.iter().filter_map(|(id, p)| p.replication.recent_median(64).map(|m| (*id, m))).collect()
    }

    /// What each peer last reported about itself.
    pub fn reports(&self) -> BTreeMap<NodeId, ProbeReply> {
        let Ok(peers) = self.peers.lock() else { return BTreeMap::new() };
        peers.iter().filter_map(|(id, p)| p.reported.clone().map(|r| (*id, r))).collect()
    }

    /// Is `peer` currently suspected?
    pub fn suspected(&self, peer: NodeId) -> bool {
        let now = self.clock.now();
        self.peers.lock().map(|p| p.get(&peer).is_some_and(|s| !s.phi.is_available(now))).unwrap_or(false)
    }

    /// The status view, for `members` other than this replica.
    pub fn health(&self, members: &BTreeSet<NodeId>) -> BTreeMap<NodeId, PeerHealth> {
        let now = self.clock.now();
        let Ok(mut peers) = self.peers.lock() else { return BTreeMap::new() };
        members
            .iter()
            .filter(|id| **id != self.me)
            .map(|id| {
                let p = peers.entry(*id).or_insert_with(|| PeerState::new(self.phi));
                let phi = p.phi.phi(now);
                let h = PeerHealth {
                    phi: (phi * 100.0).round() / 100.0,
                    phi_threshold: self.phi.threshold,
                    suspected: phi > self.phi.threshold,
                    last_heard_ms_ago: p.last_heard.map(|t| now.since(t).as_millis() as u64),
                    rtt: p.rtt.summary(),
                    replication: p.replication.summary(),
                    reported_fsync_p50_us: p.reported.as_ref().and_then(|r| r.fsync_p50_us),
                    reported_rtt_p50_us: p.reported.as_ref().and_then(|r| r.rtt_p50_us),
                    replication_throughput: p.replication_rate.summary(now),
                    link_throughput: p.link_rate.summary(now),
                    reported_link_bytes_per_s: p.reported_link,
                };
                (*id, h)
            })
            .collect()
    }

    /// This replica's answer to a probe.
    pub fn reply(&self, fsync_p50: Option<Duration>) -> ProbeReply {
        ProbeReply { id: self.me, fsync_p50_us: fsync_p50.map(us), rtt_p50_us: self.rtt_p50().map(us) }
    }
}

/// A framed POST of `msg` to the replica endpoint `what`, and its size.
fn framed_post<T: Serialize>(what: &str, msg: &T) -> Option<(Request<Bytes>, u64)> {
    let body = frame::encode(msg).ok()?;
    let size = body.len() as u64;
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("{RAFT_PREFIX}/{what}"))
        .header("content-type", "application/x-fenced-frame")
        .body(Bytes::from(body))
        .ok()?;
    Some((req, size))
}

/// Send one probe to `addr` and return the reply and its round trip.
pub async fn probe(
    http: &HttpClient,
    clock: &dyn Clock,
    me: NodeId,
    addr: &str,
    timeout: Duration,
) -> Option<(ProbeReply, Duration)> {
    let (req, _) = framed_post("probe", &ProbeRequest { from: me })?;
    let start = clock.now();
    let resp = http.send(addr, req, timeout).await.ok()?;
    let rtt = clock.now().since(start);
    if resp.status != StatusCode::OK {
        return None;
    }
    frame::decode_exact::<ProbeReply>(&resp.body).ok().map(|r| (r, rtt))
}

/// Send one bandwidth probe ([`BANDWIDTH_PAD`] bytes of padding) to `addr`;
/// returns the reply (if any), the time it took and the bytes sent. `None`
/// if it failed before [`BANDWIDTH_TIMEOUT`] (refused, unreachable: not a
/// measurement of the link's rate).
pub async fn probe_bandwidth(
    http: &HttpClient,
    clock: &dyn Clock,
    me: NodeId,
    addr: &str,
) -> Option<(Option<BandwidthReply>, Duration, u64)> {
    let (req, bytes) = framed_post("bandwidth", &BandwidthRequest { from: me, pad: vec![0u8; BANDWIDTH_PAD] })?;
    let start = clock.now();
    let resp = http.send(addr, req, BANDWIDTH_TIMEOUT).await;
    let took = clock.now().since(start);
    match resp {
        Ok(r) if r.status == StatusCode::OK => Some((frame::decode_exact::<BandwidthReply>(&r.body).ok(), took, bytes)),
        // A replica of an older version does not know the endpoint.
        Ok(_) => None,
        Err(_) if took >= BANDWIDTH_TIMEOUT => Some((None, took, bytes)),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bandwidth_probe_encodes_as_it_did_before_its_padding_became_a_byte_string() {
        /// The probe as protocol v2 replicas of earlier builds encode it.
        #[derive(Serialize)]
        struct Before {
            from: NodeId,
            pad: Vec<u8>,
        }
        let pad: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let now = postcard::to_stdvec(&BandwidthRequest { from: 3, pad: pad.clone() }).unwrap();
        let before = postcard::to_stdvec(&Before { from: 3, pad: pad.clone() }).unwrap();
        assert_eq!(now, before);
        let back: BandwidthRequest = postcard::from_bytes(&before).unwrap();
        assert_eq!((back.from, back.pad), (3, pad));
    }
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock the test moves by hand.
    #[derive(Default)]
    struct Manual(AtomicU64);

    impl Clock for Manual {
        fn now(&self) -> Mono {
            Mono::from_nanos(self.0.load(Ordering::SeqCst))
        }
        fn wall_ms(&self) -> u64 {
            self.0.load(Ordering::SeqCst) / 1_000_000
        }
    }

    #[test]
    fn a_silent_peer_becomes_suspected_and_recovers_when_heard_again() {
        let clock = Arc::new(Manual::default());
        let stats = PeerStats::new(1, clock.clone(), Duration::from_millis(100));
        let reply = || ProbeReply { id: 2, fsync_p50_us: Some(500), rtt_p50_us: Some(300) };
        let step = |ms: u64| clock.0.fetch_add(ms * 1_000_000, Ordering::SeqCst);
        for _ in 0..50 {
            step(100);
            stats.probe_answered(2, Duration::from_micros(300), reply());
        }
        let members: BTreeSet<NodeId> = [1, 2, 3].into();
        let h = stats.health(&members);
        assert!(!h[&2].suspected && h[&2].phi < 1.0, "{:?}", h[&2]);
        assert_eq!(h[&2].rtt.count, 50);
        assert_eq!(h[&2].reported_fsync_p50_us, Some(500));
        assert!(!h.contains_key(&1), "no entry for itself");
        assert_eq!(h[&3].last_heard_ms_ago, None, "never heard");
        step(3000); // SIGSTOP for 3 s
        let h = stats.health(&members);
        assert!(h[&2].suspected && h[&2].phi > h[&2].phi_threshold, "{:?}", h[&2]);
        assert_eq!(h[&2].last_heard_ms_ago, Some(3000));
        assert!(stats.suspected(2));
        step(100);
        stats.probe_answered(2, Duration::from_micros(300), reply());
        assert!(!stats.suspected(2), "back to normal after the next reply");
        assert_eq!(stats.rtt_p50(), Some(Duration::from_micros(300)));
    }
}
