//! What turmoil costs before any fenced code runs: a simulation of hosts that
//! do nothing, stepped for 35 simulated seconds (a 30 s seed and its settle
//! time), at the time steps `fenced sim --tick` offers.
//!
//! `cargo bench -p fenced-sim --bench turmoil_floor [-- HOSTS]`
//!
//! HOSTS defaults to 16: a 5-replica, 10-client seed's replicas, store and
//! clients. Each host sleeps on a 50 ms timer (a replica's heartbeat) or not
//! at all. Turmoil enters every host's runtime on every step, busy or idle,
//! so this is the least CPU such a seed can take on turmoil; see
//! `docs/benchmarks.md` ("Session 5") for what it means for the speed target.

use fenced_io::clock::now;
use std::time::Duration;

const SIMULATED: Duration = Duration::from_secs(35);

fn floor(hosts: usize, tick: Duration, timer: Option<Duration>) -> Duration {
    let mut sim = turmoil::Builder::new().tick_duration(tick).simulation_duration(SIMULATED * 2).build();
    for h in 0..hosts {
        sim.host(format!("h{h}"), move || async move {
            loop {
                match timer {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending::<()>().await,
                }
            }
        });
    }
    let steps = SIMULATED.as_nanos() / tick.as_nanos();
    let started = now();
    for _ in 0..steps {
        if let Err(e) = sim.step() {
            panic!("turmoil step failed: {e}");
        }
    }
    now().since(started)
}

fn main() {
    let hosts: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(16);
    println!("turmoil floor: {hosts} hosts, {} simulated s", SIMULATED.as_secs());
    println!(
        "{:>6} {:>10} {:>12} {:>16} {:>22}",
        "tick", "timers", "CPU s", "µs per host-step", "ceiling (sim s/wall s)"
    );
    for tick_ms in [1u64, 5, 10] {
        for timer in [None, Some(Duration::from_millis(50))] {
            let tick = Duration::from_millis(tick_ms);
            // Best of three: the least interference from the rest of the machine.
            let took = (0..3).map(|_| floor(hosts, tick, timer)).min().unwrap_or_default();
            let host_steps = (SIMULATED.as_nanos() / tick.as_nanos()) as f64 * hosts as f64;
            println!(
                "{:>4}ms {:>10} {:>12.3} {:>16.2} {:>22.0}",
                tick_ms,
                if timer.is_some() { "50 ms" } else { "none" },
                took.as_secs_f64(),
                took.as_secs_f64() * 1e6 / host_steps,
                SIMULATED.as_secs_f64() / took.as_secs_f64()
            );
        }
    }
}
