//! Pure statistics: latency percentiles and Jain's fairness index.

use serde::Serialize;
use std::time::Duration;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The nearest-rank percentile `q` (0..=100) of an ascending slice; `None` when empty.
pub fn nearest_rank(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let q = q.clamp(0.0, 100.0);
    // Nearest rank: the smallest value with at least q% of samples at or below it.
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.saturating_sub(1).min(sorted.len() - 1);
    sorted.get(idx).copied()
}

/// Sort `samples` and compute p50, p90, p99 and max (all zero when empty).
pub fn percentiles(samples: &mut [Duration]) -> Percentiles {
    samples.sort_unstable();
    let ms = |q: f64| nearest_rank(samples, q).map_or(0.0, |d| d.as_secs_f64() * 1e3);
    Percentiles { p50_ms: ms(50.0), p90_ms: ms(90.0), p99_ms: ms(99.0), max_ms: ms(100.0) }
}

/// Jain's fairness index `(Σx)² / (n·Σx²)`: 1 when all equal, `1/n` when one
/// takes everything. `None` for no samples or all zero.
pub fn jain_index(xs: &[u64]) -> Option<f64> {
    let n = xs.len() as f64;
    let sum: f64 = xs.iter().map(|&x| x as f64).sum();
    let sq: f64 = xs.iter().map(|&x| (x as f64) * (x as f64)).sum();
    if xs.is_empty() || sq == 0.0 {
        return None;
    }
    Some(sum * sum / (n * sq))
}

/// `(civil year, month, day)` of a count of days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn percentiles_nearest_rank() {
        let mut s = ms(&(1..=100).rev().collect::<Vec<_>>());
        let p = percentiles(&mut s);
        assert_eq!(p, Percentiles { p50_ms: 50.0, p90_ms: 90.0, p99_ms: 99.0, max_ms: 100.0 });
        let mut one = ms(&[7]);
        assert_eq!(percentiles(&mut one).p50_ms, 7.0);
        assert_eq!(percentiles(&mut []), Percentiles::default());
        let small = ms(&[1, 2, 3]);
        assert_eq!(nearest_rank(&small, 0.0), Some(Duration::from_millis(1)));
        assert_eq!(nearest_rank(&small, 99.0), Some(Duration::from_millis(3)));
    }

    #[test]
    fn jain() {
        assert_eq!(jain_index(&[5, 5, 5, 5]), Some(1.0));
        let one = jain_index(&[10, 0, 0, 0]).unwrap_or(0.0);
        assert!((one - 0.25).abs() < 1e-12);
        assert_eq!(jain_index(&[]), None);
        assert_eq!(jain_index(&[0, 0]), None);
        let mid = jain_index(&[1, 2, 3]).unwrap_or(0.0);
        assert!((mid - 36.0 / 42.0).abs() < 1e-12);
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
