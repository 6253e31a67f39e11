//! Data-driven linearizability cases: histories in other tools' formats
//! (`testdata/lin/`) with known verdicts.

use fenced_check::import::{self, Format};
use fenced_check::lin::{self, LinOptions, LinVerdict, ModelKind, NilRead};
use serde_json::json;
use std::path::Path;

struct Case {
    file: &'static str,
    model: ModelKind,
    nil_read: NilRead,
    init: Option<serde_json::Value>,
    valid: bool,
}

fn case(file: &'static str, model: ModelKind, valid: bool) -> Case {
    Case { file, model, nil_read: NilRead::Unknown, init: None, valid }
}

fn run(c: &Case) -> LinVerdict {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/lin").join(c.file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("edn") => Format::JepsenEdn,
        Some("log") => Format::JepsenLog,
        _ => Format::Jsonl,
    };
    let history = import::parse(format, &text).unwrap_or_else(|e| panic!("{}: {e}", c.file));
    let mut opts = LinOptions::new(c.model);
    opts.nil_read = c.nil_read;
    opts.init = c.init.clone();
    lin::try_check(&history, &opts).unwrap_or_else(|e| panic!("{}: {e}", c.file))
}

#[test]
fn known_verdicts() {
    use ModelKind::*;
    let absent = |mut c: Case| {
        c.nil_read = NilRead::Absent;
        c
    };
    let init = |mut c: Case, v| {
        c.init = Some(v);
        c
    };
    let cases = [
        case("cas-register-valid.edn", CasRegister, true),
        case("cas-register-invalid.edn", CasRegister, false),
        // A plain register has no cas.
        case("cas-register-invalid.edn", Register, false),
        // Knossos: nil matches anything; Porcupine: nil is the absent initial state.
        case("nil-read.log", Register, true),
        absent(case("nil-read.log", Register, false)),
        absent(case("etcd-valid.log", CasRegister, true)),
        absent(case("etcd-invalid.log", CasRegister, false)),
        init(case("kv-valid.edn", Kv, true), json!("")),
        init(case("kv-invalid.edn", Kv, false), json!("")),
        case("mutex-valid.edn", Mutex, true),
        case("mutex-double-grant.edn", Mutex, false),
        init(case("multi-register-valid.edn", MultiRegister, true), json!({"x": 0, "y": 0})),
        init(case("multi-register-torn.edn", MultiRegister, false), json!({"x": 0, "y": 0})),
        case("fenced-mutex-valid.jsonl", FencedMutex, true),
        case("fenced-mutex-token-regress.jsonl", FencedMutex, false),
        case("fenced-mutex-token-regress.jsonl", Mutex, true),
        case("fenced-store-fig-8-5.jsonl", FencedStore, true),
        case("fenced-store-fig-8-4.jsonl", FencedStore, false),
        case("fenced-store-wrong-stale.jsonl", FencedStore, false),
    ];
    for c in &cases {
        let v = run(c);
        match (&v, c.valid) {
            (LinVerdict::Valid { .. }, true) | (LinVerdict::Invalid { .. }, false) => {}
            _ => {
                panic!("{} as {}: expected {}, got {v:#?}", c.file, c.model, if c.valid { "valid" } else { "invalid" })
            }
        }
    }
}

#[test]
fn counterexample_names_the_stale_read() {
    let v = run(&case("cas-register-invalid.edn", ModelKind::CasRegister, false));
    let LinVerdict::Invalid { prefix, unplaceable, state, .. } = v else { panic!("{v:?}") };
    assert_eq!(prefix.len(), 2, "{prefix:?}");
    assert_eq!(unplaceable[0].completion, Some(5), "{unplaceable:?}");
    assert!(unplaceable[0].description.contains("read"), "{unplaceable:?}");
    assert!(!state.is_empty());
}

#[test]
fn figure_8_4_names_both_writes() {
    let v = run(&case("fenced-store-fig-8-4.jsonl", ModelKind::FencedStore, false));
    let LinVerdict::Invalid { key, prefix, unplaceable, .. } = v else { panic!("{v:?}") };
    assert_eq!(key, "file");
    let named: Vec<_> = prefix.iter().chain(&unplaceable).filter_map(|o| o.invoke).collect();
    assert!(named.contains(&0) && named.contains(&2), "{prefix:?} {unplaceable:?}");
}

#[test]
fn kv_reports_each_key() {
    let mut c = case("kv-invalid.edn", ModelKind::Kv, false);
    c.init = Some(json!(""));
    let LinVerdict::Invalid { key, keys, .. } = run(&c) else { panic!("not invalid") };
    assert_eq!(key, "2");
    assert_eq!(keys.len(), 2);
}

#[test]
fn budget_exhaustion_is_unknown() {
    // Many concurrent writes with unknown outcomes, then an impossible read:
    // the search must visit every subset, so a tiny cache cannot decide.
    let mut text = String::new();
    for p in 0..20 {
        text.push_str(&format!("{{:process {p} :type :invoke :f :write :value {p} :time 0}}\n"));
    }
    for p in 0..20 {
        text.push_str(&format!("{{:process {p} :type :info :f :write :value {p} :time 1}}\n"));
    }
    text.push_str(
        "{:process 99 :type :invoke :f :read :time 2}\n{:process 99 :type :ok :f :read :value 100 :time 3}\n",
    );
    let history = import::parse(Format::JepsenEdn, &text).expect("parses");
    let mut opts = LinOptions::new(ModelKind::Register);
    opts.max_cache_entries = 1000;
    assert!(matches!(lin::check(&history, &opts), LinVerdict::Unknown { .. }));
}

#[test]
fn bad_input_names_the_event() {
    let text = "{:process 0 :type :invoke :f :cas :value 3}\n";
    let history = import::parse(Format::JepsenEdn, text).expect("parses");
    let e = lin::try_check(&history, &LinOptions::new(ModelKind::CasRegister)).expect_err("bad cas");
    assert_eq!(e.to_string(), "event #0: `cas`: expected [old, new], found 3");
    assert!("fenced-mutex".parse::<ModelKind>().is_ok());
    assert!("cas".parse::<ModelKind>().is_err());
}
