//! `fenced chaos`: Jepsen-style fault injection on the real binaries. The
//! work lives in the `fenced-chaos` crate; this only supplies the path of
//! this very binary, which the driver starts as replicas, store and clients.

use anyhow::Context;

pub use fenced_chaos::cli::ChaosArgs;

pub async fn run(a: ChaosArgs) -> anyhow::Result<i32> {
    let bin = std::env::current_exe().context("cannot find the fenced binary's own path")?;
    Ok(fenced_chaos::cli::run(a, bin).await?)
}
