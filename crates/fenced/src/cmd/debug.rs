//! `fenced debug log`: print a stopped replica's Raft log, for audits and
//! for tests that check what the log decided. `fenced debug history`: the
//! same logs as history events (`process: "log"`, docs/history.md), for
//! histories recorded outside this binary (the Python package's tests) to
//! be judged by `fenced check` with S4, S5 and S7.

use anyhow::Context;
use clap::Subcommand;
use fenced_io::disk::FsDisk;
use fenced_replica::storage::log_store::LogStore;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Subcommand, Debug)]
pub enum DebugCommand {
    /// Print every entry of a replica's log (the replica must be stopped);
    /// with `--json`, each entry says whether this replica knew it committed.
    Log {
        #[arg(long)]
        data_dir: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Print the committed lock decisions of stopped replicas' logs as
    /// history events (`process: "log"`), one JSON object per line: append
    /// them to a recorded history so that `fenced check` can judge S4, S5
    /// and S7. Compares the replicas' committed entries too (S5 `diverged`).
    History {
        /// A replica's data directory; repeat for each replica.
        #[arg(long = "data-dir", required = true)]
        data_dirs: Vec<PathBuf>,
        /// The events' `time` (ns since the history's start): the read-back time.
        #[arg(long, default_value_t = 0)]
        at: u64,
    },
}

pub async fn run(c: DebugCommand) -> anyhow::Result<i32> {
    let (data_dir, json) = match c {
        DebugCommand::Log { data_dir, json } => (data_dir, json),
        DebugCommand::History { data_dirs, at } => return history(data_dirs, at),
    };
    let disk = FsDisk::open(&data_dir).with_context(|| format!("cannot open {}", data_dir.display()))?;
    let log = LogStore::open(Arc::new(disk)).context("cannot read the raft log")?;
    let committed = log.committed_index().context("cannot read the raft log")?;
    for e in log.entries().context("cannot read the raft log")? {
        let (index, term) = (e.log_id.index, e.log_id.leader_id.term);
        let payload = match &e.payload {
            openraft::EntryPayload::Blank => json!({"blank": true}),
            openraft::EntryPayload::Normal(r) => json!({"request": r}),
            openraft::EntryPayload::Membership(m) => json!({"membership": m.to_string()}),
        };
        if json {
            // `committed`: this replica knew the entry committed (its own
            // committed index, which is recorded lazily, so it may lag).
            let committed = committed.is_some_and(|c| index <= c);
            println!("{}", json!({"index": index, "term": term, "committed": committed, "entry": payload}));
        } else {
            let text = match &e.payload {
                openraft::EntryPayload::Normal(r) => r.to_string(),
                other => format!("{other:?}").chars().take(120).collect(),
            };
            println!("{index:>8} t{term:<4} {text}");
        }
    }
    Ok(0)
}

fn history(data_dirs: Vec<PathBuf>, at: u64) -> anyhow::Result<i32> {
    let bin = std::env::current_exe().context("cannot find this binary")?;
    let dirs: Vec<(u64, PathBuf)> = data_dirs.into_iter().enumerate().map(|(i, d)| (i as u64 + 1, d)).collect();
    let nodes = dirs.len() as u64;
    let (events, notes) = fenced_chaos::run::read_back_dirs(&bin, &dirs, None, 0, nodes, at)?;
    for note in notes {
        eprintln!("note: {note}");
    }
    for e in events {
        println!("{}", serde_json::to_string(&e)?);
    }
    Ok(0)
}
