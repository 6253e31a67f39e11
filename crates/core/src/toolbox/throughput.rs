//! Throughput over a sliding window of time: bytes and entries per second
//! sent to a peer and acknowledged, and the rate a link carries while busy.
//! Pure: the caller measures and passes the clock reading in, so tests drive
//! it with synthetic traces.
//!
//! Two rates answer different questions:
//!
//! - `bytes_per_s`, `entries_per_s`: what was delivered, averaged over the
//!   window. It follows the offered load (an idle leader delivers nothing),
//!   so it describes the replication stream, not the link.
//! - `busy_bytes_per_s`: bytes divided by the time requests were in flight
//!   (sum of round trips). It is what the link carries when used, largely
//!   independent of load: the figure a limping link lowers.

use crate::toolbox::clock::Mono;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// One acknowledged transfer.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Mono,
    bytes: u64,
    entries: u64,
    busy: Duration,
}

/// A sliding window of transfers.
#[derive(Debug, Clone)]
pub struct RateWindow {
    span: Duration,
    max_samples: usize,
    /// When the window started measuring: a young window averages over its
    /// age, not its full span.
    started: Option<Mono>,
    samples: VecDeque<Sample>,
}

/// Rates over a window, for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ThroughputSummary {
    /// Transfers in the window.
    pub samples: u64,
    /// The window the rates are averaged over, in ms (its span, or its age if younger).
    pub window_ms: u64,
    /// Bytes acknowledged per second, averaged over the window.
    pub bytes_per_s: f64,
    /// Entries acknowledged per second, averaged over the window.
    pub entries_per_s: f64,
    /// Bytes per second of round-trip time: the link's rate while busy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_bytes_per_s: Option<f64>,
}

impl RateWindow {
    /// Keeps transfers from the last `span`, at most `max_samples` of them.
    pub fn new(span: Duration, max_samples: usize) -> Self {
        RateWindow { span, max_samples: max_samples.max(1), started: None, samples: VecDeque::new() }
    }

    /// `bytes` and `entries` were acknowledged at `at`, after `busy` in flight.
    pub fn record(&mut self, at: Mono, bytes: u64, entries: u64, busy: Duration) {
        self.started.get_or_insert(at);
        if self.samples.len() == self.max_samples {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample { at, bytes, entries, busy });
        self.expire(at);
    }

    fn expire(&mut self, now: Mono) {
        while self.samples.front().is_some_and(|s| now.since(s.at) > self.span) {
            self.samples.pop_front();
        }
    }

    /// The rates as of `now`.
    pub fn summary(&mut self, now: Mono) -> ThroughputSummary {
        self.expire(now);
        let Some(started) = self.started else { return ThroughputSummary::default() };
        // If the sample cap dropped older transfers, average over what is kept.
        let oldest = self.samples.front().map(|s| s.at).unwrap_or(now);
        let capped = self.samples.len() == self.max_samples;
        let from = if capped { oldest } else { started.max(now.minus(self.span)) };
        let window = now.since(from).max(Duration::from_millis(1));
        let (bytes, entries, busy) = self
            .samples
            .iter()
            .fold((0u64, 0u64, Duration::ZERO), |(b, e, t), s| (b + s.bytes, e + s.entries, t + s.busy));
        let secs = window.as_secs_f64();
        ThroughputSummary {
            samples: self.samples.len() as u64,
            window_ms: window.as_millis() as u64,
            bytes_per_s: bytes as f64 / secs,
            entries_per_s: entries as f64 / secs,
            busy_bytes_per_s: (busy > Duration::ZERO && bytes > 0).then(|| bytes as f64 / busy.as_secs_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// A steady stream: one `bytes`-sized append of `entries` every
    /// `every_ms`, each taking `rtt_ms`, for `n` appends from `t0_ms`.
    fn stream(w: &mut RateWindow, t0_ms: u64, n: u64, every_ms: u64, bytes: u64, entries: u64, rtt_ms: u64) -> Mono {
        let mut at = Mono::from_nanos(t0_ms * MS);
        for i in 0..n {
            at = Mono::from_nanos((t0_ms + (i + 1) * every_ms) * MS);
            w.record(at, bytes, entries, Duration::from_millis(rtt_ms));
        }
        at
    }

    #[test]
    fn a_steady_stream_gives_its_rate() {
        let mut w = RateWindow::new(Duration::from_secs(10), 10_000);
        // 100 appends/s of 10 entries, 4 KiB each, 2 ms round trips, for 20 s.
        let end = stream(&mut w, 0, 2000, 10, 4096, 10, 2);
        let s = w.summary(end);
        assert_eq!(s.window_ms, 10_000);
        assert!((s.bytes_per_s - 409_600.0).abs() < 500.0, "{s:?}");
        assert!((s.entries_per_s - 1000.0).abs() < 2.0, "{s:?}");
        // The link carries 4 KiB per 2 ms while busy: 2 MB/s.
        assert!((s.busy_bytes_per_s.unwrap_or(0.0) - 2_048_000.0).abs() < 1.0, "{s:?}");
    }

    #[test]
    fn a_throttled_link_shows_a_lower_busy_rate_at_the_same_load() {
        let mut fast = RateWindow::new(Duration::from_secs(10), 10_000);
        let mut slow = RateWindow::new(Duration::from_secs(10), 10_000);
        let end = stream(&mut fast, 0, 100, 100, 65_536, 1, 1);
        stream(&mut slow, 0, 100, 100, 65_536, 1, 500);
        let (f, s) = (fast.summary(end), slow.summary(end));
        // The same bytes were delivered: the delivered rate cannot tell them apart...
        assert_eq!(f.bytes_per_s, s.bytes_per_s);
        // ...the busy rate can: 500 times lower.
        let ratio = f.busy_bytes_per_s.unwrap_or(0.0) / s.busy_bytes_per_s.unwrap_or(f64::MAX);
        assert!((ratio - 500.0).abs() < 1e-6, "{f:?} {s:?}");
    }

    #[test]
    fn old_transfers_leave_the_window_and_silence_reads_as_zero() {
        let mut w = RateWindow::new(Duration::from_secs(5), 10_000);
        let end = stream(&mut w, 0, 50, 100, 1000, 1, 1);
        assert!(w.summary(end).bytes_per_s > 0.0);
        let s = w.summary(end.plus(Duration::from_millis(6_000)));
        assert_eq!((s.samples, s.bytes_per_s, s.busy_bytes_per_s), (0, 0.0, None), "{s:?}");
        assert_eq!(RateWindow::new(Duration::from_secs(5), 8).summary(end), ThroughputSummary::default());
    }

    #[test]
    fn a_young_window_averages_over_its_age_and_the_cap_over_what_it_kept() {
        let mut w = RateWindow::new(Duration::from_secs(60), 10_000);
        // 1 s of 1000 B every 10 ms, starting at t = 100 s: 100 kB/s, not 100 kB / 60 s.
        let end = stream(&mut w, 100_000, 100, 10, 1000, 1, 1);
        let s = w.summary(end);
        assert!((s.bytes_per_s - 101_010.0).abs() < 100.0, "{s:?}");
        let mut capped = RateWindow::new(Duration::from_secs(60), 10);
        let end = stream(&mut capped, 0, 100, 10, 1000, 1, 1);
        let s = capped.summary(end);
        assert_eq!(s.samples, 10);
        assert!((s.bytes_per_s - 111_111.0).abs() < 200.0, "10 kB over the 90 ms kept: {s:?}");
    }
}
