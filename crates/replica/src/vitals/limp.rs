//! The limping leader: "a Gigabit interface drops to 1 Kb/s". A node that is
//! slow but not dead is worse than a dead one: it keeps its leadership (its
//! heartbeats still arrive) while every write waits for its disk or its links.
//!
//! The leader compares itself with its peers, using what it measures and what
//! they report in probe replies ([`crate::peer::health::ProbeReply`]):
//!
//! - its own median fsync against the median of its peers' medians;
//! - its median AppendEntries round trip to its peers against the median of
//!   the peers' own probe RTTs (links that do not involve the leader);
//! - its outbound link throughput (bandwidth probes, [`crate::peer::health`]) to a
//!   majority of its unsuspected peers against the median of the peers' own
//!   outbound link throughput. A link throttled to a trickle still carries
//!   heartbeats in normal time, so round trips alone miss it; the delivered
//!   replication rate follows the load, so it cannot be compared either.
//!
//! If any is [`FACTOR`] times slower (and slower than an absolute floor,
//! so microsecond noise cannot trigger it) on [`PERSIST_CHECKS`] consecutive
//! checks, it transfers leadership to its most caught-up, unsuspected peer
//! (openraft's leader transfer, as `/v1/cluster/transfer-leader` does), then
//! waits [`COOLDOWN`] before judging again. Timing decides only *who* leads;
//! safety does not depend on it.

use fenced_core::api::LimpStatus;
use fenced_core::toolbox::clock::Mono;
use std::sync::Mutex;
use std::time::Duration;

/// How many times slower than the peers counts as limping.
pub const FACTOR: u32 = 5;
/// Below this, nothing is slow enough to matter.
pub const FLOOR: Duration = Duration::from_millis(20);
/// Consecutive limping verdicts before acting.
pub const PERSIST_CHECKS: u32 = 5;
/// Time between checks.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// After a transfer, do not judge again for this long.
pub const COOLDOWN: Duration = Duration::from_secs(30);
/// Fewest fsync samples to judge a disk on.
const MIN_SAMPLES: u64 = 8;
/// Above this outbound link rate (bytes/s), nothing is slow enough to matter:
/// a 64 KiB bandwidth probe then takes under 250 ms. (Unoptimised builds on a
/// loaded machine measure about 1 MB/s on loopback, the probe's encoding and
/// checksum included; optimised ones far more.)
pub const LINK_CEILING: f64 = 256.0 * 1024.0;

/// The inputs of one judgement.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub own_fsync_p50: Option<Duration>,
    pub own_fsync_samples: u64,
    /// Each peer's reported fsync median.
    pub peer_fsync_p50: Vec<Duration>,
    /// This leader's AppendEntries median per peer.
    pub own_link_p50: Vec<Duration>,
    /// Each peer's reported probe-RTT median (its links).
    pub peer_rtt_p50: Vec<Duration>,
    /// This leader's outbound link rate to each unsuspected peer (bytes/s).
    pub own_link_rate: Vec<f64>,
    /// Each unsuspected peer's reported outbound link rate (bytes/s).
    pub peer_link_rate: Vec<f64>,
}

/// `Ok(reason)` if the leader is limping, `Err(why not)` otherwise.
pub fn judge(i: &Inputs) -> Result<String, String> {
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.get(v.len().checked_sub(1)? / 2).copied()
    };
    let slow = |own: Duration, others: Duration| own >= FLOOR && own > others.max(Duration::from_millis(1)) * FACTOR;
    if let (Some(own), Some(peers)) = (i.own_fsync_p50, median(&i.peer_fsync_p50)) {
        if i.own_fsync_samples >= MIN_SAMPLES && slow(own, peers) {
            return Ok(format!("own fsync median {:.1} ms is over {FACTOR}x the peers' {:.1} ms", ms(own), ms(peers)));
        }
    }
    // Own links: the upper median, so that one slow or stopped follower does
    // not make the leader look slow: most of its links must be.
    let upper = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_unstable_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let lower = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_unstable_by(f64::total_cmp);
        v.get(v.len().checked_sub(1)? / 2).copied()
    };
    if let (Some(own), Some(peers)) = (upper(&i.own_link_rate), lower(&i.peer_link_rate)) {
        if own < LINK_CEILING && own * f64::from(FACTOR) < peers {
            return Ok(format!(
                "own outbound link throughput {} is under 1/{FACTOR} of the peers' {}",
                rate(own),
                rate(peers)
            ));
        }
    }
    if let (Some(own), Some(peers)) = (median(&i.own_link_p50), median(&i.peer_rtt_p50)) {
        if slow(own, peers) {
            return Ok(format!(
                "own replication round trip median {:.1} ms is over {FACTOR}x the peers' link RTT {:.1} ms",
                ms(own),
                ms(peers)
            ));
        }
    }
    Err("not limping: fsync, round trips and link throughput within range of the peers'".into())
}

