//! The phi-accrual failure detector (Hayashibara, Défago, Yared, Katayama,
//! "The φ Accrual Failure Detector", SRDS 2004), as used by Akka and Cassandra.
//!
//! A timeout-based detector answers "dead or alive" with a fixed constant. The
//! accrual detector instead outputs a *suspicion level* `φ` on a continuous
//! scale, computed from how unusual the current silence is given the recent
//! history of heartbeat inter-arrival times:
//!
//! ```text
//! φ(now) = −log10( P(next heartbeat arrives later than now − last) )
//! ```
//!
//! so `φ = 1` means "about a 10 % chance that a live peer would be this late",
//! `φ = 2` means 1 %, `φ = 8` one in 10⁸. The caller picks a threshold: a
//! higher one suspects later (slower detection) but wrongly less often (fewer
//! false positives). That is the trade-off of DDIA ch. 8, made explicit and
//! tunable, with the timeout itself learned from the network's behaviour.
//!
//! This module is pure: no I/O, no clock reads. Time enters as [`Mono`]
//! values passed in by the caller, so the simulator and the tests can drive it
//! with synthetic traces.
//!
//! # The distribution
//!
//! Inter-arrival times are modelled as normally distributed with the mean and
//! standard deviation of the last `window` samples (a ring buffer). The mean
//! is increased by [`PhiConfig::acceptable_pause`] (pauses the caller knows to
//! be harmless, e.g. a GC pause budget) and the standard deviation is floored
//! at [`PhiConfig::min_std_dev`] (so a perfectly regular trace does not make
//! a few milliseconds of jitter look like a crash).
//!
//! The normal CDF has no closed form. As in Akka and Cassandra we use the
//! logistic approximation (Bowling et al., 2009)
//!
//! ```text
//! Φ(y) ≈ 1 / (1 + exp(−y·(1.5976 + 0.070566·y²)))      y = (t − μ) / σ
//! ```
//!
//! (maximum absolute error about 1.4·10⁻⁴), hence, with
//! `z = y·(1.5976 + 0.070566·y²)`,
//!
//! ```text
//! P(later than t) = 1 − Φ(y) ≈ 1 / (1 + exp(z))
//! φ = −log10(1 − Φ(y)) = log10(1 + exp(z))
//! ```
//!
//! `z` is strictly increasing in `y`, so φ is strictly increasing in the
//! time since the last heartbeat: silence only ever raises suspicion. We
//! evaluate `log10(1 + exp(z))` in a form that neither overflows for large `z`
//! nor loses precision for very negative `z`, so φ grows without bound (about
//! linearly in `y³`) instead of saturating at infinity.

use crate::toolbox::clock::Mono;
use std::time::Duration;

/// How a [`PhiDetector`] judges silence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhiConfig {
    /// Suspect when φ exceeds this. Default 8 (a live peer would be this late
    /// about once in 10⁸ intervals, under the normal model).
    pub threshold: f64,
    /// How many inter-arrival samples are kept (a ring buffer; the oldest is
    /// overwritten). Default 100. Values below 1 are treated as 1.
    pub window: usize,
    /// Floor on the standard deviation. Default 50 ms. Values below 1 µs are
    /// treated as 1 µs.
    pub min_std_dev: Duration,
    /// Added to the mean interval: silence this much longer than usual is
    /// considered normal. Default 0.
    pub acceptable_pause: Duration,
    /// Assumed interval before any has been measured: the first heartbeat seeds
    /// the window with `estimate ± estimate/4`. Default 1 s.
    pub first_heartbeat_estimate: Duration,
}

impl Default for PhiConfig {
    fn default() -> Self {
        PhiConfig {
            threshold: 8.0,
            window: 100,
            min_std_dev: Duration::from_millis(50),
            acceptable_pause: Duration::ZERO,
            first_heartbeat_estimate: Duration::from_secs(1),
        }
    }
}

