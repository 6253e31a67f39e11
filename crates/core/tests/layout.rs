//! The core's two roles, held apart (see the crate's documentation): the
//! replicated state machine (`src/machine/`) names nothing outside itself,
//! so it cannot read a clock or a local measurement, and the toolbox
//! (`src/toolbox/`) names nothing outside itself, so a measurement cannot
//! come to depend on replicated state. Only the API bodies above both
//! (`api.rs`, `admin.rs`) may use either.
//!
//! Read from the source files: every `crate::` path in code (comments are
//! prose and may mention anything) must stay inside the file's own part.

use std::path::{Path, PathBuf};

/// The part of the crate a source file belongs to, by its path under `src/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Machine,
    Toolbox,
    /// `lib.rs` and the API bodies: free to use both parts.
    Above,
}

fn part_of(rel: &str) -> Option<Part> {
    match rel {
        "machine.rs" => Some(Part::Machine),
        "toolbox.rs" => Some(Part::Toolbox),
        "lib.rs" | "api.rs" | "admin.rs" => Some(Part::Above),
        _ if rel.starts_with("machine/") => Some(Part::Machine),
        _ if rel.starts_with("toolbox/") => Some(Part::Toolbox),
        _ => None,
    }
}

/// Names a file of `part` must not use in code, and why.
const MACHINE_FORBIDS: &[(&str, &str)] =
    &[("std::time::Instant", "a clock read"), ("std::time::SystemTime", "a clock read"), ("tokio", "I/O and timers")];

/// Every rule `text` (the file at `rel` under `src/`, of `part`) breaks, as
/// `rel:line: what`.
fn violations(rel: &str, part: Part, text: &str) -> Vec<String> {
    let own = match part {
        Part::Machine => "machine",
        Part::Toolbox => "toolbox",
        Part::Above => return Vec::new(),
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" //").next().unwrap_or(code);
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            let after = &rest[at + "crate::".len()..];
            let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '{').collect();
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') && name != own {
                out.push(format!("{rel}:{}: `crate::{name}` leaves the {own} ({})", n + 1, line.trim()));
            }
            rest = after;
        }
        if code.contains("super::super::") {
            out.push(format!("{rel}:{}: `super::super::` may leave the {own}; name it through crate::{own}", n + 1));
        }
        if part == Part::Machine {
            for (name, why) in MACHINE_FORBIDS {
                if code.contains(name) {
                    out.push(format!("{rel}:{}: the machine may not use `{name}` ({why})", n + 1));
                }
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn machine_and_toolbox_do_not_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let (mut bad, mut unplaced, mut seen) = (Vec::new(), Vec::new(), [0usize; 2]);
    for path in &files {
        let rel = path.strip_prefix(&src).expect("under src").to_string_lossy().replace('\\', "/");
        let Some(part) = part_of(&rel) else {
            unplaced.push(rel);
            continue;
        };
        match part {
            Part::Machine => seen[0] += 1,
            Part::Toolbox => seen[1] += 1,
            Part::Above => {}
        }
        let text = std::fs::read_to_string(path).expect("a readable source file");
        bad.extend(violations(&rel, part, &text));
    }
    assert!(
        unplaced.is_empty(),
        "files outside machine/ and toolbox/: {unplaced:?}; put each in the part it belongs to (see src/lib.rs)"
    );
    assert!(seen[0] >= 5 && seen[1] >= 5, "found {seen:?} machine and toolbox files: is src/ laid out as lib.rs says?");
    assert!(bad.is_empty(), "the core's parts cross (see src/lib.rs):\n{}", bad.join("\n"));
}

/// The check fails on the crossings it exists for, and passes what is allowed.
#[test]
fn the_check_catches_a_crossing() {
    let clock_in_table = "use crate::machine::ids::LeaseId;\nuse crate::toolbox::clock::Clock;\n";
    assert_eq!(violations("machine/table.rs", Part::Machine, clock_in_table).len(), 1);
    let root_in_toolbox = "use crate::{LeaseId, Token};\n";
    assert_eq!(violations("toolbox/phi.rs", Part::Toolbox, root_in_toolbox).len(), 1);
    let machine_in_toolbox = "    let t: crate::machine::ids::Token = x; // uses crate::toolbox\n";
    assert_eq!(violations("toolbox/rate.rs", Part::Toolbox, machine_in_toolbox).len(), 1);
    let instant = "let t = std::time::Instant::now();\n";
    assert_eq!(violations("machine/table.rs", Part::Machine, instant).len(), 1);
    let escape = "use super::super::toolbox::phi;\n";
    assert_eq!(violations("machine/table/prims.rs", Part::Machine, escape).len(), 1);
    let fine =
        "//! reads no clock: crate::toolbox is for that\nuse crate::machine::ids::Token;\nuse super::LockTable;\n";
    assert!(violations("machine/table/floor.rs", Part::Machine, fine).is_empty());
    assert!(violations("api.rs", Part::Above, clock_in_table).is_empty());
    assert_eq!(part_of("stray.rs"), None);
}
