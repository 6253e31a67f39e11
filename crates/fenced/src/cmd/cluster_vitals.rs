//! The vital-signs part of `fenced cluster status`: each replica's view of
//! its peers (phi, last heard, RTT percentiles, replication and link
//! throughput), its wall-clock error bound,
//! pauses, jumps, fsync latency and the limping judgement.

use fenced_core::api::ClusterStatus;
use fenced_core::toolbox::latency::LatencySummary;

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

fn lat(s: &LatencySummary) -> String {
    if s.count == 0 {
        return "-".into();
    }
    format!("{}/{}/{}/{}", ms(s.p50_us), ms(s.p99_us), ms(s.p999_us), ms(s.max_us))
}

/// Print the vitals of every replica that answered.
pub fn print(statuses: &[ClusterStatus]) {
    println!();
    println!("peers, as each replica sees them (RTT and replication: p50/p99/p99.9/max ms):");
    println!(
        "{:>4} {:>4} {:>7} {:>9} {:>11} {:<26} {:<26}",
        "FROM", "TO", "PHI", "SUSPECT", "HEARD(ms)", "PROBE RTT", "REPLICATION"
    );
    for s in statuses {
        for (peer, h) in &s.peers {
            println!(
                "{:>4} {:>4} {:>7.2} {:>9} {:>11} {:<26} {:<26}",
                s.id,
                peer,
                h.phi,
                if h.suspected { "YES" } else { "no" },
                h.last_heard_ms_ago.map(|m| m.to_string()).unwrap_or_else(|| "never".into()),
                lat(&h.rtt),
                lat(&h.replication)
            );
        }
    }
    println!();
    println!(
        "throughput, as each replica sees it (REPLICATION: acknowledged AppendEntries over {} s while leading; \
         LINK: its bandwidth probes; REPORTED: the peer's own outbound links):",
        fenced_replica::peer::health::THROUGHPUT_SPAN.as_secs()
    );
    println!(
        "{:>4} {:>4} {:>12} {:>12} {:>14} {:>12} {:>12}",
        "FROM", "TO", "BYTES/S", "ENTRIES/S", "BUSY BYTES/S", "LINK", "REPORTED"
    );
    for s in statuses {
        for (peer, h) in &s.peers {
            let t = &h.replication_throughput;
            let opt = |r: Option<f64>| r.map_or_else(|| "-".to_string(), fenced_replica::vitals::limp::rate);
            println!(
                "{:>4} {:>4} {:>12} {:>12.1} {:>14} {:>12} {:>12}",
                s.id,
                peer,
                fenced_replica::vitals::limp::rate(t.bytes_per_s),
                t.entries_per_s,
                opt(t.busy_bytes_per_s),
                opt(h.link_throughput.busy_bytes_per_s),
                opt(h.reported_link_bytes_per_s.map(|r| r as f64)),
            );
        }
    }
    println!();
    println!("clocks and disks:");
    for s in statuses {
        if let Some(c) = &s.clock {
            let w = &c.wall;
            println!(
                "  replica {}: wall clock ±{} ms ({}), [{} .. {}] ms since epoch; jumps {}; pauses {} (longest {} ms, \
                 step-downs {}{}); tick lateness p99 {} ms",
                s.id,
                ms(w.max_error_us),
                if w.synchronized { "synchronized" } else { "NOT synchronized: the bound is not to be trusted" },
                w.earliest_ms,
                w.latest_ms,
                c.jumps,
                c.pauses,
                c.longest_pause_ms,
                c.pause_stepdowns,
                if c.awaiting_reconfirm { ", awaiting quorum re-confirmation" } else { "" },
                ms(c.lateness.p99_us)
            );
        }
        if let Some(f) = &s.fsync {
            println!("  replica {}: fsync p50/p99/p99.9/max {} ms over {} syncs", s.id, lat(f), f.count);
        }
        if let Some(l) = &s.limp {
            let flag = if l.limping { "LIMPING" } else { "ok" };
            println!("  replica {}: {flag}: {} (transfers: {})", s.id, l.reason, l.transfers);
            if let Some(why) = &l.last_transfer_reason {
                println!("  replica {}: last transfer because {why}", s.id);
            }
        }
    }
}
