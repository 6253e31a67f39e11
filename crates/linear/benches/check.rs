//! Benchmark of the checker on generated, linearizable histories
//! (`cargo bench -p fenced-linear`). No criterion: a few timed runs with
//! `std::time`, reporting the median, keep the dependency tree lean.
//!
//! Histories come from a simulated concurrent run: each process invokes an
//! operation, it takes effect at a random instant, and it returns a random
//! delay later; outputs are computed by applying the effects in time order,
//! so every history is linearizable and the checker must search it fully.
//! A small share of operations end `info` (unknown), as in a Jepsen run.

use fenced_linear::budget::Stopwatch;
use fenced_linear::models::{Kv, KvF, KvOp, KvRet, Register, RegisterOp, RegisterRet};
use fenced_linear::{check, Completion, Model, NilRead, Operation, Options, Steps, Verdict};
use std::time::Duration;

/// A generated history for model `M`.
type History<M> = Vec<Operation<<M as Model>::Input, <M as Model>::Output>>;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `n` operations over `procs` processes; `input` draws an operation.
/// A process waits up to `think` time units between operations, which take
/// 2 to 200 units: `think` sets how many operations overlap.
#[allow(clippy::too_many_arguments)]
fn generate<M: Model>(
    model: &M,
    n: usize,
    procs: usize,
    think: u64,
    seed: u64,
    mut input: impl FnMut(&mut Rng) -> M::Input,
    key: impl Fn(&M::Input) -> u64,
    output: impl Fn(&M::State, &M::Input) -> M::Output,
) -> Vec<Operation<M::Input, M::Output>> {
    let mut rng = Rng(seed | 1);
    // (effect time, call, return, process, input)
    let mut planned = Vec::with_capacity(n);
    let mut clock = vec![0u64; procs];
    for i in 0..n {
        let p = i % procs;
        let call = clock[p] + rng.below(think);
        let effect = call + 1 + rng.below(100);
        let ret = effect + 1 + rng.below(100);
        clock[p] = ret;
        planned.push((effect, call, ret, p, input(&mut rng)));
    }
    planned.sort_by_key(|t| t.0);
    let mut states = std::collections::HashMap::new();
    let mut ops = Vec::with_capacity(n);
    for (_, call, ret, p, input) in planned {
        let state = states.entry(key(&input)).or_insert_with(|| model.init());
        let out = output(state, &input);
        if let Steps::One(s) = model.step(state, &input, Some(&out)) {
            *state = s;
        }
        let completion = if rng.below(100) < info_pct() {
            Completion::Unknown
        } else {
            Completion::Returned { time: ret, output: out }
        };
        ops.push(Operation { process: p as u64, input, call, completion });
    }
    ops.sort_by_key(|o| o.call);
    ops
}

/// A cas register with values 0..5 (Jepsen's etcd test). `think` 1000 is
/// Jepsen-like pacing (about 4 of 15 processes busy at once); 50 saturates
/// every process, the worst case for the search.
fn etcd_register(n: usize, procs: usize, think: u64) -> (Register<u64>, History<Register<u64>>) {
    let model = Register { init: None, nil_read: NilRead::Absent, cas: true };
    let ops = generate(
        &model,
        n,
        procs,
        think,
        n as u64 * 31 + procs as u64,
        |r| match r.below(3) {
            0 => RegisterOp::Read,
            1 => RegisterOp::Write(r.below(5)),
            _ => RegisterOp::Cas { from: r.below(5), to: r.below(5) },
        },
        |_| 0,
        |s, i| match i {
            RegisterOp::Read => RegisterRet::Read(*s),
            RegisterOp::Write(_) => RegisterRet::Write,
            RegisterOp::Cas { from, .. } => RegisterRet::Cas(*s == Some(*from)),
        },
    );
    (model, ops)
}

fn kv(n: usize, procs: usize) -> (Kv<String>, History<Kv<String>>) {
    let model = Kv { init: Some(String::new()), nil_read: NilRead::Absent };
    let mut counter = 0;
    let ops = generate(
        &model,
        n,
        procs,
        50,
        n as u64 * 17 + procs as u64,
        |r| {
            counter += 1;
            let key = format!("k{}", r.below(10));
            let f = match r.below(3) {
                0 => KvF::Get,
                1 => KvF::Put(format!("x{counter} ")),
                _ => KvF::Append(format!("y{counter} ")),
            };
            KvOp { key, f }
        },
        |i| i.key[1..].parse().unwrap_or(0),
        |s, i| match i.f {
            KvF::Get => KvRet::Get(s.clone()),
            _ => KvRet::Done,
        },
    );
    (model, ops)
}

fn time<M: Model>(model: &M, ops: &[Operation<M::Input, M::Output>], runs: usize) -> (Duration, Verdict) {
    let opts = Options { deadline: Some(Duration::from_secs(30)), ..Options::default() };
    let mut times = Vec::new();
    let mut verdict = Verdict::Linearizable;
    for _ in 0..runs {
        let t = Stopwatch::start();
        verdict = check(model, ops, &opts).verdict;
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], verdict)
}

fn main() {
    // `cargo bench -- quick` runs the sizes up to 10k only.
    let quick = std::env::args().any(|a| a == "quick");
    println!("| history | ops | processes | median time | verdict |");
    println!("|---|---:|---:|---:|---|");
    let (m, ops) = etcd_register(1000, 15, 1000);
    let (t, v) = time(&m, &ops, 21);
    println!("| etcd-style cas register, Jepsen pacing (target < 5 ms) | 1000 | 15 | {t:.2?} | {v:?} |");
    for &n in &[1_000usize, 10_000, 100_000] {
        if quick && n > 10_000 {
            continue;
        }
        for &procs in &[5usize, 15, 50] {
            let runs = if n >= 100_000 { 3 } else { 7 };
            let (m, ops) = etcd_register(n, procs, 1000);
            let (t, v) = time(&m, &ops, runs);
            println!("| cas register, Jepsen pacing | {n} | {procs} | {t:.2?} | {v:?} |");
            if procs <= 15 && n <= 10_000 {
                let (m, ops) = etcd_register(n, procs, 50);
                let (t, v) = time(&m, &ops, runs);
                println!("| cas register, saturated | {n} | {procs} | {t:.2?} | {v:?} |");
            }
            let (m, ops) = kv(n, procs);
            let (t, v) = time(&m, &ops, runs);
            println!("| kv, 10 keys (partitioned) | {n} | {procs} | {t:.2?} | {v:?} |");
        }
    }
}

/// Percent of operations that end unknown (`BENCH_INFO_PCT`, default 1).
fn info_pct() -> u64 {
    std::env::var("BENCH_INFO_PCT").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}
