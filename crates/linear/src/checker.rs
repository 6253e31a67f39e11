//! The search: Wing–Gong–Lowe with Porcupine's linked-list representation.
//!
//! The history becomes a doubly linked list of call and return entries sorted
//! by time. The search walks the list: at a call entry it tries to linearize
//! that operation now (apply it to the model; if the model accepts and the
//! resulting (linearized set, state) pair is new, the operation's two entries
//! are unlinked and the walk restarts at the head). Reaching the return entry
//! of an operation that is not yet linearized means the current prefix cannot
//! be extended, so the search backtracks: it re-links the most recently
//! linearized operation and goes on past it.
//!
//! Operations with an unknown completion get their return entry at +infinity,
//! behind every known return. The search succeeds as soon as every operation
//! with a known completion is linearized: the unknown ones still in the list
//! are the ones that never took effect.

use crate::budget::{Deadline, Stopwatch};
use std::collections::HashSet;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A sequential specification.
///
/// The checker calls [`Model::step`] many times per operation; keep states
/// small and cheap to clone and hash (intern large values).
pub trait Model: Sync {
    type State: Clone + Eq + Hash + Send + fmt::Debug;
    type Input: Sync + fmt::Debug;
    type Output: Sync + fmt::Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The states the object may be in after `input` is applied in `state`
    /// and (if known) answers `output`. [`Steps::None`] means the operation
    /// cannot happen here with that answer.
    ///
    /// For `output = None` (unknown completion) return the states reached if
    /// the operation did take effect; the checker itself covers "never".
    fn step(&self, state: &Self::State, input: &Self::Input, output: Option<&Self::Output>) -> Steps<Self::State>;

    /// True if the operation cannot change the state (a read). An unknown
    /// completion of such an operation constrains nothing, so the checker
    /// drops it instead of searching over where it might go: each unknown
    /// operation kept doubles the states a failing search must visit.
    fn read_only(&self, _input: &Self::Input) -> bool {
        false
    }

    /// Splits the operations (indices into `ops`) into independent groups
    /// that can be checked alone, e.g. by key. The default is one group.
    /// Models whose state covers one key only must override this.
    fn partition(&self, ops: &[Operation<Self::Input, Self::Output>]) -> Vec<Vec<usize>> {
        vec![(0..ops.len()).collect()]
    }

    /// A human-readable operation, for counterexamples.
    fn describe_operation(&self, input: &Self::Input, output: Option<&Self::Output>) -> String {
        match output {
            Some(o) => format!("{input:?} -> {o:?}"),
            None => format!("{input:?} -> ?"),
        }
    }

    /// A human-readable state, for counterexamples.
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
}

/// The result of one model step. Most models are deterministic ([`Steps::One`]);
/// `Many` serves nondeterministic ones without allocating for the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Steps<S> {
    None,
    One(S),
    Many(Vec<S>),
}

impl<S> Steps<S> {
    /// `One(s)` if `ok`, else `None`.
    pub fn when(ok: bool, state: impl FnOnce() -> S) -> Self {
        if ok {
            Steps::One(state())
        } else {
            Steps::None
        }
    }

    fn into_vec(self) -> Vec<S> {
        match self {
            Steps::None => Vec::new(),
            Steps::One(s) => vec![s],
            Steps::Many(v) => v,
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion<O> {
    /// It returned `output` at `time`.
    Returned { time: u64, output: O },
    /// Unknown (Jepsen `info`, or still pending): it may have taken effect
    /// at any point after its call, or never.
    Unknown,
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The process (client) that ran it; only for reports.
    pub process: u64,
    pub input: I,
    /// When it was called.
    pub call: u64,
    pub completion: Completion<O>,
}

impl<I, O> Operation<I, O> {
    /// The output, if the operation returned.
    pub fn output(&self) -> Option<&O> {
        match &self.completion {
            Completion::Returned { output, .. } => Some(output),
            Completion::Unknown => None,
        }
    }

    /// The return time; `None` for an unknown completion (+infinity).
    pub fn ret(&self) -> Option<u64> {
        match &self.completion {
            Completion::Returned { time, .. } => Some(*time),
            Completion::Unknown => None,
        }
    }
}

/// Budgets. Running out of either ends in [`Verdict::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Wall-clock limit for the whole check.
    pub deadline: Option<Duration>,
    /// Limit on memoized (linearized set, state) pairs, per partition.
    /// An entry costs roughly 64 bytes plus the state.
    pub max_cache_entries: usize,
    /// Threads for partitions; 0 means `available_parallelism`.
    pub threads: usize,
    /// Stop checking the other partitions once one is not linearizable.
    pub stop_on_failure: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { deadline: None, max_cache_entries: 10_000_000, threads: 0, stop_on_failure: true }
    }
}

/// Why a check could not decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownReason {
    /// The deadline passed.
    Deadline,
    /// The memo cache reached [`Options::max_cache_entries`].
    CacheLimit { entries: usize },
    /// Another partition failed first and the check stopped.
    Cancelled,
    /// An operation returns before it is called (index into the history).
    BadOperation { op: usize },
}