/// An accrual failure detector for one monitored peer.
#[derive(Debug, Clone)]
pub struct PhiDetector {
    config: PhiConfig,
    /// Inter-arrival times in milliseconds; at most `window` of them.
    samples: Vec<f64>,
    /// Where the next sample goes once `samples` is full.
    next: usize,
    last: Option<Mono>,
}

impl PhiDetector {
    pub fn new(config: PhiConfig) -> Self {
        let config = PhiConfig {
            window: config.window.max(1),
            min_std_dev: config.min_std_dev.max(Duration::from_micros(1)),
            ..config
        };
        PhiDetector { config, samples: Vec::with_capacity(config.window), next: 0, last: None }
    }

    pub fn config(&self) -> &PhiConfig {
        &self.config
    }

    /// Record a heartbeat (any evidence the peer is alive) received at `now`.
    pub fn heartbeat(&mut self, now: Mono) {
        match self.last {
            None => {
                // Seed the window so φ is meaningful before the second heartbeat.
                let mean = ms(self.config.first_heartbeat_estimate);
                let sd = mean / 4.0;
                self.push(mean - sd);
                self.push(mean + sd);
            }
            Some(last) => self.push(ms(now.since(last))),
        }
        // A clock is monotonic, but never let a stale timestamp move us back.
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
    }

    /// When the last heartbeat arrived, if any has.
    pub fn last_heartbeat(&self) -> Option<Mono> {
        self.last
    }

    /// The suspicion level at `now`. Zero before the first heartbeat (nothing
    /// is known, so nothing is suspected).
    pub fn phi(&self, now: Mono) -> f64 {
        let Some(last) = self.last else { return 0.0 };
        let (mean, sd) = self.mean_std_dev();
        let mean = mean + ms(self.config.acceptable_pause);
        let sd = sd.max(ms(self.config.min_std_dev));
        phi(ms(now.since(last)), mean, sd)
    }

    /// `phi(now) <= threshold`: not suspected.
    pub fn is_available(&self, now: Mono) -> bool {
        self.phi(now) <= self.config.threshold
    }

