//! A JWK set (RFC 7517) turned into verification keys. Keys that cannot verify
//! tokens here are skipped, not fatal: an identity provider's set may also list
//! encryption keys or algorithms fingate does not accept. A set with no usable key
//! at all is an error (the last good set stays in use).

use super::RemoteSource;
use crate::auth::keys::{self, Key};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use std::sync::Arc;

/// More keys than this in one set is not a key set fingate should trust.
pub const MAX_KEYS: usize = 100;

/// The usable keys of `body`, a JWK set, for `source`.
pub fn parse(body: &[u8], source: &RemoteSource) -> Result<Vec<Arc<Key>>, String> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Some(list) = doc.get("keys").and_then(Value::as_array) else {
        return Err("expected a JSON object with a `keys` array".into());
    };
    if list.len() > MAX_KEYS {
        return Err(format!("{} keys; at most {MAX_KEYS} are read", list.len()));
    }
    let keys: Vec<Arc<Key>> = list
        .iter()
        .filter_map(|jwk| key(jwk, source).map(Arc::new))
        .collect();
    if keys.is_empty() {
        return Err(format!(
            "none of its {} keys can verify signatures here (`use: sig`, a supported `alg`)",
            list.len()
        ));
    }
    Ok(keys)
}

/// One JWK as a key, or None when it cannot verify a token here.
fn key(value: &Value, source: &RemoteSource) -> Option<Key> {
    if value.get("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let declared = match value.get("alg") {
        Some(Value::String(name)) => Some(keys::parse_algorithm(name)?),
        Some(_) => return None,
        None => None,
    };
    let jwk: Jwk = serde_json::from_value(value.clone()).ok()?;
    let algorithm = declared
        .or(source.algorithm)
        .or_else(|| implied_algorithm(value))?;
    // A source pinned to one algorithm takes no key of another; and an HMAC key
    // is a shared secret, never something to fetch.
    if source.algorithm.is_some_and(|a| a != algorithm) || keys::is_hmac(algorithm) {
        return None;
    }
    if !fits(value, algorithm) {
        return None;
    }
    let decoding = DecodingKey::from_jwk(&jwk).ok()?;
    Some(Key {
        id: jwk.common.key_id.clone().unwrap_or_default(),
        algorithm,
        accept: source.accept,
        issuer: source.issuer.clone(),
        decoding,
        encoding: None,
        validation: keys::validation(algorithm, &source.issuer, &source.audience, source.leeway),
        jwk: None,
        fingerprint: 0,
    })
}

/// The algorithm a key without `alg` can only be used with (RSA could be RS* or
/// PS*: such a source names its `algorithm`, RS256 otherwise).
fn implied_algorithm(value: &Value) -> Option<Algorithm> {
    match (
        value.get("kty")?.as_str()?,
        value.get("crv").and_then(Value::as_str),
    ) {
        ("EC", Some("P-256")) => Some(Algorithm::ES256),
        ("EC", Some("P-384")) => Some(Algorithm::ES384),
        ("OKP", Some("Ed25519")) => Some(Algorithm::EdDSA),
        ("RSA", _) => Some(Algorithm::RS256),
        _ => None,
    }
}

/// Whether the key's type matches the algorithm (an EC key for ES256, ...).
fn fits(value: &Value, algorithm: Algorithm) -> bool {
    let kty = value.get("kty").and_then(Value::as_str);
    let crv = value.get("crv").and_then(Value::as_str);
    match algorithm {
        Algorithm::ES256 => kty == Some("EC") && crv == Some("P-256"),
        Algorithm::ES384 => kty == Some("EC") && crv == Some("P-384"),
        Algorithm::EdDSA => kty == Some("OKP") && crv == Some("Ed25519"),
        _ => kty == Some("RSA"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::auth::keys::Accept;
    use std::time::Duration;

    fn source(algorithm: Option<Algorithm>) -> RemoteSource {
        RemoteSource {
            id: "idp".into(),
            url: "https://idp.example/jwks".into(),
            issuer: "https://idp.example".into(),
            audience: "api".into(),
            algorithm,
            accept: Accept::WhenListed,
            refresh: Duration::from_secs(600),
            max_stale: Duration::from_secs(86400),
            leeway: Duration::from_secs(30),
        }
    }

    const EC: &str = r#"{"kty":"EC","kid":"ec-1","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}"#;

    #[test]
    fn usable_keys_are_kept_and_others_skipped() {
        let body = format!(
            r#"{{"keys":[{EC},
            {{"kty":"EC","kid":"enc","use":"enc","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}},
            {{"kty":"oct","kid":"hmac","alg":"HS256","k":"c2VjcmV0"}},
            {{"kty":"EC","kid":"odd","alg":"RSA-OAEP","crv":"P-256","x":"a","y":"b"}},
            {{"kty":"RSA","kid":"wrong-type","alg":"ES256","n":"AQAB","e":"AQAB"}}]}}"#
        );
        let keys = parse(body.as_bytes(), &source(None)).unwrap();
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_eq!(keys[0].id, "ec-1");
        assert_eq!(keys[0].algorithm, Algorithm::ES256);
        assert_eq!(keys[0].issuer, "https://idp.example");
    }

    #[test]
    fn a_pinned_algorithm_refuses_other_keys() {
        let body = format!(r#"{{"keys":[{EC}]}}"#);
        let e = parse(body.as_bytes(), &source(Some(Algorithm::RS256))).unwrap_err();
        assert!(e.contains("none of its 1 keys"), "{e}");
    }

    #[test]
    fn malformed_sets_are_errors() {
        for (body, says) in [
            ("nope", "not JSON"),
            ("{}", "`keys` array"),
            (r#"{"keys":[]}"#, "none of its 0 keys"),
        ] {
            let e = parse(body.as_bytes(), &source(None)).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