impl fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnknownReason::Deadline => write!(f, "the time budget ran out"),
            UnknownReason::CacheLimit { entries } => {
                write!(f, "the memory budget ran out ({entries} memoized states)")
            }
            UnknownReason::Cancelled => write!(f, "not checked: another partition failed first"),
            UnknownReason::BadOperation { op } => write!(f, "operation {op} returns before it is called"),
        }
    }
}

/// Evidence that a partition is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counterexample {
    /// The longest linearizable prefix the search found: operations (indices
    /// into the history) in linearization order.
    pub prefix: Vec<usize>,
    /// The model state after `prefix`.
    pub state: String,
    /// The operation that had to be linearized next (its return came) but
    /// could not be, in that state or after any of `concurrent`.
    pub stuck: usize,
    /// The other operations that were candidates at that point (called
    /// before `stuck` returned, not yet linearized). Capped at 64.
    pub concurrent: Vec<usize>,
    /// Human-readable `stuck` and `concurrent`, from the model.
    pub descriptions: Vec<(usize, String)>,
}

/// The outcome for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionResult {
    Linearizable,
    NotLinearizable(Box<Counterexample>),
    Unknown(UnknownReason),
}

/// One partition's result and cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReport {
    /// The operations (indices into the history) of this partition.
    pub ops: Vec<usize>,
    pub result: PartitionResult,
    /// Memoized states at the end of the search.
    pub cache_entries: usize,
    pub elapsed: Duration,
}

/// The overall verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// `partition` indexes [`Report::partitions`].
    NotLinearizable {
        partition: usize,
    },
    Unknown(UnknownReason),
}

/// The result of [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub verdict: Verdict,
    pub partitions: Vec<PartitionReport>,
}

impl Report {
    /// The counterexample of the failing partition, if any.
    pub fn counterexample(&self) -> Option<&Counterexample> {
        match &self.verdict {
            Verdict::NotLinearizable { partition } => match &self.partitions[*partition].result {
                PartitionResult::NotLinearizable(c) => Some(c),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Checks `ops` against `model`. Partitions (see [`Model::partition`]) run on
/// up to [`Options::threads`] threads.
pub fn check<M: Model>(model: &M, ops: &[Operation<M::Input, M::Output>], opts: &Options) -> Report {
    if let Some(op) = ops.iter().position(|o| o.ret().is_some_and(|r| r < o.call)) {
        return Report { verdict: Verdict::Unknown(UnknownReason::BadOperation { op }), partitions: Vec::new() };
    }
    let start = Stopwatch::start();
    let deadline = opts.deadline.map(|budget| Deadline { start, budget });
    let parts = model.partition(ops);
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, parts.len().max(1));
    let cancel = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<PartitionReport>>> = Mutex::new(vec![None; parts.len()]);

    let worker = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(part) = parts.get(i) else { break };
        let t0 = Stopwatch::start();
        let (result, cache_entries) = if cancel.load(Ordering::Relaxed) {
            (PartitionResult::Unknown(UnknownReason::Cancelled), 0)
        } else {
            Search::new(model, ops, part, opts, deadline, &cancel).run()
        };
        if opts.stop_on_failure && matches!(result, PartitionResult::NotLinearizable(_)) {
            cancel.store(true, Ordering::Relaxed);
        }
        let report = PartitionReport { ops: part.clone(), result, cache_entries, elapsed: t0.elapsed() };
        // A poisoned lock means another worker panicked; that panic
        // propagates out of the scope anyway.
        if let Ok(mut r) = results.lock() {
            r[i] = Some(report);
        }
    };
    if threads == 1 {
        worker();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(worker);
            }
        });
    }
    let partitions: Vec<PartitionReport> =
        results.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().flatten().collect();
    let verdict = verdict_of(&partitions);
    Report { verdict, partitions }
}

