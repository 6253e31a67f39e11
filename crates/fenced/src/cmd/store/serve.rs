//! `fenced store serve`: a fenced store on a real disk, a real clock and the
//! transport the security flags ask for, until SIGINT or SIGTERM.

use super::args::ServeArgs;
use super::Security;
use anyhow::Context;
use fenced_io::clock::SystemClock;
use fenced_io::disk::FsDisk;
use fenced_io::transport::is_loopback;
use fenced_store::config::{GuardMap, StoreConfig, StoreSeams};
use fenced_store::keys::{load_cluster_keys, KEY_RELOAD_INTERVAL};
use std::io::Write;
use std::sync::Arc;

/// Refuse a policy without TLS except on loopback: bearer tokens must not
/// cross a network in the clear. (A replica refuses it everywhere, since its
/// peers prove who they are with certificates; a store has no peers.)
pub fn check_security(listen: &str, security: &Security) -> anyhow::Result<()> {
    if security.policy.is_some() && !security.tls && !is_loopback(listen) {
        anyhow::bail!(
            "--auth on {listen} needs --tls-ca, --tls-cert and --tls-key: bearer tokens must not cross the \
             network in the clear (without TLS, a policy is allowed on loopback addresses only)"
        );
    }
    Ok(())
}

/// What `serve` says about its security, after the address it listens on.
pub fn security_summary(addr: &str, security: &Security) -> String {
    let auth = if security.policy.is_some() {
        "callers authenticated (bearer token or client certificate) and authorized per key prefix"
    } else {
        "no --auth policy: every caller may read and write every key"
    };
    match (security.tls, is_loopback(addr)) {
        (true, _) => format!("TLS on; {auth}"),
        (false, true) => format!("plaintext, loopback only; {auth}"),
        (false, false) => format!(
            "WARNING: PLAINTEXT on {addr}, which is not a loopback address: anyone on the network can read and \
             change requests and answers. Use --tls-ca, --tls-cert and --tls-key (`fenced certs` makes them). {auth}"
        ),
    }
}

/// The store configuration the flags ask for.
fn serve_config(a: &ServeArgs) -> anyhow::Result<StoreConfig> {
    let mut c = StoreConfig::new(a.listen.clone(), load_cluster_keys(&a.cluster_keys)?);
    let mut guards = GuardMap::default();
    for (p, l) in &a.guards {
        guards.insert(p.clone(), l.clone());
    }
    c.guards = guards;
    c.unsafe_no_fencing = a.unsafe_no_fencing;
    c.trust_unsigned_tokens = a.trust_unsigned_tokens;
    c.limits.value_len_max = a.value_len_max;
    c.limits.body_len_max = a.value_len_max;
    Ok(c)
}

/// Serve until SIGINT or SIGTERM; prints the address, the mode, the
/// security summary and the console's address.
pub async fn serve(a: ServeArgs, security: &Security, out: &mut (dyn Write + Send)) -> anyhow::Result<i32> {
    check_security(&a.listen, security)?;
    let mut config = serve_config(&a)?;
    config.policy = security.policy.clone();
    let disk = FsDisk::open(&a.data_dir).with_context(|| format!("cannot open --data-dir {}", a.data_dir.display()))?;
    let seams =
        StoreSeams { transport: security.transport.clone(), disk: Arc::new(disk), clock: Arc::new(SystemClock::new()) };
    let running = Arc::new(fenced_store::start(config, seams).await.context("store failed")?);
    // Key files are re-read every few seconds, so a signing-key rotation
    // reaches the store without a restart (write both keys, later only the new).
    let reload = a.cluster_keys.iter().any(|k| !k.trim().starts_with("ed25519:")).then(|| {
        let (specs, running) = (a.cluster_keys.clone(), running.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(KEY_RELOAD_INTERVAL).await;
                match load_cluster_keys(&specs) {
                    Ok(keys) if !keys.is_empty() && keys != running.cluster_keys() => {
                        tracing::info!(keys = keys.len(), "cluster keys changed on disk; now trusting them");
                        running.set_cluster_keys(keys);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot reload cluster keys; keeping the current ones"),
                }
            }
        })
    });
    let mode = if a.unsafe_no_fencing {
        " (UNSAFE: no fencing)"
    } else if a.trust_unsigned_tokens {
        " (comparison aid: unsigned tokens trusted)"
    } else {
        ""
    };
    writeln!(out, "fenced store listening on {}{mode}", running.addr)?;
    let summary = security_summary(&running.addr, security);
    if !security.tls && !is_loopback(&running.addr) {
        tracing::warn!(addr = %running.addr, "{summary}");
    }
    writeln!(out, "{summary}")?;
    let scheme = if security.tls { "https" } else { "http" };
    writeln!(out, "console: {scheme}://{}/ui (keys, their fences and the writes refused)", running.addr)?;
    out.flush()?;
    wait_for_signal().await;
    if let Some(task) = reload {
        task.abort();
        let _ = task.await;
    }
    match Arc::try_unwrap(running) {
        Ok(r) => r.stop().await,
        Err(_) => tracing::warn!("store still referenced at exit; not waiting for it"),
    }
    Ok(super::EXIT_OK)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use fenced_io::auth::Policy;

    #[test]
    fn plaintext_off_loopback_is_warned_about_and_a_policy_there_refused() {
        let open = Security::default();
        let policed = Security { policy: Some(Arc::new(Policy::default())), ..Security::default() };
        let tls = Security { tls: true, ..policed.clone() };
        assert!(security_summary("127.0.0.1:7400", &open).starts_with("plaintext, loopback only"));
        assert!(security_summary("0.0.0.0:7400", &open).starts_with("WARNING: PLAINTEXT on 0.0.0.0:7400"));
        assert!(security_summary("10.1.2.3:7400", &tls).starts_with("TLS on; callers authenticated"));
        assert!(check_security("127.0.0.1:7400", &policed).is_ok());
        assert!(check_security("localhost:7400", &policed).is_ok());
        assert!(check_security("0.0.0.0:7400", &policed).is_err());
        assert!(check_security("10.1.2.3:7400", &tls).is_ok());
        assert!(check_security("10.1.2.3:7400", &open).is_ok(), "plaintext without a policy is warned, not refused");
    }
}
