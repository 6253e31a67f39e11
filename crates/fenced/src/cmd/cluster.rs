//! `fenced cluster ...`: status, leadership, membership, drain.

use super::endpoints;
use super::lock::Common;
use clap::Subcommand;
use fenced_client::Client;
use fenced_core::admin::Membership;
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
    /// The replicated membership: voters, learners, addresses.
    Members {
        #[command(flatten)]
        common: Common,
    },
    /// Join replica ID at HOST:PORT (started with `fenced serve --join`): as a learner until it has
    /// caught up, then as a voter (joint consensus).
    Add {
        id: u64,
        addr: String,
        /// Change even if the new voters would lack a live majority (warns).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Remove replica ID from the cluster.
    Remove {
        id: u64,
        /// Change even if the remaining voters would lack a live majority (warns).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Replace voter OLD (a dead machine) by replica NEW at HOST:PORT (started with `--join`), in one change.
    Replace {
        old: u64,
        new: u64,
        addr: String,
        /// Change even if the new voters would lack a live majority (warns).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Drain replica ID before stopping it: it hands off leadership and refuses new sessions.
    /// (`fenced serve` drains by itself on SIGTERM.)
    Drain {
        id: u64,
        #[command(flatten)]
        common: Common,
    },
    /// What each replica saw at its peer handshakes: protocol and data versions, cluster, timing mismatches.
    Peers {
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
    /// Backups: `fenced cluster snapshot save FILE` (administrators).
    #[command(subcommand)]
    Snapshot(super::snapshot::ClusterSnapshot),
    /// After losing a majority for good: rewrite a stopped survivor's data directory as a one-member
    /// cluster whose tokens all exceed every token the old cluster could have issued; every lease ends.
    /// Start it alone, then add members back with `fenced cluster add`. See docs/operations.md.
    Recover(super::snapshot::Recover),
    /// End a rotation: stop publishing every key but the newest. Tokens
    /// signed with the old key stop verifying at stores that reload keys.
    RetireKeys {
        #[command(flatten)]
        common: Common,
    },
}

fn print_membership(m: &Membership, json: bool) -> anyhow::Result<i32> {
    for w in &m.warnings {
        eprintln!("warning: {w}");
    }
    if json {
        println!("{}", serde_json::to_string(m)?);
        return Ok(0);
    }
    println!("{:>4} {:<8} {:<22}", "ID", "ROLE", "ADDRESS");
    for (id, addr) in &m.nodes {
        let role = if m.leader == Some(*id) {
            "leader"
        } else if m.voters.contains(id) {
            "voter"
        } else {
            "learner"
        };
        println!("{id:>4} {role:<8} {addr:<22}");
    }
    println!("membership entry at log index {}", m.log_index);
    Ok(0)
}

fn report(r: Result<Membership, fenced_client::ClientError>, json: bool) -> anyhow::Result<i32> {
    match r {
        Ok(m) => print_membership(&m, json),
        Err(e) => Ok(refused(&e)),
    }
}

/// Print why the cluster refused, with what to do next; exit status 1.
fn refused(e: &fenced_client::ClientError) -> i32 {
    eprintln!("error: {e}");
    if let fenced_client::ClientError::Api { status: 401 | 403, .. } = e {
        eprintln!(
            "membership changes and drains need an administrator identity: pass --ca, --cert and --key of an \
             identity listed under \"admins\" in the cluster's --auth policy (or --auth-token of one); see docs/security.md"
        );
    }
    1
}

/// A client with `common`'s credentials and transport (TLS, client
/// certificate, bearer token). Every cluster command goes through it: a
/// plain TCP client against TLS replicas fails with `invalid HTTP version
/// parsed` (issue 17).
fn client(common: &Common) -> anyhow::Result<Client> {
    common.client()
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
        ClusterCommand::Members { common } => report(client(&common)?.members().await, common.json),
        ClusterCommand::Add { id, addr, force, common } => {
            report(client(&common)?.add_member(id, &addr, force).await, common.json)
        }
        ClusterCommand::Remove { id, force, common } => {
            report(client(&common)?.remove_member(id, force).await, common.json)
        }
        ClusterCommand::Replace { old, new, addr, force, common } => {
            report(client(&common)?.replace_member(old, new, &addr, force).await, common.json)
        }
        ClusterCommand::Drain { id, common } => drain(id, common).await,
        ClusterCommand::Peers { common } => peers(common).await,
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
        ClusterCommand::Snapshot(super::snapshot::ClusterSnapshot::Save { file, common }) => {
            super::snapshot::save(&file, &common).await
        }
        ClusterCommand::Recover(r) => super::snapshot::recover(r),
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
        let statuses: Vec<fenced_core::api::ClusterStatus> =
            rows.iter().filter_map(|r| r.get("status").and_then(|s| serde_json::from_value(s.clone()).ok())).collect();
        super::cluster_vitals::print(&statuses);
    }
    Ok(if reachable * 2 > eps.len() { 0 } else { 1 })
}

async fn drain(id: u64, common: Common) -> anyhow::Result<i32> {
    let cl = client(&common)?;
    let addr = match cl.members().await {
        Ok(m) => m.nodes.get(&id).cloned(),
        Err(e) => {
            eprintln!("error: cannot read the membership: {e}");
            return Ok(1);
        }
    };
    let Some(addr) = addr else {
        eprintln!("error: replica {id} is not a member (fenced cluster members)");
        return Ok(1);
    };
    match cl.drain_at(&addr).await {
        Ok(d) => {
            if common.json {
                println!("{}", serde_json::to_string(&d)?);
            } else {
                println!(
                    "replica {id} is draining; leader is {}. Stop it now (SIGTERM), then restart it",
                    show(&json!(d.leader))
                );
            }
            Ok(0)
        }
        Err(e) => Ok(refused(&e)),
    }
}

async fn peers(common: Common) -> anyhow::Result<i32> {
    let cl = client(&common)?;
    let mut rows = Vec::new();
    let mut mismatches = 0;
    for ep in endpoints(&common.endpoints) {
        match cl.peers_of(&ep).await {
            Ok(r) => {
                mismatches += r.peers.values().filter(|p| p.timing_mismatch.is_some()).count();
                rows.push(json!({"endpoint": ep, "report": r}));
            }
            Err(e) => rows.push(json!({"endpoint": ep, "error": e.to_string()})),
        }
    }
    if common.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in &rows {
            let Some(rep) = r.get("report") else {
                println!("{}: unreachable: {}", show(&r["endpoint"]), show(&r["error"]));
                continue;
            };
            println!(
                "{}: replica {} protocol v{} data v{} cluster {} key {} {}{}",
                show(&r["endpoint"]),
                show(&rep["id"]),
                show(&rep["protocol"]),
                show(&rep["data_format"]),
                show(&rep["cluster"]),
                show(&rep["cluster_key"]),
                show(&rep["timing"]),
                if rep["draining"] == json!(true) { " DRAINING" } else { "" }
            );
            if let Some(peers) = rep["peers"].as_object() {
                for (id, p) in peers {
                    match p["timing_mismatch"].as_str() {
                        Some(m) => println!("  peer {id}: protocol v{} MISMATCH {m}", show(&p["protocol"])),
                        None => println!("  peer {id}: protocol v{} timing agrees", show(&p["protocol"])),
                    }
                }
            }
        }
    }
    Ok(if mismatches == 0 { 0 } else { 1 })
}
