//! Verification and signing keys (`auth.keys`), decoded once when the config is
//! loaded so that verifying a token on the hot path only looks a key up.
//!
//! The accepted algorithm belongs to the key, never to the token: each key carries
//! its own `Validation` listing exactly its algorithm, so an HS256 token can never
//! be checked against an RSA public key used as an HMAC secret, and `alg: none`
//! (not an `Algorithm` at all) never reaches a key.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use ring::signature::KeyPair as _;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::Duration;

/// HMAC secrets shorter than this are refused (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

/// Which routes accept a key when they do not list keys themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Accept {
    /// Every `jwt` route without its own `keys:` list.
    #[default]
    Everywhere,
    /// Only routes whose `jwt.keys` names this key (e.g. a partner's identity provider).
    WhenListed,
}

/// One key, ready to verify (and maybe sign) tokens.
pub struct Key {
    pub id: String,
    pub algorithm: Algorithm,
    pub accept: Accept,
    /// The issuer tokens under this key must carry.
    pub issuer: String,
    pub decoding: DecodingKey,
    /// Present for the `sign: true` key only.
    pub encoding: Option<EncodingKey>,
    /// Exactly this key's algorithm, `exp`/`iss`/`aud`/`sub` required, `nbf` checked.
    pub validation: Validation,
    /// The public half as a JWK, for `/.well-known/jwks.json` (asymmetric keys
    /// from files: the signing key, and verification keys kept while tokens of a
    /// previous signing key are still alive).
    pub jwk: Option<serde_json::Value>,
    /// A hash of everything the key was built from (settings and key material), so
    /// a reload can say whether the key changed; never shown.
    pub fingerprint: u64,
}

impl std::fmt::Debug for Key {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("algorithm", &self.algorithm)
            .field("accept", &self.accept)
            .field("sign", &self.encoding.is_some())
            .finish()
    }
}

/// The configured keys. Few enough that a linear scan beats a map.
#[derive(Debug, Default)]
pub struct KeySet {
    /// Keys with their material in the configuration (secrets, PEM files).
    pub keys: Vec<std::sync::Arc<Key>>,
    /// Key sets fetched from an identity provider (`jwks_url`).
    pub remote: Vec<std::sync::Arc<super::remote::RemoteSource>>,
}

impl KeySet {
    pub fn get(&self, id: &str) -> Option<&std::sync::Arc<Key>> {
        self.keys.iter().find(|k| k.id == id)
    }
    pub fn remote(&self, id: &str) -> Option<&std::sync::Arc<super::remote::RemoteSource>> {
        self.remote.iter().find(|r| r.id == id)
    }
    /// Whether a key or a remote source is called `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.get(id).is_some() || self.remote(id).is_some()
    }
    /// Every id, keys first, in configuration order.
    pub fn ids(&self) -> Vec<&str> {
        let keys = self.keys.iter().map(|k| k.id.as_str());
        keys.chain(self.remote.iter().map(|r| r.id.as_str()))
            .collect()
    }
    pub fn signing(&self) -> Option<&std::sync::Arc<Key>> {
        self.keys.iter().find(|k| k.encoding.is_some())
    }
    /// `{"keys": [...]}`: the public halves of the asymmetric keys of `issuer`
    /// (the gateway's own: a partner's keys are the partner's to publish).
    pub fn jwks(&self, issuer: &str) -> serde_json::Value {
        let keys: Vec<_> = self
            .keys
            .iter()
            .filter(|k| k.issuer == issuer)
            .filter_map(|k| k.jwk.clone())
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

/// What every key checks: exactly its algorithm, `exp`/`iss`/`aud`/`sub`
/// required, `nbf` checked, this issuer and audience.
pub fn validation(
    algorithm: Algorithm,
    issuer: &str,
    audience: &str,
    leeway: Duration,
) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.leeway = leeway.as_secs();
    validation.validate_nbf = true;
    validation
}

/// The algorithms fingate accepts, by their JOSE names.
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

