//! The nemesis: which faults, when, and the nftables rule text that makes a
//! partition. Everything here is pure: the same seed gives the same schedule,
//! and the rule text can be tested without root.
//!
//! Faults run one at a time. That keeps every fault's effect attributable in
//! the report, and it keeps a majority of replicas alive (at most one is ever
//! killed or paused), so unavailability outside partitions is a finding.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A class of fault the user can enable with `--nemesis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Partition,
    OneWay,
    Pause,
    Kill,
    Clock,
    Limp,
    /// Membership changes through the maintenance API (fenced only).
    Membership,
}

impl Kind {
    pub const ALL: [Kind; 7] =
        [Kind::Partition, Kind::OneWay, Kind::Pause, Kind::Kill, Kind::Clock, Kind::Limp, Kind::Membership];
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "partition" => Kind::Partition,
            "one-way" | "oneway" => Kind::OneWay,
            "pause" => Kind::Pause,
            "kill" => Kind::Kill,
            "clock" => Kind::Clock,
            "limp" => Kind::Limp,
            "membership" => Kind::Membership,
            other => {
                return Err(format!(
                    "unknown nemesis {other:?} (partition, one-way, pause, kill, clock, limp, membership)"
                ));
            }
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Partition => "partition",
            Kind::OneWay => "one-way",
            Kind::Pause => "pause",
            Kind::Kill => "kill",
            Kind::Clock => "clock",
            Kind::Limp => "limp",
            Kind::Membership => "membership",
        })
    }
}

pub use fenced_check::nemesis::{Fault, MembershipOp, PartitionKind, Planned};

/// A fault of the shared vocabulary that the chaos runner cannot make.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the chaos runner cannot make the fault `{0}` (it makes partition, one-way, pause, pause-leader, client-pause, \
     crash, restart-leader, clock, limp and the membership changes remove, remove-leader and replace-killed; \
     the simulator makes the rest)"
)]
pub struct Unsupported(pub String);

/// The class of `fault` that `--nemesis` enables, or why the chaos runner
/// cannot make it: loss, duplication, delay, lost replies, store crashes
/// and one-shot wall jumps are the simulator's network and hosts; `add` and
/// `replace` are the simulator operator's changes, the disaster its
/// `--disaster`.
pub fn kind(fault: &Fault) -> Result<Kind, Unsupported> {
    Ok(match fault {
        Fault::Partition { .. } => Kind::Partition,
        Fault::OneWay { .. } => Kind::OneWay,
        Fault::Pause { .. } | Fault::PauseLeader | Fault::ClientPause { .. } => Kind::Pause,
        Fault::Crash { .. } | Fault::RestartLeader => Kind::Kill,
        Fault::Clock { .. } => Kind::Clock,
        Fault::Limp { .. } => Kind::Limp,
        Fault::Membership {
            op: MembershipOp::Remove { .. } | MembershipOp::RemoveLeader | MembershipOp::ReplaceKilled { .. },
        } => Kind::Membership,
        Fault::Membership { op: MembershipOp::Add { .. } | MembershipOp::Replace { .. } }
        | Fault::Loss { .. }
        | Fault::Duplicate { .. }
        | Fault::Delay { .. }
        | Fault::LostReplies { .. }
        | Fault::CrashStore
        | Fault::WallJump { .. }
        | Fault::Disaster
        | Fault::HealAll
        | Fault::Other(_) => return Err(Unsupported(fault.name().to_string())),
    })
}

/// Draw the schedule: faults one after another from `from` until `until`,
/// each lasting 1–8 s (pauses sometimes longer than a lease TTL, which is the
/// interesting case), with 1–3 s of quiet between them.
pub fn schedule(seed: u64, nodes: u64, kinds: &BTreeSet<Kind>, from: Duration, until: Duration) -> Vec<Planned> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6368_616f_735f_6e65);
    let kinds: Vec<Kind> = kinds.iter().copied().collect();
    let mut out = Vec::new();
    if kinds.is_empty() || nodes == 0 {
        return out;
    }
    let mut t = from;
    // A hard bound on the loop, whatever the durations.
    for _ in 0..10_000 {
        let d = Duration::from_millis(rng.gen_range(1_000..8_000));
        if t + d > until {
            break;
        }
        let node = rng.gen_range(1..=nodes);
        let fault = match kinds[rng.gen_range(0..kinds.len())] {
            Kind::Partition => Fault::Partition {
                kind: match rng.gen_range(0..4) {
                    0 => PartitionKind::RandomHalves,
                    1 => PartitionKind::IsolateLeader,
                    // A ring of 3 is a full mesh: nothing would be cut.
                    2 if nodes >= 5 => PartitionKind::MajoritiesRing,
                    2 => PartitionKind::RandomHalves,
                    _ => PartitionKind::Bridge,
                },
            },
            Kind::OneWay => Fault::OneWay { node },
            Kind::Pause => match rng.gen_range(0..3) {
                0 => Fault::Pause { node },
                1 => Fault::PauseLeader,
                _ => Fault::ClientPause { client: None, ms: None },
            },
            Kind::Kill if rng.gen_bool(0.5) => Fault::RestartLeader,
            Kind::Kill => Fault::Crash { node },
            Kind::Clock => {
                let s = rng.gen_range(30..600);
                Fault::Clock { node, offset_s: if rng.gen_bool(0.5) { s } else { -s } }
            }
            Kind::Limp => Fault::Limp { node },
            Kind::Membership => Fault::Membership {
                op: match rng.gen_range(0..3) {
                    0 => MembershipOp::Remove { node },
                    1 => MembershipOp::RemoveLeader,
                    _ => MembershipOp::ReplaceKilled { node },
                },
            },
        };
        // An immediate restart: the fault ends within 300 ms.
        let end = if fault == Fault::RestartLeader { t + d.min(Duration::from_millis(300)) } else { t + d };
        out.push(Planned { start: t, end, fault });
        t += d + Duration::from_millis(rng.gen_range(1_000..3_000));
    }
    out
}

