//! Headless Debian `chromium`, driven from tests without a DevTools crate:
//! `--dump-dom` prints the document after the page's scripts ran,
//! `--screenshot` keeps a picture as an artefact, and
//! `--enable-logging=stderr --v=0` prints the page's console messages
//! (`INFO:CONSOLE`), which the tests require to be none.
//!
//! Without chromium the tests print a note and pass, except under `CI=1`,
//! where a missing browser fails them (`scripts/test` installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The browser, or `None` (with a note) when it is missing outside CI.
pub fn chromium() -> Option<PathBuf> {
    let candidates = [std::env::var("CHROMIUM").ok(), Some("chromium".into()), Some("chromium-browser".into())];
    for c in candidates.into_iter().flatten() {
        let ok = Command::new(&c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(c.into());
        }
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    assert!(!ci, "chromium is missing and CI is set: install it (apt-get install -y chromium) or set CHROMIUM");
    eprintln!("note: chromium is not installed, so this browser test checks nothing; apt-get install -y chromium");
    None
}

/// Where screenshots are kept: `target/browser-artefacts/`.
pub fn artefacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artefacts");
    std::fs::create_dir_all(&dir).expect("create target/browser-artefacts");
    dir
}

/// What one headless run of a page left: the document and the console.
pub struct Page {
    pub dom: String,
    /// The page's console messages (errors included), one per line.
    pub console: Vec<String>,
}

/// Load `url` in a fresh headless chromium, let its scripts run for about
/// `budget` (virtual time: timers fire, network waits are real), and return
/// the document. With `screenshot`, also write a PNG there (a second run).
pub fn load(chromium: &Path, url: &str, budget: Duration, screenshot: Option<&Path>) -> Page {
    let profile = tempfile::tempdir().expect("profile dir");
    let run = |extra: &[String]| {
        let mut cmd = Command::new(chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            "--hide-scrollbars",
            "--window-size=1400,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={}", budget.as_millis()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let child = cmd.spawn().expect("spawn chromium");
        super::wait_output_all(child, budget + Duration::from_secs(60))
    };
    let (code, dom, stderr) = run(&["--dump-dom".to_string()]);
    assert_eq!(code, 0, "chromium failed on {url}: {stderr}");
    let console = stderr.lines().filter(|l| l.contains(":CONSOLE")).map(str::to_string).collect();
    if let Some(path) = screenshot {
        let (code, _, stderr) = run(&[format!("--screenshot={}", path.display())]);
        assert_eq!(code, 0, "chromium could not take a screenshot of {url}: {stderr}");
        assert!(path.exists(), "no screenshot at {}: {stderr}", path.display());
    }
    Page { dom, console }
}
