//! Backup files: `fenced cluster snapshot save`, `fenced snapshot inspect`,
//! `fenced snapshot restore`, and `fenced cluster recover`. The formats,
//! the token floor and the reasoning live in `fenced_replica::storage::backup`.

use super::config::parse_peers;
use super::lock::Common;
use anyhow::Context;
use clap::{Args, Subcommand};
use fenced_io::disk::FsDisk;
use fenced_replica::storage::backup::{self, Started, DEFAULT_BUMP};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Show a backup file: its log index, members, locks and highest token.
    Inspect {
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create the data directory of one replica of a NEW cluster from a backup file. Run it on every
    /// member with the same file and --peers, then start each with `fenced serve`. Every token of the
    /// new cluster exceeds every token the old one could have issued (the token floor); every lease ends.
    /// Stop the old cluster for good first: it must never run again beside the new one.
    Restore {
        file: PathBuf,
        /// An empty (or absent) directory for this replica.
        #[arg(long)]
        data_dir: PathBuf,
        /// This replica's id in the new cluster.
        #[arg(long)]
        id: u64,
        /// Every voter of the new cluster, this one included: `1=HOST:PORT,2=HOST:PORT,3=HOST:PORT`.
        #[arg(long, value_parser = parse_peers)]
        peers: BTreeMap<u64, String>,
        /// The new cluster's name; pass the same to `fenced serve --cluster-name`. A new name keeps any
        /// replica of the old cluster from ever talking to the new one.
        #[arg(long)]
        cluster_name: String,
        #[command(flatten)]
        floor: Floor,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// The token floor's bump.
#[derive(Args, Debug, Clone, Copy)]
pub struct Floor {
    /// How far above the highest log index known the new cluster starts: it bounds the entries the old
    /// cluster may have committed that this data does not hold. docs/design.md argues the default.
    #[arg(long, default_value_t = DEFAULT_BUMP, value_parser = clap::value_parser!(u64).range(1..))]
    pub bump: u64,
}

/// `fenced cluster snapshot ...`.
#[derive(Subcommand, Debug)]
pub enum ClusterSnapshot {
    /// Save a consistent snapshot of the cluster's state, taken by the leader (administrators), to FILE.
    Save {
        file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
}

/// `fenced cluster recover`.
#[derive(Args, Debug)]
pub struct Recover {
    /// The surviving replica's data directory (the replica must be stopped).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The surviving replica's id.
    #[arg(long)]
    pub id: u64,
    /// Its address, if the membership it holds does not name it (or it moved).
    #[arg(long)]
    pub addr: Option<String>,
    #[command(flatten)]
    pub floor: Floor,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(c: SnapshotCommand) -> anyhow::Result<i32> {
    match c {
        SnapshotCommand::Inspect { file, json } => inspect(&file, json),
        SnapshotCommand::Restore { file, data_dir, id, peers, cluster_name, floor, json } => {
            let b = read(&file)?;
            let disk = open_dir(&data_dir)?;
            let started = backup::restore(&disk, &b, &cluster_name, id, &peers, floor.bump)?;
            print_started(&started, json, "restored")?;
            if !json {
                println!(
                    "next: on every member, run this command with its own --id and --data-dir, then start each with\n  \
                     fenced serve --id {id} --data-dir {} --cluster-name {cluster_name} --peers {} --listen ...",
                    data_dir.display(),
                    peers_arg(&started.members)
                );
            }
            Ok(0)
        }
    }
}

fn open_dir(dir: &Path) -> anyhow::Result<FsDisk> {
    FsDisk::open(dir).with_context(|| format!("cannot open the data directory {}", dir.display()))
}

fn read(file: &Path) -> anyhow::Result<backup::Backup> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    backup::decode(&bytes).with_context(|| format!("{} is not a usable backup", file.display()))
}

fn peers_arg(m: &BTreeMap<u64, String>) -> String {
    m.iter().map(|(id, a)| format!("{id}={a}")).collect::<Vec<_>>().join(",")
}

fn inspect(file: &Path, json: bool) -> anyhow::Result<i32> {
    let s = read(file)?.summary();
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(0);
    }
    println!("backup format v{} of cluster {:?}, taken by replica {}", s.format, s.cluster, s.taken_by);
    println!("log index {} (term {})", s.index, s.term);
    println!("members: {}", peers_arg(&s.members));
    println!("leases: {}  claims: {}  locks held: {}", s.leases, s.claims, s.locks.len());
    for l in &s.locks {
        println!("  {:<30} token {:>12} lease {}", l.lock, l.token, l.lease);
    }
    println!("highest token: {}", s.highest_token);
    println!("a restore with the default --bump starts above token {}", s.restore_floor);
    Ok(0)
}

fn print_started(s: &Started, json: bool, what: &str) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!(
        "{what} replica {} of cluster {:?} (members {}); highest index known {}, token floor {}: every new token exceeds it",
        s.id,
        s.cluster,
        peers_arg(&s.members),
        s.known_index,
        s.floor
    );
    println!(
        "ended {} leases, freed {} locks, dropped {} lease-bound claims: their holders must acquire again",
        s.leases_ended, s.locks_freed, s.claims_dropped
    );
    Ok(())
}

/// `fenced cluster snapshot save FILE`.
pub async fn save(file: &Path, common: &Common) -> anyhow::Result<i32> {
    let cl = common.client()?;
    let export = match cl.snapshot().await {
        Ok(e) => e,
        Err(e) => return Ok(super::lock::report(common, &e)),
    };
    let bytes = backup::decode_export(&export)?;
    let b = backup::decode(&bytes).context("the leader sent a backup this build cannot read")?;
    // Written to a temporary name and renamed, after an fsync: a crash
    // leaves the old file or the new one, never half of one.
    let tmp = file.with_extension("partial");
    {
        // The table holds the signing secrets: only the owner may read a backup.
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, file).with_context(|| format!("cannot rename {} to {}", tmp.display(), file.display()))?;
    let s = b.summary();
    if common.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!(
            "saved {} ({} bytes): log index {}, {} locks held, highest token {}",
            file.display(),
            bytes.len(),
            s.index,
            s.locks.len(),
            s.highest_token
        );
    }
    Ok(0)
}

/// `fenced cluster recover`.
pub fn recover(r: Recover) -> anyhow::Result<i32> {
    let disk = Arc::new(open_dir(&r.data_dir)?);
    let started = backup::recover(disk, r.id, r.addr, r.floor.bump)?;
    print_started(&started, r.json, "recovered")?;
    if !r.json {
        let addr = started.members.get(&r.id).cloned().unwrap_or_default();
        println!(
            "the survivor's old files are kept as *{}. next: start it alone, then add the others back:\n  \
             fenced serve --id {} --data-dir {} --cluster-name {} --peers {}={addr} --listen {addr}\n  \
             fenced serve --join ... (on each new machine, with an empty data directory), then\n  \
             fenced cluster add ID HOST:PORT --endpoints {addr}",
            backup::KEPT_SUFFIX,
            r.id,
            r.data_dir.display(),
            started.cluster,
            r.id,
        );
    }
    Ok(0)
}
