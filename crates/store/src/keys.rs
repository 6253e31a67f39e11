//! The lock service's public keys a store trusts, read from the values of
//! `--cluster-key`: a literal `ed25519:…` key, or a file holding one key per
//! line or the JSON of `GET /v1/cluster/key`. Files are configuration, not
//! store data, so they are read directly rather than through the disk seam.

use ed25519_dalek::VerifyingKey;
use fenced_core::machine::token::parse_public_key;
use std::time::Duration;

/// How often a serving store re-reads key files, so that a signing-key
/// rotation reaches it without a restart (write both keys, later only the new).
pub const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Why a key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read cluster key file {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
    #[error("bad cluster key {what}: {message}")]
    BadKey { what: String, message: String },
}

/// Parse `--cluster-key` values: literal keys or files holding them.
pub fn load_cluster_keys(specs: &[String]) -> Result<Vec<VerifyingKey>, KeyError> {
    let mut keys = Vec::new();
    for spec in specs {
        let bad =
            |what: &str, e: &dyn std::fmt::Display| KeyError::BadKey { what: what.into(), message: e.to_string() };
        if spec.trim().starts_with("ed25519:") {
            keys.push(parse_public_key(spec).map_err(|e| bad(spec, &e))?);
            continue;
        }
        let text = std::fs::read_to_string(spec).map_err(|source| KeyError::KeyFile { path: spec.clone(), source })?;
        let texts: Vec<String> = if text.trim_start().starts_with('{') {
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(spec, &e))?;
            match (v.get("public_keys").and_then(|k| k.as_array()), v.get("public_key").and_then(|k| k.as_str())) {
                (Some(all), _) => all.iter().filter_map(|k| k.as_str().map(String::from)).collect(),
                (None, Some(one)) => vec![one.to_string()],
                _ => return Err(bad(spec, &"JSON has neither public_keys nor public_key")),
            }
        } else {
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect()
        };
        if texts.is_empty() {
            return Err(bad(spec, &"file holds no key"));
        }
        for t in texts {
            keys.push(parse_public_key(&t).map_err(|e| bad(spec, &e))?);
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fenced_core::machine::token::encode_public_key;

    fn key(n: u8) -> VerifyingKey {
        ed25519_dalek::SigningKey::from_bytes(&[n; 32]).verifying_key()
    }

    #[test]
    fn keys_come_literal_or_from_a_file_of_lines_or_of_the_cluster_key_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lines = dir.path().join("keys.txt");
        std::fs::write(
            &lines,
            format!("# rotation\n{}\n\n{}\n", encode_public_key(&key(1)), encode_public_key(&key(2))),
        )
        .expect("write");
        let json = dir.path().join("key.json");
        std::fs::write(&json, format!(r#"{{"public_keys": ["{}"]}}"#, encode_public_key(&key(3)))).expect("write");
        let specs = [encode_public_key(&key(4)), lines.display().to_string(), json.display().to_string()];
        assert_eq!(load_cluster_keys(&specs).expect("loads"), vec![key(4), key(1), key(2), key(3)]);
    }

    #[test]
    fn an_empty_file_a_missing_file_and_a_bad_key_are_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "# nothing\n").expect("write");
        let e = load_cluster_keys(&[empty.display().to_string()]).expect_err("empty");
        assert!(e.to_string().contains("file holds no key"), "{e}");
        let e = load_cluster_keys(&["/nonexistent/keys".into()]).expect_err("missing");
        assert!(matches!(e, KeyError::KeyFile { .. }), "{e}");
        let e = load_cluster_keys(&["ed25519:nonsense".into()]).expect_err("bad");
        assert!(e.to_string().starts_with("bad cluster key ed25519:nonsense"), "{e}");
    }
}