/// A rate in bytes/s, for people.
pub fn rate(bytes_per_s: f64) -> String {
    if bytes_per_s >= 1e6 {
        format!("{:.1} MB/s", bytes_per_s / 1e6)
    } else {
        format!("{:.1} kB/s", bytes_per_s / 1e3)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The state of the limping judgement on one replica.
pub struct LimpState {
    inner: Mutex<Inner>,
}

struct Inner {
    last_check: Option<Mono>,
    consecutive: u32,
    cooldown_until: Option<Mono>,
    status: LimpStatus,
}

impl Default for LimpState {
    fn default() -> Self {
        LimpState {
            inner: Mutex::new(Inner {
                last_check: None,
                consecutive: 0,
                cooldown_until: None,
                status: LimpStatus {
                    limping: false,
                    reason: "not the leader".into(),
                    transfers: 0,
                    last_transfer_reason: None,
                },
            }),
        }
    }
}

impl LimpState {
    /// One check at `now`, at most every [`CHECK_EVERY`]: a follower resets
    /// the count; a leader out of its cooldown judges `inputs` (gathered only
    /// then). True once [`PERSIST_CHECKS`] checks in a row found it limping:
    /// hand leadership over now.
    pub fn check(&self, now: Mono, leading: bool, inputs: impl FnOnce() -> Inputs) -> bool {
        let Ok(mut s) = self.inner.lock() else { return false };
        if s.last_check.is_some_and(|t| now.since(t) < CHECK_EVERY) {
            return false;
        }
        s.last_check = Some(now);
        if !leading {
            s.consecutive = 0;
            s.status.limping = false;
            s.status.reason = "not the leader".into();
            return false;
        }
        if s.cooldown_until.is_some_and(|t| now < t) {
            s.status.reason = "recently transferred leadership; waiting before judging again".into();
            return false;
        }
        match judge(&inputs()) {
            Ok(reason) => {
                s.consecutive += 1;
                s.status.limping = true;
                s.status.reason = format!("{reason} ({} of {PERSIST_CHECKS} checks)", s.consecutive);
            }
            Err(reason) => {
                s.consecutive = 0;
                s.status.limping = false;
                s.status.reason = reason;
            }
        }
        s.consecutive >= PERSIST_CHECKS
    }

    /// Leadership was handed over at `now` because of `reason`: count it and
    /// judge again only after [`COOLDOWN`].
    pub fn transferred(&self, now: Mono, reason: String) {
        if let Ok(mut s) = self.inner.lock() {
            s.status.transfers += 1;
            s.status.last_transfer_reason = Some(reason);
            s.consecutive = 0;
            s.cooldown_until = Some(now.plus(COOLDOWN));
        }
    }

    pub fn status(&self) -> LimpStatus {
        self.inner.lock().map(|i| i.status.clone()).unwrap_or(LimpStatus {
            limping: false,
            reason: "unknown".into(),
            transfers: 0,
            last_transfer_reason: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn base() -> Inputs {
        Inputs {
            own_fsync_p50: Some(ms(2)),
            own_fsync_samples: 100,
            peer_fsync_p50: vec![ms(2), ms(3)],
            own_link_p50: vec![ms(1), ms(1)],
            peer_rtt_p50: vec![ms(1), ms(1)],
            own_link_rate: vec![50e6, 60e6],
            peer_link_rate: vec![55e6, 70e6],
        }
    }

    #[test]
    fn slow_outbound_links_make_a_limping_leader_but_one_slow_follower_does_not() {
        // Throttled to 64 kB/s on every outbound link; the peers' links run at 50+ MB/s.
        let throttled = Inputs { own_link_rate: vec![64e3, 60e3], ..base() };
        assert!(judge(&throttled).is_ok_and(|r| r.contains("link throughput")), "{:?}", judge(&throttled));
        // One slow link (that follower's problem, not the leader's).
        let one = Inputs { own_link_rate: vec![64e3, 60e6], ..base() };
        assert!(judge(&one).is_err());
        // Everyone slow alike: the network, not a limp.
        let all = Inputs { own_link_rate: vec![64e3, 60e3], peer_link_rate: vec![70e3, 80e3], ..base() };
        assert!(judge(&all).is_err());
        // 10x slower but still fast in absolute terms: above the ceiling.
        let fast = Inputs { own_link_rate: vec![300e3, 300e3], peer_link_rate: vec![3e6, 3e6], ..base() };
        assert!(judge(&fast).is_err());
        // Peers that report nothing (an older version) give no verdict.
        let none = Inputs { own_link_rate: vec![64e3, 60e3], peer_link_rate: vec![], ..base() };
        assert!(judge(&none).is_err());
    }

    #[test]
    fn a_healthy_leader_is_not_limping() {
        assert!(judge(&base()).is_err());
        assert!(judge(&Inputs::default()).is_err(), "no data, no verdict");
    }

    #[test]
    fn a_slow_disk_or_slow_links_make_a_limping_leader() {
        let disk = Inputs { own_fsync_p50: Some(ms(200)), ..base() };
        assert!(judge(&disk).is_ok_and(|r| r.contains("fsync")));
        let links = Inputs { own_link_p50: vec![ms(150), ms(160)], ..base() };
        assert!(judge(&links).is_ok_and(|r| r.contains("round trip")));
    }

    #[test]
    fn relative_slowness_below_the_floor_or_with_few_samples_is_ignored() {
        // 10x slower, but 10 ms: under the floor.
        let fast = Inputs { own_fsync_p50: Some(ms(10)), peer_fsync_p50: vec![ms(1)], ..base() };
        assert!(judge(&fast).is_err());
        let few = Inputs { own_fsync_p50: Some(ms(500)), own_fsync_samples: 3, ..base() };
        assert!(judge(&few).is_err());
        // Everyone is equally slow: that is the environment, not a limp.
        let all = Inputs { own_fsync_p50: Some(ms(200)), peer_fsync_p50: vec![ms(150), ms(180)], ..base() };
        assert!(judge(&all).is_err());
    }

    #[test]
    fn a_leader_hands_over_only_after_persistent_limping_and_waits_out_its_cooldown() {
        let state = LimpState::default();
        let slow = || Inputs { own_fsync_p50: Some(ms(200)), ..base() };
        let at = |s: u64| Mono::ZERO.plus(Duration::from_secs(s));
        for i in 1..PERSIST_CHECKS as u64 {
            assert!(!state.check(at(i), true, slow), "check {i} of {PERSIST_CHECKS}");
        }
        // A second check within CHECK_EVERY is no check at all.
        assert!(!state.check(at(PERSIST_CHECKS as u64 - 1), true, || panic!("not judged twice in one interval")));
        assert!(state.check(at(PERSIST_CHECKS as u64), true, slow));
        state.transferred(at(PERSIST_CHECKS as u64), "slow disk".into());
        assert_eq!(state.status().transfers, 1);
        assert!(!state.check(at(PERSIST_CHECKS as u64 + 1), true, || panic!("not judged during the cooldown")));
        let after = PERSIST_CHECKS as u64 + COOLDOWN.as_secs();
        assert!(!state.check(at(after), true, slow), "the count starts again after the cooldown");
    }

    #[test]
    fn a_follower_is_never_limping_and_resets_the_count() {
        let state = LimpState::default();
        let slow = || Inputs { own_fsync_p50: Some(ms(200)), ..base() };
        let at = |s: u64| Mono::ZERO.plus(Duration::from_secs(s));
        for i in 1..PERSIST_CHECKS as u64 {
            assert!(!state.check(at(i), true, slow));
        }
        assert!(!state.check(at(PERSIST_CHECKS as u64), false, || panic!("a follower is not judged")));
        assert!(!state.status().limping);
        assert!(!state.check(at(PERSIST_CHECKS as u64 + 1), true, slow), "counting from one again");
    }
}
