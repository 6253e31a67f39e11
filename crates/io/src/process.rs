//! Child processes this program started, and only those: the one harness
//! the benchmark, the chaos runner and the integration tests start their
//! servers with. A child is ended by its own pid (never by name or process
//! group), woken first in case a fault left it stopped, and reaped, so a
//! failing run leaks no server.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::Duration;

/// How often a bounded wait looks whether its child has exited.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// Send `sig` to `pid`, a process this program started. A process already
/// gone is not an error: the caller ends what may have ended by itself.
pub fn signal(pid: u32, sig: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill(2) has no memory effects; `pid` is a child we spawned.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Make the child get SIGKILL when the thread that started it dies, so that
/// a runner killed with `-9` takes its servers with it.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches only
    // the child being set up.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// End a child for good: SIGCONT (a fault may have stopped it), SIGKILL,
/// and reap it.
pub fn end(child: &mut Child) {
    signal(child.id(), libc::SIGCONT);
    let _ = child.kill();
    let _ = child.wait();
}

/// A child ended by [`end`] when dropped.
#[derive(Debug)]
pub struct Owned(Option<Child>);

impl Owned {
    pub fn new(child: Child) -> Self {
        Owned(Some(child))
    }

    /// Its pid, while it has not been ended here.
    pub fn pid(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }

    /// Whether it has not been ended here (it may have exited by itself).
    pub fn alive(&self) -> bool {
        self.0.is_some()
    }

    /// End it now ([`end`]); later calls do nothing.
    pub fn end(&mut self) {
        if let Some(mut c) = self.0.take() {
            end(&mut c);
        }
    }

    /// The child, for waiting on it or reading its pipes.
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.0.as_mut()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.end();
    }
}

/// A log file a child appends its output to (created if missing), so that a
/// restarted server's log follows its first life's.
pub fn append_log(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// `n` distinct free ports on 127.0.0.1 (bound, then released: another
/// process could take one in between, which makes the start fail loudly).
pub fn free_loopback_ports(n: usize) -> io::Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
    listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect()
}

/// Resident set size of a process from `/proc/PID/status` (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    parse_vmrss(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The `VmRSS:   1234 kB` line of `/proc/PID/status`.
pub fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Wait for a child with piped stdout and stderr for at most `within`
/// (then [`end`] it), draining both pipes meanwhile so a chatty child cannot
/// block. The code is `None` when a signal ended it (here, after `within`).
pub fn wait_output(mut child: Child, within: Duration) -> io::Result<(Option<i32>, Output)> {
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let drain = |pipe: Option<Box<dyn io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(out.map(|p| Box::new(p) as Box<dyn io::Read + Send>));
    let err = drain(err.map(|p| Box::new(p) as Box<dyn io::Read + Send>));
    let start = crate::clock::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if crate::clock::now().since(start) > within {
            end(&mut child);
            // Reaped by `end`; `wait` returns the status it kept.
            break child.wait()?;
        }
        std::thread::sleep(EXIT_POLL);
    };
    let code = status.code();
    let output = Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() };
    Ok((code, output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    #[test]
    fn vmrss() {
        let s = "Name:\tx\nVmPeak:\t  100 kB\nVmRSS:\t   4242 kB\nThreads: 3\n";
        assert_eq!(parse_vmrss(s), Some(4242));
        assert_eq!(parse_vmrss("Name: x\n"), None);
    }

    #[test]
    fn a_stopped_child_is_ended_and_reaped_when_dropped() {
        let child = Command::new("sleep").arg("60").spawn().expect("spawn sleep");
        let pid = child.id();
        let owned = Owned::new(child);
        assert_eq!(owned.pid(), Some(pid));
        signal(pid, libc::SIGSTOP);
        drop(owned);
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "pid {pid} was reaped");
    }

    #[test]
    fn output_is_collected_and_a_child_past_its_time_is_ended() {
        let quick = Command::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let (code, out) = wait_output(quick, Duration::from_secs(30)).expect("waits");
        assert_eq!((code, out.stdout.as_slice(), out.stderr.as_slice()), (Some(3), &b"out\n"[..], &b"err\n"[..]));
        let slow =
            Command::new("sleep").arg("60").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        let (code, _) = wait_output(slow, Duration::from_millis(100)).expect("waits");
        assert_eq!(code, None, "ended, not exited");
    }
}
