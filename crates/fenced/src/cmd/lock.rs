//! `fenced lock ...`: acquire, release, status, hold.

use super::parse_duration;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use fenced_client::{AcquireOptions, Client, ClientError, Guard, LostReason};
use serde_json::json;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Replica addresses, comma-separated.
    #[arg(long, env = "FENCED_ENDPOINTS", default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")]
    pub endpoints: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub credentials: super::credentials::Credentials,
}

#[derive(Subcommand, Debug)]
pub enum LockCommand {
    /// Grant a lease and acquire NAME on it. The lease is not kept alive: the
    /// lock is held until released or until the TTL runs out.
    Acquire {
        name: String,
        #[arg(long, value_parser = parse_duration)]
        ttl: Duration,
        /// Queue for the lock this long; without it, try once.
        #[arg(long, value_parser = parse_duration)]
        wait: Option<Duration>,
        /// Take the lock shared: with other shared holders, never with an
        /// exclusive one. A shared grant's token cannot write to a fenced store.
        #[arg(long)]
        shared: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Release NAME held with TOKEN (a lock, or a semaphore permit).
    Release {
        name: String,
        #[arg(long)]
        token: u64,
        /// The holding lease; looked up from the lock's status if omitted.
        #[arg(long)]
        lease: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// Show NAME's holder, token, lease and FIFO waiters (linearizable).
    Status {
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Run CMD while holding NAME. CMD gets FENCED_TOKEN, FENCED_SIGNED_TOKEN,
    /// FENCED_LEASE and FENCED_LOCK. If the lock is lost for good, CMD gets
    /// SIGTERM, then SIGKILL, and this exits with status 75. A pause of this
    /// process that the lock survived (re-confirmed with the cluster) does
    /// not stop CMD. SIGTERM, SIGINT or SIGHUP is passed on to CMD. Whenever
    /// CMD ends, the lock is released.
    Hold {
        name: String,
        #[arg(long, value_parser = parse_duration)]
        ttl: Duration,
        #[arg(long, value_parser = parse_duration)]
        wait: Option<Duration>,
        /// Time between SIGTERM and SIGKILL when the lock is lost.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        kill_after: Duration,
        #[command(flatten)]
        common: Common,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
}

/// Exit status of `hold` when the lock was lost (EX_TEMPFAIL).
pub const EXIT_LOST: i32 = 75;

fn client(common: &Common) -> anyhow::Result<Client> {
    common.client()
}

/// Print a client error and choose the exit status: 1 = refused, 2 = unreachable.
impl Common {
    /// A client of `--endpoints` with the given credentials.
    pub fn client(&self) -> anyhow::Result<Client> {
        self.credentials.client(super::endpoints(&self.endpoints))
    }
}

pub(crate) fn report(common: &Common, e: &ClientError) -> i32 {
    if common.json {
        let v = match e {
            ClientError::Api { status, body, .. } => json!({"error": body, "status": status}),
            other => json!({"error": {"code": "unavailable", "message": other.to_string()}}),
        };
        println!("{v}");
    } else {
        eprintln!("error: {e}");
    }
    match e {
        ClientError::Api { .. } => 1,
        _ => 2,
    }
}

pub async fn run(c: LockCommand) -> anyhow::Result<i32> {
    super::init_logging("warn");
    match c {
        LockCommand::Acquire { name, ttl, wait, shared, common } => {
            let cl = client(&common)?;
            let lease = match cl.grant_lease(ttl).await {
                Ok(l) => l,
                Err(e) => return Ok(report(&common, &e)),
            };
            let wait = wait.unwrap_or_default();
            let acquired = if shared {
                cl.acquire_mode_on(&name, lease.lease, wait, fenced_core::Mode::Shared, false, "").await
            } else {
                cl.acquire_on(&name, lease.lease, wait, "").await
            };
            match acquired {
                Ok(g) => {
                    if common.json {
                        println!("{}", serde_json::to_string(&g)?);
                    } else {
                        println!(
                            "acquired {}{} token={} lease={} ttl={}",
                            g.lock,
                            g.mode.as_deref().map(|m| format!(" ({m})")).unwrap_or_default(),
                            g.token,
                            g.lease,
                            humantime::format_duration(ttl)
                        );
                        println!("signed token: {}", g.signed);
                        println!(
                            "(the lease is not kept alive; release with: fenced lock release {} --token {})",
                            g.lock, g.token
                        );
                    }
                    Ok(0)
                }
                Err(e) => {
                    let _ = cl.revoke(lease.lease).await;
                    Ok(report(&common, &e))
                }
            }
        }
        LockCommand::Release { name, token, lease, common } => {
            let cl = client(&common)?;
            let lease = match lease {
                Some(l) => l,
                None => match cl.status(&name).await {
                    Ok(s) => match s.holder.into_iter().chain(s.holders).find(|h| h.token.0 == token) {
                        Some(h) => h.lease.0,
                        None => {
                            let e = ClientError::Api {
                                status: 409,
                                body: Box::new(fenced_io::envelope::ErrorBody::new(
                                    "not_holder",
                                    format!("lock {name:?} is not held with token {token}"),
                                )),
                            };
                            return Ok(report(&common, &e));
                        }
                    },
                    Err(e) => return Ok(report(&common, &e)),
                },
            };
            match cl.release(&name, lease, token).await {
                Ok(r) => {
                    if common.json {
                        println!("{}", serde_json::to_string(&r)?);
                    } else {
                        println!("released {} token={}", r.lock, r.token);
                    }
                    Ok(0)
                }
                Err(e) => Ok(report(&common, &e)),
            }
        }
        LockCommand::Status { name, common } => {
            let cl = client(&common)?;
            match cl.status(&name).await {
                Ok(s) => {
                    if common.json {
                        println!("{}", serde_json::to_string(&s)?);
                    } else {
                        match &s.holder {
                            Some(h) => println!("{}: held by lease {} with token {}", s.lock, h.lease, h.token),
                            None => println!("{}: free", s.lock),
                        }
                        if let Some(n) = s.permits {
                            println!("semaphore with {n} permits, {} held", s.holders.len());
                        }
                        for h in &s.holders {
                            let what = if s.permits.is_some() { "permit" } else { "shared" };
                            println!("  {what}: lease {} with token {}", h.lease, h.token);
                        }
                        if !s.waiters.is_empty() {
                            println!("waiters (FIFO): {:?}", s.waiters);
                        }
                    }
                    Ok(0)
                }
                Err(e) => Ok(report(&common, &e)),
            }
        }
        LockCommand::Hold { name, ttl, wait, kill_after, common, cmd } => {
            hold(name, ttl, wait, kill_after, common, cmd).await
        }
    }
}

async fn hold(
    name: String,
    ttl: Duration,
    wait: Option<Duration>,
    kill_after: Duration,
    common: Common,
    cmd: Vec<String>,
) -> anyhow::Result<i32> {
    let Some((program, args)) = cmd.split_first() else { bail!("no command given after --") };
    let cl = client(&common)?;
    let guard = match cl.acquire(&name, AcquireOptions::new(ttl).wait(wait.unwrap_or_default())).await {
        Ok(g) => g,
        Err(e) => return Ok(report(&common, &e)),
    };
    eprintln!("fenced: holding {} with token {} (lease {})", guard.lock(), guard.token(), guard.lease());
    let spawned = tokio::process::Command::new(program)
        .args(args)
        .env("FENCED_TOKEN", guard.token().to_string())
        .env("FENCED_SIGNED_TOKEN", guard.signed_token())
        .env("FENCED_LEASE", guard.lease().to_string())
        .env("FENCED_LOCK", guard.lock())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let _ = tokio::time::timeout(release_within(ttl), guard.release()).await;
            return Err(e).with_context(|| format!("cannot run {program:?} (the lock was released)"));
        }
    };
    if let Some(pid) = child.id() {
        eprintln!("fenced: running {program} as pid {pid}");
    }
    let end = watch_hold(&name, &mut child, &guard).await?;
    let code = match &end {
        HoldEnd::Exited(status) => status.code().unwrap_or(128 + status_signal(status)),
        HoldEnd::Lost(reason) => {
            eprintln!("fenced: lock {name} lost ({reason}); terminating the command");
            terminate(&mut child, libc::SIGTERM, kill_after).await;
            EXIT_LOST
        }
        HoldEnd::Signal(sig) => {
            eprintln!("fenced: got signal {sig}; passing it to the command and releasing the lock");
            terminate(&mut child, *sig, kill_after).await;
            128 + sig
        }
    };
    // Whenever the command is gone, so is the lock: a lock left held would
    // block every other holder until its TTL ran out. When the cluster already
    // ended it this answers "not held" or "no such lease", which is fine.
    let ended_by_cluster = matches!(&end, HoldEnd::Lost(LostReason::Cluster(_) | LostReason::LeaseGone));
    if !ended_by_cluster {
        let within = release_within(ttl);
        match tokio::time::timeout(within, guard.release()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("fenced: warning: release failed ({e}); the lease will expire on its own"),
            Err(_) => eprintln!(
                "fenced: warning: no replica answered the release within {within:?}; the lease will expire on its own"
            ),
        }
    }
    Ok(code)
}

/// How long `hold` tries to release its lock once its command is gone: at
/// most one TTL (by then the unrenewed lease has ended on its own) and at most
/// 10 s, so that an unreachable cluster does not keep `hold` from exiting.
fn release_within(ttl: Duration) -> Duration {
    ttl.min(Duration::from_secs(10))
}

/// Why `hold` stops waiting for its command.
enum HoldEnd {
    Exited(std::process::ExitStatus),
    /// The lock was lost for good (never a pause the guard re-confirmed).
    Lost(LostReason),
    /// `hold` itself got this signal (SIGTERM, SIGINT or SIGHUP).
    Signal(i32),
}

/// Wait until the command exits, the lock is lost for good, or `hold` is
/// asked to stop. A pause ([`LostReason::Paused`]) only prints: the guard
/// re-confirms the lock with the cluster and clears it, or replaces it with a
/// final reason, which ends the wait. Meanwhile the command keeps running; its
/// writes still carry the token, which the resource checks.
async fn watch_hold(name: &str, child: &mut tokio::process::Child, guard: &Guard) -> anyhow::Result<HoldEnd> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let mut lost = guard.lost_signal();
    loop {
        // Checked before every wait: the signal may have changed before this
        // receiver was made, or between two waits.
        match lost.borrow_and_update().clone() {
            Some(r) if r.is_final() => return Ok(HoldEnd::Lost(r)),
            _ => {}
        }
        tokio::select! {
            status = child.wait() => return Ok(HoldEnd::Exited(status.context("cannot wait for the command")?)),
            changed = lost.changed() => {
                if changed.is_err() {
                    return Ok(HoldEnd::Lost(LostReason::DeadlinePassed));
                }
                match lost.borrow().clone() {
                    Some(r) if r.is_final() => {}
                    Some(r) => eprintln!("fenced: lock {name} presumed lost ({r}); the command keeps running"),
                    None => eprintln!("fenced: lock {name} re-confirmed: still held; the command keeps running"),
                }
            }
            _ = term.recv() => return Ok(HoldEnd::Signal(libc::SIGTERM)),
            _ = int.recv() => return Ok(HoldEnd::Signal(libc::SIGINT)),
            _ = hup.recv() => return Ok(HoldEnd::Signal(libc::SIGHUP)),
        }
    }
}

/// Send `sig` to the command, then SIGKILL if it is still running after
/// `kill_after`.
async fn terminate(child: &mut tokio::process::Child, sig: i32, kill_after: Duration) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        unsafe {
            libc::kill(pid as libc::pid_t, sig);
        }
    }
    if tokio::time::timeout(kill_after, child.wait()).await.is_err() {
        eprintln!("fenced: the command ignored signal {sig} for {kill_after:?}; sending SIGKILL");
        let _ = child.kill().await;
    }
}

#[cfg(unix)]
fn status_signal(s: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.signal().unwrap_or(0)
}
