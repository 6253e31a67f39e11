//! `fenced sem ...`: counting semaphores (docs/primitives.md).

use super::lock::{report, Common};
use super::parse_duration;
use clap::Subcommand;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum SemCommand {
    /// Create semaphore NAME with PERMITS permits, or change its count (a log
    /// entry). Holders above a lowered count keep their permits; no permit is
    /// granted until fewer than the count are held. 0 deletes it once nobody
    /// holds or awaits it.
    Permits {
        name: String,
        #[arg(long)]
        permits: u32,
        #[command(flatten)]
        common: Common,
    },
    /// Grant a lease and take one permit of NAME on it. The lease is not kept
    /// alive: the permit is held until released or until the TTL runs out.
    /// Release it with `fenced lock release NAME --token TOKEN`.
    Acquire {
        name: String,
        #[arg(long, value_parser = parse_duration)]
        ttl: Duration,
        /// Queue for a permit this long; without it, try once.
        #[arg(long, value_parser = parse_duration)]
        wait: Option<Duration>,
        #[command(flatten)]
        common: Common,
    },
}

pub async fn run(c: SemCommand) -> anyhow::Result<i32> {
    super::init_logging("warn");
    match c {
        SemCommand::Permits { name, permits, common } => {
            let cl = common.client()?;
            match cl.sem_permits(&name, permits).await {
                Ok(r) => {
                    if common.json {
                        println!("{}", serde_json::to_string(&r)?);
                    } else {
                        println!("{}: {} permits, {} held", r.name, r.permits, r.held);
                    }
                    Ok(0)
                }
                Err(e) => Ok(report(&common, &e)),
            }
        }
        SemCommand::Acquire { name, ttl, wait, common } => {
            let cl = common.client()?;
            let lease = match cl.grant_lease(ttl).await {
                Ok(l) => l,
                Err(e) => return Ok(report(&common, &e)),
            };
            match cl.sem_acquire_on(&name, lease.lease, wait.unwrap_or_default()).await {
                Ok(g) => {
                    if common.json {
                        println!("{}", serde_json::to_string(&g)?);
                    } else {
                        println!(
                            "acquired a permit of {} slot={} token={} lease={} ttl={}",
                            g.lock,
                            g.slot.unwrap_or(0),
                            g.token,
                            g.lease,
                            humantime::format_duration(ttl)
                        );
                        println!("signed token: {}", g.signed);
                        println!("(release with: fenced lock release {} --token {})", g.lock, g.token);
                    }
                    Ok(0)
                }
                Err(e) => {
                    let _ = cl.revoke(lease.lease).await;
                    Ok(report(&common, &e))
                }
            }
        }
    }
}
