//! From measurements to recommended timeouts, with the reasoning spelled out.
//!
//! Pure functions of the measured distributions, so the arithmetic is tested
//! on its own. The one model assumption: beyond its 99th percentile, a
//! heartbeat round's delay has an exponential tail, fitted through the
//! measured p99 and p99.9 (each the sum of the RTT, fsync and scheduling
//! lateness percentiles: conservative, as if the worst of each coincided).
//! It is an estimate, not a guarantee: a pause longer than anything measured
//! is not in the data.

use serde::Serialize;
use std::time::Duration;

/// Seconds in a day.
const DAY: f64 = 86_400.0;

/// What the recommendations are computed from (all in µs).
#[derive(Debug, Clone, Serialize)]
pub struct Inputs {
    /// Worst p99.9 round trip between any two replicas (or client to replica
    /// if the replicas reported none).
    pub rtt_p999_us: u64,
    /// Worst fsync p99.9 over the replicas.
    pub fsync_p999_us: u64,
    /// Worst scheduling-lateness p99.9 (replicas' ticks and this process).
    pub lateness_p999_us: u64,
    /// The same three at p99, summed: a heartbeat round's p99 delay.
    pub round_p99_us: u64,
    /// Largest single delay seen: max RTT + max fsync + max lateness.
    pub worst_us: u64,
    /// The measuring process's own largest hiccup.
    pub client_hiccup_max_us: u64,
    pub client_hiccup_p999_us: u64,
    /// Client-to-replica p99.9 RTT.
    pub client_rtt_p999_us: u64,
    /// Assumed clock-rate error (not measured): NTP slews at most 500 ppm.
    pub rho: f64,
}

/// The recommendation, each number with its reason.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub min_lease_ttl_ms: u64,
    pub client_margin_ms: u64,
    /// `d`: a heartbeat round's plausible worst delay (p99.9 RTT + fsync + lateness), ms.
    pub heartbeat_round_p999_ms: f64,
    /// How long a crashed leader goes unnoticed: `[election_min, election_max + d]`.
    pub detection_time_ms: [u64; 2],
    /// Expected elections per day started by a live leader's late heartbeat.
    pub expected_false_elections_per_day: f64,
    /// The same if the election timeout were the (too short) `4·d`, to show the trade-off.
    pub false_elections_per_day_at_4d: f64,
    pub explanations: Vec<String>,
}

fn round_up(us: f64, step_ms: u64) -> u64 {
    let step = step_ms as f64 * 1000.0;
    (((us / step).ceil()).max(1.0) * step / 1000.0) as u64
}

/// An exponential tail through two quantiles: `P(X > p99) = 1 %`,
/// `P(X > p999) = 0.1 %`, hence scale `(p999 − p99) / ln 10`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tail {
    pub p99_us: f64,
    pub scale_us: f64,
}

impl Tail {
    pub fn from_quantiles(p99_us: u64, p999_us: u64) -> Tail {
        let scale = (p999_us.saturating_sub(p99_us)) as f64 / std::f64::consts::LN_10;
        Tail { p99_us: p99_us as f64, scale_us: scale.max(1.0) }
    }

    /// `P(X > x)`: 1 % up to p99 (nothing finer is claimed), the exponential beyond.
    pub fn exceed(&self, x_us: f64) -> f64 {
        if x_us <= self.p99_us {
            return 0.01;
        }
        0.01 * (-(x_us - self.p99_us) / self.scale_us).exp()
    }
}

/// Expected false elections per day: a follower starts one when a gap between
/// heartbeats exceeds the election timeout, i.e. when one heartbeat round is
/// delayed by more than `election − heartbeat` (an upper bound: it ignores
/// that the *next* heartbeat might still arrive in time).
pub fn false_elections_per_day(tail: &Tail, heartbeat_ms: u64, election_ms: u64) -> f64 {
    let slack = (election_ms.saturating_sub(heartbeat_ms)) as f64 * 1000.0;
    let per_heartbeat = if slack <= 0.0 { 1.0 } else { tail.exceed(slack) };
    per_heartbeat * DAY / (heartbeat_ms as f64 / 1000.0)
}

/// The shortest election timeout in heartbeats, as in the defaults
/// (`fenced_replica::config::DEFAULT_ELECTION_TIMEOUT`).
pub const ELECTION_HEARTBEATS: f64 = 6.0;

