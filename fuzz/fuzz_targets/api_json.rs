//! The replica API's JSON bodies and query strings, through the same
//! extractors the server uses (`ApiJson`, axum's `Query`), and the bodies the
//! client decodes from a replica; the maintenance API's too. Properties: never a panic; a body is
//! accepted exactly when serde accepts it; a refusal is a 4xx.
#![no_main]

use axum::body::Body;
use axum::extract::{FromRequest, Query};
use axum::http::{header, Request, Uri};
use axum::response::IntoResponse;
use fenced_core::admin::{AddMember, DrainStatus, Membership, PeersReport, RemoveMember, ReplaceMember};
use fenced_core::api::*;
use fenced_io::envelope::ErrorBody;
use fenced_replica::http::admin::TransferRequest;
use fenced_replica::http::error::ApiJson;
use fenced_replica::http::locks::{CampaignRequest, ElectionQuery, LockQuery, ResignRequest};
use fenced_replica::http::watch::WatchQuery;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;

fn body<T: DeserializeOwned>(bytes: &[u8]) {
    let req = Request::builder()
        .method("POST")
        .uri("/v1/x")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes.to_vec()))
        .expect("static request");
    let got = futures::executor::block_on(ApiJson::<T>::from_request(req, &()));
    assert_eq!(got.is_ok(), serde_json::from_slice::<T>(bytes).is_ok(), "extractor and serde disagree");
    if let Err(e) = got {
        let status = e.into_response().status();
        assert!(status.is_client_error(), "a malformed body got {status}");
    }
}

fn query<T: DeserializeOwned>(bytes: &[u8]) {
    let Ok(s) = std::str::from_utf8(bytes) else { return };
    let Ok(uri) = format!("/v1/x?{s}").parse::<Uri>() else { return };
    let _ = Query::<T>::try_from_uri(&uri);
}

fn response<T: DeserializeOwned>(bytes: &[u8]) {
    let _ = serde_json::from_slice::<T>(bytes);
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    match sel % 25 {
        0 => body::<LeaseGrantRequest>(rest),
        1 => body::<LeaseRequest>(rest),
        2 => body::<AcquireRequest>(rest),
        3 => body::<ReleaseRequest>(rest),
        4 => body::<ClaimRequest>(rest),
        5 => body::<CampaignRequest>(rest),
        6 => body::<ResignRequest>(rest),
        7 => body::<TransferRequest>(rest),
        8 => query::<LockQuery>(rest),
        9 => query::<WatchQuery>(rest),
        10 => query::<ElectionQuery>(rest),
        11 => response::<ErrorBody>(rest),
        12 => response::<ClusterStatus>(rest),
        13 => response::<fenced_core::Grant>(rest),
        14 => response::<LockStatusResponse>(rest),
        15 => response::<WatchEvent>(rest),
        16 => response::<KeyResponse>(rest),
        17 => response::<ClaimResponse>(rest),
        18 => response::<RevokeResponse>(rest),
        // The maintenance API (membership changes, drain, peers).
        19 => body::<AddMember>(rest),
        20 => body::<RemoveMember>(rest),
        21 => body::<ReplaceMember>(rest),
        22 => response::<Membership>(rest),
        23 => response::<DrainStatus>(rest),
        _ => response::<PeersReport>(rest),
    }
});
