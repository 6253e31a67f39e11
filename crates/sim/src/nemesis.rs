//! The nemesis: a fault schedule drawn from the seed, and its application to
//! the simulated world. Every fault the seed's chapter names is here:
//! partitions (halves, isolated leader, majorities ring, bridge, one-way),
//! loss, duplicated requests, heavy-tailed delay, a limping link, replies lost after the request
//! was processed, crashes with and without recovery (and a leader's
//! immediate restart), process pauses,
//! clock drift and wall-clock jumps.

use crate::config::{Faults, Model, SimConfig};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

pub use fenced_check::nemesis::{Fault, PartitionKind, Planned};

/// Why the simulator cannot make a fault it was given (in a script).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the simulator cannot make the fault `{0}` (it makes partition, one-way, loss, duplicate, delay, limp, \
     lost-replies, crash, crash-store, restart-leader, pause and wall-jump; the chaos runner makes the rest)"
)]
pub struct Unsupported(pub String);

/// Whether the simulator can make `fault` from a schedule. Client pauses
/// come from the workload, membership changes from `--membership`, the
/// disaster from `--disaster`, and `heal-all` from the driver at GST; the
/// chaos runner's faults that name a target it picks at run time, and its
/// wall-clock offsets, have no simulator interpretation.
pub fn supported(fault: &Fault) -> Result<(), Unsupported> {
    match fault {
        Fault::Partition { .. }
        | Fault::OneWay { .. }
        | Fault::Loss { .. }
        | Fault::Duplicate { .. }
        | Fault::Delay { .. }
        | Fault::Limp { .. }
        | Fault::LostReplies { .. }
        | Fault::Crash { .. }
        | Fault::CrashStore
        | Fault::RestartLeader
        | Fault::Pause { .. }
        | Fault::WallJump { .. } => Ok(()),
        Fault::PauseLeader
        | Fault::ClientPause { .. }
        | Fault::Clock { .. }
        | Fault::Membership { .. }
        | Fault::Disaster
        | Fault::HealAll
        | Fault::Other(_) => Err(Unsupported(fault.name().to_string())),
    }
}

/// Exponential with the given mean, capped: most faults are short, a few long.
fn heavy(rng: &mut ChaCha8Rng, mean: Duration, cap: Duration) -> Duration {
    let u: f64 = rng.gen_range(1e-9..1.0);
    mean.mul_f64(-u.ln()).min(cap)
}

/// Draw the schedule. Two independent tracks (network, process) may
/// overlap; everything ends by GST in the partial model.
pub fn schedule(cfg: &SimConfig) -> Vec<Planned> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x6e65_6d65_7369_7321);
    let mut out = Vec::new();
    if let Some(script) = &cfg.script {
        return script.clone();
    }
    if !cfg.nemesis {
        return out;
    }
    let gst = cfg.gst();
    let n = cfg.nodes;
    let sync = cfg.model == Model::Sync;
    let (mean, cap) = if sync {
        (Duration::from_millis(300), Duration::from_secs(1))
    } else {
        (Duration::from_secs(2), Duration::from_secs(12))
    };
    // Network track.
    let mut t = Duration::from_millis(rng.gen_range(500..2000));
    while t < gst {
        let d = heavy(&mut rng, mean, cap).max(Duration::from_millis(100));
        let node = rng.gen_range(1..=n);
        let fault = if sync {
            match rng.gen_range(0..2) {
                0 => Fault::Delay { max_ms: rng.gen_range(5..50) },
                _ => Fault::Limp { node },
            }
        } else {
            match rng.gen_range(0..10) {
                0 => Fault::Partition { kind: PartitionKind::RandomHalves },
                1 => Fault::Partition { kind: PartitionKind::IsolateLeader },
                2 if n >= 5 => Fault::Partition { kind: PartitionKind::MajoritiesRing },
                2 | 3 => Fault::Partition { kind: PartitionKind::Bridge },
                4 => Fault::OneWay { node },
                5 => Fault::Loss { rate: rng.gen_range(0.01..0.2) },
                6 => Fault::Delay { max_ms: rng.gen_range(50..2000) },
                7 => Fault::Limp { node },
                8 => Fault::Duplicate { rate: rng.gen_range(0.2..0.8) },
                _ => Fault::LostReplies { node },
            }
        };
        out.push(Planned { start: t, end: (t + d).min(gst), fault });
        t += d + Duration::from_millis(rng.gen_range(300..3000));
    }
    // Process track.
    let minority = ((n - 1) / 2) as usize;
    let mut stopped: Vec<u64> = Vec::new();
    let mut t = Duration::from_millis(rng.gen_range(1000..3000));
    while t < gst {
        let d = heavy(&mut rng, mean, cap).max(Duration::from_millis(100));
        let node = rng.gen_range(1..=n);
        let fault = match rng.gen_range(0..7) {
            0 | 1 if cfg.faults == Faults::CrashStop => {
                if stopped.len() < minority && !stopped.contains(&node) {
                    stopped.push(node);
                    Fault::Crash { node }
                } else {
                    Fault::Pause { node }
                }
            }
            0 | 1 => Fault::Crash { node },
            2 => Fault::CrashStore,
            3 | 4 => Fault::Pause { node },
            5 => Fault::WallJump { node, ms: rng.gen_range(-60_000..60_000) },
            _ if cfg.faults == Faults::CrashStop => Fault::Pause { node },
            _ => Fault::RestartLeader,
        };
        let end = match fault {
            Fault::Crash { .. } if cfg.faults == Faults::CrashStop => cfg.duration * 10,
            Fault::RestartLeader => (t + Duration::from_millis(rng.gen_range(1..200))).min(gst),
            _ => (t + d).min(gst),
        };
        out.push(Planned { start: t, end, fault });
        t += d + Duration::from_millis(rng.gen_range(300..3000));
    }
    out.sort_by_key(|p| p.start);
    out
}

/// Per-host clock drift for the run, within ±rho (or beyond it).
pub fn drifts(cfg: &SimConfig, hosts: usize) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x636c_6f63_6b73);
    let rho = if cfg.drift_beyond_rho { 0.05 } else { 0.0004 };
    (0..hosts).map(|_| rng.gen_range(-rho..rho)).collect()
}

/// Split `hosts` into two random non-empty groups.
pub fn halves(rng: &mut ChaCha8Rng, hosts: &[String]) -> (Vec<String>, Vec<String>) {
    let mut h = hosts.to_vec();
    h.shuffle(rng);
    let cut = rng.gen_range(1..h.len().max(2));
    let b = h.split_off(cut.min(h.len()));
    (h, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drawn_fault_is_one_the_simulator_makes() {
        for seed in 1..=20 {
            for model in [Model::Partial, Model::Sync] {
                let cfg = SimConfig { model, ..SimConfig::new(seed) };
                for p in schedule(&cfg) {
                    assert_eq!(supported(&p.fault), Ok(()), "seed {seed}: {:?}", p.fault);
                }
            }
        }
    }

    #[test]
    fn the_chaos_runners_faults_are_refused_by_name() {
        for (fault, name) in [
            (Fault::Clock { node: 1, offset_s: 30 }, "clock"),
            (Fault::PauseLeader, "pause-leader"),
            (Fault::ClientPause { client: Some(1), ms: Some(10) }, "client-pause"),
            (Fault::Other("gremlins".into()), "gremlins"),
        ] {
            let e = supported(&fault).expect_err("a fault the simulator cannot make");
            assert_eq!(e, Unsupported(name.into()));
            assert!(e.to_string().contains("the chaos runner makes the rest"));
        }
    }
}
