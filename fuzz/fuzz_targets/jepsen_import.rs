//! The Jepsen importers: EDN histories and console logs
//! (`import::parse`). The first byte picks the format. Properties: never a
//! panic; an error names a line of the input; an imported history writes out
//! as JSON Lines that read back.
#![no_main]

use fenced_check::history::History;
use fenced_check::import::{parse, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let format = if sel & 1 == 0 { Format::JepsenEdn } else { Format::JepsenLog };
    match parse(format, text) {
        Ok(h) => {
            History::parse_jsonl(&h.to_jsonl()).expect("an imported history reads back as JSON Lines");
        }
        Err(e) => assert!(e.line() <= text.lines().count() + 1, "error line {} is past the input", e.line()),
    }
});
