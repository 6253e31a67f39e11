//! Layer 4: a replica's vital signs, shared by the API (status, `/metrics`),
//! the node (the pause step-down), the probe loop, the timekeeper and the
//! limping-leader check: peers ([`crate::peer::health`]), clocks and pauses
//! ([`timekeeper`]), fsync latency ([`fenced_io::timed_disk`]) and the limp
//! judgement ([`limp`]). Records and pure judgements only: the loops that
//! feed them are duties ([`crate::duties`]).

pub mod limp;
pub mod timekeeper;

use crate::config::ReplicaConfig;
use crate::peer::health::PeerStats;
use crate::vitals::limp::LimpState;
use crate::vitals::timekeeper::Timekeeper;
use fenced_core::toolbox::clock::Clock;
use fenced_io::timed_disk::FsyncWindow;
use std::fmt::Write;
use std::sync::Arc;

pub struct Vitals {
    pub peers: Arc<PeerStats>,
    pub timekeeper: Timekeeper,
    pub fsync: FsyncWindow,
    pub limp: LimpState,
}

impl Vitals {
    pub fn new(config: &ReplicaConfig, clock: Arc<dyn Clock>, fsync: FsyncWindow) -> Self {
        Vitals {
            peers: Arc::new(PeerStats::new(config.id, clock.clone(), config.heartbeat)),
            timekeeper: Timekeeper::new(clock, config.tick, config.election_timeout_min),
            fsync,
            limp: LimpState::default(),
        }
    }

    /// Prometheus lines for the vital signs of replica `id`.
    pub fn prometheus(&self, id: u64, members: &std::collections::BTreeSet<u64>) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, v: f64| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{replica=\"{id}\"}} {v}\n");
        };
        let c = self.timekeeper.health();
        metric(
            "fenced_wall_clock_max_error_seconds",
            "gauge",
            "Kernel maxerror of the wall clock (adjtimex).",
            c.wall.max_error_us as f64 / 1e6,
        );
        metric(
            "fenced_wall_clock_est_error_seconds",
            "gauge",
            "Kernel esterror of the wall clock (adjtimex).",
            c.wall.est_error_us as f64 / 1e6,
        );
        metric(
            "fenced_wall_clock_earliest_seconds",
            "gauge",
            "Earliest possible true time (now - maxerror).",
            c.wall.earliest_ms as f64 / 1e3,
        );
        metric(
            "fenced_wall_clock_latest_seconds",
            "gauge",
            "Latest possible true time (now + maxerror).",
            c.wall.latest_ms as f64 / 1e3,
        );
        metric(
            "fenced_wall_clock_synchronized",
            "gauge",
            "1 unless the kernel reports STA_UNSYNC.",
            f64::from(u8::from(c.wall.synchronized)),
        );
        metric(
            "fenced_clock_jumps_total",
            "counter",
            "Wall-clock jumps detected against the monotonic clock.",
            c.jumps as f64,
        );
        metric("fenced_pauses_total", "counter", "Pauses longer than the election timeout.", c.pauses as f64);
        metric(
            "fenced_pause_stepdowns_total",
            "counter",
            "Step-downs as leader after a pause.",
            c.pause_stepdowns as f64,
        );
        metric(
            "fenced_tick_lateness_p99_seconds",
            "gauge",
            "p99 scheduling lateness of the replica tick.",
            c.lateness.p99_us as f64 / 1e6,
        );
        let f = self.fsync.lock().map(|w| w.summary()).unwrap_or_default();
        metric("fenced_fsync_p50_seconds", "gauge", "Median log fsync latency (recent window).", f.p50_us as f64 / 1e6);
        metric("fenced_fsync_p99_seconds", "gauge", "p99 log fsync latency (recent window).", f.p99_us as f64 / 1e6);
        let l = self.limp.status();
        metric("fenced_limping", "gauge", "1 if this leader judges itself limping.", f64::from(u8::from(l.limping)));
        metric(
            "fenced_limp_transfers_total",
            "counter",
            "Leadership transfers because of limping.",
            l.transfers as f64,
        );
        let peers = self.peers.health(members);
        type Family = (&'static str, &'static str, fn(&fenced_core::api::PeerHealth) -> f64);
        let families: [Family; 6] = [
            ("fenced_peer_phi", "Phi-accrual suspicion of the peer.", |h| h.phi),
            ("fenced_peer_rtt_p99_seconds", "p99 probe round trip to the peer.", |h| h.rtt.p99_us as f64 / 1e6),
            (
                "fenced_peer_replication_bytes_per_second",
                "AppendEntries bytes acknowledged by the peer per second (30 s window, as leader).",
                |h| h.replication_throughput.bytes_per_s,
            ),
            (
                "fenced_peer_replication_entries_per_second",
                "Log entries appended by the peer per second (30 s window, as leader).",
                |h| h.replication_throughput.entries_per_s,
            ),
            (
                "fenced_peer_replication_busy_bytes_per_second",
                "AppendEntries bytes per second of round trip to the peer (the link while busy).",
                |h| h.replication_throughput.busy_bytes_per_s.unwrap_or(0.0),
            ),
            (
                "fenced_peer_link_bytes_per_second",
                "Outbound link rate to the peer from bandwidth probes (30 s window).",
                |h| h.link_throughput.busy_bytes_per_s.unwrap_or(0.0),
            ),
        ];
        for (name, help, value) in families {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n");
            for (peer, h) in &peers {
                let _ = writeln!(out, "{name}{{replica=\"{id}\",peer=\"{peer}\"}} {}", value(h));
            }
        }
        out
    }
}
