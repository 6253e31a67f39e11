//! `fenced cluster ...`: status and leadership.

use super::endpoints;
use super::lock::Common;
use clap::Subcommand;
use fenced_client::{Client, ClientConfig};
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Each replica's view: state, leader, term, commit and applied index; its
    /// peers' phi, last-heard and RTT percentiles; its wall-clock error bound,
    /// pauses, clock jumps, fsync latency and whether it is a limping leader.
    Status {
        #[command(flatten)]
        common: Common,
    },
    /// Hand leadership to replica ID.
    TransferLeader {
        id: u64,
        #[command(flatten)]
        common: Common,
    },
}

fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub async fn run(c: ClusterCommand) -> anyhow::Result<i32> {
    super::init_logging("warn");
    match c {
        ClusterCommand::Status { common } => status(common).await,
        ClusterCommand::TransferLeader { id, common } => {
            let cl = Client::new(ClientConfig::new(endpoints(&common.endpoints)))?;
            match cl.transfer_leader(id).await {
                Ok(s) => {
                    if common.json {
                        println!("{}", serde_json::to_string(&s)?);
                    } else {
                        println!("leader is now {} (term {})", show(&json!(s.leader)), s.term);
                    }
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(1)
                }
            }
        }
    }
}

async fn status(common: Common) -> anyhow::Result<i32> {
    let eps = endpoints(&common.endpoints);
    let cl = Client::new(ClientConfig::new(eps.clone()))?;
    let mut rows = Vec::new();
    let mut reachable = 0;
    for ep in &eps {
        match cl.cluster_status_of(ep).await {
            Ok(s) => {
                reachable += 1;
                rows.push(json!({"endpoint": ep, "status": s}));
            }
            Err(e) => rows.push(json!({"endpoint": ep, "error": e.to_string()})),
        }
    }
    if common.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<22} {:>3} {:<10} {:>6} {:>6} {:>8} {:>8}",
            "ENDPOINT", "ID", "STATE", "LEADER", "TERM", "COMMIT", "APPLIED"
        );
        for r in &rows {
            let ep = show(&r["endpoint"]);
            match r.get("status") {
                Some(s) => println!(
                    "{:<22} {:>3} {:<10} {:>6} {:>6} {:>8} {:>8}",
                    ep,
                    show(&s["id"]),
                    show(&s["state"]),
                    show(&s["leader"]),
                    show(&s["term"]),
                    show(&s["commit_index"]),
                    show(&s["applied_index"])
                ),
                None => println!("{:<22} unreachable: {}", ep, show(&r["error"])),
            }
        }
        if let Some(k) = rows.iter().find_map(|r| r.get("status").and_then(|s| s["public_key"].as_str())) {
            println!("cluster public key: {k}");
        }
        let statuses: Vec<fenced_core::api::ClusterStatus> =
            rows.iter().filter_map(|r| r.get("status").and_then(|s| serde_json::from_value(s.clone()).ok())).collect();
        super::cluster_vitals::print(&statuses);
    }
    Ok(if reachable * 2 > eps.len() { 0 } else { 1 })
}