pub fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// Where a key's material comes from, as written (paths already resolved).
#[derive(Debug, Clone)]
pub enum Material<'a> {
    Secret(&'a str),
    PublicPem(&'a Path),
    PrivatePem(&'a Path),
}

/// The settings every key's validation shares.
#[derive(Debug, Clone)]
pub struct Policy<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub leeway: Duration,
}

/// Builds one key. Reading PEM files is the only I/O config validation does: a key
/// that cannot be loaded must fail `fingate validate`, not the first request.
pub fn build(
    id: &str,
    algorithm: Algorithm,
    material: Material<'_>,
    sign: bool,
    accept: Accept,
    issuer: &str,
    policy: &Policy<'_>,
) -> Result<Key, String> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        id,
        format!("{algorithm:?}"),
        sign,
        format!("{accept:?}"),
        issuer,
    )
        .hash(&mut hasher);
    // Before any file is read: a key file given to an HMAC key is the mistake to report.
    if is_hmac(algorithm) && !matches!(material, Material::Secret(_)) {
        return Err(format!(
            "a {algorithm:?} key needs `secret` (from the environment: secret: ${{NAME}})"
        ));
    }
    let (decoding, encoding, jwk) = match material {
        Material::Secret(secret) => {
            secret.hash(&mut hasher);
            if !is_hmac(algorithm) {
                return Err(format!("`secret` is for HS256/384/512 keys; a {algorithm:?} key needs `public_key_file` (or `private_key_file` to sign)"));
            }
            if secret.len() < MIN_SECRET_BYTES {
                return Err(format!("the secret is {} bytes; use at least {MIN_SECRET_BYTES} random bytes (e.g. `openssl rand -base64 48`)", secret.len()));
            }
            let enc = sign.then(|| EncodingKey::from_secret(secret.as_bytes()));
            (DecodingKey::from_secret(secret.as_bytes()), enc, None)
        }
        Material::PublicPem(path) => {
            if sign {
                return Err("a signing key needs `private_key_file` (or `secret` for HMAC), not `public_key_file`".into());
            }
            let pem = read(path)?;
            pem.hash(&mut hasher);
            let decoded = match algorithm {
                Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                _ => DecodingKey::from_rsa_pem(&pem),
            }
            .map_err(|e| {
                format!(
                    "{}: not a {algorithm:?} public key in PEM form: {e}",
                    path.display()
                )
            })?;
            (decoded, None, public_jwk(algorithm, &pem, id))
        }
        Material::PrivatePem(path) => {
            let pem = read(path)?;
            pem.hash(&mut hasher);
            let (decoding, encoding, jwk) =
                private_key(algorithm, &pem, id).map_err(|e| format!("{}: {e}", path.display()))?;
            (decoding, Some(encoding), Some(jwk))
        }
    };
    policy.audience.hash(&mut hasher);
    let validation = validation(algorithm, issuer, policy.audience, policy.leeway);
    Ok(Key {
        id: id.to_owned(),
        algorithm,
        accept,
        issuer: issuer.to_owned(),
        decoding,
        encoding: if sign { encoding } else { None },
        validation,
        jwk,
        fingerprint: hasher.finish(),
    })
}

