//! Data-driven tests of the lock table, in the raft-rs `testdata` style.
//!
//! Each file in `testdata/` is a list of cases separated by blank lines: one
//! command line, `----`, then the expected output. Every command except
//! `status` and `snapshot` is one log entry; its index is printed first.
//! `blank` consumes an index without a command, as a new leader's blank entry
//! does. `snapshot` round-trips the table through its serialized form, as a
//! restart or a new leader installing a snapshot would. `limits` (first
//! line only) replaces the default limits, e.g. `limits claims_per_owner=2`.
//!
//! Shared locks, re-entrant holds and semaphores: `acquire NAME lease=L
//! shared|exclusive [reentrant] [wait]` (with a mode word it is the
//! `AcquireMode` command, without one the original `Acquire`), `sem-permits
//! NAME permits=N`, `sem-acquire NAME lease=L [wait]`, `sem-release NAME
//! lease=L token=T`, `sem-cancel NAME lease=L`, and the reads `shared NAME`
//! and `sem NAME`.
//!
//! Run with `REWRITE=1` to regenerate the expected output after a deliberate
//! change, and review the diff.

use fenced_core::machine::command::{Command, Origin, Request};
use fenced_core::machine::table::{Event, LockTable};
use fenced_core::{ClientId, LeaseId, Mode, Response, Token};
use std::collections::BTreeMap;
use std::fmt::Write;

struct Harness {
    table: LockTable,
    index: u64,
}

fn args(words: &[&str]) -> (Vec<String>, BTreeMap<String, String>) {
    let mut pos = Vec::new();
    let mut kv = BTreeMap::new();
    for w in words {
        match w.split_once('=') {
            Some((k, v)) => {
                kv.insert(k.to_string(), v.to_string());
            }
            None => pos.push(w.to_string()),
        }
    }
    (pos, kv)
}

fn num(kv: &BTreeMap<String, String>, k: &str) -> u64 {
    kv.get(k).unwrap_or_else(|| panic!("missing {k}=")).parse().unwrap_or_else(|_| panic!("{k} is not a number"))
}

fn render_response(r: &Response) -> String {
    match r {
        Response::LeaseGranted { lease, ttl_ms } => format!("lease-granted lease={lease} ttl={ttl_ms}ms"),
        Response::LeaseKept { lease, ttl_ms } => format!("lease-kept lease={lease} ttl={ttl_ms}ms"),
        Response::LeaseRevoked { lease, released } => format!("lease-revoked lease={lease} released={released:?}"),
        Response::Granted(g) => format!("granted {} token={} lease={} value={:?}", g.lock, g.token, g.lease, g.value),
        Response::Queued { lock, lease, position } => format!("queued {lock} lease={lease} position={position}"),
        Response::Busy { lock, holder, token } => format!("busy {lock} holder={holder} token={token}"),
        Response::Released { lock, token } => format!("released {lock} token={token}"),
        Response::WaitCancelled { lock } => format!("wait-cancelled {lock}"),
        Response::Claimed { name, token, owner } => format!("claimed {name} token={token} owner={owner}"),
        Response::AlreadyClaimed { name, token, owner } => {
            format!("already-claimed {name} token={token} owner={owner}")
        }
        Response::ClaimReleased { name, token, owner } => format!("claim-released {name} token={token} owner={owner}"),
        Response::GrantedAs { grant: g, kind, holds } => {
            let slot = kind.slot().map(|s| format!(" slot={s}")).unwrap_or_default();
            format!("granted {} {}{slot} token={} lease={} holds={holds}", g.lock, kind.name(), g.token, g.lease)
        }
        Response::HoldReleased { lock, token, holds } => format!("hold-released {lock} token={token} holds={holds}"),
        Response::PermitsSet { name, permits, held } => format!("permits-set {name} permits={permits} held={held}"),
        Response::Done => "done".to_string(),
        Response::Err(e) => format!("error {}: {e}", e.code()),
    }
}