/// For a partition, which replicas each replica must stop hearing from. The
/// relation is symmetric: both ends drop, so the cut holds in both directions.
/// `leader` is the current leader, if known (for [`PartitionKind::IsolateLeader`]).
pub fn partition_drops(
    kind: PartitionKind,
    nodes: u64,
    leader: Option<u64>,
    seed: u64,
) -> BTreeMap<u64, BTreeSet<u64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let all: Vec<u64> = (1..=nodes).collect();
    let mut cut: Vec<(u64, u64)> = Vec::new();
    let mut split = |a: &[u64], b: &[u64]| {
        for x in a {
            for y in b {
                cut.push((*x, *y));
            }
        }
    };
    match kind {
        PartitionKind::RandomHalves => {
            let mut h = all.clone();
            h.shuffle(&mut rng);
            let b = h.split_off(h.len() / 2);
            split(&h, &b);
        }
        PartitionKind::IsolateLeader => {
            let l = leader.unwrap_or(1);
            let rest: Vec<u64> = all.iter().copied().filter(|n| *n != l).collect();
            split(&[l], &rest);
        }
        PartitionKind::MajoritiesRing => {
            for i in 1..=nodes {
                for j in (i + 1)..=nodes {
                    if (j - i).min(nodes - (j - i)) > 1 {
                        cut.push((i, j));
                    }
                }
            }
        }
        PartitionKind::Bridge => {
            let mid = nodes.div_ceil(2);
            let left: Vec<u64> = (1..mid).collect();
            let right: Vec<u64> = ((mid + 1)..=nodes).collect();
            split(&left, &right);
        }
    }
    let mut drops: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for (a, b) in cut {
        drops.entry(a).or_default().insert(b);
        drops.entry(b).or_default().insert(a);
    }
    drops
}

/// The nft table every rule lives in, one per node namespace.
pub const NFT_TABLE: &str = "fchaos";

/// A complete, atomic nft script for one namespace: it replaces our table
/// (the `add` + `delete` idiom works whether or not the table exists) with
/// one that drops input from `drop_from` and, if `mute`, every packet the
/// node sends into `cidr`.
pub fn nft_script(drop_from: &[std::net::Ipv4Addr], mute: Option<&str>) -> String {
    let mut s = format!("table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\ntable inet {NFT_TABLE} {{\n");
    s.push_str("  chain input {\n    type filter hook input priority 0; policy accept;\n");
    if !drop_from.is_empty() {
        let set: Vec<String> = drop_from.iter().map(|a| a.to_string()).collect();
        s.push_str(&format!("    ip saddr {{ {} }} drop\n", set.join(", ")));
    }
    s.push_str("  }\n  chain output {\n    type filter hook output priority 0; policy accept;\n");
    if let Some(cidr) = mute {
        s.push_str(&format!("    ip daddr {cidr} drop\n"));
    }
    s.push_str("  }\n}\n");
    s
}

/// The script that removes every rule of ours (the heal).
pub fn nft_heal_script() -> String {
    format!("table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n")
}

