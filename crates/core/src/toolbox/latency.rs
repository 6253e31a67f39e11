//! Latency samples: a bounded window of recent measurements and its
//! percentiles. Used for peer round trips, replication latency, fsync
//! latency and scheduling lateness; pure (the caller measures).

use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::collections::VecDeque;
use std::time::Duration;

/// Percentiles of a set of durations, in microseconds (nearest rank).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples in the window the percentiles are computed over.
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    /// Summarise `samples` (any order).
    pub fn of(samples: &[Duration]) -> LatencySummary {
        let mut us: Vec<u64> = samples.iter().map(|d| as_us(*d)).collect();
        us.sort_unstable();
        LatencySummary {
            count: us.len() as u64,
            p50_us: nearest_rank(&us, 0.50),
            p99_us: nearest_rank(&us, 0.99),
            p999_us: nearest_rank(&us, 0.999),
            max_us: us.last().copied().unwrap_or(0),
        }
    }
}

fn as_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The `q` quantile of sorted `xs` by nearest rank; 0 if empty.
pub fn nearest_rank(xs: &[u64], q: f64) -> u64 {
    if xs.is_empty() {
        return 0;
    }
    let rank = (q * xs.len() as f64).ceil() as usize;
    xs[rank.clamp(1, xs.len()) - 1]
}

/// The last `capacity` samples, plus the total count and the maximum ever.
#[derive(Debug, Clone)]
pub struct LatencyWindow {
    capacity: usize,
    samples: VecDeque<Duration>,
    total: u64,
    max_ever: Duration,
    /// The last [`LatencyWindow::recent_median`] asked for (`n`, answer),
    /// until the next sample: peers ask for medians in every probe answer,
    /// far more often than samples arrive.
    median: Cell<Option<(usize, Option<Duration>)>>,
}

impl LatencyWindow {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        LatencyWindow {
            capacity,
            samples: VecDeque::with_capacity(capacity),
            total: 0,
            max_ever: Duration::ZERO,
            median: Cell::new(None),
        }
    }

    pub fn record(&mut self, d: Duration) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(d);
        self.median.set(None);
        self.total += 1;
        self.max_ever = self.max_ever.max(d);
    }

    /// Percentiles over the window.
    pub fn summary(&self) -> LatencySummary {
        let v: Vec<Duration> = self.samples.iter().copied().collect();
        LatencySummary::of(&v)
    }

    /// The median of the most recent `n` samples, if there are any.
    pub fn recent_median(&self, n: usize) -> Option<Duration> {
        if let Some((asked, answer)) = self.median.get() {
            if asked == n {
                return answer;
            }
        }
        let answer = self.median_of_last(n);
        self.median.set(Some((n, answer)));
        answer
    }

    fn median_of_last(&self, n: usize) -> Option<Duration> {
        let mut v: Vec<Duration> = self.samples.iter().rev().take(n.max(1)).copied().collect();
        if v.is_empty() {
            return None;
        }
        // Selection, not a sort: every probe answer asks for medians.
        let mid = (v.len() - 1) / 2;
        Some(*v.select_nth_unstable(mid).1)
    }

    /// Samples ever recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The largest sample ever recorded.
    pub fn max_ever(&self) -> Duration {
        self.max_ever
    }

    pub fn samples(&self) -> impl Iterator<Item = &Duration> {
        self.samples.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<Duration> = (1..=1000).map(ms).collect();
        let s = LatencySummary::of(&v);
        assert_eq!(s.count, 1000);
        assert_eq!(s.p50_us, 500_000);
        assert_eq!(s.p99_us, 990_000);
        assert_eq!(s.p999_us, 999_000);
        assert_eq!(s.max_us, 1_000_000);
        assert_eq!(LatencySummary::of(&[]), LatencySummary::default());
    }

    #[test]
    fn a_remembered_median_is_forgotten_at_the_next_sample() {
        let mut w = LatencyWindow::new(8);
        assert_eq!(w.recent_median(3), None);
        w.record(ms(5));
        assert_eq!(w.recent_median(3), Some(ms(5)));
        for n in [2, 1] {
            w.record(ms(n));
        }
        assert_eq!(w.recent_median(3), Some(ms(2)));
        assert_eq!(w.recent_median(1), Some(ms(1)), "another n is computed, not the remembered answer");
        assert_eq!(w.recent_median(3), Some(ms(2)));
        w.record(ms(9));
        w.record(ms(9));
        assert_eq!(w.recent_median(3), Some(ms(9)), "new samples replace the remembered answer");
    }

    #[test]
    fn the_window_forgets_old_samples_but_not_the_maximum() {
        let mut w = LatencyWindow::new(3);
        for n in [100, 1, 2, 3] {
            w.record(ms(n));
        }
        assert_eq!(w.summary().max_us, 3000);
        assert_eq!(w.max_ever(), ms(100));
        assert_eq!(w.total(), 4);
        assert_eq!(w.recent_median(2), Some(ms(2)));
        assert_eq!(LatencyWindow::new(4).recent_median(3), None);
    }
}
