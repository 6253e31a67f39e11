//! `fenced check` without the rest of the binary:
//! `cargo run -p fenced-check --example check -- testdata/fig-8-4-unfenced.jsonl --html /tmp/r.html`

use clap::Parser;
use fenced_check::cli::{run, CheckArgs};

#[derive(Parser)]
#[command(name = "check", about = "Judge a fenced history (S1-S7, L1)")]
struct Cli {
    #[command(flatten)]
    check: CheckArgs,
}

fn main() {
    std::process::exit(run(&Cli::parse().check));
}
