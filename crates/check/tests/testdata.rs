//! Data-driven cases: every `testdata/NAME.jsonl` has a `NAME.expect` that
//! names the verdict per property (`S3 invalid`), or the bad-input error
//! (`error line 2 truncated`: the line and a piece of the message).

use fenced_check::checkers::{check_all, s3};
use fenced_check::history::History;
use fenced_check::verdict::{Options, Status};
use fenced_check::view::View;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// Parses and validates the conventions, as `fenced check` does.
fn load(text: &str) -> Result<History, (usize, String)> {
    let (h, lines) = History::parse_jsonl_with_lines(text).map_err(|e| (e.line(), e.to_string()))?;
    if let Err(e) = View::build(&h) {
        let e = e.with_lines(&lines);
        let line = match e.pos() {
            fenced_check::history::Pos::Line(l) => l,
            fenced_check::history::Pos::Event(i) => i + 1,
        };
        return Err((line, e.to_string()));
    }
    Ok(h)
}

#[test]
fn testdata_verdicts() {
    let mut cases = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("testdata folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    entries.sort();
    for path in entries {
        cases += 1;
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).expect("read case");
        let expect = std::fs::read_to_string(path.with_extension("expect"))
            .unwrap_or_else(|_| panic!("{name}: missing .expect file"));
        let loaded = load(&text);
        for line in expect.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words[0] == "error" {
                let want_line: usize = words[2].parse().expect("error line N ...");
                let needle = words[3..].join(" ");
                match &loaded {
                    Ok(_) => panic!("{name}: parsed, expected an error at line {want_line}"),
                    Err((l, msg)) => {
                        assert_eq!(*l, want_line, "{name}: {msg}");
                        assert!(msg.contains(&needle), "{name}: {msg:?} lacks {needle:?}");
                        assert!(msg.starts_with(&format!("line {want_line}:")), "{name}: {msg}");
                    }
                }
                continue;
            }
            let h = loaded.as_ref().unwrap_or_else(|e| panic!("{name}: {e:?}"));
            let verdicts = check_all(h, &Options::default());
            let v = verdicts
                .iter()
                .find(|v| v.property.to_string() == words[0])
                .unwrap_or_else(|| panic!("{name}: no property {}", words[0]));
            assert_eq!(v.status.to_string(), words[1], "{name}: {}: {}", v.property, v.message);
        }
    }
    assert!(cases >= 10, "found {cases} cases");
}

#[test]
fn figure_8_4_names_both_writes() {
    let text = std::fs::read_to_string(dir().join("fig-8-4-unfenced.jsonl")).expect("read");
    let h = History::parse_jsonl(&text).expect("parses");
    let v = s3::check(&h, &Options::default());
    assert_eq!(v.status, Status::Invalid);
    let ev = &v.evidence[0];
    // Process 2's write (lines 6-7, token 35) then process 1's (lines 9-10, token 33).
    let lines: Vec<usize> = ev.lines().collect();
    assert_eq!(lines, vec![6, 7, 9, 10], "{}", ev.note);
    assert!(ev.note.contains("35") && ev.note.contains("33"), "{}", ev.note);

    let text = std::fs::read_to_string(dir().join("fig-8-5-fenced.jsonl")).expect("read");
    let h = History::parse_jsonl(&text).expect("parses");
    assert_eq!(s3::check(&h, &Options::default()).status, Status::Valid);
}

/// S3 per mode: each broken history is convicted for its own reason, and
/// its fenced twin passes.
#[test]
fn s3_judges_each_mode() {
    for (broken, fenced, needle) in [
        ("s3-shared-token-wrote", "s3-shared-token-refused", "a shared grant's: writes need an exclusive"),
        (
            "s3-stale-fenced-read-served",
            "s3-stale-fenced-read-refused",
            "served a fenced read of key \"cat\" with the older token 10",
        ),
        (
            "s3-permit-slot-went-back",
            "s3-permit-slots-fenced",
            "lock \"pool#1\": write of key \"pool/1/c\" with token 9",
        ),
    ] {
        let load = |name: &str| {
            let text = std::fs::read_to_string(dir().join(format!("{name}.jsonl"))).expect("read");
            History::parse_jsonl(&text).expect("parses")
        };
        let v = s3::check(&load(broken), &Options::default());
        assert_eq!(v.status, Status::Invalid, "{broken}: {}", v.message);
        assert_eq!(v.evidence.len(), 1, "{broken}: exactly one violation: {:?}", v.evidence);
        assert!(v.evidence[0].note.contains(needle), "{broken}: {}", v.evidence[0].note);
        let v = s3::check(&load(fenced), &Options::default());
        assert_eq!(v.status, Status::Valid, "{fenced}: {:?}", v.evidence);
    }
}
