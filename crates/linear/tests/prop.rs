//! Property tests: histories from a sequential run are linearizable, their
//! mutations are not, and on small random histories the checker agrees with
//! a brute-force search over every order.

use fenced_linear::models::{FencedStore, Kv, KvF, KvOp, KvRet, Register, RegisterOp, RegisterRet, StoreOp, StoreRet};
use fenced_linear::{check, Completion, Model, NilRead, Operation, Options, Steps, Verdict};
use proptest::prelude::*;

type RegOp = Operation<RegisterOp<i64>, RegisterRet<i64>>;

fn cas_register(init: Option<i64>, nil_read: NilRead) -> Register<i64> {
    Register { init, nil_read, cas: true }
}

/// Runs `inputs` sequentially through a deterministic model and gives each
/// operation an interval around its linearization point `100 * i`. The
/// intervals overlap (so the history looks concurrent) but always contain
/// the point, so real-time order is consistent with the run. `key` names
/// the partition: each key has its own state.
fn sequential<M: Model>(
    model: &M,
    inputs: Vec<M::Input>,
    spans: &[(u64, u64, bool)],
    key: impl Fn(&M::Input) -> String,
    output: impl Fn(&M::State, &M::Input) -> M::Output,
) -> Vec<Operation<M::Input, M::Output>> {
    let mut states = std::collections::BTreeMap::new();
    let mut ops = Vec::new();
    for (i, input) in inputs.into_iter().enumerate() {
        let state = states.entry(key(&input)).or_insert_with(|| model.init());
        let out = output(state, &input);
        let next = match model.step(state, &input, Some(&out)) {
            Steps::One(s) => s,
            other => panic!("the generator's model must be deterministic and total, got {other:?}"),
        };
        *state = next;
        let (before, after, unknown) = spans[i % spans.len()];
        let lp = 1_000 + 100 * i as u64;
        let completion =
            if unknown { Completion::Unknown } else { Completion::Returned { time: lp + after, output: out } };
        ops.push(Operation { process: i as u64 % 7, input, call: lp - before, completion });
    }
    ops
}

fn register_output(state: &Option<i64>, input: &RegisterOp<i64>) -> RegisterRet<i64> {
    match input {
        RegisterOp::Read => RegisterRet::Read(*state),
        RegisterOp::Write(_) => RegisterRet::Write,
        RegisterOp::Cas { from, .. } => RegisterRet::Cas(*state == Some(*from)),
    }
}

fn register_input() -> impl Strategy<Value = RegisterOp<i64>> {
    prop_oneof![
        Just(RegisterOp::Read),
        (0i64..5).prop_map(RegisterOp::Write),
        (0i64..5, 0i64..5).prop_map(|(from, to)| RegisterOp::Cas { from, to }),
    ]
}

fn spans() -> impl Strategy<Value = Vec<(u64, u64, bool)>> {
    prop::collection::vec((0u64..400, 0u64..400, prop::bool::weighted(0.05)), 1..20)
}

fn verdict<M: Model>(model: &M, ops: &[Operation<M::Input, M::Output>]) -> Verdict {
    check(model, ops, &Options::default()).verdict
}

