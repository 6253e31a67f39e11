//! Helpers shared by the chaos integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The `fenced` binary: `$FENCED_BIN` if set (for a target directory shared
/// by several checkouts, where the one next to the tests may be another
/// tree's), else the one next to this test executable
/// (`target/<profile>/deps/NAME-HASH` → `target/<profile>/fenced`): build it
/// first with `cargo build -p fenced`.
pub fn fenced_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("FENCED_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile> directory");
    let bin = dir.join("fenced");
    assert!(bin.exists(), "the fenced binary is missing at {}: run `cargo build -p fenced` first", bin.display());
    bin
}

/// Can a chaos run happen here: root, `ip netns`, `nft` and `tools`? If
/// not, fail under `CI` (which provides all of it) and otherwise print why
/// the test is skipped.
pub fn can_run(tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !fenced_chaos::netns::is_root() {
        missing.push("root".to_string());
    }
    for t in std::iter::once(&"nft").chain(tools) {
        if !fenced_chaos::netns::have(t) {
            missing.push(format!("`{t}`"));
        }
    }
    if fenced_chaos::netns::run("ip", &["netns", "list"]).is_err() {
        missing.push("`ip netns`".into());
    }
    if missing.is_empty() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "CI must provide {} for the chaos tests", missing.join(", "));
    eprintln!("SKIPPED: this chaos test needs {}", missing.join(", "));
    false
}
