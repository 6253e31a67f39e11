//! The history.jsonl reader (`History::parse_jsonl`). Properties: never a
//! panic; a parsed history writes out and reads back, with the same events.
//! (Byte-identical output is not asserted: serde_json's default float parser
//! is not correctly rounded, so a float in a value can move by one ulp; see
//! docs/security.md. The values fenced writes are integers.)
#![no_main]

use fenced_check::history::History;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(h) = History::parse_jsonl(text) {
        let out = h.to_jsonl();
        let again = History::parse_jsonl(&out).expect("a written history reads back");
        assert_eq!(again.to_jsonl().lines().count(), out.lines().count(), "events were lost");
    }
});
