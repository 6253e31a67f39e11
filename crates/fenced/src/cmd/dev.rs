//! `fenced dev`: a 3-replica cluster in one process, on loopback.

use super::serve::seams;
use anyhow::Context;
use clap::Args;
use fenced_core::machine::token::encode_public_key;
use fenced_replica::config::ReplicaConfig;
use fenced_replica::server;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Where the three replicas keep their data.
    #[arg(long, default_value = "./.fenced-dev")]
    pub data_dir: PathBuf,
    /// The first of three consecutive loopback ports.
    #[arg(long, default_value_t = 7001)]
    pub base_port: u16,
    /// Start, wait for a leader, print the endpoints, and exit (for scripts and tests).
    #[arg(long)]
    pub smoke: bool,
}

pub async fn run(a: DevArgs) -> anyhow::Result<i32> {
    super::init_logging("warn");
    let peers: BTreeMap<u64, String> =
        (1..=3u64).map(|i| (i, format!("127.0.0.1:{}", a.base_port + i as u16 - 1))).collect();
    let mut running = Vec::new();
    for (id, addr) in &peers {
        let config = ReplicaConfig::new(*id, addr.clone(), peers.clone());
        let dir = a.data_dir.join(id.to_string());
        let r = server::start(config, seams(&dir)?)
            .await
            .with_context(|| format!("cannot start replica {id} on {addr}; is the port free? try --base-port"))?;
        running.push(r);
    }
    let endpoints: Vec<&str> = peers.values().map(String::as_str).collect();
    let endpoints = endpoints.join(",");
    // Wait for a leader and the signing key, so the example works at once.
    let mut key = None;
    for _ in 0..100 {
        key = running.iter().find_map(|r| r.replica.shared.read(|t| t.public_keys().last().map(encode_public_key)));
        if key.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("fenced dev: 3 replicas on {endpoints} (plaintext, loopback only; data in {})", a.data_dir.display());
    match &key {
        Some(k) => println!("cluster public key: {k}"),
        None => println!("warning: no leader elected within 10 s; see the log above"),
    }
    let consoles: Vec<String> = peers.values().map(|a| format!("http://{a}/ui")).collect();
    println!("console: {} (any replica; each shows its own view)", consoles.join("  "));
    println!();
    println!("try, in another terminal:");
    println!("  fenced lock acquire orders --ttl 10s --endpoints {endpoints}");
    println!("  fenced lock hold orders --ttl 5s --endpoints {endpoints} -- sh -c 'echo token=$FENCED_TOKEN; sleep 3'");
    println!("  fenced cluster status --endpoints {endpoints}");
    if !a.smoke {
        println!();
        println!("serving until Ctrl-C");
        tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")?;
    }
    for r in running {
        r.stop().await;
    }
    Ok(if key.is_some() { 0 } else { 1 })
}
