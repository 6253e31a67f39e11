//! The error codes the store can answer are exactly the ones `docs/store.md`
//! lists in its table of errors, and every domain error's answer carries one
//! of them. A code added in one place only fails here, instead of failing a
//! client that matches on it.

use fenced_core::machine::token::TokenError;
use fenced_io::auth::AuthError as CallerError;
use fenced_io::envelope::ErrorCodes;
use fenced_store::api::ApiError;
use fenced_store::engine::Rejection;
use fenced_store::error_codes::{Codes, ERROR_CODES};
use fenced_store::fence::AuthError;
use std::collections::BTreeSet;

/// The codes in the first column after the status of the table that follows
/// "Errors, all with" in docs/store.md.
fn documented_codes() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/store.md");
    let text = std::fs::read_to_string(path).expect("docs/store.md is readable");
    let start = text.find("Errors, all with").expect("docs/store.md has the table of errors");
    let table = text[start..].lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|'));
    let mut codes = BTreeSet::new();
    for row in table.skip(2) {
        let cell = row.split('|').nth(2).expect("a code column");
        codes.extend(cell.split('`').skip(1).step_by(2).map(str::to_string));
    }
    codes
}

/// One value of every variant; the `match` stops compiling when one is added.
fn every_rejection() -> Vec<Rejection> {
    let all = vec![
        Rejection::Stale { presented: 1, current: 2 },
        Rejection::VersionMismatch { expected: 1, current: 2 },
        Rejection::RequestTooOld { request_id: 1 },
        Rejection::RequestIdReused { request_id: 1 },
        Rejection::TooManyIdentities { max: 1 },
        Rejection::Unavailable("x".into()),
    ];
    for r in &all {
        match r {
            Rejection::Stale { .. }
            | Rejection::VersionMismatch { .. }
            | Rejection::RequestTooOld { .. }
            | Rejection::RequestIdReused { .. }
            | Rejection::TooManyIdentities { .. }
            | Rejection::Unavailable(_) => {}
        }
    }
    all
}

fn every_token_error() -> Vec<AuthError> {
    let all = vec![
        AuthError::Missing("Fenced-Token"),
        AuthError::MalformedNumber("x".into()),
        AuthError::Signature(TokenError::BadSignature),
        AuthError::NumberMismatch { presented: 1, signed: 2 },
        AuthError::WrongLock { key: "k".into(), guard: "g".into(), signed: "s".into() },
    ];
    for e in &all {
        match e {
            AuthError::Missing(_)
            | AuthError::MalformedNumber(_)
            | AuthError::Signature(_)
            | AuthError::NumberMismatch { .. }
            | AuthError::WrongLock { .. } => {}
        }
    }
    all
}

#[test]
fn the_list_is_the_documented_table() {
    let listed: BTreeSet<String> = ERROR_CODES.iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(listed.len(), ERROR_CODES.len(), "a code is listed twice in error_codes::ERROR_CODES");
    let documented = documented_codes();
    assert_eq!(listed, documented, "error_codes::ERROR_CODES and docs/store.md's table of errors differ");
}

#[test]
fn every_domain_error_answers_a_listed_code() {
    let mut codes: Vec<String> = every_rejection().into_iter().map(|r| ApiError::from(r).body.code).collect();
    codes.extend(every_token_error().into_iter().map(|e| ApiError::from(e).body.code));
    // The callers the store refuses (it asks only for read and write rights).
    codes.extend(
        [
            CallerError::Missing,
            CallerError::BadToken,
            CallerError::Forbidden { identity: "a".into(), op: fenced_io::auth::Op::Write, name: "k".into() },
        ]
        .iter()
        .map(|e| e.code().to_string()),
    );
    let unknown: Vec<_> = codes.into_iter().filter(|c| !Codes::is_known(c)).collect();
    assert!(unknown.is_empty(), "codes missing from the store's error_codes::ERROR_CODES: {unknown:?}");
}

#[test]
fn the_details_go_where_the_docs_say() {
    let stale = ApiError::from(Rejection::Stale { presented: 3, current: 4 });
    assert_eq!((stale.body.presented, stale.body.current, stale.body.retry), (Some(3), Some(4), false));
    let cas = ApiError::from(Rejection::VersionMismatch { expected: 1, current: 2 });
    assert_eq!((cas.body.expected, cas.body.current), (Some(1), Some(2)));
}
