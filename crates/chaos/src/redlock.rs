//! The Redlock algorithm (redis.io, "Distributed Locks with Redis"), as its
//! users implement it, over N independent `redis-server` processes:
//!
//! 1. note the time, then `SET lock <random> NX PX ttl` on every node, each
//!    with a short timeout;
//! 2. the lock is held if a majority said `OK` and the validity
//!    `ttl − elapsed − drift` (drift = 1 % of the TTL + 2 ms) is positive;
//! 3. otherwise unlock everywhere and retry after a random delay;
//! 4. release: on every node, delete the key only if it still holds our
//!    random value (a Lua compare-and-delete).
//!
//! There is no fencing token: nothing a writer could present to a resource
//! orders two holders. That is the point of running it in `fenced chaos`.

use crate::host_clock::mono_ns;
use crate::resp::{Conn, Reply};
use fenced_io::transport::Transport;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// The compare-and-delete of the Redlock release.
pub const UNLOCK_SCRIPT: &str =
    "if redis.call(\"get\",KEYS[1]) == ARGV[1] then return redis.call(\"del\",KEYS[1]) else return 0 end";

/// Redlock's clock-drift allowance: 1 % of the TTL plus 2 ms.
pub fn drift(ttl: Duration) -> Duration {
    ttl / 100 + Duration::from_millis(2)
}

/// How long a lock taken in `elapsed` stays valid, if at all.
pub fn validity(ttl: Duration, elapsed: Duration) -> Option<Duration> {
    ttl.checked_sub(elapsed)?.checked_sub(drift(ttl)).filter(|v| !v.is_zero())
}

/// A held Redlock.
#[derive(Debug, Clone)]
pub struct Held {
    pub lock: String,
    /// The random value that identifies this holder on every node.
    pub value: String,
    /// CLOCK_MONOTONIC ns until which the lock is valid.
    pub valid_until_ns: u64,
}

impl Held {
    pub fn is_valid(&self) -> bool {
        mono_ns() < self.valid_until_ns
    }
}

/// Why an acquire gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedlockError {
    /// Certainly not a majority said OK (others hold the key), for the whole wait.
    #[error("lock held elsewhere")]
    Held,
    /// Too many nodes did not answer on the last attempt to know.
    #[error("no majority of redis nodes answered: {0}")]
    Unavailable(String),
}

/// A Redlock client over every node.
pub struct Redlock {
    nodes: Vec<Arc<Mutex<Conn>>>,
    per_node: Duration,
}

/// One attempt's outcome.
enum Attempt {
    Held(Held),
    Contended,
    Unavailable(String),
}

impl Redlock {
    /// `per_node` bounds each node's answer; Redlock wants it small compared
    /// with the TTL so that a dead node does not eat the validity.
    pub fn new(transport: Arc<dyn Transport>, addrs: &[String], per_node: Duration) -> Self {
        let nodes = addrs.iter().map(|a| Arc::new(Mutex::new(Conn::new(transport.clone(), a.clone())))).collect();
        Redlock { nodes, per_node }
    }

    fn quorum(&self) -> usize {
        self.nodes.len() / 2 + 1
    }

    /// Run `args` on every node at once; each node's reply or error text.
    async fn all(&self, args: &[&[u8]]) -> Vec<Result<Reply, String>> {
        let per_node = self.per_node;
        let calls = self.nodes.iter().map(|n| {
            let n = n.clone();
            let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
            async move {
                let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                n.lock().await.call(&refs, per_node).await.map_err(|e| e.to_string())
            }
        });
        futures::future::join_all(calls).await
    }

    async fn attempt(&self, lock: &str, value: &str, ttl: Duration) -> Attempt {
        let start = mono_ns();
        let px = ttl.as_millis().max(1).to_string();
        let replies = self.all(&[b"SET", lock.as_bytes(), value.as_bytes(), b"NX", b"PX", px.as_bytes()]).await;
        let elapsed = Duration::from_nanos(mono_ns().saturating_sub(start));
        let ok = replies.iter().filter(|r| matches!(r, Ok(Reply::Simple(s)) if s == "OK")).count();
        let answered = replies.iter().filter(|r| matches!(r, Ok(Reply::Simple(_) | Reply::Bulk(_)))).count();
        if ok >= self.quorum() {
            if let Some(v) = validity(ttl, elapsed) {
                let valid_until_ns = start.saturating_add(v.as_nanos() as u64);
                return Attempt::Held(Held { lock: lock.into(), value: value.into(), valid_until_ns });
            }
        }
        // Failed: undo whatever was set, as the algorithm says.
        self.unlock(lock, value).await;
        // Certainly not held only if the nodes that said OK plus those whose
        // answer is unknown (they may have set the key) are no majority.
        let unknown = self.nodes.len() - answered;
        if ok + unknown < self.quorum() {
            Attempt::Contended
        } else {
            let errors: Vec<String> = replies.into_iter().filter_map(|r| r.err()).collect();
            Attempt::Unavailable(errors.first().cloned().unwrap_or_else(|| "too few nodes answered".into()))
        }
    }

    /// Acquire `lock` for `ttl`, retrying after random delays for up to `wait`.
    pub async fn acquire(
        &self,
        lock: &str,
        ttl: Duration,
        wait: Duration,
        rng: &mut impl Rng,
    ) -> Result<Held, RedlockError> {
        let value = format!("{:032x}", rng.gen::<u128>());
        let deadline = mono_ns().saturating_add(wait.as_nanos() as u64);
        loop {
            let last = match self.attempt(lock, &value, ttl).await {
                Attempt::Held(h) => return Ok(h),
                Attempt::Contended => RedlockError::Held,
                Attempt::Unavailable(e) => RedlockError::Unavailable(e),
            };
            let delay = Duration::from_millis(rng.gen_range(20..120));
            if mono_ns().saturating_add(delay.as_nanos() as u64) >= deadline {
                return Err(last);
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// Compare-and-delete on every node.
    async fn unlock(&self, lock: &str, value: &str) -> Vec<Result<Reply, String>> {
        self.all(&[b"EVAL", UNLOCK_SCRIPT.as_bytes(), b"1", lock.as_bytes(), value.as_bytes()]).await
    }

    /// Release: compare-and-delete everywhere. Ok (with how many nodes still
    /// held our value) if a majority answered.
    pub async fn release(&self, held: &Held) -> Result<usize, RedlockError> {
        let replies = self.unlock(&held.lock, &held.value).await;
        let answered = replies.iter().filter(|r| matches!(r, Ok(Reply::Int(_)))).count();
        if answered >= self.quorum() {
            Ok(replies.iter().filter(|r| matches!(r, Ok(Reply::Int(1)))).count())
        } else {
            Err(RedlockError::Unavailable(format!("{answered} of {} nodes answered the release", self.nodes.len())))
        }
    }

    /// How many nodes answer `PING`.
    pub async fn ping(&self) -> usize {
        self.all(&[b"PING"]).await.iter().filter(|r| matches!(r, Ok(Reply::Simple(s)) if s == "PONG")).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_ttl_minus_elapsed_minus_drift() {
        let ttl = Duration::from_secs(3);
        assert_eq!(drift(ttl), Duration::from_millis(32));
        assert_eq!(validity(ttl, Duration::from_millis(100)), Some(Duration::from_millis(2868)));
        assert_eq!(validity(ttl, Duration::from_millis(2968)), None);
        assert_eq!(validity(ttl, Duration::from_secs(5)), None);
    }
}
