//! The "must not depend on" column of `docs/ARCHITECTURE.md`'s code map,
//! checked against what cargo actually resolves, so the crate rules are
//! enforced rather than hoped for.
//!
//! The column is read from the document itself: a rule written there is a
//! rule tested here, and a phrase this test cannot translate into crate names
//! fails it (so the column stays checkable).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Every crate a phrase of the column stands for. `None`: not a phrase this
/// test knows.
fn crates_of(phrase: &str, workspace: &BTreeSet<String>, own: &str) -> Option<Vec<String>> {
    let list = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
    match phrase {
        "—" | "" => Some(Vec::new()),
        "tokio" => list(&["tokio"]),
        "openraft" => list(&["openraft"]),
        // The async runtime and the socket layers under it.
        "any I/O" => list(&["tokio", "mio", "socket2", "hyper"]),
        "the client" => list(&["fenced-client"]),
        "the store" => list(&["fenced-store"]),
        "the replica" => list(&["fenced-replica"]),
        // A command-line parser belongs to the binaries, not to a library's users.
        "clap" => list(&["clap"]),
        "everything else" => Some(workspace.iter().filter(|c| *c != own).cloned().collect()),
        _ => None,
    }
}

/// `(crate, phrases)` for every row of the code map that names a crate.
fn rules() -> Vec<(String, Vec<String>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ARCHITECTURE.md");
    let text = std::fs::read_to_string(path).expect("docs/ARCHITECTURE.md is readable");
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        let (Some(first), Some(last)) = (cells.first(), cells.last()) else { continue };
        // "`crates/core` (`fenced-core`)": the package name is the second code span.
        let spans: Vec<&str> = first.split('`').skip(1).step_by(2).collect();
        let name = match spans.as_slice() {
            [_, name, ..] => name.to_string(),
            // `crates/fenced`: the directory's last part is the package.
            [dir] if dir.starts_with("crates/") => dir.trim_start_matches("crates/").to_string(),
            _ => continue,
        };
        let phrases = last.split(',').map(|p| p.trim().to_string()).collect();
        out.push((name, phrases));
    }
    out
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("-vV").output().expect("rustc -vV runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| panic!("rustc -vV names no host: {text}"))
}

/// Each workspace package's transitive normal (run-time) dependencies, by
/// package name, from `cargo metadata`.
fn runtime_deps() -> (BTreeSet<String>, BTreeMap<String, BTreeSet<String>>) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Only this machine's platform: a fresh machine's registry holds the
    // packages its build needed, not those of other platforms (Android,
    // Windows), which `cargo metadata --offline` would otherwise ask for.
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &host_triple()])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let name_of: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let members: BTreeSet<String> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(|id| name_of.get(id.as_str()?).map(|n| n.to_string()))
        .collect();
    // Direct run-time edges: a dependency counts when one of its kinds is
    // normal (`kind: null`); dev and build dependencies do not reach users.
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve.nodes") {
        let Some(id) = node["id"].as_str() else { continue };
        let deps = node["deps"].as_array().into_iter().flatten().filter_map(|d| {
            let normal = d["dep_kinds"].as_array()?.iter().any(|k| k["kind"].is_null());
            normal.then(|| d["pkg"].as_str()).flatten()
        });
        edges.insert(id, deps.collect());
    }
    let mut closure = BTreeMap::new();
    for (id, name) in &name_of {
        if !members.contains(*name) {
            continue;
        }
        let mut seen = BTreeSet::new();
        let mut todo = vec![*id];
        while let Some(at) = todo.pop() {
            for d in edges.get(at).into_iter().flatten() {
                if seen.insert(*d) {
                    todo.push(d);
                }
            }
        }
        closure.insert(name.to_string(), seen.iter().filter_map(|d| name_of.get(d)).map(|n| n.to_string()).collect());
    }
    (members, closure)
}

#[test]
fn the_code_maps_crate_rules_hold() {
    let rules = rules();
    assert!(rules.len() >= 8, "read only {} rows from docs/ARCHITECTURE.md's code map", rules.len());
    let (members, deps) = runtime_deps();
    let mut broken = Vec::new();
    for (name, phrases) in &rules {
        let Some(have) = deps.get(name) else {
            panic!("docs/ARCHITECTURE.md names {name}, which is not a workspace package");
        };
        for phrase in phrases {
            let forbidden = crates_of(phrase, &members, name).unwrap_or_else(|| {
                panic!("{name}: the rule {phrase:?} names no crates this test knows; add it to crates_of")
            });
            for f in forbidden.iter().filter(|f| have.contains(*f)) {
                broken.push(format!("{name} depends on {f} (rule: must not depend on {phrase})"));
            }
        }
    }
    assert!(broken.is_empty(), "crate rules broken:\n{}", broken.join("\n"));
}

#[test]
fn the_rule_check_sees_a_real_dependency() {
    // The check is only worth something if it can fail: the binary depends
    // on every library, the store on tokio, and the chaos runner on clap.
    let (members, deps) = runtime_deps();
    assert!(members.contains("fenced-core"));
    let fenced = deps.get("fenced").expect("the binary is a workspace package");
    assert!(fenced.contains("fenced-replica") && fenced.contains("fenced-core"));
    assert!(deps.get("fenced-store").is_some_and(|d| d.contains("tokio") && !d.contains("clap")));
    assert!(deps.get("fenced-chaos").is_some_and(|d| d.contains("clap")));
    assert!(crates_of("no such phrase", &members, "fenced").is_none());
}
