//! `fenced cluster ...`: status and leadership.

use super::endpoints;
use super::lock::Common;
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Each replica's view: state, leader, term, commit and applied index.
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
    /// Rotate the signing key (administrators): a new key signs from now on,
    /// and both are published until `retire-keys`. Give stores both keys
    /// (printed here) before retiring the old one.
    RotateKey {
        #[command(flatten)]
        common: Common,
    },
    /// End a rotation: stop publishing every key but the newest. Tokens
    /// signed with the old key stop verifying at stores that reload keys.
    RetireKeys {
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
            let cl = common.client()?;
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
        ClusterCommand::RotateKey { common } => keys(&common, true).await,
        ClusterCommand::RetireKeys { common } => keys(&common, false).await,
    }
}

async fn keys(common: &Common, rotate: bool) -> anyhow::Result<i32> {
    let cl = common.client()?;
    let r = if rotate { cl.rotate_key().await } else { cl.retire_keys().await };
    match r {
        Ok(k) if common.json => {
            println!("{}", serde_json::to_string(&k)?);
            Ok(0)
        }
        Ok(k) => {
            println!("signing key: {}", k.public_key);
            println!("published keys (give all of them to the stores, one --cluster-key each):");
            for key in &k.public_keys {
                println!("  {key}");
            }
            Ok(0)
        }
        Err(e) => Ok(super::lock::report(common, &e)),
    }
}

async fn status(common: Common) -> anyhow::Result<i32> {
    let eps = endpoints(&common.endpoints);
    let cl = common.credentials.client(eps.clone())?;
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
    }
    Ok(if reachable * 2 > eps.len() { 0 } else { 1 })
}
