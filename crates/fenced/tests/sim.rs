//! The simulator as users run it: `fenced sim` sweeps and replays, in
//! separate processes. Run under the optimised test profile (see README).

use serde_json::Value;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fenced");

fn sim(args: &[&str]) -> (i32, Value) {
    let out = Command::new(BIN).arg("sim").args(args).arg("--json").output().expect("run fenced sim");
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON from fenced sim {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn a_seed_replays_bit_for_bit_in_separate_processes() {
    let mut with_crash = 0;
    for seed in ["1", "2", "3", "4", "5", "6"] {
        let (_, a) = sim(&["--seed", seed, "--duration", "15s"]);
        let (_, b) = sim(&["--seed", seed, "--duration", "15s"]);
        assert_eq!(a["history_hash"], b["history_hash"], "seed {seed} did not replay: {a} vs {b}");
        assert_eq!(a["events"], b["events"]);
        if a["fault_kinds"].as_array().is_some_and(|k| k.iter().any(|f| f == "crash" || f == "crash-store")) {
            with_crash += 1;
        }
    }
    assert!(with_crash >= 2, "too few of the replayed seeds had crashes ({with_crash})");
}

#[test]
fn a_fenced_sweep_finds_no_violation_and_stays_available() {
    // CI's bounded sweep: 200 seeds of 20 simulated seconds each.
    let (code, v) = sim(&["--seeds", "200", "--duration", "20s"]);
    assert_eq!(v["seeds"], 200);
    assert_eq!(v["seeds_with_safety_violations"], 0, "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["l1_failed"], 0, "{v}");
    // The speed the issue asks to be measured, reported with every sweep (a
    // value, not a bound: timing is not asserted).
    for field in ["simulated_seconds_per_wall_second", "seeds_per_hour"] {
        assert!(v[field].as_f64().is_some_and(|x| x > 0.0), "{field} missing from the summary");
    }
    assert_eq!(code, 0);
}

#[test]
fn membership_changes_under_crashes_and_partitions_stay_safe() {
    // An operator removes and re-adds voters (joint consensus) while the
    // nemesis crashes and partitions replicas; every checker judges the run.
    let mut changes = 0;
    for seed in ["1", "2", "3", "4", "5", "6"] {
        let (code, v) = sim(&["--seed", seed, "--membership"]);
        let bad: Vec<_> = v["verdicts"]
            .as_object()
            .map(|m| m.iter().filter(|(_, x)| x["status"] != "valid").map(|(k, x)| format!("{k}: {x}")).collect())
            .unwrap_or_default();
        assert!(bad.is_empty(), "seed {seed}: {bad:?}\nreplay: {}", v["replay"]);
        assert_eq!(code, 0, "seed {seed}: {v}");
        changes += v["membership_changes"].as_u64().unwrap_or(0);
    }
    assert!(changes >= 6, "only {changes} membership changes completed in 6 seeds");
}

#[test]
fn an_unfenced_store_shows_the_figure_8_4_corruption() {
    let (code, v) = sim(&["--seeds", "40", "--unfenced", "--expect-violation"]);
    let long = v["seeds_with_long_client_pause"].as_u64().unwrap_or(0);
    let s3 = v["s3_violations_among_long_pause_seeds"].as_u64().unwrap_or(0);
    assert!(long >= 20, "too few seeds paused a client past its TTL: {v}");
    // The issue asks for 90 % over 200 seeds; these 40 give 37 of 39.
    assert!(s3 * 100 >= long * 85, "S3 found in only {s3} of {long} seeds with a long client pause");
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(code, 0, "--expect-violation exits 0 when a violation was found");
}

#[test]
fn other_models_and_five_replicas_stay_safe() {
    for args in [
        &["--seeds", "10", "--model", "sync"][..],
        &["--seeds", "10", "--model", "async", "--faults", "crash-stop"][..],
        &["--seeds", "10", "--nodes", "5", "--byzantine-clients"][..],
        &["--seeds", "10", "--drift-beyond-rho"][..],
    ] {
        let (code, v) = sim(args);
        assert_eq!(v["seeds_with_safety_violations"], 0, "{args:?}: {v}");
        assert_eq!(v["errors"], 0, "{args:?}: {v}");
        assert_eq!(code, 0, "{args:?}: {v}");
    }
}

#[test]
fn every_named_scenario_ends_as_its_story_says() {
    for scenario in [
        "figure-8-4",
        "figure-8-5",
        "gc-pause-zombie",
        "asymmetric-not-dead",
        "clock-jump",
        "limping-node",
        "lost-reply-retry",
    ] {
        let out = Command::new(BIN).args(["demo", "--scenario", scenario]).output().expect("run fenced demo");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "scenario {scenario} ended unexpectedly:\n{text}");
        let s3_broken = text.lines().any(|l| l.trim_start().starts_with("S3  INVALID"));
        assert_eq!(s3_broken, scenario == "figure-8-4", "scenario {scenario}:\n{text}");
    }
}

#[test]
fn a_merge_with_a_missing_shard_names_it_and_fails_unless_allowed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = Vec::new();
    for shard in ["1/3", "3/3"] {
        let out = Command::new(BIN)
            .args(["sim", "--seeds", "3", "--duration", "5s", "--shard", shard, "--json"])
            .output()
            .expect("run a shard");
        assert!(out.status.success(), "shard {shard}: {}", String::from_utf8_lossy(&out.stdout));
        let path = dir.path().join(format!("shard-{}.json", &shard[..1]));
        std::fs::write(&path, &out.stdout).expect("write the shard's summary");
        files.push(path.to_string_lossy().to_string());
    }
    let merge = |files: &[String], extra: &[&str]| {
        Command::new(BIN).args(["sim", "merge"]).args(files).args(extra).output().expect("run fenced sim merge")
    };
    let out = merge(&files, &[]);
    assert_eq!(out.status.code(), Some(1), "a merge missing shard 2/3 must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("shards missing: 2/3") && stderr.contains("--allow-missing"), "{stderr}");
    let out = merge(&files, &["--allow-missing", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("the merged summary is JSON");
    assert_eq!(v["seeds"], 2, "{v}");
    assert_eq!(v["shards_missing"], serde_json::json!(["2/3"]), "{v}");
    // All three shards: nothing missing, exit 0 without the flag.
    let out = Command::new(BIN)
        .args(["sim", "--seeds", "3", "--duration", "5s", "--shard", "2/3", "--json"])
        .output()
        .expect("run the missing shard");
    let path = dir.path().join("shard-2.json");
    std::fs::write(&path, &out.stdout).expect("write");
    files.push(path.to_string_lossy().to_string());
    let out = merge(&files, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["seeds"], 3, "{v}");
}

#[test]
fn a_disaster_is_judged_and_a_floor_below_the_lost_grants_fails_the_seed() {
    let (code, v) = sim(&["--seed", "3", "--disaster", "restore"]);
    assert_eq!(v["verdicts"]["restore"]["status"], "valid", "{v}");
    assert!(v["disaster"]["lost_grants"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert_eq!(code, 0, "{v}");
    assert!(v["replay"].as_str().is_some_and(|r| r.contains("--disaster restore")), "{v}");
    // `--bump 1`: the new cluster starts right above the backup, below the
    // grants made after it, and hands their tokens out again.
    let (code, v) = sim(&["--seed", "3", "--disaster", "restore", "--disaster-bump", "1"]);
    assert_eq!(v["verdicts"]["restore"]["status"], "invalid", "{v}");
    assert!(v["replay"].as_str().is_some_and(|r| r.contains("--disaster-bump 1")), "{v}");
    assert_eq!(code, 1, "{v}");
}