/// Invalid wins over unknown (a counterexample is definite even if another
/// partition ran out of budget); unknown wins over valid.
fn verdict_of(parts: &[PartitionReport]) -> Verdict {
    if let Some(i) = parts.iter().position(|p| matches!(p.result, PartitionResult::NotLinearizable(_))) {
        return Verdict::NotLinearizable { partition: i };
    }
    let unknown = parts.iter().find_map(|p| match &p.result {
        PartitionResult::Unknown(r) if *r != UnknownReason::Cancelled => Some(r.clone()),
        _ => None,
    });
    match unknown {
        Some(r) => Verdict::Unknown(r),
        None => Verdict::Linearizable,
    }
}

const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;

/// A memo entry: the linearized set as the words of its bitset from the
/// first word that is not all ones (`lo`) to the last non-zero word, plus the
/// model state. Every operation below `lo * 64` is linearized, so the pair
/// determines the set exactly; in a typical search the trimmed bitset is a
/// word or two, where the full one would be `n / 64` words per entry.
#[derive(PartialEq, Eq, Hash)]
struct Key<S> {
    lo: u32,
    words: Box<[u64]>,
    state: S,
}

/// A linearized operation on the search stack.
struct Frame<S> {
    /// The call entry.
    node: u32,
    /// The state before the operation.
    prev: S,
    /// Other states the operation could lead to, not yet tried.
    alternatives: Vec<S>,
    /// Index of this frame's record in `Search::trail`.
    trail: u32,
}

/// The best failure so far: the deepest point where the search got stuck.
struct Best {
    depth: usize,
    /// Top of the linearized prefix in `Search::trail`, or NIL.
    trail: u32,
    state: String,
    stuck: usize,
    concurrent: Vec<usize>,
}

struct Search<'a, M: Model> {
    model: &'a M,
    /// The partition's operations in call order; `ops[i]` is the history's
    /// operation `index[i]`.
    ops: Vec<&'a Operation<M::Input, M::Output>>,
    index: Vec<usize>,
    opts: &'a Options,
    deadline: Option<Deadline>,
    cancel: &'a AtomicBool,
    // The entry list: node 0 is the head; node `1 + 2k` is a call and
    // `2 + 2k` a return, of the operation `op[node]`.
    next: Vec<u32>,
    prev: Vec<u32>,
    op_of: Vec<u32>,
    linearized: Vec<u64>,
    /// The highest bitset word that was ever non-zero.
    hi: usize,
    /// Operations with a known return that are not yet linearized.
    remaining: usize,
    cache: HashSet<Key<M::State>>,
    /// Parent-linked record of every push: (op, parent), so that the best
    /// prefix can be kept without copying the stack at every improvement.
    trail: Vec<(u32, u32)>,
    best: Option<Best>,
}