fn render_event(e: &Event) -> String {
    match e {
        Event::LeaseRenewed { lease, renewed, remaining_ms } => {
            format!("lease-renewed lease={lease} renewed={renewed} remaining={remaining_ms}ms")
        }
        Event::LeaseCheckpointed { lease, renewed, remaining_ms } => {
            format!("lease-checkpointed lease={lease} renewed={renewed} remaining={remaining_ms}ms")
        }
        Event::LeaseEnded { lease, reason } => format!("lease-ended lease={lease} reason={reason:?}"),
        Event::Granted { lock, token, lease } => format!("granted {lock} token={token} lease={lease}"),
        Event::Freed { lock, token, lease, reason } => {
            format!("freed {lock} token={token} lease={lease} reason={reason:?}")
        }
        Event::HandoffPending { lock } => format!("handoff-pending {lock}"),
        Event::Claimed { name, token } => format!("claimed {name} token={token}"),
    }
}

impl Harness {
    fn run(&mut self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (pos, kv) = args(&words[1..]);
        let lease = || LeaseId(num(&kv, "lease"));
        let origin = kv.get("c").map(|c| Origin { client: ClientId(c.clone()), request_id: num(&kv, "r") });
        let cmd = match words[0] {
            "status" => {
                let s = self.table.lock_status(&pos[0]);
                let holder = s.holder.map(|g| format!("lease={} token={}", g.lease, g.token));
                return format!("holder={} waiters={:?}", holder.unwrap_or_else(|| "none".into()), s.waiters);
            }
            "shared" => {
                let s = self.table.shared_status(&pos[0]);
                let holders: Vec<String> = s.holders.iter().map(|g| format!("{}@{}", g.lease, g.token)).collect();
                return format!("shared=[{}] shared_waiters={:?}", holders.join(" "), s.shared_waiters);
            }
            "sem" => {
                return match self.table.sem_status(&pos[0]) {
                    None => "no semaphore".to_string(),
                    Some(s) => {
                        let h: Vec<String> =
                            s.holders.iter().map(|(slot, g)| format!("{slot}:{}@{}", g.lease, g.token)).collect();
                        format!("permits={} holders=[{}] waiters={:?}", s.permits, h.join(" "), s.waiters)
                    }
                };
            }
            "snapshot-postcard" => {
                // The replica's snapshot encoding, not JSON.
                let bytes = postcard::to_allocvec(&self.table).expect("serializes");
                self.table = postcard::from_bytes(&bytes).expect("deserializes");
                return "ok".to_string();
            }
            "snapshot" => {
                let bytes = serde_json::to_vec(&self.table).expect("serializes");
                self.table = serde_json::from_slice(&bytes).expect("deserializes");
                return "ok".to_string();
            }
            "limits" => {
                // Only before the first entry: limits are fixed for a table's life.
                assert_eq!(self.index, 0, "limits must come first");
                let mut limits = fenced_core::machine::limits::Limits::default();
                if kv.contains_key("claims_per_owner") {
                    limits.claims_per_owner_max = num(&kv, "claims_per_owner") as usize;
                }
                if kv.contains_key("waiters") {
                    limits.waiters_per_lock_max = num(&kv, "waiters") as usize;
                }
                let mut prims = fenced_core::machine::table::PrimitiveLimits::default();
                if kv.contains_key("shared_holders") {
                    prims.shared_holders_max = num(&kv, "shared_holders") as usize;
                }
                if kv.contains_key("permits") {
                    prims.permits_max = num(&kv, "permits") as u32;
                }
                if kv.contains_key("depth") {
                    prims.hold_depth_max = num(&kv, "depth") as u32;
                }
                if kv.contains_key("sems") {
                    prims.semaphores_max = num(&kv, "sems") as usize;
                }
                self.table = LockTable::new(limits);
                self.table.set_primitive_limits(prims);
                return "ok".to_string();
            }
            "blank" => {
                self.index += 1;
                return format!("#{} (blank)", self.index);
            }
            "key" => Command::SetSigningKey { secret: [1; 32] },
            "grant" => Command::LeaseGrant { ttl_ms: num(&kv, "ttl") },
            "keepalive" => Command::LeaseKeepAlive { lease: lease() },
            "revoke" => Command::LeaseRevoke { lease: lease() },
            "acquire" if pos.iter().any(|p| p == "shared" || p == "exclusive") => Command::AcquireMode {
                lock: pos.first().cloned().unwrap_or_default(),
                lease: lease(),
                wait: pos.iter().any(|p| p == "wait"),
                value: kv.get("value").cloned().unwrap_or_default(),
                mode: if pos.iter().any(|p| p == "shared") { Mode::Shared } else { Mode::Exclusive },
                reentrant: pos.iter().any(|p| p == "reentrant"),
            },
            "acquire" => Command::Acquire {
                lock: pos.first().cloned().unwrap_or_default(),
                lease: lease(),
                wait: pos.iter().any(|p| p == "wait"),
                value: kv.get("value").cloned().unwrap_or_default(),
            },
            "cancel" => Command::CancelWait { lock: pos[0].clone(), lease: lease() },
            "release" => Command::Release { lock: pos[0].clone(), lease: lease(), token: Token(num(&kv, "token")) },
            "claim" => Command::Claim {
                name: pos[0].clone(),
                owner: kv.get("owner").cloned().unwrap_or_default(),
                lease: kv.get("lease").map(|_| lease()),
            },
            "release-claim" => Command::ReleaseClaim {
                name: pos[0].clone(),
                owner: kv.get("owner").cloned(),
                admin: pos.iter().any(|p| p == "admin"),
            },
            "sem-permits" => Command::SemPermits {
                name: pos.first().cloned().unwrap_or_default(),
                permits: num(&kv, "permits") as u32,
            },
            "sem-acquire" => {
                Command::SemAcquire { name: pos[0].clone(), lease: lease(), wait: pos.iter().any(|p| p == "wait") }
            }
            "sem-release" => {
                Command::SemRelease { name: pos[0].clone(), lease: lease(), token: Token(num(&kv, "token")) }
            }
            "sem-cancel" => Command::SemCancelWait { name: pos[0].clone(), lease: lease() },
            "expire" => Command::Expire { lease: lease(), renewed: num(&kv, "renewed") },
            "handoff" => Command::Handoff { lock: pos[0].clone() },
            "checkpoint" => {
                Command::Checkpoint { remaining: vec![(lease(), num(&kv, "renewed"), num(&kv, "remaining"))] }
            }
            other => panic!("unknown command {other:?}"),
        };
        self.index += 1;
        let applied = self.table.apply(self.index, &Request { origin, at_ms: 1000, cmd });
        let mut out = format!("#{} {}", self.index, render_response(&applied.response));
        for e in &applied.events {
            let _ = write!(out, "\n  ev {}", render_event(e));
        }
        out
    }
}

