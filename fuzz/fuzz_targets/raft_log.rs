//! Recovery of the Raft log from arbitrary WAL bytes (`log_store::replay`):
//! intact frames around fuzzer-chosen payloads, then a raw tail. Properties:
//! never a panic; a torn tail lies inside the buffer; the intact prefix
//! replays to the same log with no tail; damage in the middle is reported
//! with intact records after it.
#![no_main]

use arbitrary::Arbitrary;
use fenced_fuzz::log_bytes;
use fenced_replica::storage::log_store::replay;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    records: Vec<Vec<u8>>,
    tail: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let bytes = log_bytes(&input.records, &input.tail);
    match replay(&bytes) {
        Ok(r) => {
            let keep = match &r.torn {
                Some(t) => {
                    assert_eq!(t.offset + t.bytes, bytes.len());
                    t.offset
                }
                None => bytes.len(),
            };
            let again = replay(&bytes[..keep]).expect("the intact prefix replays");
            assert!(again.torn.is_none(), "the intact prefix has a tail");
            assert_eq!((again.records, again.entries(), again.last_index()), (r.records, r.entries(), r.last_index()));
        }
        Err(e) => assert!(e.0.offset < e.0.next && e.0.next < bytes.len()),
    }
});
