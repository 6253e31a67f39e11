//! The clients: real `fenced_client` and store-client code, looping over
//! acquire → (maybe pause) → read-modify-write the store with the token →
//! release, and recording every step.
//!
//! The pause sits exactly where Figure 8-4 puts it: after the client has
//! checked that its lease is still valid, before its write reaches the store.

use crate::recorder::Recorder;
use fenced_check::final_read;
use fenced_check::history::{EventType, Process};
use fenced_check::nemesis::{Fault, FaultRecord, NemesisEvent};
use fenced_client::{AcquireOptions, Client, ClientError, Guard};
use fenced_core::machine::token::{self, TokenClaims};
use fenced_store_client::{Fence, Idem, StoreClient, StoreError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::time::Duration;

/// How one client behaves.
#[derive(Clone)]
pub struct ClientPlan {
    /// This client's host name.
    pub host: String,
    /// The network, which a process pause holds this client's links on.
    pub net: std::sync::Arc<crate::net::Net>,
    /// Everyone this client talks to (replicas and the store).
    pub peers: Vec<String>,
    /// Client pauses happen only before this (partial synchrony's GST).
    pub pauses_until: Duration,
    pub process: u64,
    pub seed: u64,
    pub locks: usize,
    /// Each lock guards the keys `k{i}/0..`: write one of them, not `k{i}`.
    pub guarded: bool,
    /// Mix shared holds, re-entrant holds and semaphore permits in.
    pub primitives: bool,
    pub ttl: Duration,
    pub wait: Duration,
    pub until: Duration,
    pub pause_rate: f64,
    /// Longest pause (heavy-tailed below it).
    pub pause_max: Duration,
    pub byzantine: bool,
}

fn elapsed() -> Duration {
    crate::time::elapsed()
}

fn acquire_failure(e: &ClientError) -> (EventType, serde_json::Value) {
    match e.code() {
        Some("busy" | "wait_timeout") => (EventType::Fail, json!("held")),
        // The cluster's explanation with its code (`invalid_argument: ttl
        // 2000ms is outside 3000ms..=3600000ms`): a reader of the history or
        // of L1's evidence learns why, not only that.
        Some(_) => (EventType::Fail, json!(e.reason())),
        None => (EventType::Info, json!(e.to_string())),
    }
}

fn store_failure(e: &StoreError) -> (EventType, serde_json::Value) {
    match e {
        StoreError::StaleToken { current, .. } => (EventType::Fail, json!({"code": "stale_token", "current": current})),
        // The code for the checkers, the store's explanation for the reader.
        e if e.is_rejection() => (EventType::Fail, json!({"code": e.code(), "message": e.to_string()})),
        e => (EventType::Info, json!({"error": e.to_string()})),
    }
}

/// Run one honest client until `plan.until`.
pub async fn honest(plan: ClientPlan, client: Client, store: StoreClient, rec: Recorder) {
    let p = Process::Client(plan.process);
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
    let mut writes = 0u64;
    while elapsed() < plan.until {
        // Drawn only in the primitives workload, so that other seeds replay as before.
        let kind = if plan.primitives { rng.gen_range(0..8u32) } else { 0 };
        match kind {
            // Half the time today's loop (exclusive, write), else a reader,
            // a re-entrant writer, or a permit.
            0..=3 => {}
            4 | 5 => {
                let lock = format!("k{}", rng.gen_range(0..plan.locks));
                other_primitive(&plan, &client, &store, &rec, &mut rng, &lock, kind == 5).await;
                continue;
            }
            _ => {
                permit(&plan, &client, &store, &rec, &mut rng).await;
                continue;
            }
        }
        let lock = format!("k{}", rng.gen_range(0..plan.locks));
        rec.record(EventType::Invoke, p.clone(), "acquire", json!({"lock": lock}));
        let guard = match client.acquire(&lock, AcquireOptions::new(plan.ttl).wait(plan.wait)).await {
            Ok(g) => {
                let v = json!({"lock": lock, "token": g.token(), "lease": g.lease(), "signed": g.signed_token()});
                rec.record(EventType::Ok, p.clone(), "acquire", v);
                g
            }
            Err(e) => {
                let (kind, reason) = acquire_failure(&e);
                rec.record(kind, p.clone(), "acquire", json!({"lock": lock, "reason": reason}));
                tokio::time::sleep(Duration::from_millis(rng.gen_range(10..200))).await;
                continue;
            }
        };
        // A careful client checks its lease before writing...
        if guard.is_valid() {
            // ...and may still be paused right after the check (GC, SIGSTOP).
            if elapsed() < plan.pauses_until && rng.gen_bool(plan.pause_rate) {
                // Pauses are short, or far longer than the TTL: the
                // stop-the-world pauses the seed describes.
                let d = if rng.gen_bool(0.7) {
                    plan.ttl.mul_f64(rng.gen_range(0.0..0.5))
                } else {
                    plan.ttl.mul_f64(rng.gen_range(3.0..5.0))
                };
                // In the partial model, faults end by GST.
                let d = d.min(plan.pauses_until.saturating_sub(elapsed()));
                pause_process(&plan, &rec, d).await;
            }
            // Drawn only in the guarded workload, so that other seeds replay as before.
            let key = if plan.guarded {
                format!("{lock}/{}", rng.gen_range(0..crate::config::GUARDED_KEYS_PER_LOCK))
            } else {
                lock.clone()
            };
            rec.record(EventType::Invoke, p.clone(), "read", json!({"key": key}));
            match store.get(&key).await {
                Ok(obj) => rec.record(EventType::Ok, p.clone(), "read", read_value(&key, obj)),
                Err(e) => rec.record(EventType::Info, p.clone(), "read", json!({"key": key, "error": e.to_string()})),
            }
            writes += 1;
            let value = format!("p{}-t{}-w{}", plan.process, guard.token(), writes);
            let idem = Idem { client: format!("sim-{}", plan.process), request_id: writes };
            let w = json!({"key": key, "token": guard.token(), "value": value, "lock": lock});
            rec.record(EventType::Invoke, p.clone(), "write", w.clone());
            match store.put(&key, value.clone().into_bytes(), guard.token(), guard.signed_token(), Some(&idem)).await {
                Ok(_) => rec.record(EventType::Ok, p.clone(), "write", w),
                Err(e) => {
                    let (kind, mut extra) = store_failure(&e);
                    if let (Some(o), Some(x)) = (extra.as_object_mut(), w.as_object()) {
                        for (k, v) in x {
                            o.insert(k.clone(), v.clone());
                        }
                    }
                    rec.record(kind, p.clone(), "write", extra);
                }
            }
        }
        let token = guard.token();
        rec.record(EventType::Invoke, p.clone(), "release", json!({"lock": lock, "token": token}));
        match guard.release().await {
            Ok(()) => rec.record(EventType::Ok, p.clone(), "release", json!({"lock": lock, "token": token})),
            Err(e) => rec.record(
                EventType::Info,
                p.clone(),
                "release",
                json!({"lock": lock, "token": token, "error": e.to_string()}),
            ),
        }
    }
}

/// A shared hold that reads the store (`reader`), or a re-entrant
/// exclusive hold taken twice and given back twice. Recorded as `acquire`
/// (with `mode` for shared grants) and `release`; the re-entrant second
/// hold is `reacquire`, since it carries the same token as the first.
async fn other_primitive(
    plan: &ClientPlan,
    client: &Client,
    store: &StoreClient,
    rec: &Recorder,
    rng: &mut ChaCha8Rng,
    lock: &str,
    reader: bool,
) {
    let p = Process::Client(plan.process);
    let mode = if reader { "shared" } else { "exclusive" };
    rec.record(EventType::Invoke, p.clone(), "acquire", json!({"lock": lock, "mode": mode}));
    let mut opts = AcquireOptions::new(plan.ttl).wait(plan.wait);
    opts = if reader {
        opts.shared()
    } else {
        opts.what = fenced_client::What::Lock { mode: fenced_core::Mode::Exclusive, reentrant: true };
        opts
    };
    let guard = match client.acquire(lock, opts).await {
        Ok(g) => g,
        Err(e) => {
            let (kind, reason) = acquire_failure(&e);
            rec.record(kind, p.clone(), "acquire", json!({"lock": lock, "mode": mode, "reason": reason}));
            tokio::time::sleep(Duration::from_millis(rng.gen_range(10..200))).await;
            return;
        }
    };
    let v = json!({"lock": lock, "token": guard.token(), "lease": guard.lease(), "mode": mode});
    rec.record(EventType::Ok, p.clone(), "acquire", v);
    let key = if plan.guarded { format!("{lock}/0") } else { lock.to_string() };
    if reader {
        if guard.is_valid() {
            // A fenced read: the store refuses it if a writer was granted
            // (and wrote) after this reader (S3 judges it).
            let fence = Fence { token: guard.token(), signed: guard.signed_token().to_string() };
            let inv = json!({"key": key, "fence": fence.token, "lock": lock, "mode": "shared"});
            rec.record(EventType::Invoke, p.clone(), "read", inv);
            match store.get_fenced(&key, Some(&fence)).await {
                Ok(obj) => rec.record(EventType::Ok, p.clone(), "read", read_value(&key, obj)),
                Err(e) => {
                    let (kind, mut v) = store_failure(&e);
                    if let Some(o) = v.as_object_mut() {
                        o.insert("key".into(), json!(key));
                    }
                    rec.record(kind, p.clone(), "read", v);
                }
            }
            // Sometimes the reader tries to write: the store must refuse a
            // shared grant's token (S3 convicts an accepted one).
            if rng.gen_bool(0.25) {
                let value = format!("shared-p{}-t{}", plan.process, guard.token());
                fenced_write(&p, rec, store, &key, lock, &guard, value, Some("shared")).await;
            }
        }
    } else {
        let v = json!({"lock": lock, "token": guard.token()});
        rec.record(EventType::Invoke, p.clone(), "reacquire", v.clone());
        match guard.reacquire().await {
            Ok(holds) => {
                rec.record(
                    EventType::Ok,
                    p.clone(),
                    "reacquire",
                    json!({"lock": lock, "token": guard.token(), "holds": holds}),
                );
                // The exclusive holder writes under its second hold.
                if guard.is_valid() {
                    let value = format!("p{}-t{}-re", plan.process, guard.token());
                    fenced_write(&p, rec, store, &key, lock, &guard, value, None).await;
                }
                rec.record(EventType::Invoke, p.clone(), "release-hold", v.clone());
                match guard.release_hold().await {
                    Ok(left) => rec.record(
                        EventType::Ok,
                        p.clone(),
                        "release-hold",
                        json!({"lock": lock, "token": guard.token(), "holds": left}),
                    ),
                    Err(e) => rec.record(
                        EventType::Info,
                        p.clone(),
                        "release-hold",
                        json!({"lock": lock, "error": e.to_string()}),
                    ),
                }
            }
            Err(e) => {
                rec.record(EventType::Info, p.clone(), "reacquire", json!({"lock": lock, "error": e.to_string()}))
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(rng.gen_range(0..100))).await;
    release(&p, rec, lock, guard).await;
}

/// Write `value` to `key` with the guard's token, recorded as a `write`
/// under `lock` (the lock whose fence the store applies) with the grant's
/// `mode` (absent: exclusive).
#[allow(clippy::too_many_arguments)]
async fn fenced_write(
    p: &Process,
    rec: &Recorder,
    store: &StoreClient,
    key: &str,
    lock: &str,
    guard: &Guard,
    value: String,
    mode: Option<&str>,
) {
    let mut w = json!({"key": key, "token": guard.token(), "value": value, "lock": lock});
    if let (Some(m), Some(o)) = (mode, w.as_object_mut()) {
        o.insert("mode".into(), json!(m));
    }
    rec.record(EventType::Invoke, p.clone(), "write", w.clone());
    match store.put(key, value.into_bytes(), guard.token(), guard.signed_token(), None).await {
        Ok(_) => rec.record(EventType::Ok, p.clone(), "write", w),
        Err(e) => {
            let (kind, mut extra) = store_failure(&e);
            if let (Some(o), Some(x)) = (extra.as_object_mut(), w.as_object()) {
                for (k, v) in x {
                    o.insert(k.clone(), v.clone());
                }
            }
            rec.record(kind, p.clone(), "write", extra);
        }
    }
}

/// The semaphore of the primitives workload, and its most permits (the
/// count is set to 1 to 3): the store guards each slot's keys
/// `sem/SLOT/` with the slot's lock (`slot_guards`).
pub const SEMAPHORE: &str = "sem";
pub const SEMAPHORE_PERMITS_MAX: u32 = 3;

/// `(prefix, lock)` guards of the semaphore's slots: a permit writes only
/// its own slot's keys (per-slot fencing, docs/primitives.md).
pub fn slot_guards() -> Vec<(String, String)> {
    (0..SEMAPHORE_PERMITS_MAX)
        .map(|s| (format!("{SEMAPHORE}/{s}/"), fenced_store::fence::slot_lock(SEMAPHORE, s)))
        .collect()
}

/// Take a permit of semaphore `sem` (sometimes setting its count first,
/// 1 to 3: lowering it below the holders is part of the mix), hold it a
/// while, write its slot's key, return it.
async fn permit(plan: &ClientPlan, client: &Client, store: &StoreClient, rec: &Recorder, rng: &mut ChaCha8Rng) {
    let p = Process::Client(plan.process);
    let name = SEMAPHORE;
    if rng.gen_bool(0.2) {
        let n = rng.gen_range(1..=SEMAPHORE_PERMITS_MAX);
        rec.record(EventType::Invoke, p.clone(), "permits", json!({"name": name, "permits": n}));
        match client.sem_permits(name, n).await {
            Ok(r) => rec.record(EventType::Ok, p.clone(), "permits", json!({"name": name, "permits": r.permits})),
            Err(e) => rec.record(EventType::Info, p.clone(), "permits", json!({"name": name, "error": e.to_string()})),
        }
    }
    rec.record(EventType::Invoke, p.clone(), "acquire", json!({"lock": name, "mode": "permit"}));
    let guard = match client.acquire(name, AcquireOptions::new(plan.ttl).wait(plan.wait).permit()).await {
        Ok(g) => g,
        Err(e) => {
            let (kind, reason) = acquire_failure(&e);
            rec.record(kind, p.clone(), "acquire", json!({"lock": name, "mode": "permit", "reason": reason}));
            tokio::time::sleep(Duration::from_millis(rng.gen_range(10..200))).await;
            return;
        }
    };
    let slot = guard.grant().slot;
    let v = json!({"lock": name, "token": guard.token(), "lease": guard.lease(), "mode": "permit", "slot": slot});
    rec.record(EventType::Ok, p.clone(), "acquire", v);
    tokio::time::sleep(Duration::from_millis(rng.gen_range(50..500))).await;
    if let (Some(slot), true) = (slot, guard.is_valid()) {
        let lock = fenced_store::fence::slot_lock(name, slot);
        let value = format!("p{}-t{}-s{slot}", plan.process, guard.token());
        fenced_write(&p, rec, store, &format!("{name}/{slot}/c"), &lock, &guard, value, Some("permit")).await;
    }
    release(&p, rec, name, guard).await;
}

async fn release(p: &Process, rec: &Recorder, lock: &str, guard: Guard) {
    let token = guard.token();
    rec.record(EventType::Invoke, p.clone(), "release", json!({"lock": lock, "token": token}));
    match guard.release().await {
        Ok(()) => rec.record(EventType::Ok, p.clone(), "release", json!({"lock": lock, "token": token})),
        Err(e) => rec.record(
            EventType::Info,
            p.clone(),
            "release",
            json!({"lock": lock, "token": token, "error": e.to_string()}),
        ),
    }
}

/// Freeze this client process for `d`: its links are held, so nothing it
/// sends (keepalives, the write it is about to make) arrives and nothing
/// reaches it, and its own work stops. When it resumes, everything queued is
/// delivered at once, as after a GC pause or SIGSTOP/SIGCONT.
async fn pause_process(plan: &ClientPlan, rec: &Recorder, d: Duration) {
    let pause = FaultRecord::new(Fault::ClientPause { client: Some(plan.process), ms: Some(d.as_millis() as u64) });
    rec.nemesis_here(NemesisEvent::Start(pause.clone()));
    for peer in &plan.peers {
        plan.net.hold(&plan.host, peer);
    }
    tokio::time::sleep(d).await;
    for peer in &plan.peers {
        plan.net.release(&plan.host, peer);
    }
    rec.nemesis_here(NemesisEvent::Stop(pause));
}

/// A client that lies: it writes with forged tokens, tokens signed by another
/// cluster, and real tokens of another lock. The store must refuse them all.
pub async fn byzantine(plan: ClientPlan, client: Client, store: StoreClient, rec: Recorder) {
    let p = Process::Client(plan.process);
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
    let impostor = ed25519_dalek::SigningKey::from_bytes(&rng.gen::<[u8; 32]>());
    let mut n = 0u64;
    while elapsed() < plan.until {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..700))).await;
        n += 1;
        let key = format!("k{}", rng.gen_range(0..plan.locks));
        let token: u64 = rng.gen_range(1..1_000_000);
        let (how, signed) = match n % 3 {
            // Signed by a key the cluster never had.
            0 => (
                "forged",
                token::sign(&impostor, TokenClaims { key_id: 0, lock: key.clone(), token, lease: 1, issued_at_ms: 0 }),
            ),
            // A genuine grant, but of another lock.
            1 => {
                let other = format!("byz-{}", plan.process);
                match client.acquire(&other, AcquireOptions::new(plan.ttl)).await {
                    Ok(g) => {
                        let s = g.signed_token().to_string();
                        let _ = g.release().await;
                        ("other-lock", s)
                    }
                    Err(_) => continue,
                }
            }
            // A token number that does not match its signature: garbage.
            _ => ("garbage", format!("fenced1.{}.{}", "A".repeat(40), "B".repeat(86))),
        };
        let value = format!("byzantine-{}-{n}", plan.process);
        let w = json!({"key": key, "token": token, "value": value, "lock": key, "byzantine": how});
        rec.record(EventType::Invoke, p.clone(), "write", w.clone());
        match store.put(&key, value.into_bytes(), token, &signed, None).await {
            Ok(_) => rec.record(EventType::Ok, p.clone(), "write", w),
            Err(e) => {
                let (kind, extra) = store_failure(&e);
                let mut v = w;
                if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
                    for (k, val) in x {
                        o.insert(k.clone(), val.clone());
                    }
                }
                rec.record(kind, p.clone(), "write", v);
            }
        }
    }
}

