//! The chaos runner's lock workload (`fenced chaos client` processes:
//! acquire → read → write with the token → release, against a fenced store)
//! on a loopback cluster, and the judgement of its history by every checker,
//! with the log read back from the replicas' data directories.

use super::{signal, StoreProc, BIN};
use fenced_chaos::worker::mono_ns;
use fenced_check::checkers::check_all;
use fenced_check::history::{Event, EventType, History};
use fenced_check::verdict::{Options, Status, Verdict};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const LOCKS: usize = 3;
pub const TTL_MS: u64 = 3000;

/// Client processes writing their events into one shared list.
pub struct Workload {
    pub epoch: u64,
    children: Vec<Child>,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Workload {
    /// `clients` processes, invoking for `duration`, on `endpoints`.
    pub fn start(endpoints: &[String], store: &str, clients: u64, duration: Duration, seed: u64) -> Workload {
        let epoch = mono_ns();
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let mut children = Vec::new();
        for c in 1..=clients {
            let mut child = Command::new(BIN)
                .args(["chaos", "client", "--process", &c.to_string(), "--endpoints", &endpoints.join(",")])
                .args(["--store", store, "--epoch-ns", &epoch.to_string()])
                .args(["--until-ns", &(duration.as_nanos() as u64).to_string()])
                .args(["--locks", &LOCKS.to_string(), "--ttl-ms", &TTL_MS.to_string(), "--seed", &seed.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn fenced chaos client");
            let out = child.stdout.take().expect("client stdout");
            let events = events.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    if let Ok(e) = serde_json::from_str::<Event>(&line) {
                        events.lock().expect("events").push(e);
                    }
                }
            });
            children.push(child);
        }
        Workload { epoch, children, events }
    }

    /// Nanoseconds since the epoch, the history's clock.
    pub fn now(&self) -> u64 {
        mono_ns().saturating_sub(self.epoch)
    }

    /// Acknowledged acquires so far.
    pub fn grants(&self) -> usize {
        let e = self.events.lock().expect("events");
        e.iter().filter(|e| e.kind == EventType::Ok && e.f == "acquire").count()
    }

    /// Wait for every client to finish (they stop invoking at the end of
    /// the duration); kill, by pid, any still running after `within`.
    pub fn finish(mut self, within: Duration) -> Vec<Event> {
        let start = super::now();
        for c in &mut self.children {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if super::now().since(start) > within => {
                        signal(c.id(), libc::SIGCONT);
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    Err(_) => break,
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut events = std::mem::take(&mut *self.events.lock().expect("events"));
        events.sort_by_key(|e| e.time);
        events
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// For each window `[from, to]` (ns), the longest acquire that overlapped
/// it, in ms, measured as L1 does ([`fenced_check::waits`]). Reported,
/// never asserted.
pub fn acquire_latency_ms(events: &[Event], windows: &[(u64, u64)]) -> Vec<u64> {
    fenced_check::waits::longest_acquire_waits(events, windows).into_iter().map(|ns| ns / 1_000_000).collect()
}

/// Final reads of every key, the log read back from `voters` (their data
/// directories; the replicas must be stopped), and every checker's verdict.
pub async fn judge(
    mut events: Vec<Event>,
    epoch: u64,
    store: &StoreProc,
    voters: &[(u64, PathBuf)],
    out: &Path,
) -> (History, Vec<Verdict>) {
    events.extend(fenced_chaos::run::final_reads(&store.client(), LOCKS, epoch).await);
    let at = mono_ns().saturating_sub(epoch);
    let (log, notes) =
        fenced_chaos::run::read_back_dirs(Path::new(BIN.path()), voters, Some(out), 0, voters.len() as u64, at)
            .expect("read the logs back");
    assert!(!log.is_empty(), "no log events read back: {notes:?}");
    events.extend(log);
    let history = History::new(events);
    let _ = std::fs::write(out.join("history.jsonl"), history.to_jsonl());
    let opts = Options { l1_grace: Duration::from_secs(3), ..Default::default() };
    let verdicts = check_all(&history, &opts);
    (history, verdicts)
}

/// Panic with every verdict if any checker found a violation or could not judge.
pub fn assert_all_valid(verdicts: &[Verdict], context: &str) {
    let bad: Vec<String> = verdicts
        .iter()
        .filter(|v| v.status != Status::Valid)
        .map(|v| format!("{:?} {:?}: {}", v.property, v.status, v.message))
        .collect();
    assert!(bad.is_empty(), "checkers did not all pass:\n{}\n{context}", bad.join("\n"));
}
