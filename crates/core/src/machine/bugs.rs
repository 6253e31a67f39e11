//! Deliberately broken variants, for proving that the checkers catch them.
//!
//! Compiled only with the `bugs` feature (test builds), and off unless a
//! test switches them on. A checker that never sees a broken variant fail
//! proves nothing.

use std::sync::atomic::{AtomicBool, Ordering};

/// Grant with the previous grant's token instead of the entry's index.
pub static REUSE_TOKENS: AtomicBool = AtomicBool::new(false);

pub fn reuse_tokens() -> bool {
    REUSE_TOKENS.load(Ordering::Relaxed)
}

/// Admit an exclusive holder (a writer) while shared holders (readers) hold
/// the lock: the broken reader-writer lock the extended S4 must catch.
pub static WRITER_WITH_READERS: AtomicBool = AtomicBool::new(false);

pub fn writer_with_readers() -> bool {
    WRITER_WITH_READERS.load(Ordering::Relaxed)
}