/// The libfaketime timestamp-file content for a wall-clock offset.
pub fn faketime_offset(offset_s: i64) -> String {
    format!("{offset_s:+}s\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn all() -> BTreeSet<Kind> {
        Kind::ALL.into_iter().collect()
    }

    #[test]
    fn schedule_is_a_function_of_the_seed() {
        let a = schedule(42, 5, &all(), Duration::from_secs(2), Duration::from_secs(120));
        let b = schedule(42, 5, &all(), Duration::from_secs(2), Duration::from_secs(120));
        let c = schedule(43, 5, &all(), Duration::from_secs(2), Duration::from_secs(120));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.len() > 5);
    }

    #[test]
    fn schedule_is_sequential_and_bounded() {
        let s = schedule(7, 3, &all(), Duration::from_secs(2), Duration::from_secs(60));
        for w in s.windows(2) {
            assert!(w[0].end <= w[1].start, "faults overlap: {w:?}");
        }
        for p in &s {
            assert!(p.start >= Duration::from_secs(2) && p.end <= Duration::from_secs(60));
            assert!(p.start < p.end);
        }
    }

    #[test]
    fn schedule_uses_only_enabled_kinds() {
        let kinds: BTreeSet<Kind> = [Kind::Kill].into_iter().collect();
        let s = schedule(1, 3, &kinds, Duration::ZERO, Duration::from_secs(100));
        assert!(!s.is_empty());
        assert!(s.iter().all(|p| kind(&p.fault) == Ok(Kind::Kill)));
        assert!(schedule(1, 3, &BTreeSet::new(), Duration::ZERO, Duration::from_secs(100)).is_empty());
    }

    #[test]
    fn the_simulators_faults_are_refused_by_name() {
        assert_eq!(kind(&Fault::Crash { node: 1 }), Ok(Kind::Kill));
        assert_eq!(kind(&Fault::ClientPause { client: None, ms: None }), Ok(Kind::Pause));
        assert_eq!(kind(&Fault::Membership { op: MembershipOp::RemoveLeader }), Ok(Kind::Membership));
        for (fault, name) in [
            (Fault::Loss { rate: 0.1 }, "loss"),
            (Fault::WallJump { node: 1, ms: 5 }, "wall-jump"),
            (Fault::CrashStore, "crash-store"),
            (Fault::Membership { op: MembershipOp::Add { node: 2 } }, "membership"),
            (Fault::HealAll, "heal-all"),
        ] {
            let e = kind(&fault).expect_err("a fault the chaos runner cannot make");
            assert_eq!(e, Unsupported(name.into()));
            assert!(e.to_string().contains("simulator makes the rest"));
        }
    }

    #[test]
    fn schedules_write_the_shared_names() {
        let s = schedule(3, 5, &all(), Duration::ZERO, Duration::from_secs(600));
        for p in &s {
            let record = serde_json::to_value(p).unwrap_or_default();
            let name = record["fault"].as_str().unwrap_or_default();
            assert_eq!(name, p.fault.name());
            assert!(!["kill", "kill-leader", "pause-client"].contains(&name), "old chaos name {name}");
            assert_eq!(fenced_check::nemesis::Fault::from_record(name, &record), p.fault);
        }
    }

    #[test]
    fn partitions_are_symmetric() {
        for kind in [
            PartitionKind::RandomHalves,
            PartitionKind::IsolateLeader,
            PartitionKind::MajoritiesRing,
            PartitionKind::Bridge,
        ] {
            let d = partition_drops(kind, 5, Some(3), 9);
            for (a, set) in &d {
                for b in set {
                    assert!(d[b].contains(a), "{kind:?}: {a} drops {b} but not back");
                    assert_ne!(a, b);
                }
            }
        }
    }

    #[test]
    fn partition_shapes() {
        let iso = partition_drops(PartitionKind::IsolateLeader, 3, Some(2), 0);
        assert_eq!(iso[&2], [1, 3].into_iter().collect());
        assert_eq!(iso[&1], [2].into_iter().collect());
        // Ring of 5: each node loses exactly the two non-neighbours.
        let ring = partition_drops(PartitionKind::MajoritiesRing, 5, None, 0);
        assert_eq!(ring[&1], [3, 4].into_iter().collect());
        assert!(ring.values().all(|s| s.len() == 2));
        // Bridge of 5: {1,2} | 3 | {4,5}; node 3 hears everyone.
        let bridge = partition_drops(PartitionKind::Bridge, 5, None, 0);
        assert!(!bridge.contains_key(&3));
        assert_eq!(bridge[&1], [4, 5].into_iter().collect());
    }

    #[test]
    fn nft_rules() {
        let s = nft_script(&[Ipv4Addr::new(10, 77, 1, 2), Ipv4Addr::new(10, 77, 1, 3)], None);
        assert!(s.starts_with("table inet fchaos\ndelete table inet fchaos\n"));
        assert!(s.contains("ip saddr { 10.77.1.2, 10.77.1.3 } drop"));
        assert!(!s.contains("daddr"));
        let m = nft_script(&[], Some("10.77.1.0/24"));
        assert!(m.contains(
            "chain output {\n    type filter hook output priority 0; policy accept;\n    ip daddr 10.77.1.0/24 drop"
        ));
        assert!(!m.contains("saddr"));
        assert_eq!(nft_heal_script(), "table inet fchaos\ndelete table inet fchaos\n");
    }

    #[test]
    fn kinds_parse_and_faketime_text() {
        assert_eq!("one-way".parse::<Kind>(), Ok(Kind::OneWay));
        assert_eq!("membership".parse::<Kind>(), Ok(Kind::Membership));
        assert!("bogus".parse::<Kind>().is_err());
        assert_eq!(faketime_offset(-45), "-45s\n");
        assert_eq!(faketime_offset(30), "+30s\n");
    }
}
