//! Generated histories that are valid by construction must pass every
//! checker; each mutation must make its checker fail.

use fenced_check::checkers::{self, check_all};
use fenced_check::history::{EventType, History, ParseError, Process};
use fenced_check::testgen::{generate, GenOptions};
use fenced_check::verdict::{Options, Property, Status, Verdict};
use serde_json::json;
use std::time::Duration;

fn histories() -> impl Iterator<Item = (u64, History)> {
    (1..=30).map(|seed| {
        let opts = GenOptions {
            seed,
            clients: 2 + seed % 6,
            locks: 1 + (seed % 3) as usize,
            ops: 100 + 20 * seed as usize,
            nemesis: seed % 4 != 0,
        };
        (seed, generate(&opts))
    })
}

fn status(verdicts: &[Verdict], p: Property) -> Status {
    verdicts.iter().find(|v| v.property == p).map(|v| v.status).expect("every property has a verdict")
}

#[test]
fn generated_histories_are_valid() {
    for (seed, h) in histories() {
        // Also through the file format, as `fenced check` would read it.
        let h = History::parse_jsonl(&h.to_jsonl()).expect("generated history parses");
        for v in check_all(&h, &Options::default()) {
            assert_eq!(v.status, Status::Valid, "seed {seed}: {} {}: {}", v.property, v.status, v.message);
        }
    }
}

/// Indices of ok completions of client `f`.
fn ok_events(h: &History, f: &str) -> Vec<usize> {
    h.events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == EventType::Ok && e.f == f && matches!(e.process, Process::Client(_)))
        .map(|(i, _)| i)
        .collect()
}

fn invoke_of(h: &History, completion: usize) -> usize {
    let p = &h.events[completion].process;
    (0..completion)
        .rev()
        .find(|&i| h.events[i].process == *p && h.events[i].kind == EventType::Invoke)
        .expect("completion has an invoke")
}

fn token(h: &History, i: usize) -> u64 {
    h.events[i].value["token"].as_u64().expect("token")
}

#[test]
fn duplicate_token_fails_s1() {
    for (seed, mut h) in histories() {
        let acq = ok_events(&h, "acquire");
        let (a, b) = (acq[0], acq[acq.len() - 1]);
        let t = token(&h, a);
        h.events[b].value["token"] = json!(t);
        let v = checkers::s1::check(&h, &Options::default());
        assert_eq!(v.status, Status::Invalid, "seed {seed}: {}", v.message);
        assert!(v.evidence[0].events.contains(&a) && v.evidence[0].events.contains(&b));
    }
}

#[test]
fn swapped_tokens_fail_s2() {
    for (seed, mut h) in histories() {
        let acq = ok_events(&h, "acquire");
        // The first grant and a grant invoked after it completed.
        let a = acq[0];
        let b = *acq.iter().find(|&&b| h.events[invoke_of(&h, b)].time > h.events[a].time).expect("a later acquire");
        let (ta, tb) = (token(&h, a), token(&h, b));
        h.events[a].value["token"] = json!(tb);
        h.events[b].value["token"] = json!(ta);
        let v = checkers::s2::check(&h, &Options::default());
        assert_eq!(v.status, Status::Invalid, "seed {seed}: {}", v.message);
        // Across locks, the log no longer matches: S5 sees the grants lost.
        if h.events[a].value["lock"] != h.events[b].value["lock"] {
            let v5 = checkers::s5::check(&h, &Options::default());
            assert_eq!(v5.status, Status::Invalid, "seed {seed}: {}", v5.message);
        }
    }
}

#[test]
fn swapped_write_tokens_fail_s3() {
    let mut found = 0;
    for (seed, mut h) in histories() {
        let writes = ok_events(&h, "write");
        // Two ok writes of one key, the first completed before the second was
        // invoked, with different tokens.
        let pair = writes.iter().enumerate().find_map(|(n, &a)| {
            writes[n + 1..].iter().find_map(|&b| {
                let (ea, eb) = (&h.events[a], &h.events[b]);
                let ib = invoke_of(&h, b);
                (ea.value["key"] == eb.value["key"] && token(&h, a) < token(&h, b) && ea.time < h.events[ib].time)
                    .then_some((invoke_of(&h, a), a, ib, b))
            })
        });
        let Some((ia, a, ib, b)) = pair else { continue };
        found += 1;
        let (ta, tb) = (token(&h, a), token(&h, b));
        for i in [ia, a] {
            h.events[i].value["token"] = json!(tb);
        }
        for i in [ib, b] {
            h.events[i].value["token"] = json!(ta);
        }
        let v = checkers::s3::check(&h, &Options::default());
        assert_eq!(v.status, Status::Invalid, "seed {seed}: {}", v.message);
        let ev = &v.evidence[0];
        assert_eq!(ev.ops.len(), 2, "names both writes");
    }
    assert!(found > 10, "the generator makes sequential writes ({found})");
}

