//! `fenced claim ...`: make and release claims.

use super::lock::{report, Common};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum ClaimCommand {
    /// Claim NAME for OWNER if nobody has (create-if-absent). Prints the
    /// claim's token and owner, and whether this call made it. A claim
    /// without `--lease` lasts until released; each identity may hold a
    /// bounded number of claims (docs/security.md, Limits).
    Make {
        name: String,
        /// Who the claim names (any string; shown to everyone who asks).
        #[arg(long)]
        owner: String,
        /// End the claim when this lease ends.
        #[arg(long)]
        lease: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// Release the claim on NAME. Only the identity that made it, or an
    /// administrator, may.
    Release {
        name: String,
        /// Release only if the claim's owner is this.
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

pub async fn run(c: ClaimCommand) -> anyhow::Result<i32> {
    super::init_logging("warn");
    match c {
        ClaimCommand::Make { name, owner, lease, common } => match common.client()?.claim(&name, &owner, lease).await {
            Ok(r) => {
                if common.json {
                    println!("{}", serde_json::to_string(&r)?);
                } else if r.won {
                    println!("claimed {} for {} token={}", r.name, r.owner, r.token);
                } else {
                    println!("{} is already claimed by {} (token {})", r.name, r.owner, r.token);
                }
                Ok(if r.won { 0 } else { 1 })
            }
            Err(e) => Ok(report(&common, &e)),
        },
        ClaimCommand::Release { name, owner, common } => {
            match common.client()?.release_claim(&name, owner.as_deref()).await {
                Ok(r) => {
                    if common.json {
                        println!("{}", serde_json::to_string(&r)?);
                    } else {
                        println!("released the claim on {} (owner {}, token {})", r.name, r.owner, r.token);
                    }
                    Ok(0)
                }
                Err(e) => Ok(report(&common, &e)),
            }
        }
    }
}