proptest! {
    #[test]
    fn sequential_register_runs_are_linearizable(
        inputs in prop::collection::vec(register_input(), 1..200),
        spans in spans(),
        init in prop::option::of(0i64..5),
        absent in any::<bool>(),
    ) {
        let nil_read = if absent { NilRead::Absent } else { NilRead::Unknown };
        let model = cas_register(init, nil_read);
        let ops = sequential(&model, inputs, &spans, |_| String::new(), register_output);
        prop_assert_eq!(verdict(&model, &ops), Verdict::Linearizable);
    }

    #[test]
    fn a_read_of_a_never_written_value_is_not_linearizable(
        inputs in prop::collection::vec(register_input(), 1..100),
        spans in prop::collection::vec((0u64..300, 0u64..300, prop::bool::weighted(0.02)), 1..20),
        pick in any::<prop::sample::Index>(),
    ) {
        let model = cas_register(Some(0), NilRead::Unknown);
        let mut ops = sequential(&model, inputs, &spans, |_| String::new(), register_output);
        let reads: Vec<usize> = ops.iter().enumerate()
            .filter(|(_, o)| matches!(o.completion, Completion::Returned { output: RegisterRet::Read(_), .. }))
            .map(|(i, _)| i).collect();
        prop_assume!(!reads.is_empty());
        let i = reads[pick.index(reads.len())];
        if let Completion::Returned { output, .. } = &mut ops[i].completion {
            *output = RegisterRet::Read(Some(999));
        }
        // Refuting a history with unknown-outcome writes can take exponential
        // time (as in Knossos and Porcupine); the budget turns that into
        // `unknown`, which is allowed. `linearizable` never is.
        let opts = Options { deadline: Some(std::time::Duration::from_secs(2)), ..Options::default() };
        let report = check(&model, &ops, &opts);
        match &report.verdict {
            Verdict::NotLinearizable { .. } => {
                let cex = report.counterexample().expect("a counterexample");
                prop_assert!(cex.stuck == i || cex.concurrent.contains(&i) || cex.prefix.len() < ops.len());
            }
            Verdict::Unknown(_) => {}
            other => prop_assert!(false, "a read of 999 was judged {:?}", other),
        }
    }

    #[test]
    fn sequential_kv_runs_are_linearizable(
        inputs in prop::collection::vec((0u8..4, 0u8..3, 0u32..100), 1..300),
        spans in spans(),
    ) {
        let model = Kv { init: Some(String::new()), nil_read: NilRead::Absent };
        let inputs = inputs.into_iter().map(|(k, f, v)| KvOp {
            key: format!("k{k}"),
            f: match f { 0 => KvF::Get, 1 => KvF::Put(format!("x{v} ")), _ => KvF::Append(format!("y{v} ")) },
        }).collect();
        let ops = sequential(&model, inputs, &spans, |i| i.key.clone(), |s: &Option<String>, i: &KvOp<String>| match i.f {
            KvF::Get => KvRet::Get(s.clone()),
            _ => KvRet::Done,
        });
        prop_assert_eq!(verdict(&model, &ops), Verdict::Linearizable);
    }

    #[test]
    fn sequential_fenced_store_runs_are_linearizable(
        inputs in prop::collection::vec((0u8..3, any::<bool>(), 0u64..30), 1..200),
        spans in spans(),
    ) {
        let model = FencedStore { init: None, nil_read: NilRead::Absent };
        let inputs = inputs.into_iter().enumerate().map(|(i, (k, w, t))| {
            let key = format!("k{k}");
            if w { StoreOp::Write { key, token: t, value: i as i64 } } else { StoreOp::Read { key } }
        }).collect();
        let ops = sequential(&model, inputs, &spans, |i| i.key().to_string(), |s, i: &StoreOp<i64>| match i {
            StoreOp::Write { token, .. } => StoreRet::Write(if s.max_token.is_none_or(|m| *token >= m) {
                fenced_linear::models::WriteResult::Accepted
            } else {
                fenced_linear::models::WriteResult::Stale
            }),
            StoreOp::Read { .. } => StoreRet::Read { value: s.value, token: s.max_token },
        });
        prop_assert_eq!(verdict(&model, &ops), Verdict::Linearizable);
    }

    #[test]
    fn agrees_with_brute_force_on_small_histories(
        raw in prop::collection::vec((register_input(), 0u64..6, 0u64..6, 0u8..12, prop::option::of(0i64..3)), 1..8),
        init in prop::option::of(0i64..3),
        absent in any::<bool>(),
    ) {
        let nil_read = if absent { NilRead::Absent } else { NilRead::Unknown };
        let model = cas_register(init, nil_read);
        let ops: Vec<RegOp> = raw.into_iter().enumerate().map(|(i, (input, call, len, kind, seen))| {
            let output = match &input {
                RegisterOp::Read => RegisterRet::Read(seen),
                RegisterOp::Write(_) => RegisterRet::Write,
                RegisterOp::Cas { .. } => RegisterRet::Cas(kind % 2 == 0),
            };
            let completion = if kind == 0 { Completion::Unknown } else { Completion::Returned { time: call + len, output } };
            Operation { process: i as u64, input, call, completion }
        }).collect();
        let expected = brute_force(&model, &ops);
        let got = verdict(&model, &ops);
        prop_assert_eq!(got == Verdict::Linearizable, expected, "{:?}", ops);
    }
}

/// Every order that respects real time, with unknown operations placed or
/// left out.
fn brute_force<M: Model>(model: &M, ops: &[Operation<M::Input, M::Output>]) -> bool {
    fn go<M: Model>(model: &M, ops: &[Operation<M::Input, M::Output>], state: &M::State, done: &mut Vec<bool>) -> bool {
        let open = |i: usize, done: &[bool]| !done[i] && ops[i].ret().is_some();
        if (0..ops.len()).all(|i| !open(i, done)) {
            return true;
        }
        for x in 0..ops.len() {
            if done[x] {
                continue;
            }
            // x may go next only if no open operation returned before x was called.
            if (0..ops.len()).any(|y| y != x && open(y, done) && ops[y].ret().is_some_and(|r| r < ops[x].call)) {
                continue;
            }
            let nexts = match model.step(state, &ops[x].input, ops[x].output()) {
                Steps::None => vec![],
                Steps::One(s) => vec![s],
                Steps::Many(v) => v,
            };
            for s in nexts {
                done[x] = true;
                let ok = go(model, ops, &s, done);
                done[x] = false;
                if ok {
                    return true;
                }
            }
        }
        false
    }
    go(model, ops, &model.init(), &mut vec![false; ops.len()])
}
