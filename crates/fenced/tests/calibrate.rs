//! `fenced calibrate` against three real replicas: JSON with RTT and fsync
//! percentiles, recommendations above the measured delays, and a config file
//! that `fenced serve --config` reads. Short (3 s): the numbers are not
//! asserted beyond their relations.

mod support;

use std::time::Duration;
use support::{fenced, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calibrate_measures_and_recommends_an_election_timeout_above_p999_rtt_plus_fsync() {
    let cluster = Cluster::start(3);
    cluster.leader(Duration::from_secs(20)).await.expect("leader");
    let file = cluster.dir.path().join("timing.toml");
    let eps = cluster.endpoints_arg();
    let args = ["calibrate", "--endpoints", &eps, "--duration", "3s", "--json", "--write-config"];
    let (code, out) = fenced(&[&args[..], &[&file.to_string_lossy()]].concat(), Duration::from_secs(60));
    assert_eq!(code, 0, "{out}");
    let start = out.find('{').expect("JSON output");
    let v: serde_json::Value = serde_json::from_str(&out[start..]).expect("valid JSON");
    for e in v["endpoints"].as_array().expect("endpoints") {
        assert!(e["rtt"]["count"].as_u64() > Some(10), "pinged {e}");
    }
    assert_eq!(v["between_replicas"].as_array().map(Vec::len), Some(6), "every ordered pair of replicas");
    for (id, f) in v["fsync"].as_object().expect("fsync per replica") {
        assert!(f["count"].as_u64() > Some(0), "replica {id} reported fsyncs: {f}");
    }
    let rtt = v["inputs"]["rtt_p999_us"].as_u64().expect("rtt");
    let fsync = v["inputs"]["fsync_p999_us"].as_u64().expect("fsync");
    let election = v["recommendation"]["election_timeout_min_ms"].as_u64().expect("election") * 1000;
    assert!(election >= 5 * (rtt + fsync), "election {election} µs vs p99.9 RTT {rtt} + fsync {fsync}");
    assert!(v["recommendation"]["expected_false_elections_per_day"].as_f64().is_some());
    let text = std::fs::read_to_string(&file).expect("config written");
    assert!(text.contains("election_timeout = ") && text.contains("heartbeat = "), "{text}");
    // The server reads it (and refuses a bad one, naming the key and the line at fault).
    std::fs::write(&file, format!("{text}\nelection_timout = \"1s\"\n")).expect("write");
    let bad =
        ["serve", "--id", "1", "--listen", "127.0.0.1:1", "--peers", "1=127.0.0.1:1", "--data-dir", "/nonexistent"];
    let (code, out) = fenced(&[&bad[..], &["--config", &file.to_string_lossy()]].concat(), Duration::from_secs(20));
    assert_ne!(code, 0);
    let line = format!("line {}", text.lines().count() + 2);
    assert!(out.contains("unknown field") && out.contains("election_timout") && out.contains(&line), "{out}");
}