#[test]
fn testdata() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
    let rewrite = std::env::var_os("REWRITE").is_some();
    let mut files: Vec<_> = std::fs::read_dir(dir).expect("testdata dir").map(|e| e.expect("entry").path()).collect();
    files.sort();
    assert!(!files.is_empty());
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let mut h = Harness { table: LockTable::new(Default::default()), index: 0 };
        let mut rewritten = String::new();
        let mut failures = Vec::new();
        for case in text.split("\n\n") {
            let mut lines = case.lines();
            let mut header = Vec::new();
            let mut cmd = None;
            for l in lines.by_ref() {
                if l.starts_with('#') {
                    header.push(l);
                } else {
                    cmd = Some(l);
                    break;
                }
            }
            let Some(cmd) = cmd else {
                rewritten.push_str(case);
                rewritten.push_str("\n\n");
                continue;
            };
            assert_eq!(lines.next(), Some("----"), "{}: case {cmd:?} lacks ----", path.display());
            let expected: Vec<&str> = lines.collect();
            let actual = h.run(cmd);
            if actual != expected.join("\n") {
                failures.push(format!("{cmd}\nexpected:\n{}\nactual:\n{actual}", expected.join("\n")));
            }
            for l in header {
                rewritten.push_str(l);
                rewritten.push('\n');
            }
            rewritten.push_str(&format!("{cmd}\n----\n{actual}\n\n"));
        }
        if rewrite {
            std::fs::write(&path, rewritten.trim_end().to_string() + "\n").expect("write");
        } else {
            assert!(failures.is_empty(), "{}:\n{}", path.display(), failures.join("\n\n"));
        }
    }
}
