//! `fenced serve`: one replica.

use super::config::{resolve_or_bail, Settings};
use anyhow::Context;
use clap::Args;
use fenced_core::machine::token::encode_public_key;
use fenced_io::clock::SystemClock;
use fenced_io::disk::FsDisk;
use fenced_io::transport::TcpTransport;
use fenced_replica::node::Seams;
use fenced_replica::server;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long a stopping replica drains before it stops anyway: under the 30 s
/// a service manager usually waits after SIGTERM.
const DRAIN_ON_STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings come from flags, from `--config FILE` (TOML, the same names with
/// `_` for `-`), or both (flags win). See docs/operations.md.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// A TOML config file with any of the settings below; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Settings,
    #[command(flatten)]
    pub security: super::credentials::SecurityArgs,
}

pub fn seams(data_dir: &std::path::Path) -> anyhow::Result<Seams> {
    let disk = FsDisk::open(data_dir).with_context(|| format!("cannot open data dir {}", data_dir.display()))?;
    let mut key_entropy = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut key_entropy);
    Ok(Seams {
        transport: Arc::new(TcpTransport),
        disk: Arc::new(disk),
        clock: Arc::new(SystemClock::new()),
        seed: rand::random(),
        key_entropy,
    })
}

/// Wait for SIGTERM or Ctrl-C.
async fn stop_signal() -> anyhow::Result<&'static str> {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("cannot wait for SIGTERM")?;
    tokio::select! {
        _ = term.recv() => Ok("SIGTERM"),
        r = tokio::signal::ctrl_c() => r.map(|_| "Ctrl-C").context("cannot wait for Ctrl-C"),
    }
}

pub async fn run(a: ServeArgs) -> anyhow::Result<i32> {
    super::init_logging("info,openraft=warn");
    let settings = match &a.config {
        Some(path) => Settings::load(path)?.overridden_by(a.settings.clone()),
        None => a.settings.clone(),
    };
    let (mut config, data_dir) = resolve_or_bail(&settings)?;
    config.protection = a.security.protection()?;
    let mut seams = seams(&data_dir)?;
    seams.transport = a.security.transport()?;
    let (id, listen, heartbeat) = (config.id, config.listen.clone(), config.heartbeat);
    let running =
        server::start(config, seams).await.with_context(|| format!("cannot start replica {id} on {listen}"))?;
    eprintln!("fenced replica {id} serving on {} (data in {})", running.addr, data_dir.display());
    match (&a.security.tls.tls_ca, &a.security.tls.auth) {
        (Some(_), Some(_)) => eprintln!("TLS on (mutual between replicas); callers authenticated and authorized"),
        (Some(_), None) => eprintln!("TLS on; no --auth policy: every caller may do everything"),
        (None, _) if !fenced_io::transport::is_loopback(&running.addr) => eprintln!(
            "WARNING: PLAINTEXT on {}, which is not a loopback address: anyone on the network can read and change \
             requests, tokens included. Use --tls-ca, --tls-cert and --tls-key (`fenced certs` makes them)",
            running.addr
        ),
        (None, _) => eprintln!("PLAINTEXT, no authentication: use on trusted networks only (see docs/security.md)"),
    }
    let replica = running.replica.clone();
    tokio::spawn(async move {
        loop {
            if let Some(k) = replica.shared.read(|t| t.public_keys().last().map(encode_public_key)) {
                eprintln!("cluster public key: {k}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let why = stop_signal().await?;
    eprintln!("{why}: draining (handing off leadership, refusing new sessions)");
    match tokio::time::timeout(DRAIN_ON_STOP_TIMEOUT, fenced_replica::duties::drain::drain(&running.replica)).await {
        Ok(Ok(d)) => eprintln!("drained; leader is now {}", d.leader.map(|l| l.to_string()).unwrap_or("-".into())),
        Ok(Err(e)) => eprintln!("drain incomplete ({e}); stopping anyway"),
        Err(_) => eprintln!("drain did not finish within 15 s; stopping anyway"),
    }
    // Let followers hear of the new leader before this replica goes quiet.
    tokio::time::sleep(heartbeat * 3).await;
    running.stop().await;
    eprintln!("stopped");
    Ok(0)
}
