//! The files adapter against a real directory.

use fenced_store::adapters::files::{FencedDir, FilesError};

#[test]
fn highest_token_wins_and_stale_writers_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = FencedDir::open(tmp.path(), 3).expect("open");
    assert_eq!(d.read("report").expect("read"), None);
    let p = d.write("report", 33, b"from 33").expect("33 writes");
    assert!(p.ends_with("report.00000000000000000033"), "{p:?}");
    d.write("report", 34, b"from 34").expect("34 writes");
    match d.write("report", 33, b"late 33") {
        Err(FilesError::Stale { presented: 33, current: 34 }) => {}
        other => panic!("expected stale, got {other:?}"),
    }
    assert_eq!(d.read("report").expect("read"), Some((34, b"from 34".to_vec())));
    // The same holder may rewrite under its own token.
    d.write("report", 34, b"again 34").expect("same token");
    assert_eq!(d.read("report").expect("read"), Some((34, b"again 34".to_vec())));
}

#[test]
fn a_stale_file_that_slips_in_is_never_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = FencedDir::open(tmp.path(), 5).expect("open");
    d.write("r", 40, b"new").expect("40");
    // A stale writer that raced past the check (simulated by writing its file by hand).
    std::fs::write(tmp.path().join(format!("r.{:020}", 39)), b"stale").expect("write");
    assert_eq!(d.read("r").expect("read"), Some((40, b"new".to_vec())));
}

#[test]
fn old_versions_are_pruned_and_no_temporaries_remain() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = FencedDir::open(tmp.path(), 2).expect("open");
    for t in 1..=5 {
        d.write("x", t, format!("v{t}").as_bytes()).expect("write");
    }
    d.write("xy", 1, b"other object").expect("write");
    assert_eq!(d.tokens("x").expect("tokens"), vec![4, 5]);
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["x.00000000000000000004", "x.00000000000000000005", "xy.00000000000000000001"]);
    assert!(matches!(d.write("../escape", 1, b""), Err(FilesError::BadName(_))));
}

#[test]
fn concurrent_writers_end_with_the_highest_token() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = std::sync::Arc::new(FencedDir::open(tmp.path(), 4).expect("open"));
    let handles: Vec<_> = (1..=8u64)
        .map(|t| {
            let d = d.clone();
            std::thread::spawn(move || {
                let _ = d.write("c", t, format!("v{t}").as_bytes());
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    assert_eq!(d.read("c").expect("read"), Some((8, b"v8".to_vec())));
}