#[test]
fn dropped_log_end_fails_s4() {
    for (seed, mut h) in histories() {
        // Drop the first release or expiry that a later grant of the same
        // lock relied on.
        let log: Vec<usize> = (0..h.events.len()).filter(|&i| h.events[i].process.is_named("log")).collect();
        let drop = log.iter().copied().find(|&i| {
            let e = &h.events[i];
            e.f != "grant"
                && log
                    .iter()
                    .any(|&j| j > i && h.events[j].f == "grant" && h.events[j].value["lock"] == e.value["lock"])
        });
        let Some(drop) = drop else { continue };
        h.events.remove(drop);
        let v = checkers::s4::check(&h, &Options::default());
        assert_eq!(v.status, Status::Invalid, "seed {seed}: {}", v.message);
        assert_eq!(v.evidence[0].ops.len(), 2, "names both grants");
    }
}

#[test]
fn dropped_acknowledged_write_fails_s5() {
    for (seed, mut h) in histories() {
        // The store loses the last acknowledged write of a key: the final
        // read goes back to nothing.
        let fin = h.events.iter().position(|e| e.process.is_named("final")).expect("a final read");
        h.events[fin].value["token"] = json!(0);
        h.events[fin].value["value"] = json!(null);
        let v = checkers::s5::check(&h, &Options::default());
        assert_eq!(v.status, Status::Invalid, "seed {seed}: {}", v.message);
    }
}

#[test]
fn dropped_log_grant_fails_s5_and_s7() {
    for (seed, mut h) in histories() {
        let w = ok_events(&h, "write")[0];
        let t = token(&h, w);
        let grant = h
            .events
            .iter()
            .position(|e| e.process.is_named("log") && e.f == "grant" && e.value["token"] == json!(t))
            .expect("the grant of a written token");
        h.events.remove(grant);
        let v = checkers::s5::check(&h, &Options::default());
        assert_eq!(v.status, Status::Invalid, "seed {seed}: {}", v.message);
        let v = checkers::s7::check(&h, &Options::default());
        assert_eq!(v.status, Status::Invalid, "seed {seed}: {}", v.message);
    }
}

#[test]
fn forged_token_fails_s7() {
    for (seed, mut h) in histories() {
        let w = ok_events(&h, "write")[0];
        let i = invoke_of(&h, w);
        for e in [i, w] {
            h.events[e].value["token"] = json!(1_000_000_007u64);
        }
        let v = checkers::s7::check(&h, &Options::default());
        assert_eq!(v.status, Status::Invalid, "seed {seed}: {}", v.message);
        assert!(v.message.contains("never issued"), "{}", v.message);
    }
}

#[test]
fn slow_or_failed_acquire_after_heal_fails_l1() {
    let opts = Options { l1_bound: Duration::from_millis(50), ..Options::default() };
    for (seed, h) in histories() {
        let acq = ok_events(&h, "acquire");
        let last = *acq.last().expect("an acquire");
        // Slow: the reply comes after the bound.
        let mut slow = h.clone();
        let delay = 60_000_000;
        for e in slow.events[last..].iter_mut() {
            e.time += delay;
        }
        let v = checkers::l1::check(&slow, &opts);
        assert_eq!(v.status, Status::Invalid, "seed {seed}: {}", v.message);
        // Failed for another reason than a held lock.
        let mut failed = h.clone();
        failed.events[last].kind = EventType::Fail;
        failed.events[last].value = json!({"lock": "x", "reason": "no_leader"});
        let v = checkers::l1::check(&failed, &opts);
        assert_eq!(v.status, Status::Invalid, "seed {seed}: {}", v.message);
        // But "held" is excused.
        failed.events[last].value = json!({"lock": "x", "reason": "held"});
        let v = checkers::l1::check(&failed, &opts);
        assert_ne!(v.status, Status::Invalid, "seed {seed}: {}", v.message);
    }
}

#[test]
fn completion_moved_before_invoke_is_bad_input() {
    for (seed, h) in histories() {
        let ok = ok_events(&h, "acquire")[0];
        let inv = invoke_of(&h, ok);
        // Moved before its invoke in the file.
        let mut moved = h.clone();
        let e = moved.events.remove(ok);
        moved.events.insert(inv, e);
        let err = History::parse_jsonl(&moved.to_jsonl()).expect_err("must be rejected");
        assert!(matches!(err, ParseError::Sequence(_)), "seed {seed}: {err}");
        assert_eq!(err.line(), inv + 1, "seed {seed}: {err}");
        // Or its time moved before the invoke's.
        let mut early = h.clone();
        early.events[ok].time = early.events[inv].time.saturating_sub(1);
        if early.events[inv].time > 0 {
            let err = History::parse_jsonl(&early.to_jsonl()).expect_err("must be rejected");
            assert!(err.to_string().contains("before its invoke"), "seed {seed}: {err}");
        }
        // Checkers given such a history in memory say unknown, not valid.
        let v = checkers::s1::check(&moved, &Options::default());
        assert_eq!(v.status, Status::Unknown);
    }
}

#[test]
fn s2_is_fast_on_large_histories() {
    let h = generate(&GenOptions { seed: 7, clients: 50, locks: 20, ops: 100_000, nemesis: true });
    let start = fenced_linear::budget::Stopwatch::start();
    let v = checkers::s2::check(&h, &Options::default());
    assert_eq!(v.status, Status::Valid, "{}", v.message);
    // Quadratic would take minutes here, even optimised.
    assert!(start.elapsed() < Duration::from_secs(20), "{:?}", start.elapsed());
    let _ = status(&[v], Property::S2);
}
