//! Prints a generated, valid fenced history (JSONL), for demos and reports:
//! `cargo run -p fenced-check --example gen_history -- OPS CLIENTS SEED > h.jsonl`

use fenced_check::testgen::{generate, GenOptions};

fn main() {
    let arg = |n: usize, default: u64| std::env::args().nth(n).and_then(|s| s.parse().ok()).unwrap_or(default);
    let opts = GenOptions {
        ops: usize::try_from(arg(1, 1000)).unwrap_or(1000),
        clients: arg(2, 10),
        seed: arg(3, 1),
        ..GenOptions::default()
    };
    let h = generate(&opts);
    if let Err(e) = h.write_jsonl(std::io::stdout().lock()) {
        eprintln!("gen_history: {e}");
        std::process::exit(1);
    }
}
