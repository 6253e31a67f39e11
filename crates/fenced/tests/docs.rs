//! Every shell block of README.md and docs/*.md (```sh, ```bash and
//! ```console fences) runs as written, against a live `fenced dev` this test
//! starts.
//!
//! The blocks of one file run in order as one bash script (a file's blocks
//! are one session: figure-8-5.md's later blocks use the variables and
//! background processes of its first), in a scratch directory that links the
//! repository's top-level entries (so `crates/check/testdata/...` resolves
//! and nothing is written into the checkout). What is substituted, and why:
//! - `./target/release/fenced`, `cargo run --release -p fenced --` and a
//!   bare `fenced` are the binary under test (first on `PATH`);
//! - a line starting `fenced dev` (or its `cargo run` form) is this test's
//!   own `fenced dev`, already running, so it is not started twice;
//! - the documented ports (7001-7009 for replicas, 7400 for the store) are
//!   moved to free ones, and `FENCED_ENDPOINTS` names the dev cluster, so
//!   the test runs beside anything else on the machine;
//! - `sudo` is dropped when the test runs as root.
//!
//! A command that fails (its exit status is not 0) fails the test, unless it
//! is in [`EXPECTED_FAILURES`], with the reason the document gives. Commands
//! too long for CI are in [`LONG`], each with its reason: they are replaced
//! by `:` here and run when `FENCED_DOCS_LONG=1` (`scripts/docs-long`).
//! Commands for other machines (installing a system service, a Kubernetes
//! cluster) are in [`NOT_RUNNABLE`], with their reason, and never run.