/// Recommend timeouts from the measured percentiles.
pub fn recommend(i: &Inputs) -> Recommendation {
    let d = (i.rtt_p999_us + i.fsync_p999_us + i.lateness_p999_us) as f64;
    let heartbeat_ms = round_up(d.max(50_000.0), 10);
    // Six heartbeats (a follower calls an election only after five in a row
    // are missing), and at least three times the worst delay ever measured.
    let election_min_ms =
        round_up((heartbeat_ms as f64 * 1000.0 * ELECTION_HEARTBEATS).max(3.0 * i.worst_us as f64), 50);
    let election_max_ms = election_min_ms * 2;
    let margin_ms = round_up(
        (2.0 * i.client_hiccup_max_us as f64)
            .max(4.0 * i.client_hiccup_p999_us as f64)
            .max(i.client_rtt_p999_us as f64)
            .max(20_000.0),
        10,
    );
    // A holder keeps its lock through one failover if the renewal sent just
    // before the leader died is still valid when the first renewal after the
    // election succeeds: ttl·(1−ρ) − margin ≥ ttl/3 + election_max + 2d.
    let need_us = election_max_ms as f64 * 1000.0 + 2.0 * d + margin_ms as f64 * 1000.0;
    let min_ttl_ms = round_up(need_us / (2.0 / 3.0 - i.rho), 100);
    let tail = Tail::from_quantiles(i.round_p99_us, d as u64);
    let false_per_day = false_elections_per_day(&tail, heartbeat_ms, election_min_ms);
    let short_ms = round_up(4.0 * d, 1).max(heartbeat_ms + 1);
    let false_short = false_elections_per_day(&tail, heartbeat_ms, short_ms);
    let dm = d / 1000.0;
    let explanations = vec![
        format!(
            "heartbeat {heartbeat_ms} ms: about one heartbeat round's p99.9 delay d = {dm:.1} ms \
             (RTT {:.1} + fsync {:.1} + scheduling lateness {:.1}), at least 50 ms. Shorter costs CPU and \
             network for no faster detection; detection is set by the election timeout.",
            i.rtt_p999_us as f64 / 1000.0,
            i.fsync_p999_us as f64 / 1000.0,
            i.lateness_p999_us as f64 / 1000.0
        ),
        format!(
            "election timeout {election_min_ms}..{election_max_ms} ms: six heartbeats and at least 3x the worst \
             single delay measured ({:.1} ms), i.e. {:.0}x the p99.9 RTT + fsync. This is the trade-off: a crashed \
             leader is replaced after {election_min_ms}..{} ms (detection time), and a live leader is wrongly \
             deposed about {false_per_day:.2e} times a day (false positives). With a timeout of 4d = {short_ms} ms \
             detection would be faster but false elections would be about {false_short:.2e} a day.",
            i.worst_us as f64 / 1000.0,
            election_min_ms as f64 * 1000.0 / ((i.rtt_p999_us + i.fsync_p999_us) as f64).max(1.0),
            election_max_ms + dm.ceil() as u64
        ),
        format!(
            "minimum lease TTL {min_ttl_ms} ms: a client renews every TTL/3 and trusts its lease until \
             TTL·(1−ρ) − margin (ρ = {} assumed); to keep its lock through one leader failover that must cover \
             TTL/3 + election_max + 2d. Shorter TTLs free a dead holder's lock sooner but lose live holders' locks \
             in every election.",
            i.rho
        ),
        format!(
            "client margin {margin_ms} ms: twice the largest scheduling hiccup of this process ({:.1} ms), four \
             times its p99.9 ({:.1} ms), and at least one client RTT p99.9 ({:.1} ms). It covers the pause between \
             checking the deadline and acting; a longer pause is caught by the client's pause detector, which \
             fires the lost-lock signal first. The fencing token protects the resource either way.",
            i.client_hiccup_max_us as f64 / 1000.0,
            i.client_hiccup_p999_us as f64 / 1000.0,
            i.client_rtt_p999_us as f64 / 1000.0
        ),
        "none of these numbers affects safety: tokens are log indices and the resource checks them; timeouts \
         only decide how fast faults are noticed (docs/timeouts-and-clocks.md)."
            .to_string(),
    ];
    Recommendation {
        heartbeat_ms,
        election_timeout_min_ms: election_min_ms,
        election_timeout_max_ms: election_max_ms,
        min_lease_ttl_ms: min_ttl_ms,
        client_margin_ms: margin_ms,
        heartbeat_round_p999_ms: (dm * 100.0).round() / 100.0,
        detection_time_ms: [election_min_ms, election_max_ms + dm.ceil() as u64],
        expected_false_elections_per_day: false_per_day,
        false_elections_per_day_at_4d: false_short,
        explanations,
    }
}

/// `Duration` to µs.
pub fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> Inputs {
        Inputs {
            rtt_p999_us: 2_000,
            fsync_p999_us: 8_000,
            lateness_p999_us: 3_000,
            round_p99_us: 5_000,
            worst_us: 40_000,
            client_hiccup_max_us: 15_000,
            client_hiccup_p999_us: 2_000,
            client_rtt_p999_us: 2_000,
            rho: 500e-6,
        }
    }

    #[test]
    fn the_election_timeout_is_well_above_p999_rtt_plus_fsync() {
        let i = loopback();
        let r = recommend(&i);
        assert!(r.heartbeat_ms >= 50);
        assert!(r.election_timeout_min_ms * 1000 >= 10 * (i.rtt_p999_us + i.fsync_p999_us));
        assert!(r.election_timeout_min_ms as f64 >= ELECTION_HEARTBEATS * r.heartbeat_ms as f64);
        assert_eq!(r.election_timeout_max_ms, 2 * r.election_timeout_min_ms);
        // The lease survives one failover: (2/3 − ρ)·ttl covers election_max + 2d + margin.
        let need = r.election_timeout_max_ms as f64 + 2.0 * r.heartbeat_round_p999_ms + r.client_margin_ms as f64;
        assert!(r.min_lease_ttl_ms as f64 * (2.0 / 3.0 - i.rho) >= need);
        assert!(r.client_margin_ms >= 30, "twice the worst hiccup");
        assert!(r.expected_false_elections_per_day < r.false_elections_per_day_at_4d);
    }

    #[test]
    fn false_elections_fall_as_the_timeout_rises() {
        let tail = Tail::from_quantiles(5_000, 13_000);
        assert!((tail.exceed(13_000.0) - 0.001).abs() < 1e-9, "the fit passes through p99.9");
        let mut last = f64::INFINITY;
        for election in [60, 100, 200, 400, 800] {
            let f = false_elections_per_day(&tail, 50, election);
            assert!(f <= last, "{election} ms: {f} > {last}");
            last = f;
        }
        assert!(last < 1e-6, "far beyond the tail: {last}");
        // A timeout no longer than the heartbeat: every heartbeat is "late".
        assert_eq!(false_elections_per_day(&tail, 50, 50), DAY / 0.05);
    }
}
