//! Configuration that cannot silently take the cluster down: the checks a
//! replica makes before it starts, also run offline by `fenced config check`.
//!
//! - The election timeout must be at least [`HEARTBEAT_FACTOR`] heartbeats,
//!   or followers start elections between the heartbeats of a healthy leader.
//! - The shortest lease TTL must outlive one failover (the longest election
//!   timeout to notice the leader is gone, plus the shortest for the election
//!   and the holder's renewal through the new leader: [`safe_min_ttl`]), or
//!   every election expires every lease before its holder can renew it.
//! - `--peers` must agree with the membership the replica has replicated
//!   (checked once the log is open: [`against_membership`]).

use crate::config::NodeId;
use crate::config::ReplicaConfig;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The election timeout must be at least this many heartbeats.
pub const HEARTBEAT_FACTOR: u32 = 3;

/// One thing wrong with a configuration, and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The setting at fault (the `fenced serve` flag / config key).
    pub setting: &'static str,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

/// Every problem found, or none.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
pub struct ConfigError(pub Vec<Problem>);

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The shortest TTL a cluster with these election timeouts can honour: the
/// longest timeout (noticing the leader is gone) plus the shortest (the
/// election, and the holder renewing through the new leader).
pub fn safe_min_ttl(election_timeout_min: Duration, election_timeout_max: Duration) -> Duration {
    election_timeout_max + election_timeout_min
}

/// Check a configuration on its own (no disk, no network).
pub fn validate(c: &ReplicaConfig) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    let mut bad = |setting: &'static str, message: String| problems.push(Problem { setting, message });
    if c.id == 0 {
        bad("id", "must be a positive integer".into());
    }
    if c.cluster_name.is_empty() || c.cluster_name.len() > 64 || !c.cluster_name.chars().all(|ch| ch.is_ascii_graphic())
    {
        bad("cluster-name", "must be 1 to 64 printable ASCII characters without spaces".into());
    }
    if c.heartbeat.is_zero() {
        bad("heartbeat", "must be positive".into());
    }
    let floor = c.heartbeat * HEARTBEAT_FACTOR;
    if c.election_timeout_min < floor {
        bad(
            "election-timeout",
            format!(
                "{} is below {HEARTBEAT_FACTOR} × heartbeat ({}) = {}: followers would call elections between the \
                 heartbeats of a healthy leader. Raise election-timeout to at least {} or lower heartbeat",
                ms(c.election_timeout_min),
                ms(c.heartbeat),
                ms(floor),
                ms(floor)
            ),
        );
    }
    if c.election_timeout_max < c.election_timeout_min {
        bad("election-timeout", "the longest election timeout is below the shortest".into());
    }
    let safe = safe_min_ttl(c.election_timeout_min, c.election_timeout_max);
    if c.min_ttl < safe {
        bad(
            "min-ttl",
            format!(
                "{} is below what the election timeout allows: a lease must outlive one failover, the longest plus \
                 the shortest election timeout ({} + {}) = {}. Raise min-ttl to at least {}, or lower \
                 election-timeout to at most {}",
                ms(c.min_ttl),
                ms(c.election_timeout_max),
                ms(c.election_timeout_min),
                ms(safe),
                ms(safe),
                ms(c.min_ttl / 3)
            ),
        );
    }
    if c.max_ttl < c.min_ttl {
        bad("max-ttl", format!("{} is below min-ttl ({})", ms(c.max_ttl), ms(c.min_ttl)));
    }
    if c.min_ttl.as_millis() < u128::from(c.limits.ttl_ms_min) {
        bad("min-ttl", format!("{} is below the state machine's floor of {} ms", ms(c.min_ttl), c.limits.ttl_ms_min));
    }
    if c.max_ttl.as_millis() > u128::from(c.limits.ttl_ms_max) {
        bad("max-ttl", format!("{} is above the state machine's ceiling of {} ms", ms(c.max_ttl), c.limits.ttl_ms_max));
    }
    if !c.join && !c.peers.is_empty() && !c.peers.contains_key(&c.id) {
        bad("peers", format!("replica {} is not in the peer list; list every voter, this one included", c.id));
    }
    if c.join && !c.peers.is_empty() {
        bad("join", "a joining replica takes its peers from the cluster; give either --join or --peers".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError(problems))
    }
}

/// `--peers` against the voters this replica replicated. An empty peer list
/// (a restart that trusts its data) always agrees.
pub fn against_membership(
    configured: &BTreeMap<NodeId, String>,
    replicated: &BTreeMap<NodeId, String>,
) -> Result<(), Problem> {
    if configured.is_empty() || replicated.is_empty() || configured == replicated {
        return Ok(());
    }
    let show = |m: &BTreeMap<NodeId, String>| m.iter().map(|(i, a)| format!("{i}={a}")).collect::<Vec<_>>().join(",");
    Err(Problem {
        setting: "peers",
        message: format!(
            "--peers {} disagrees with the membership this replica has replicated ({}). After `fenced cluster \
             add/remove/replace` the log is the truth: pass --peers {}, or omit --peers to use the replicated \
             membership",
            show(configured),
            show(replicated),
            show(replicated)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ReplicaConfig {
        let peers = BTreeMap::from([(1, "a:1".to_string()), (2, "b:1".into()), (3, "c:1".into())]);
        ReplicaConfig::new(1, "a:1".into(), peers)
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(validate(&config()), Ok(()));
    }

    #[test]
    fn a_ttl_the_election_timeout_cannot_honour_is_refused_with_the_fix() {
        let mut c = config();
        c.election_timeout_min = Duration::from_millis(500);
        c.election_timeout_max = Duration::from_millis(1000);
        c.min_ttl = Duration::from_millis(500);
        let e = validate(&c).expect_err("refused");
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].setting, "min-ttl");
        assert!(e.0[0].message.contains("at least 1500ms"), "{e}");
    }

    #[test]
    fn an_election_timeout_below_three_heartbeats_is_refused() {
        let mut c = config();
        c.heartbeat = Duration::from_millis(200);
        let e = validate(&c).expect_err("refused");
        assert!(e.0.iter().any(|p| p.setting == "election-timeout" && p.message.contains("600ms")), "{e}");
    }

    #[test]
    fn peers_disagreeing_with_the_replicated_membership_are_refused() {
        let c = config();
        let mut replicated = c.peers.clone();
        assert_eq!(against_membership(&c.peers, &replicated), Ok(()));
        assert_eq!(against_membership(&BTreeMap::new(), &replicated), Ok(()));
        replicated.insert(4, "d:1".into());
        let p = against_membership(&c.peers, &replicated).expect_err("refused");
        assert!(p.message.contains("omit --peers"), "{p}");
    }
}
