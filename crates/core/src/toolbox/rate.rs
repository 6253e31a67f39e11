//! Per-client request rate limits: one token bucket per client key.
//!
//! Pure: the caller passes the current monotonic time in milliseconds, so the
//! replica uses its `Clock` seam and tests need no sleeping. The number of
//! buckets is bounded: when full, buckets that have refilled completely (and
//! so carry no information) are dropped first; if none has, the least
//! recently used one is. A client evicted that way starts again with a full
//! bucket, so eviction can only be lenient, never refuse anyone wrongly.

use std::collections::BTreeMap;

/// A rate: `per_sec` requests per second on average, bursts of `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: f64,
}

#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

/// Why a request was refused, and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Milliseconds until one token is available again.
    pub retry_after_ms: u64,
}

/// Token buckets by client key.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: Rate,
    buckets: BTreeMap<String, Bucket>,
    max_clients: usize,
}

impl RateLimiter {
    /// At most `max_clients` buckets are kept (at least one).
    pub fn new(rate: Rate, max_clients: usize) -> Self {
        RateLimiter { rate, buckets: BTreeMap::new(), max_clients: max_clients.max(1) }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Take one token from `key`'s bucket at `now_ms`, or say when to retry.
    pub fn check(&mut self, key: &str, now_ms: u64) -> Result<(), Throttled> {
        let Rate { per_sec, burst } = self.rate;
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.max_clients {
            self.evict(now_ms);
        }
        let b = self.buckets.entry(key.to_string()).or_insert(Bucket { tokens: burst, at_ms: now_ms });
        let elapsed = now_ms.saturating_sub(b.at_ms) as f64 / 1000.0;
        b.tokens = (b.tokens + elapsed * per_sec).min(burst);
        b.at_ms = b.at_ms.max(now_ms);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - b.tokens;
        let retry_after_ms = if per_sec > 0.0 { (missing / per_sec * 1000.0).ceil() as u64 } else { u64::MAX };
        Err(Throttled { retry_after_ms: retry_after_ms.max(1) })
    }

    fn evict(&mut self, now_ms: u64) {
        let Rate { per_sec, burst } = self.rate;
        let full = |b: &Bucket| b.tokens + now_ms.saturating_sub(b.at_ms) as f64 / 1000.0 * per_sec >= burst;
        self.buckets.retain(|_, b| !full(b));
        while self.buckets.len() >= self.max_clients {
            let Some(oldest) = self.buckets.iter().min_by_key(|(_, b)| b.at_ms).map(|(k, _)| k.clone()) else {
                return;
            };
            self.buckets.remove(&oldest);
        }
    }

    /// Buckets currently kept.
    pub fn clients(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let mut r = RateLimiter::new(Rate { per_sec: 10.0, burst: 5.0 }, 100);
        for _ in 0..5 {
            assert_eq!(r.check("a", 0), Ok(()));
        }
        let t = r.check("a", 0).expect_err("burst spent");
        assert_eq!(t.retry_after_ms, 100);
        assert_eq!(r.check("b", 0), Ok(()), "another client has its own bucket");
        assert_eq!(r.check("a", 100), Ok(()), "one token after 100 ms");
        assert!(r.check("a", 100).is_err());
        for _ in 0..5 {
            assert_eq!(r.check("a", 10_000), Ok(()), "refilled to the burst, not beyond");
        }
        assert!(r.check("a", 10_000).is_err());
    }

    #[test]
    fn bucket_count_is_bounded_and_eviction_is_lenient() {
        let mut r = RateLimiter::new(Rate { per_sec: 1.0, burst: 1.0 }, 3);
        for (i, k) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            assert_eq!(r.check(k, i as u64), Ok(()));
            assert!(r.clients() <= 3);
        }
        // "a" was evicted: it starts again with a full bucket.
        assert_eq!(r.check("a", 5), Ok(()));
    }
}