/// The JWK of a public key PEM (SubjectPublicKeyInfo), when it parses as the
/// algorithm's key type; None otherwise (then it is not published).
fn public_jwk(alg: Algorithm, pem_text: &[u8], kid: &str) -> Option<serde_json::Value> {
    use x509_parser::prelude::FromDer as _;
    let parsed = pem::parse(pem_text).ok()?;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(parsed.contents()).ok()?;
    let alg_name = format!("{alg:?}");
    let raw: &[u8] = &spki.subject_public_key.data;
    Some(match alg {
        Algorithm::ES256 | Algorithm::ES384 => {
            let (crv, half) = if alg == Algorithm::ES256 {
                ("P-256", 32)
            } else {
                ("P-384", 48)
            };
            if raw.len() != 1 + 2 * half || raw[0] != 4 {
                return None;
            }
            let (x, y) = (&raw[1..=half], &raw[1 + half..]);
            serde_json::json!({"kty": "EC", "kid": kid, "use": "sig", "alg": alg_name, "crv": crv, "x": b64(x), "y": b64(y)})
        }
        Algorithm::EdDSA => {
            serde_json::json!({"kty": "OKP", "kid": kid, "use": "sig", "alg": "EdDSA", "crv": "Ed25519", "x": b64(raw)})
        }
        _ => {
            let x509_parser::public_key::PublicKey::RSA(rsa) = spki.parsed().ok()? else {
                return None;
            };
            let strip = |b: &[u8]| -> Vec<u8> {
                let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
                b[start..].to_vec()
            };
            serde_json::json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": alg_name, "n": b64(&strip(rsa.modulus)), "e": b64(&strip(rsa.exponent))})
        }
    })
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A private key PEM: the signing key, the verifying key derived from it, its JWK.
fn private_key(
    alg: Algorithm,
    pem_text: &[u8],
    kid: &str,
) -> Result<(DecodingKey, EncodingKey, serde_json::Value), String> {
    let parsed = pem::parse(pem_text).map_err(|e| format!("not a PEM file: {e}"))?;
    let der = parsed.contents();
    let bad = |e: ring::error::KeyRejected| format!("not a {alg:?} private key: {e}");
    let alg_name = format!("{alg:?}");
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => {
            let pair = match parsed.tag() {
                "RSA PRIVATE KEY" => ring::rsa::KeyPair::from_der(der),
                _ => ring::rsa::KeyPair::from_pkcs8(der),
            }
            .map_err(bad)?;
            let c = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
            let encoding = EncodingKey::from_rsa_pem(pem_text).map_err(|e| e.to_string())?;
            let jwk = serde_json::json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": alg_name, "n": b64(&c.n), "e": b64(&c.e)});
            Ok((
                DecodingKey::from_rsa_raw_components(&c.n, &c.e),
                encoding,
                jwk,
            ))
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            let (ring_alg, crv, half): (&'static ring::signature::EcdsaSigningAlgorithm, _, _) =
                if alg == Algorithm::ES256 {
                    (
                        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                        "P-256",
                        32,
                    )
                } else {
                    (
                        &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                        "P-384",
                        48,
                    )
                };
            let rng = ring::rand::SystemRandom::new();
            let pair = ring::signature::EcdsaKeyPair::from_pkcs8(ring_alg, der, &rng)
                .map_err(|e| format!("{} (use PKCS#8: openssl genpkey)", bad(e)))?;
            let point = pair.public_key().as_ref().to_vec();
            // Uncompressed point: 0x04 || x || y.
            let (x, y) = (&point[1..=half], &point[1 + half..]);
            let jwk = serde_json::json!({"kty": "EC", "kid": kid, "use": "sig", "alg": alg_name, "crv": crv, "x": b64(x), "y": b64(y)});
            Ok((
                DecodingKey::from_ec_der(&point),
                EncodingKey::from_ec_der(der),
                jwk,
            ))
        }
        Algorithm::EdDSA => {
            let pair =
                ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(bad)?;
            let public = pair.public_key().as_ref().to_vec();
            let jwk = serde_json::json!({"kty": "OKP", "kid": kid, "use": "sig", "alg": "EdDSA", "crv": "Ed25519", "x": b64(&public)});
            Ok((
                DecodingKey::from_ed_der(&public),
                EncodingKey::from_ed_der(der),
                jwk,
            ))
        }
        _ => Err(format!(
            "a {alg:?} key needs `secret`, not `private_key_file`"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy() -> Policy<'static> {
        Policy {
            issuer: "fingate",
            audience: "api",
            leeway: Duration::from_secs(30),
        }
    }

    #[test]
    fn short_hmac_secrets_are_refused() {
        let e = build(
            "k",
            Algorithm::HS256,
            Material::Secret("short"),
            true,
            Accept::Everywhere,
            "fingate",
            &policy(),
        )
        .unwrap_err();
        assert!(e.contains("at least 32"), "{e}");
    }

    #[test]
    fn a_secret_is_only_for_hmac_algorithms() {
        let e = build(
            "k",
            Algorithm::RS256,
            Material::Secret("0123456789abcdef0123456789abcdef"),
            false,
            Accept::Everywhere,
            "fingate",
            &policy(),
        )
        .unwrap_err();
        assert!(e.contains("public_key_file"), "{e}");
    }

    #[test]
    fn the_validation_pins_the_algorithm_and_requires_the_claims() {
        let k = build(
            "k",
            Algorithm::HS384,
            Material::Secret("0123456789abcdef0123456789abcdef"),
            false,
            Accept::Everywhere,
            "fingate",
            &policy(),
        )
        .unwrap();
        assert_eq!(k.validation.algorithms, vec![Algorithm::HS384]);
        for claim in ["exp", "iss", "aud", "sub"] {
            assert!(k.validation.required_spec_claims.contains(claim));
        }
        assert!(k.validation.validate_nbf);
        assert_eq!(k.validation.leeway, 30);
        assert!(k.encoding.is_none(), "not a signing key");
    }

    #[test]
    fn unknown_algorithms_and_none_are_not_parsed() {
        assert!(parse_algorithm("none").is_none());
        assert!(parse_algorithm("hs256").is_none());
        assert_eq!(parse_algorithm("EdDSA"), Some(Algorithm::EdDSA));
    }

    #[test]
    fn a_missing_pem_file_names_the_file() {
        let e = build(
            "p",
            Algorithm::RS256,
            Material::PublicPem(Path::new("/nonexistent/partner.pem")),
            false,
            Accept::WhenListed,
            "idp",
            &policy(),
        )
        .unwrap_err();
        assert!(e.contains("/nonexistent/partner.pem"), "{e}");
    }
}