    /// Mean and (population) standard deviation of the window, in ms.
    pub fn mean_std_dev(&self) -> (f64, f64) {
        if self.samples.is_empty() {
            return (ms(self.config.first_heartbeat_estimate), 0.0);
        }
        let n = self.samples.len() as f64;
        let mean = self.samples.iter().sum::<f64>() / n;
        let var = self.samples.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    /// How many inter-arrival samples are in the window.
    pub fn samples(&self) -> usize {
        self.samples.len()
    }

    fn push(&mut self, x: f64) {
        if self.samples.len() < self.config.window {
            self.samples.push(x);
        } else {
            self.samples[self.next] = x;
            self.next = (self.next + 1) % self.config.window;
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// φ for `elapsed` since the last heartbeat, under a normal distribution of
/// intervals with `mean` and `sd` (all in the same unit, `sd > 0`), using the
/// logistic approximation of the normal CDF described in the module docs.
pub fn phi(elapsed: f64, mean: f64, sd: f64) -> f64 {
    let y = (elapsed - mean) / sd;
    let z = y * (1.5976 + 0.070566 * y * y);
    // log10(1 + e^z), stably: for z > 0 it is z/ln10 + log10(1 + e^-z).
    if z > 0.0 {
        z / std::f64::consts::LN_10 + (-z).exp().ln_1p() / std::f64::consts::LN_10
    } else {
        z.exp().ln_1p() / std::f64::consts::LN_10
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn at(ms: u64) -> Mono {
        Mono::from_nanos(ms * MS)
    }

    /// A tiny deterministic generator (xorshift64*), so traces are seeded.
    struct Rng(u64);
    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        /// Uniform in [0, 1).
        fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Heartbeat times (ms) of a live but jittery peer: a 100 ms period with
    /// roughly normal jitter (sum of 4 uniforms, σ ≈ 23 ms) and an occasional
    /// late one (2 % of intervals up to 150 ms longer).
    fn jittery_trace(seed: u64, n: usize) -> Vec<u64> {
        let mut rng = Rng(seed);
        let mut t = 0u64;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let jitter: f64 = (0..4).map(|_| rng.unit() - 0.5).sum::<f64>() * 80.0;
            let mut dt = 100.0 + jitter;
            if rng.unit() < 0.02 {
                dt += rng.unit() * 150.0;
            }
            t += dt.max(1.0) as u64;
            out.push(t);
        }
        out
    }

    fn feed(d: &mut PhiDetector, times: &[u64]) {
        for &t in times {
            d.heartbeat(at(t));
        }
    }

    fn steady(n: u64, period: u64) -> Vec<u64> {
        (1..=n).map(|i| i * period).collect()
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = PhiConfig::default();
        assert_eq!(c.threshold, 8.0);
        assert_eq!(c.window, 100);
        assert_eq!(c.min_std_dev, Duration::from_millis(50));
        assert_eq!(c.acceptable_pause, Duration::ZERO);
        assert_eq!(c.first_heartbeat_estimate, Duration::from_secs(1));
    }

    #[test]
    fn nothing_is_suspected_before_the_first_heartbeat() {
        let d = PhiDetector::new(PhiConfig::default());
        assert_eq!(d.phi(at(1_000_000)), 0.0);
        assert!(d.is_available(at(1_000_000)));
    }

    #[test]
    fn first_heartbeat_uses_the_estimate() {
        let mut d = PhiDetector::new(PhiConfig::default());
        d.heartbeat(at(0));
        let (mean, sd) = d.mean_std_dev();
        assert!((mean - 1000.0).abs() < 1e-9 && (sd - 250.0).abs() < 1e-9);
        assert!(d.is_available(at(1500)));
        assert!(!d.is_available(at(5000)));
    }

    #[test]
    fn steady_trace_stays_low() {
        let mut d = PhiDetector::new(PhiConfig::default());
        let times = steady(200, 100);
        for (i, &t) in times.iter().enumerate() {
            d.heartbeat(at(t));
            // Up to one period after a heartbeat: never suspected, even while
            // the first-heartbeat seeds are still in the window...
            assert!(d.is_available(at(t + 100)));
            // ...and once they have left it, barely suspicious at all.
            if i >= 100 {
                assert!(d.phi(at(t)) < 0.1, "phi {} at {t}", d.phi(at(t)));
                assert!(d.phi(at(t + 100)) < 0.5, "phi {} at {t}+100", d.phi(at(t + 100)));
            }
        }
        let (mean, _) = d.mean_std_dev();
        assert!((mean - 100.0).abs() < 1e-9, "the seeds have left the window: {mean}");
        assert_eq!(d.samples(), 100);
    }

    #[test]
    fn phi_rises_with_silence() {
        for times in [steady(50, 100), jittery_trace(7, 300)] {
            let mut d = PhiDetector::new(PhiConfig::default());
            feed(&mut d, &times);
            let last = *times.last().unwrap();
            let mut prev = d.phi(at(last));
            for silence in (1..=2_000).map(|s| s * 5) {
                let p = d.phi(at(last + silence));
                assert!(p.is_finite());
                assert!(p >= prev, "phi fell from {prev} to {p} at +{silence} ms");
                prev = p;
            }
            assert!(prev > 100.0, "ten seconds of silence is damning: {prev}");
        }
    }

    #[test]
    fn phi_function_is_strictly_increasing_and_stable() {
        let mut prev = f64::NEG_INFINITY;
        for i in -10_000..=10_000 {
            let p = phi(100.0 + i as f64, 100.0, 10.0);
            assert!(p.is_finite() && p >= 0.0);
            assert!(p > prev || (p == prev && p == 0.0), "at {i}: {prev} -> {p}");
            prev = p;
        }
        // At the mean, a live peer is later than this half the time.
        assert!((phi(100.0, 100.0, 10.0) - 2f64.log10()).abs() < 1e-12);
    }

    #[test]
    fn a_pause_is_suspected_then_forgiven() {
        let mut d = PhiDetector::new(PhiConfig::default());
        let times = steady(100, 100);
        feed(&mut d, &times);
        let last = *times.last().unwrap();
        // A 2 s pause (GC, SIGSTOP): suspected while it lasts.
        assert!(d.is_available(at(last + 150)));
        assert!(!d.is_available(at(last + 1_000)));
        // The peer comes back: suspicion drops at once.
        d.heartbeat(at(last + 2_000));
        assert!(d.phi(at(last + 2_000)) < 1.0, "{}", d.phi(at(last + 2_000)));
        for i in 1..=20 {
            d.heartbeat(at(last + 2_000 + i * 100));
        }
        assert!(d.is_available(at(last + 4_100)));
    }

    #[test]
    fn an_acceptable_pause_is_not_suspected() {
        let config = PhiConfig { acceptable_pause: Duration::from_secs(1), ..PhiConfig::default() };
        let mut d = PhiDetector::new(config);
        let times = steady(100, 100);
        feed(&mut d, &times);
        let last = *times.last().unwrap();
        assert!(d.is_available(at(last + 1_000)));
        assert!(!d.is_available(at(last + 3_000)));
    }

    #[test]
    fn a_crash_is_suspected_for_good() {
        let mut d = PhiDetector::new(PhiConfig::default());
        let times = jittery_trace(42, 500);
        feed(&mut d, &times);
        let crash = *times.last().unwrap();
        // Detected within a second; then stays suspected, ever more strongly.
        let detected = (1..).map(|s| crash + s).find(|&t| !d.is_available(at(t))).unwrap();
        assert!(detected - crash < 1_000, "detected after {} ms", detected - crash);
        let mut prev = d.phi(at(detected));
        for t in (detected..detected + 60_000).step_by(100) {
            assert!(!d.is_available(at(t)));
            let p = d.phi(at(t));
            assert!(p >= prev);
            prev = p;
        }
    }

    #[test]
    fn window_is_bounded() {
        let config = PhiConfig { window: 10, ..PhiConfig::default() };
        let mut d = PhiDetector::new(config);
        // Slow first, then fast: only the fast ones remain.
        feed(&mut d, &steady(50, 1_000));
        let t0 = 50 * 1_000;
        feed(&mut d, &(1..=10).map(|i| t0 + i * 10).collect::<Vec<_>>());
        assert_eq!(d.samples(), 10);
        let (mean, sd) = d.mean_std_dev();
        assert!((mean - 10.0).abs() < 1e-9 && sd < 1e-9, "{mean} {sd}");
        // With the floor on the deviation, 50 ms of silence is not a crash...
        assert!(d.is_available(at(t0 + 100 + 50)));
        // ...but a second of it is.
        assert!(!d.is_available(at(t0 + 100 + 1_000)));
    }

    /// The fraction of sampled instants (every 5 ms, between heartbeats) at
    /// which a live, jittery peer is wrongly suspected.
    fn false_suspicion_rate(threshold: f64, times: &[u64]) -> f64 {
        let mut d = PhiDetector::new(PhiConfig { threshold, ..PhiConfig::default() });
        let (mut suspected, mut sampled) = (0u64, 0u64);
        for (i, &t) in times.iter().enumerate() {
            if i >= 20 {
                // After a warm-up, sample every instant until this heartbeat.
                let mut s = times[i - 1];
                while s < t {
                    sampled += 1;
                    suspected += u64::from(!d.is_available(at(s)));
                    s += 5;
                }
            }
            d.heartbeat(at(t));
        }
        suspected as f64 / sampled as f64
    }

    #[test]
    fn false_suspicions_fall_as_the_threshold_rises() {
        let times = jittery_trace(0x5eed, 5_000);
        let rates: Vec<f64> = [1.0, 4.0, 8.0, 12.0].iter().map(|&th| false_suspicion_rate(th, &times)).collect();
        for w in rates.windows(2) {
            assert!(w[1] <= w[0], "not non-increasing: {rates:?}");
        }
        assert!(rates[0] > 0.0, "threshold 1 suspects a jittery peer sometimes: {rates:?}");
        assert_eq!(rates[3], 0.0, "threshold 12 never suspects this live peer: {rates:?}");
    }
}
