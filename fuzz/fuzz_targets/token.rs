//! The signed token parser and public key parser (`fenced_core::machine::token`).
//! Properties: never a panic; only the one real key's signatures verify,
//! and a token that verifies decodes to the claims it was made with.
#![no_main]

use ed25519_dalek::SigningKey;
use fenced_core::machine::token::{decode, parse_public_key, sign, verify, TokenClaims};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let key = SigningKey::from_bytes(&[7; 32]);
    match sel % 3 {
        0 => {
            let _ = decode(&text);
            if let Ok(c) = verify(&[key.verifying_key()], &text) {
                // Only tokens the key signed verify: signing the claims again gives the same text.
                assert_eq!(sign(&key, c), text, "a token verified that the key did not make");
            }
        }
        1 => {
            let _ = parse_public_key(&text);
        }
        _ => {
            let lock = text.to_string();
            let claims = TokenClaims { key_id: 0, lock, token: u64::from(sel), lease: 1, issued_at_ms: 2 };
            let signed = sign(&key, claims.clone());
            let got = verify(&[key.verifying_key()], &signed);
            if claims.lock.len() <= u16::MAX as usize {
                let got = got.expect("a token the key made verifies");
                assert_eq!((got.lock, got.token), (claims.lock, claims.token));
            }
        }
    }
});