impl<'a, M: Model> Search<'a, M> {
    fn new(
        model: &'a M,
        all: &'a [Operation<M::Input, M::Output>],
        part: &[usize],
        opts: &'a Options,
        deadline: Option<Deadline>,
        cancel: &'a AtomicBool,
    ) -> Self {
        let mut index: Vec<usize> =
            part.iter().copied().filter(|&i| all[i].ret().is_some() || !model.read_only(&all[i].input)).collect();
        index.sort_by_key(|&i| (all[i].call, i));
        let ops: Vec<_> = index.iter().map(|&i| &all[i]).collect();
        let n = ops.len();
        // Entries sorted by time; at equal times calls come first (touching
        // operations count as concurrent), and unknown returns (+infinity)
        // after known ones. Calls sort in op order, which `Key` relies on.
        let mut entries: Vec<(u64, u8, u32)> = Vec::with_capacity(2 * n);
        for (k, op) in ops.iter().enumerate() {
            entries.push((op.call, 0, k as u32));
            match op.ret() {
                Some(t) => entries.push((t, 1, k as u32)),
                None => entries.push((u64::MAX, 2, k as u32)),
            }
        }
        entries.sort_unstable();
        let node_of = |&(_, kind, k): &(u64, u8, u32)| if kind == 0 { 1 + 2 * k } else { 2 + 2 * k };
        let mut next = vec![NIL; 2 * n + 1];
        let mut prev = vec![NIL; 2 * n + 1];
        let mut op_of = vec![NIL; 2 * n + 1];
        let mut last = HEAD;
        for e in &entries {
            let node = node_of(e);
            op_of[node as usize] = e.2;
            next[last as usize] = node;
            prev[node as usize] = last;
            last = node;
        }
        let remaining = ops.iter().filter(|o| o.ret().is_some()).count();
        Search {
            model,
            ops,
            index,
            opts,
            deadline,
            cancel,
            next,
            prev,
            op_of,
            linearized: vec![0; n.div_ceil(64)],
            hi: 0,
            remaining,
            cache: HashSet::new(),
            trail: Vec::new(),
            best: None,
        }
    }

    fn is_call(node: u32) -> bool {
        node % 2 == 1
    }

    /// Unlinks a call entry and its return entry.
    fn lift(&mut self, call: u32) {
        for node in [call, call + 1] {
            let (p, n) = (self.prev[node as usize], self.next[node as usize]);
            self.next[p as usize] = n;
            if n != NIL {
                self.prev[n as usize] = p;
            }
        }
    }

    /// Relinks what [`Search::lift`] unlinked, in reverse order.
    fn unlift(&mut self, call: u32) {
        for node in [call + 1, call] {
            let (p, n) = (self.prev[node as usize], self.next[node as usize]);
            self.next[p as usize] = node;
            if n != NIL {
                self.prev[n as usize] = node;
            }
        }
    }

    fn set_bit(&mut self, k: u32, on: bool) {
        let (w, b) = ((k / 64) as usize, k % 64);
        if on {
            self.linearized[w] |= 1 << b;
            self.hi = self.hi.max(w);
        } else {
            self.linearized[w] &= !(1 << b);
        }
    }

    fn key(&self, state: M::State) -> Key<M::State> {
        // Every op before the first entry still listed is linearized.
        let first = self.next[HEAD as usize];
        let lo = if first == NIL { self.linearized.len() } else { (self.op_of[first as usize] / 64) as usize };
        let mut hi = (self.hi + 1).min(self.linearized.len());
        while hi > lo && self.linearized[hi - 1] == 0 {
            hi -= 1;
        }
        let words = self.linearized.get(lo..hi.max(lo)).unwrap_or_default().into();
        Key { lo: lo as u32, words, state }
    }

    /// Tries to linearize the operation of call entry `node` into one of
    /// `candidates`. On success the operation is pushed and lifted.
    fn try_push(
        &mut self,
        stack: &mut Vec<Frame<M::State>>,
        state: &mut M::State,
        node: u32,
        prev: M::State,
        mut candidates: Vec<M::State>,
        parent: u32,
    ) -> bool {
        let k = self.op_of[node as usize];
        self.set_bit(k, true);
        self.lift(node);
        while let Some(s) = candidates.pop() {
            if self.cache.insert(self.key(s.clone())) {
                if self.ops[k as usize].ret().is_some() {
                    self.remaining -= 1;
                }
                let trail = self.trail.len() as u32;
                self.trail.push((k, parent));
                *state = s;
                stack.push(Frame { node, prev, alternatives: candidates, trail });
                return true;
            }
        }
        self.unlift(node);
        self.set_bit(k, false);
        false
    }

    fn out_of_budget(&self) -> Option<UnknownReason> {
        if self.cancel.load(Ordering::Relaxed) {
            return Some(UnknownReason::Cancelled);
        }
        if self.deadline.is_some_and(|d| d.passed()) {
            return Some(UnknownReason::Deadline);
        }
        None
    }

    fn run(mut self) -> (PartitionResult, usize) {
        let result = self.search();
        (result, self.cache.len())
    }

