//! How a store is configured, and the seams it runs on.

use ed25519_dalek::VerifyingKey;
use fenced_core::toolbox::clock::Clock;
use fenced_io::disk::Disk;
use fenced_io::transport::Transport;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Bounds on what one request may carry and what the store remembers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLimits {
    /// Longest key, in bytes.
    pub key_len_max: usize,
    /// Largest value, in bytes.
    pub value_len_max: usize,
    /// Largest request body the HTTP layer reads at all (at least `value_len_max`).
    pub body_len_max: usize,
    /// Identities whose write results are remembered for deduplication.
    /// Never evicted (so one identity cannot push out another's window); a
    /// new identity's deduplicated write is refused (429) when full.
    pub dedup_identities_max: usize,
    /// Clients remembered per identity; that identity's least recently
    /// active client is forgotten first.
    pub dedup_clients_max: usize,
    /// Results remembered per client.
    pub dedup_per_client: usize,
    /// Longest `Fenced-Client` header, in bytes.
    pub client_len_max: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            key_len_max: 1024,
            value_len_max: 1 << 20,
            body_len_max: 1 << 20,
            dedup_identities_max: 64,
            dedup_clients_max: 256,
            dedup_per_client: 64,
            client_len_max: 128,
        }
    }
}

/// Which lock guards which key. A key is guarded by the lock of the longest
/// configured prefix it starts with, or else by the lock named like the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardMap {
    prefixes: BTreeMap<String, String>,
}

impl GuardMap {
    /// Map keys starting with `prefix` to `lock`.
    pub fn insert(&mut self, prefix: impl Into<String>, lock: impl Into<String>) {
        self.prefixes.insert(prefix.into(), lock.into());
    }

    /// The lock that guards `key`.
    pub fn lock_for<'a>(&'a self, key: &'a str) -> &'a str {
        // The longest matching prefix is the last one in BTreeMap order among
        // those that are prefixes of `key`.
        self.prefixes
            .range::<str, _>((std::ops::Bound::Unbounded, std::ops::Bound::Included(key)))
            .rev()
            .find(|(p, _)| key.starts_with(p.as_str()))
            .map(|(_, lock)| lock.as_str())
            .unwrap_or(key)
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.prefixes.iter().map(|(p, l)| (p.as_str(), l.as_str()))
    }
}

/// A store's configuration.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `host:port` to listen on (port 0 picks one; see `RunningStore::addr`).
    pub listen: String,
    /// Public keys of the lock service. More than one while a key rotation
    /// overlaps: a token signed by any of them is accepted.
    pub cluster_keys: Vec<VerifyingKey>,
    pub guards: GuardMap,
    /// Accept every write whatever its token: for demonstrating Figure 8-4.
    pub unsafe_no_fencing: bool,
    /// Check the token *number* (`Fenced-Token`) against the key's highest
    /// token, but without a signature: any client could forge a number. A
    /// comparison aid for lock services whose tokens are plain integers (etcd's
    /// revisions in `fenced chaos --target etcd`); never the default, and
    /// exclusive with `unsafe_no_fencing`.
    pub trust_unsigned_tokens: bool,
    pub limits: StoreLimits,
    /// Compact (snapshot, then empty the WAL) once the WAL exceeds this.
    pub compact_wal_bytes: u64,
    /// Most writes committed by one fsync (group commit).
    pub batch_max: usize,
    /// Capacity of the queue in front of the writer; a full queue makes
    /// handlers wait, which pushes back on clients.
    pub queue_max: usize,
    /// Who may read and write which keys (`fenced_io::auth`); `None`: anyone.
    /// Independent of fencing: a caller needs both the right and a valid token.
    pub policy: Option<Arc<fenced_io::auth::Policy>>,
}

impl StoreConfig {
    /// A fenced store on `listen` that trusts `cluster_keys`.
    pub fn new(listen: impl Into<String>, cluster_keys: Vec<VerifyingKey>) -> Self {
        StoreConfig {
            listen: listen.into(),
            cluster_keys,
            guards: GuardMap::default(),
            unsafe_no_fencing: false,
            trust_unsigned_tokens: false,
            limits: StoreLimits::default(),
            compact_wal_bytes: 64 << 20,
            batch_max: 256,
            queue_max: 1024,
            policy: None,
        }
    }
}

/// Everything nondeterministic the store touches, so the simulator can run
/// the same code on a simulated network, disk and clock.
#[derive(Clone)]
pub struct StoreSeams {
    pub transport: Arc<dyn Transport>,
    pub disk: Arc<dyn Disk>,
    pub clock: Arc<dyn Clock>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_default_is_the_key() {
        let mut g = GuardMap::default();
        g.insert("orders/", "orders");
        g.insert("orders/eu/", "orders-eu");
        g.insert("z", "zed");
        assert_eq!(g.lock_for("orders/1"), "orders");
        assert_eq!(g.lock_for("orders/eu/1"), "orders-eu");
        assert_eq!(g.lock_for("orders/f"), "orders");
        assert_eq!(g.lock_for("order"), "order");
        assert_eq!(g.lock_for("zz"), "zed");
        assert_eq!(g.lock_for("a"), "a");
    }
}
