//! Recovery of the fenced store from arbitrary snapshot and WAL bytes
//! (`engine::recover`). Properties: never a panic; the intact WAL prefix
//! recovers to the same state with no tail.
#![no_main]

use arbitrary::Arbitrary;
use fenced_fuzz::log_bytes;
use fenced_store::config::StoreConfig;
use fenced_store::engine::{recover, EngineOptions};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    snapshot: Option<(Vec<Vec<u8>>, Vec<u8>)>,
    wal: Vec<Vec<u8>>,
    tail: Vec<u8>,
    keys: Vec<String>,
}

fuzz_target!(|input: Input| {
    let mut config = StoreConfig::new("127.0.0.1:0", Vec::new());
    config.limits.dedup_clients_max = 4;
    config.limits.dedup_per_client = 4;
    let opts = EngineOptions::from_config(&config);
    let snapshot = input.snapshot.as_ref().map(|(frames, tail)| log_bytes(frames, tail));
    let wal = log_bytes(&input.wal, &input.tail);
    let Ok(r) = recover(snapshot.as_deref(), &wal, &opts) else { return };
    assert!(r.wal_len <= wal.len());
    assert_eq!(r.torn.is_some(), r.wal_len < wal.len());
    let again = recover(snapshot.as_deref(), &wal[..r.wal_len], &opts).expect("the intact prefix recovers");
    assert!(again.torn.is_none());
    assert_eq!((again.keys(), again.recovery.wal_records), (r.keys(), r.recovery.wal_records));
    for k in &input.keys {
        assert_eq!((again.get(k), again.max_token(k)), (r.get(k), r.max_token(k)));
    }
});