    fn search(&mut self) -> PartitionResult {
        let mut state = self.model.init();
        let mut stack: Vec<Frame<M::State>> = Vec::new();
        let mut node = self.next[HEAD as usize];
        let mut steps: u32 = 0;
        loop {
            if self.remaining == 0 {
                return PartitionResult::Linearizable;
            }
            steps = steps.wrapping_add(1);
            if steps & 0xff == 0 {
                if let Some(r) = self.out_of_budget() {
                    return PartitionResult::Unknown(r);
                }
            }
            if self.cache.len() > self.opts.max_cache_entries {
                return PartitionResult::Unknown(UnknownReason::CacheLimit { entries: self.cache.len() });
            }
            if node != NIL && Self::is_call(node) {
                let op = self.ops[self.op_of[node as usize] as usize];
                let candidates = self.model.step(&state, &op.input, op.output()).into_vec();
                let parent = stack.last().map_or(NIL, |f| f.trail);
                let prev = state.clone();
                if !candidates.is_empty() && self.try_push(&mut stack, &mut state, node, prev, candidates, parent) {
                    node = self.next[HEAD as usize];
                } else {
                    node = self.next[node as usize];
                }
                continue;
            }
            if node != NIL && self.ops[self.op_of[node as usize] as usize].ret().is_none() {
                // The +infinity return of an unknown operation: it need not
                // be linearized, so it does not block.
                node = self.next[node as usize];
                continue;
            }
            // Stuck: a known return (or the end) before its operation was linearized.
            self.note_failure(stack.len(), stack.last().map_or(NIL, |f| f.trail), &state, node);
            // Backtrack: undo the newest frame, try its next alternative
            // state, or else move past its call entry.
            let Some(frame) = stack.pop() else {
                return self.counterexample();
            };
            let k = self.op_of[frame.node as usize];
            if self.ops[k as usize].ret().is_some() {
                self.remaining += 1;
            }
            self.unlift(frame.node);
            self.set_bit(k, false);
            state = frame.prev.clone();
            let parent = stack.last().map_or(NIL, |f| f.trail);
            if !frame.alternatives.is_empty()
                && self.try_push(&mut stack, &mut state, frame.node, frame.prev, frame.alternatives, parent)
            {
                node = self.next[HEAD as usize];
            } else {
                node = self.next[frame.node as usize];
            }
        }
    }

    /// Records the deepest stuck point: the prefix is read back from the
    /// trail only if the search fails in the end.
    fn note_failure(&mut self, depth: usize, trail: u32, state: &M::State, node: u32) {
        if self.best.as_ref().is_some_and(|b| b.depth >= depth) {
            return;
        }
        let stuck = if node == NIL { NIL } else { self.op_of[node as usize] };
        let mut concurrent = Vec::new();
        let mut n = self.next[HEAD as usize];
        while n != node && n != NIL && concurrent.len() < 64 {
            if Self::is_call(n) {
                concurrent.push(self.index[self.op_of[n as usize] as usize]);
            }
            n = self.next[n as usize];
        }
        let stuck = if stuck == NIL { usize::MAX } else { self.index[stuck as usize] };
        concurrent.retain(|&c| c != stuck);
        self.best = Some(Best { depth, trail, state: self.model.describe_state(state), stuck, concurrent });
    }

    fn counterexample(&mut self) -> PartitionResult {
        let Some(best) = self.best.take() else {
            // Only reachable for an empty search, which succeeds first.
            return PartitionResult::Linearizable;
        };
        let mut prefix = Vec::with_capacity(best.depth);
        let mut t = best.trail;
        while t != NIL {
            let (k, parent) = self.trail[t as usize];
            prefix.push(self.index[k as usize]);
            t = parent;
        }
        prefix.reverse();
        let describe = |i: usize| {
            let pos = self.index.iter().position(|&x| x == i);
            pos.map(|p| {
                let op = self.ops[p];
                (i, self.model.describe_operation(&op.input, op.output()))
            })
        };
        let descriptions =
            std::iter::once(best.stuck).chain(best.concurrent.iter().copied()).filter_map(describe).collect();
        PartitionResult::NotLinearizable(Box::new(Counterexample {
            prefix,
            state: best.state,
            stuck: best.stuck,
            concurrent: best.concurrent,
            descriptions,
        }))
    }
}
