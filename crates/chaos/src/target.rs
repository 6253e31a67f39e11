//! The systems a chaos run can put under the nemesis, and what differs
//! between them: which server processes run in the node namespaces, how
//! the store checks writes, and what a client's "token" is.

use serde::Serialize;

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// fenced replicas; the store checks signed tokens.
    Fenced,
    /// etcd 3.4 members, etcd's lock API; the lock key's create revision is
    /// the token, checked by the store in its trust-unsigned mode.
    Etcd,
    /// etcd 3.4 as above, but the token is not used, as commonly: the store
    /// accepts every write (it only records the number, unchecked).
    EtcdNoToken,
    /// Redlock over 5 independent redis-server processes; no token exists,
    /// so the store accepts every write.
    Redlock,
}

/// How the store judges writes in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreMode {
    /// Signed tokens, verified with the cluster's keys (the real thing).
    Signed,
    /// Token numbers checked, signatures not (`--trust-unsigned-tokens`).
    TrustUnsigned,
    /// Every write accepted (`--unsafe-no-fencing`).
    Unfenced,
}

impl Target {
    pub const ALL: [Target; 4] = [Target::Fenced, Target::Etcd, Target::EtcdNoToken, Target::Redlock];

    pub fn name(self) -> &'static str {
        match self {
            Target::Fenced => "fenced",
            Target::Etcd => "etcd",
            Target::EtcdNoToken => "etcd-no-token",
            Target::Redlock => "redlock",
        }
    }

    /// The server binary run in each node namespace (other than `fenced`
    /// itself), and the Debian package that has it.
    pub fn server_tool(self) -> Option<(&'static str, &'static str)> {
        match self {
            Target::Fenced => None,
            Target::Etcd | Target::EtcdNoToken => Some(("etcd", "etcd-server")),
            Target::Redlock => Some(("redis-server", "redis-server")),
        }
    }

    pub fn store_mode(self) -> StoreMode {
        match self {
            Target::Fenced => StoreMode::Signed,
            Target::Etcd => StoreMode::TrustUnsigned,
            Target::EtcdNoToken | Target::Redlock => StoreMode::Unfenced,
        }
    }

    pub fn is_etcd(self) -> bool {
        matches!(self, Target::Etcd | Target::EtcdNoToken)
    }

    /// What the history's `token` of this target's grants is.
    pub fn token_meaning(self) -> &'static str {
        match self {
            Target::Fenced => "the grant's Raft log index, signed by the cluster; checked by the store",
            Target::Etcd => "the lock key's create revision; checked by the store as an unsigned number",
            Target::EtcdNoToken => "the lock key's create revision; recorded for the checkers, never sent to the store",
            Target::Redlock => {
                "none exists: the history records the acquisition time on the host's monotonic clock (ns × 64 + \
                 client) so the checkers can order holders; the store never sees it"
            }
        }
    }
}

impl StoreMode {
    /// The `fenced store serve` flags of this mode (the cluster keys of
    /// [`StoreMode::Signed`] are added by the caller).
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            StoreMode::Signed => &[],
            StoreMode::TrustUnsigned => &["--trust-unsigned-tokens"],
            StoreMode::Unfenced => &["--unsafe-no-fencing"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn names_match_the_cli() {
        for t in Target::ALL {
            let v = t.to_possible_value().expect("visible");
            assert_eq!(v.get_name(), t.name());
            assert_eq!(serde_json::to_value(t).ok(), Some(serde_json::json!(t.name())));
        }
    }

    #[test]
    fn only_fenced_and_etcd_with_tokens_are_fenced() {
        assert_eq!(Target::Fenced.store_mode(), StoreMode::Signed);
        assert_eq!(Target::Etcd.store_mode(), StoreMode::TrustUnsigned);
        assert_eq!(Target::EtcdNoToken.store_mode(), StoreMode::Unfenced);
        assert_eq!(Target::Redlock.store_mode(), StoreMode::Unfenced);
        assert!(StoreMode::Signed.flags().is_empty());
    }
}
