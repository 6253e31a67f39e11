//! Snapshots: the snapshot file a replica loads on start, and the table data
//! a leader sends. Mode byte: raw file bytes, a correctly framed file payload
//! (reaching the metadata decoder), or correctly framed table data (reaching
//! the lock table decoder). Properties: never a panic; a decoded table
//! re-encodes stably.
#![no_main]

use fenced_fuzz::framed;
use fenced_io::frame;
use fenced_replica::storage::state_machine::{decode_snapshot_data, decode_snapshot_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let table = match mode % 3 {
        0 => decode_snapshot_file(rest).ok().map(|(_, t)| t),
        1 => decode_snapshot_file(&framed(rest)).ok().map(|(_, t)| t),
        _ => decode_snapshot_data(&framed(rest)).ok(),
    };
    if let Some(t) = table {
        let enc = frame::encode(&t).expect("a decoded table re-encodes");
        let again = decode_snapshot_data(&enc).expect("a re-encoded table decodes");
        assert_eq!(frame::encode(&again).expect("re-encodes"), enc, "encoding is not stable");
    }
});