mod support;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Commands too long (or too heavy) for CI: (file, text on the command's
/// first line, why). They run in `scripts/docs-long`.
const LONG: &[(&str, &str, &str)] = &[
    ("README.md", "./scripts/test", "the whole test suite; this test is part of it"),
    (
        "README.md",
        "cargo build --release",
        "a release build takes minutes on CI's 2 cores; the test uses the binary nextest built",
    ),
    ("README.md", "calibrate --endpoints", "measures for 30 s"),
    ("README.md", "sim --seeds 20", "20 simulated seeds take minutes on 2 cores"),
    (
        "README.md",
        "chaos --compare",
        "four 90 s chaos runs (fenced, etcd twice, Redlock); needs root, etcd and redis-server",
    ),
    (
        "security.md",
        "cargo +nightly fuzz run",
        "a 10-minute fuzz run with the nightly toolchain (scripts/fuzz runs every target)",
    ),
    ("security.md", "cd fuzz", "goes with the fuzz run above"),
    (
        "deploy.md",
        "deploy/validate",
        "installs promtool (Debian's prometheus) and kubernetes-validate (PyPI) when missing; .ci/run runs it as its own step",
    ),
    (
        "python.md",
        "pip install ./clients/python",
        "builds the PyO3 extension with cargo: minutes on CI's 2 cores; scripts/test builds it for the Python tests",
    ),
    ("python.md", "examples/figure_8_5.py", "needs the package that `pip install ./clients/python` above builds"),
];

/// Commands whose documented outcome is a failure: (file, text on the
/// line that fails, why).
const EXPECTED_FAILURES: &[(&str, &str, &str)] = &[
    ("figure-8-5.md", "wait $C1", "client 1's write after its pause is refused: `exit 1` is the point of Figure 8-5"),
    ("figure-8-5.md", "fenced-store-fig-8-4.jsonl", "the unfenced history violates S6; the document says `# exit 1`"),
];

/// Commands for other machines, never run here, not even by
/// `scripts/docs-long`: (file, text on the command's first line, why). They
/// change the machine they run on or need what a test machine has not; what
/// can be checked of them offline is checked elsewhere (the reason says where).
const NOT_RUNNABLE: &[(&str, &str, &str)] = &[
    (
        "deploy.md",
        "useradd --system",
        "creates a system user on the machine; the unit is verified by `systemd-analyze verify` in deploy/validate",
    ),
    ("deploy.md", "install -m 0644 deploy/systemd", "installs a unit into /etc/systemd/system (as above)"),
    ("deploy.md", "install -m 0640 -g fenced", "installs a config into /etc/fenced for the user `fenced` (as above)"),
    ("deploy.md", "systemctl daemon-reload", "enables and starts a system service (as above)"),
    (
        "deploy.md",
        "kubectl create secret",
        "needs a Kubernetes cluster; the manifests are validated offline by kubernetes-validate in deploy/validate",
    ),
    ("deploy.md", "kubectl apply", "needs a Kubernetes cluster (as above)"),
];

struct Block {
    file: String,
    /// Line of the opening fence.
    line: usize,
    console: bool,
    lines: Vec<String>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

fn documents(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The shell blocks of a document. Every fence toggles, so the content of
/// another language's block is never read as shell.
fn shell_blocks(path: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(path).expect("read document");
    let file = path.file_name().expect("file name").to_string_lossy().to_string();
    let mut out = Vec::new();
    let mut open: Option<Option<Block>> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        match open.as_mut() {
            None => {
                if let Some(lang) = t.strip_prefix("```") {
                    let lang = lang.trim();
                    open = Some(matches!(lang, "sh" | "bash" | "console").then(|| Block {
                        file: file.clone(),
                        line: i + 1,
                        console: lang == "console",
                        lines: Vec::new(),
                    }));
                }
            }
            Some(b) => {
                if t.starts_with("```") {
                    out.extend(open.take().flatten());
                } else if let Some(b) = b.as_mut() {
                    b.lines.push(line.to_string());
                }
            }
        }
    }
    out
}

fn long_runs() -> bool {
    std::env::var_os("FENCED_DOCS_LONG").is_some_and(|v| v == "1")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A base port with 10 free ports after it and one at +399 (the store).
fn free_base() -> u16 {
    let pid = std::process::id();
    for attempt in 0..200u32 {
        let base = 20_000 + ((pid.wrapping_mul(7919).wrapping_add(attempt * 613)) % 30_000) as u16;
        let ok = (0..10).chain([399]).all(|off| std::net::TcpListener::bind(("127.0.0.1", base + off)).is_ok());
        if ok {
            return base;
        }
    }
    panic!("no free block of ports found");
}

fn move_ports(line: &str, base: u16) -> String {
    let mut s = line.to_string();
    for p in 7001..=7009u16 {
        s = s.replace(&format!("127.0.0.1:{p}"), &format!("127.0.0.1:{}", base + (p - 7001)));
    }
    s.replace("127.0.0.1:7400", &format!("127.0.0.1:{}", base + 399))
}

/// One line of a document as the script runs it, and whether it was left out.
fn substitute(
    block: &Block,
    line: &str,
    base: u16,
    skipping_continuation: &mut Option<String>,
) -> (String, Option<String>) {
    if let Some(why) = skipping_continuation.clone() {
        if !line.trim_end().ends_with('\\') {
            *skipping_continuation = None;
        }
        return (format!(": # (continued) {why}"), None);
    }
    let mut l = line.to_string();
    if block.console {
        match l.trim_start().strip_prefix("$ ") {
            Some(cmd) => l = cmd.to_string(),
            // Output, or a continuation of the previous command.
            None if !l.trim_start().starts_with('>') => return (String::new(), None),
            None => l = l.trim_start().trim_start_matches('>').to_string(),
        }
    }
    let skip = |why: String, l: &str, cont: &mut Option<String>| {
        if l.trim_end().ends_with('\\') {
            *cont = Some(why.clone());
        }
        (format!(": # skipped: {why}"), Some(why))
    };
    if let Some((_, _, why)) = NOT_RUNNABLE.iter().find(|(f, text, _)| *f == block.file && l.contains(text)) {
        return skip(format!("not runnable here: {why}"), &l, skipping_continuation);
    }
    if !long_runs() {
        if let Some((_, _, why)) = LONG.iter().find(|(f, text, _)| *f == block.file && l.contains(text)) {
            return skip(format!("long: {why}"), &l, skipping_continuation);
        }
    }
    l = l.replace("./target/release/fenced", "fenced").replace("cargo run --release -p fenced --", "fenced");
    if is_root() {
        if let Some(rest) = l.trim_start().strip_prefix("sudo ") {
            l = rest.to_string();
        }
    }
    let bare = l.trim_start();
    if bare.starts_with("fenced dev") && !bare.starts_with("fenced dev-") {
        return skip("the test's own `fenced dev` is running".into(), &l, skipping_continuation);
    }
    (move_ports(&l, base), None)
}

fn http_ok(addr: &str, path: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"HTTP/1.1 200"))
}

/// A `fenced dev` of this test's own, in its own process group.
struct Dev {
    child: std::process::Child,
}

impl Dev {
    fn start(dir: &Path, base: u16) -> Dev {
        let log = std::fs::File::create(dir.join("dev.log")).expect("dev log");
        let child = Command::new(support::BIN)
            .args(["dev", "--base-port", &base.to_string(), "--data-dir"])
            .arg(dir.join("dev-data"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .die_with_parent()
            .spawn()
            .expect("start fenced dev");
        let dev = Dev { child };
        let addr = format!("127.0.0.1:{base}");
        let deadline = support::now().plus(Duration::from_secs(60));
        while !http_ok(&addr, "/v1/cluster/key") {
            assert!(support::now() < deadline, "fenced dev did not become ready in 60 s");
            std::thread::sleep(Duration::from_millis(200));
        }
        dev
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        support::signal(self.child.id(), libc::SIGINT);
        let deadline = support::now().plus(Duration::from_secs(10));
        while support::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

trait DieWithParent {
    /// SIGKILL the child when this test's thread dies (nextest killed it on
    /// a timeout, a panic aborted it): a `fenced dev` must not outlive it.
    fn die_with_parent(&mut self) -> &mut Self;
}

impl DieWithParent for Command {
    fn die_with_parent(&mut self) -> &mut Self {
        // SAFETY: prctl is async-signal-safe and touches only the child.
        unsafe {
            self.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            })
        }
    }
}

struct FileRun {
    failures: Vec<String>,
    skipped: Vec<String>,
}

/// Run one document's blocks as one script against a fresh `fenced dev`.
fn run_file(root: &Path, doc: &str, blocks: &[Block], within: Duration) -> FileRun {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let work = scratch.path().join("work");
    std::fs::create_dir(&work).expect("work dir");
    for entry in std::fs::read_dir(root).expect("read repository root").flatten() {
        let name = entry.file_name();
        if name == ".git" || name == "target" || name == ".fenced-dev" {
            continue;
        }
        let _ = std::os::unix::fs::symlink(entry.path(), work.join(&name));
    }
    let bin_dir = scratch.path().join("bin");
    std::fs::create_dir(&bin_dir).expect("bin dir");
    std::os::unix::fs::symlink(support::BIN.to_string(), bin_dir.join("fenced")).expect("link fenced");
    let base = free_base();
    let _dev = Dev::start(scratch.path(), base);

    // The script: a header, then one script line per document line, so a
    // failing line number maps back to the document.
    let fails = scratch.path().join("failures");
    // The script ends everything it started (its process group) when it
    // exits, and a watchdog in the group ends it all after `within` even if
    // this test died without cleaning up.
    let header = format!(
        "set -o pipefail\ntrap 'echo \"$LINENO $?\" >> {}' ERR\n(sleep {}; kill -KILL 0) &\ntrap 'trap - ERR; kill -KILL 0' EXIT\n",
        fails.display(),
        within.as_secs() + 10
    );
    let header_lines = header.lines().count();
    let mut script = header;
    let mut origin: Vec<(usize, String)> = Vec::new();
    let mut skipped = Vec::new();
    for b in blocks {
        let mut cont = None;
        // The fence line itself becomes an echo, so the log shows where we are.
        let _ = writeln!(script, "echo '--- {}:{}' >&2", b.file, b.line);
        origin.push((b.line, String::new()));
        for (i, line) in b.lines.iter().enumerate() {
            let (l, skip) = substitute(b, line, base, &mut cont);
            if let Some(why) = skip {
                skipped.push(format!("{}:{}: {} ({why})", b.file, b.line + 1 + i, line.trim()));
            }
            script.push_str(&l);
            script.push('\n');
            origin.push((b.line + 1 + i, line.clone()));
        }
    }
    // What the blocks left running in the background (a store server) is
    // ended with the script's process group below, not waited for.
    let script_path = scratch.path().join("script.sh");
    std::fs::write(&script_path, &script).expect("write script");

    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let endpoints = format!("127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}", base, base + 1, base + 2);
    let log_path = scratch.path().join("script.log");
    let log = std::fs::File::create(&log_path).expect("script log");
    let mut child = Command::new("bash")
        .arg(&script_path)
        .current_dir(&work)
        .env("PATH", path)
        .env("FENCED_ENDPOINTS", &endpoints)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .process_group(0)
        .die_with_parent()
        .spawn()
        .expect("run bash");
    let deadline = support::now().plus(within);
    let mut timed_out = false;
    loop {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        if support::now() > deadline {
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Everything the script started is in its process group, and only that.
    // SAFETY: killpg on the group this test created for the script.
    unsafe {
        libc::killpg(child.id() as libc::pid_t, libc::SIGCONT);
        libc::killpg(child.id() as libc::pid_t, libc::SIGKILL);
    }
    let _ = child.wait();
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut failures = Vec::new();
    let mut failed_as_documented = Vec::new();
    if timed_out {
        failures.push(format!("{doc}: did not finish within {within:?}"));
    }
    for l in std::fs::read_to_string(&fails).unwrap_or_default().lines() {
        let mut parts = l.split_whitespace();
        let (Some(Ok(n)), Some(status)) = (parts.next().map(str::parse::<usize>), parts.next()) else { continue };
        let Some(idx) = n.checked_sub(header_lines + 1) else { continue };
        // A command that spans lines is reported at one of them: look at it
        // and the lines before it.
        let lines: Vec<&(usize, String)> =
            origin[..=idx.min(origin.len().saturating_sub(1))].iter().rev().take(4).collect();
        let expected =
            EXPECTED_FAILURES.iter().find(|(f, t, _)| *f == doc && lines.iter().any(|(_, text)| text.contains(t)));
        if let Some((_, t, _)) = expected {
            failed_as_documented.push(t.to_string());
        } else {
            let (line, text) = lines.first().map(|(n, t)| (*n, t.trim().to_string())).unwrap_or_default();
            failures.push(format!("{doc}:{line}: `{text}` exited {status}"));
        }
    }
    // A documented failure that did not happen is as wrong as an
    // undocumented one: Figure 8-5's stale write must be refused.
    for (_, t, why) in EXPECTED_FAILURES.iter().filter(|(f, _, _)| *f == doc) {
        if !timed_out && !failed_as_documented.iter().any(|x| x == t) {
            failures.push(format!("{doc}: `{t}` was documented to fail ({why}) but succeeded"));
        }
    }
    if !failures.is_empty() {
        failures.push(format!("{doc}: the script's output:\n{output}"));
    } else if std::env::var_os("FENCED_DOCS_VERBOSE").is_some() {
        eprintln!("{doc}: the script's output:\n{output}");
    }
    FileRun { failures, skipped }
}

#[test]
fn every_documented_command_runs_as_written() {
    let root = repo_root();
    let within = if long_runs() { Duration::from_secs(3 * 3600) } else { Duration::from_secs(180) };
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    let mut ran = 0;
    for path in documents(&root) {
        let doc = path.file_name().expect("name").to_string_lossy().to_string();
        let blocks = shell_blocks(&path);
        if blocks.is_empty() {
            continue;
        }
        eprintln!("docs: {doc}: {} blocks", blocks.len());
        let started = support::now();
        let r = run_file(&root, &doc, &blocks, within);
        eprintln!("docs: {doc}: {} failures in {:.1} s", r.failures.len(), support::now().since(started).as_secs_f64());
        for f in &r.failures {
            eprintln!("docs: FAILED {f}");
        }
        ran += blocks.len();
        failures.extend(r.failures);
        skipped.extend(r.skipped);
    }
    for s in &skipped {
        eprintln!("docs: skipped {s}");
    }
    assert!(ran > 0, "no shell blocks found in README.md and docs/*.md");
    assert!(failures.is_empty(), "documented commands failed:\n{}", failures.join("\n"));
}

#[test]
fn every_long_entry_still_names_a_documented_command() {
    // A stale entry would silently stop skipping nothing; a renamed command
    // would then run in CI, or its entry would hide nothing and rot.
    let root = repo_root();
    let all: Vec<(String, String)> = documents(&root)
        .iter()
        .flat_map(|p| shell_blocks(p).into_iter().flat_map(|b| b.lines.into_iter().map(move |l| (b.file.clone(), l))))
        .collect();
    for (f, text, why) in LONG.iter().chain(EXPECTED_FAILURES).chain(NOT_RUNNABLE) {
        assert!(!why.is_empty());
        assert!(all.iter().any(|(file, l)| file == f && l.contains(text)), "no block of {f} contains {text:?}");
    }
}

#[test]
fn a_failing_command_fails_the_document() {
    // The check can fail: a command that exits non-zero, a command the
    // binary does not have, and a documented failure that does not happen.
    let root = repo_root();
    let block = Block {
        file: "figure-8-5.md".into(),
        line: 1,
        console: false,
        lines: vec![
            "fenced lock acquire docs-probe --ttl 5s --json".into(),
            "false".into(),
            "fenced no-such-command".into(),
            "echo 'wait $C1 is documented to fail and does not'".into(),
        ],
    };
    let r = run_file(&root, "figure-8-5.md", &[block], Duration::from_secs(60));
    let all = r.failures.join("\n");
    assert!(all.contains("figure-8-5.md:3: `false` exited 1"), "{all}");
    assert!(all.contains("`fenced no-such-command` exited 2"), "{all}");
    assert!(all.contains("fenced-store-fig-8-4.jsonl` was documented to fail"), "{all}");
    assert!(!all.contains("figure-8-5.md:2:"), "the acquire against the test's dev failed:\n{all}");
}
