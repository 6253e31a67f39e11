//! `fenced debug log`: print a stopped replica's Raft log, for audits and
//! for tests that check what the log decided.

use anyhow::Context;
use clap::Subcommand;
use fenced_io::disk::FsDisk;
use fenced_replica::log_store::LogStore;
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
}

pub async fn run(c: DebugCommand) -> anyhow::Result<i32> {
    let DebugCommand::Log { data_dir, json } = c;
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
