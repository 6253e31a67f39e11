//! The error codes the replica can answer are exactly the ones the API
//! contract (`docs/openapi.yaml`) lists, and every error type's codes are in
//! the catalogue (`fenced_replica::http::error_codes`). A code added in one place
//! only fails here, instead of failing a client that validates responses.

use fenced_core::{LeaseId, SmError, Token};
use fenced_io::auth::{AuthError, Op};
use fenced_replica::http::error_codes::{is_known, ERROR_CODES};
use fenced_replica::node::ProposeError;
use fenced_replica::peer::handshake::Refusal;
use std::collections::BTreeSet;

/// The `enum` under `components.schemas.Error.properties.code`.
fn openapi_codes() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("docs/openapi.yaml is readable");
    let start = text.find("\n    Error:\n      type: object").expect("schemas.Error exists");
    let rest = &text[start..];
    let enum_at = rest.find("          enum:\n").expect("Error.code has an enum");
    rest[enum_at..].lines().skip(1).map_while(|l| l.strip_prefix("          - ")).map(str::to_string).collect()
}

/// One value of every variant. The `match` stops compiling when a variant is
/// added, so this list cannot silently fall behind the type.
fn every_sm_error() -> Vec<SmError> {
    let all = vec![
        SmError::NoSuchLease(LeaseId(1)),
        SmError::NotHolder { lock: "a".into(), lease: LeaseId(1), token: Token(1) },
        SmError::LimitExceeded("x".into()),
        SmError::Invalid("x".into()),
        SmError::RequestTooOld { request_id: 1 },
        SmError::NoSigningKey,
        SmError::NotOwner { lease: LeaseId(1) },
        SmError::NoSuchClaim { name: "a".into() },
        SmError::NotClaimOwner { name: "a".into() },
        SmError::ClaimOwnerMismatch { name: "a".into(), expected: "b".into(), actual: "c".into() },
    ];
    for e in &all {
        match e {
            SmError::NoSuchLease(_)
            | SmError::NotHolder { .. }
            | SmError::LimitExceeded(_)
            | SmError::Invalid(_)
            | SmError::RequestTooOld { .. }
            | SmError::NoSigningKey
            | SmError::NotOwner { .. }
            | SmError::NoSuchClaim { .. }
            | SmError::NotClaimOwner { .. }
            | SmError::ClaimOwnerMismatch { .. } => {}
        }
    }
    all
}

fn every_propose_error() -> Vec<ProposeError> {
    let all = vec![
        ProposeError::NoLeader,
        ProposeError::Unknown,
        ProposeError::ShuttingDown,
        ProposeError::Internal("x".into()),
    ];
    for e in &all {
        match e {
            ProposeError::NoLeader | ProposeError::Unknown | ProposeError::ShuttingDown | ProposeError::Internal(_) => {
            }
        }
    }
    all
}

fn every_auth_error() -> Vec<AuthError> {
    let id = || "alice".to_string();
    let all = vec![
        AuthError::Missing,
        AuthError::BadToken,
        AuthError::Forbidden { identity: id(), op: Op::Acquire, name: "a".into() },
        AuthError::NotPeer { identity: id() },
        AuthError::NotAdmin { identity: id() },
    ];
    for e in &all {
        match e {
            AuthError::Missing
            | AuthError::BadToken
            | AuthError::Forbidden { .. }
            | AuthError::NotPeer { .. }
            | AuthError::NotAdmin { .. } => {}
        }
    }
    all
}

fn every_refusal() -> Vec<Refusal> {
    let s = || "x".to_string();
    let all = vec![
        Refusal::Protocol { from: s(), theirs: s() },
        Refusal::Cluster { from: s(), theirs: s(), ours: s() },
        Refusal::ClusterKey { from: s(), theirs: s(), ours: s() },
        Refusal::Limits { from: s(), theirs: s(), ours: s() },
    ];
    for e in &all {
        match e {
            Refusal::Protocol { .. }
            | Refusal::Cluster { .. }
            | Refusal::ClusterKey { .. }
            | Refusal::Limits { .. } => {}
        }
    }
    all
}

#[test]
fn the_contract_lists_exactly_the_catalogue() {
    let catalogue: BTreeSet<String> = ERROR_CODES.iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(catalogue.len(), ERROR_CODES.len(), "a code is listed twice in ERROR_CODES");
    let contract = openapi_codes();
    let missing: Vec<_> = catalogue.difference(&contract).collect();
    let extra: Vec<_> = contract.difference(&catalogue).collect();
    assert!(missing.is_empty(), "docs/openapi.yaml's Error.code enum lacks {missing:?}");
    assert!(extra.is_empty(), "docs/openapi.yaml's Error.code enum lists codes nothing answers: {extra:?}");
}

#[test]
fn every_error_type_answers_only_catalogued_codes() {
    let mut codes: Vec<&'static str> = Vec::new();
    codes.extend(every_sm_error().iter().map(SmError::code));
    codes.extend(every_propose_error().iter().map(ProposeError::code));
    codes.extend(every_auth_error().iter().map(AuthError::code));
    codes.extend(every_refusal().iter().map(Refusal::code));
    let unknown: Vec<_> = codes.into_iter().filter(|c| !is_known(c)).collect();
    assert!(unknown.is_empty(), "codes missing from error_codes::ERROR_CODES: {unknown:?}");
}

#[test]
fn the_catalogue_check_fails_on_an_unknown_code() {
    // The check above is only worth something if it can fail.
    assert!(!is_known("claim_owner_mismatched"));
    assert!(is_known("claim_owner_mismatch"));
}