/// A read's history value: the object's value, version and token (an
/// absent key reads as version 0, token 0, value null).
fn read_value(key: &str, obj: Option<fenced_store::Object>) -> serde_json::Value {
    final_read::read_value(key, obj.as_ref().map(|o| (&o.value[..], o.version, o.token)))
}

/// The store keys the honest clients write: `k{i}` per lock, or in the
/// guarded workload `k{i}/{j}` under each lock's prefix; with the
/// primitives, also each semaphore slot's key `sem/{s}/c`.
pub fn store_keys(locks: usize, guarded: bool, primitives: bool) -> Vec<String> {
    let mut keys = Vec::new();
    if primitives {
        keys.extend((0..SEMAPHORE_PERMITS_MAX).map(|s| format!("{SEMAPHORE}/{s}/c")));
    }
    for i in 0..locks {
        if guarded {
            keys.extend((0..crate::config::GUARDED_KEYS_PER_LOCK).map(|j| format!("k{i}/{j}")));
        } else {
            keys.push(format!("k{i}"));
        }
    }
    keys
}

/// After the run: read every key once, as process "final".
pub async fn final_reads(keys: Vec<String>, store: StoreClient, rec: Recorder) {
    let p = Process::Named(final_read::PROCESS.into());
    let read = |key: String| {
        let store = &store;
        async move { store.get(&key).await.map(|obj| read_value(&key, obj)) }
    };
    let record = |value| rec.record(EventType::Ok, p.clone(), "read", value);
    final_read::final_reads(keys, read, tokio::time::sleep, record).await;
}
