//! The `jwt` filter through the real gateway: the attack catalogue (each case must
//! be refused), scopes, partner keys, identity headers, path spellings.

use crate::authkit::*;
use crate::harness::*;
use jsonwebtoken::Algorithm;
use serde_json::json;

/// A gateway per test: processes must end with the test (a shared static would
/// never be dropped and would outlive the run).
fn setup() -> (Mock, Gateway) {
    start(NO_LOCKOUT)
}

/// Asserts a 401 `invalid_token` with the RFC 6750 challenge, counted under `reason`.
fn refused(r: &Response, reason: &str, gw: &Gateway, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.body_text());
    assert_eq!(r.json()["error"], "invalid_token", "{what}");
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge}"
    );
    let series = format!("fingate_auth_failures_total{{reason=\"{reason}\",route=\"echo\"}}");
    assert!(
        gw.metric(&series).unwrap_or(0.0) >= 1.0,
        "{what}: {series} not counted"
    );
}

fn check(token: &str, reason: &str, what: &str) {
    let (_m, gw) = setup();
    refused(&bearer_get(&gw, "/_mock/echo", token), reason, &gw, what);
}

/// Several refusals on one gateway.
fn check_all(cases: &[(&str, &str, &str)]) {
    let (_m, gw) = setup();
    for (token, reason, what) in cases {
        refused(&bearer_get(&gw, "/_mock/echo", token), reason, &gw, what);
    }
}

#[test]
fn a_valid_token_passes_and_the_control_case_holds() {
    let (_m, gw) = setup();
    let gw = &gw;
    let r = bearer_get(gw, "/_mock/echo", &main_token(&good_claims()));
    assert_eq!(r.status, 200, "{}", r.body_text());
}

#[test]
fn missing_token() {
    let (_m, gw) = setup();
    let gw = &gw;
    refused(&gw.get("/_mock/echo"), "missing", gw, "no Authorization");
}

#[test]
fn alg_none_without_signature() {
    let payload = good_claims().to_string();
    check(
        &raw_token(r#"{"alg":"none","typ":"JWT"}"#, &payload, ""),
        "malformed",
        "alg none",
    );
}

#[test]
fn alg_none_with_a_signature() {
    let payload = good_claims().to_string();
    let real = main_token(&good_claims());
    let sig = real.rsplit('.').next().unwrap();
    check(
        &raw_token(r#"{"alg":"none","kid":"main"}"#, &payload, sig),
        "malformed",
        "alg none + sig",
    );
}

#[test]
fn hs256_signed_with_the_rsa_public_key_alg_confusion() {
    let (_m, gw) = setup();
    let gw = &gw;
    let public_pem = partner_keys().read("rsa.pub.pem");
    let mut claims = good_claims();
    claims["iss"] = json!("partner-idp");
    // With the partner key's kid: the key says RS256, so HS256 is refused.
    let forged = hs256(json!({"kid": "partner-rsa"}), &claims, &public_pem);
    let r = bearer_get(gw, "/partner", &forged);
    assert_eq!(r.status, 401, "{}", r.body_text());
    // Without a kid: no key of this route is HS256.
    let forged = hs256(json!({}), &claims, &public_pem);
    assert_eq!(bearer_get(gw, "/partner", &forged).status, 401);
}

#[test]
fn unknown_kid() {
    check(
        &hs256(json!({"kid": "other"}), &good_claims(), SECRET.as_bytes()),
        "unknown_key",
        "unknown kid",
    );
}

#[test]
fn kid_with_path_traversal() {
    let t = hs256(json!({"kid": "../../../../dev/null"}), &good_claims(), b"");
    check(&t, "unknown_key", "kid traversal");
}

#[test]
fn expired() {
    let mut c = good_claims();
    c["exp"] = json!(now() - 60);
    check(&main_token(&c), "expired", "expired beyond leeway");
}

#[test]
fn nbf_in_the_future_beyond_leeway() {
    let mut c = good_claims();
    c["nbf"] = json!(now() + 120);
    check(&main_token(&c), "not_yet_valid", "nbf");
}

#[test]
fn missing_exp() {
    let mut c = good_claims();
    c.as_object_mut().unwrap().remove("exp");
    check(&main_token(&c), "malformed", "no exp");
}

#[test]
fn wrong_issuer() {
    let mut c = good_claims();
    c["iss"] = json!("evil");
    check(&main_token(&c), "wrong_issuer", "iss");
}

#[test]
fn wrong_audience() {
    let mut c = good_claims();
    c["aud"] = json!("other-api");
    check(&main_token(&c), "wrong_audience", "aud");
}

#[test]
fn signature_stripped() {
    let t = main_token(&good_claims());
    let unsigned = &t[..t.rfind('.').unwrap() + 1];
    let no_dot = &t[..t.rfind('.').unwrap()];
    check_all(&[
        (unsigned, "bad_signature", "stripped signature"),
        (no_dot, "malformed", "two parts"),
    ]);
}

#[test]
fn signature_of_another_token() {
    let a = main_token(&good_claims());
    let mut c = good_claims();
    c["sub"] = json!("web-app");
    let b = main_token(&c);
    let spliced = format!(
        "{}.{}",
        &b[..b.rfind('.').unwrap()],
        a.rsplit('.').next().unwrap()
    );
    check(&spliced, "bad_signature", "spliced signature");
}

#[test]
fn tampered_payload() {
    let t = main_token(&good_claims());
    let parts: Vec<&str> = t.split('.').collect();
    let mut c = good_claims();
    c["scope"] = json!("accounts:read payments:write admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(c.to_string().as_bytes()),
        parts[2]
    );
    check(&tampered, "bad_signature", "tampered payload");
}

#[test]
fn malformed_base64_and_json() {
    check("a.b.c", "malformed", "junk");
    check("!!!.???.***", "malformed", "not base64url");
    let header = b64(br#"{"alg":"HS256","kid":"main"}"#);
    check(
        &format!("{header}.bm90IGpzb24.c2ln"),
        "bad_signature",
        "payload not JSON, signature checked first",
    );
    check(
        &format!("{}.e30.c2ln", b64(b"not json")),
        "malformed",
        "header not JSON",
    );
}

#[test]
fn token_over_8_kib() {
    let mut c = good_claims();
    c["pad"] = json!("x".repeat(9 * 1024));
    check(&main_token(&c), "malformed", "oversized");
}

#[test]
fn two_authorization_headers() {
    let (_m, gw) = setup();
    let gw = &gw;
    let t = main_token(&good_claims());
    let auth = format!("Bearer {t}");
    let r = request(
        gw.addr,
        "GET",
        "/_mock/echo",
        &[("Authorization", &auth), ("Authorization", &auth)],
        b"",
    );
    refused(&r, "malformed", gw, "two headers");
}

#[test]
fn bearer_with_no_token_and_other_schemes() {
    let (_m, gw) = setup();
    let gw = &gw;
    for value in ["Bearer", "Bearer ", "Basic YWxpY2U6cHc=", "Token abc"] {
        let r = request(
            gw.addr,
            "GET",
            "/_mock/echo",
            &[("Authorization", value)],
            b"",
        );
        assert_eq!(r.status, 401, "{value:?}: {}", r.body_text());
    }
    // The scheme is case-insensitive.
    let t = main_token(&good_claims());
    let r = request(
        gw.addr,
        "GET",
        "/_mock/echo",
        &[("Authorization", &format!("bEaReR {t}"))],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
}

#[test]
fn a_missing_scope_is_403_and_a_present_one_passes() {
    let (_m, gw) = setup();
    let gw = &gw;
    let alice = token_for(gw, "alice");
    let r = bearer_get(gw, "/write", &alice);
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert_eq!(r.json()["error"], "insufficient_scope");
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("payments:write"),
        "{challenge}"
    );
    assert!(
        gw.metric("fingate_auth_failures_total{reason=\"insufficient_scope\",route=\"write\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
    let mobile = token_for(gw, "mobile-app");
    assert_eq!(bearer_get(gw, "/write", &mobile).status, 200);
}

#[test]
fn partner_tokens_are_accepted_only_where_their_key_is_listed() {
    let (_m, gw) = setup();
    let gw = &gw;
    for (alg, kid) in [
        (Algorithm::RS256, "partner-rsa"),
        (Algorithm::ES256, "partner-ec"),
    ] {
        let t = partner_token(alg, kid);
        let r = bearer_get(gw, "/partner", &t);
        assert_eq!(r.status, 200, "{kid}: {}", r.body_text());
        // Another issuer's consumer: never a local one of the same name.
        let seen = &r.json()["headers"];
        assert_eq!(seen["x-consumer-id"][0], "partner-idp#partner-bank");
        assert_eq!(seen["x-consumer-issuer"][0], "partner-idp");
        let r = bearer_get(gw, "/_mock/echo", &t);
        assert_eq!(r.status, 401, "{kid} on a route that does not list it");
        assert_eq!(r.json()["error"], "invalid_token");
    }
    // The route's list replaces the default keys: our own tokens do not open it.
    assert_eq!(
        bearer_get(gw, "/partner", &main_token(&good_claims())).status,
        401
    );
}

#[test]
fn the_service_sees_the_token_subject_not_a_spoofed_header() {
    let (_m, gw) = setup();
    let gw = &gw;
    let web = token_for(gw, "web-app");
    let auth = format!("Bearer {web}");
    let r = request(
        gw.addr,
        "GET",
        "/_mock/echo",
        &[
            ("Authorization", &auth),
            ("X-Consumer-Id", "mobile-app"),
            ("X-Consumer-Scopes", "payments:write"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    let h = &r.json()["headers"];
    assert_eq!(h["x-consumer-id"].as_array().unwrap(), &[json!("web-app")]);
    assert_eq!(
        h["x-consumer-scopes"].as_array().unwrap(),
        &[json!("accounts:read")]
    );
    // The accounts service enforces ownership on that identity.
    assert_eq!(
        request(
            gw.addr,
            "GET",
            "/accounts/ACC-1001",
            &[("Authorization", &auth), ("X-Consumer-Id", "mobile-app")],
            b""
        )
        .status
            / 100,
        4
    );
    assert_eq!(
        request(
            gw.addr,
            "GET",
            "/accounts/ACC-2001",
            &[("Authorization", &auth)],
            b""
        )
        .status,
        200
    );
    let mobile = format!("Bearer {}", token_for(gw, "mobile-app"));
    assert_eq!(
        request(
            gw.addr,
            "GET",
            "/accounts/ACC-1001",
            &[("Authorization", &mobile)],
            b""
        )
        .status,
        200
    );
}

#[test]
fn no_path_spelling_reaches_a_protected_route_without_a_token() {
    let (_m, gw) = setup();
    let gw = &gw;
    for spelling in [
        "/_mock/echo",
        "/public/../_mock/echo",
        "/public/%2e%2e/_mock/echo",
        "/public/.%2e/_mock/echo",
        "//_mock//echo",
        "/./_mock/echo",
        "/%5fmock/echo",
        "/_mock/%65cho",
        "/public/..;/_mock/echo",
        "/public/%2f../_mock/echo",
        "/public/..%5c_mock/echo",
        "/_mock/echo;x=1",
        "/_MOCK/echo",
        "/write/../_mock/echo",
        "/public/../write",
        "/public/%2e%2e/partner",
    ] {
        let answer = request(gw.addr, "GET", spelling, &[], b"");
        assert!(
            matches!(answer.status, 400 | 401 | 404),
            "{spelling} reached an upstream without a token: {} {}",
            answer.status,
            answer.body_text()
        );
        if answer.status == 200 {
            unreachable!();
        }
    }
    // The public route itself still works, so the table above is not vacuous.
    assert_eq!(gw.get("/public/x").status, 200);
}

#[test]
fn jwks_is_not_published_for_an_hmac_signing_key() {
    let (_m, gw) = setup();
    let gw = &gw;
    assert_eq!(gw.get("/.well-known/jwks.json").status, 404);
}

/// A gateway whose signing key is the partner's private key of `alg` (a PKCS#8 PEM
/// from openssl): its tokens verify against the published JWKS with an independent
/// verifier, and the gateway accepts them on its own routes.
fn asymmetric_signing_key_is_published_and_used(alg: Algorithm, file: &str, kid: &str) {
    let m = Mock::one("accounts", "a", &[]);
    let yaml = format!(
        r#"listen: [{{ address: '{{LISTEN}}' }}]
admin: {{ address: '{{ADMIN}}', api_key: '{{ADMIN_KEY}}' }}
auth:
  issuer: fingate
  audience: {AUDIENCE}
  keys:
    - {{ id: {kid}, algorithm: {alg:?}, private_key_file: '{key}', sign: true }}
  token_endpoint: {{ path: /auth/token }}
consumers:
  - {{ username: alice, password_hash: '{h}', scopes: [accounts:read] }}
upstreams:
  a: {{ targets: [{upstream}] }}
routes:
  - {{ name: echo, match: {{ prefix: /_mock/echo }}, upstream: a, filters: [ {{ jwt: {{ scopes: [accounts:read] }} }} ] }}
"#,
        key = partner_keys().path(file),
        h = password_hash(),
        upstream = m.addr("a"),
    );
    let gw = Gateway::start(&yaml);
    let jwks = gw.get("/.well-known/jwks.json");
    assert_eq!(jwks.status, 200, "{}", jwks.body_text());
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&jwks.body).unwrap();
    assert_eq!(set.keys.len(), 1, "only the signing key is published");
    let body = jwks.body_text();
    for private in ["\"d\"", "\"p\"", "\"q\""] {
        assert!(!body.contains(private), "private part {private} in {body}");
    }
    let jwk = set.find(kid).expect("the signing key's kid");

    let token = token_for(&gw, "alice");
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!((header.alg, header.kid.as_deref()), (alg, Some(kid)));
    let mut v = jsonwebtoken::Validation::new(alg);
    v.set_audience(&[AUDIENCE]);
    v.set_issuer(&["fingate"]);
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let claims = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &v)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(bearer_get(&gw, "/_mock/echo/x", &token).status, 200);
    // The same claims signed by another key with this kid are refused.
    let other = match alg {
        Algorithm::RS256 => "ec.pem",
        _ => "rsa.pem",
    };
    let forged_key = match alg {
        Algorithm::RS256 => {
            jsonwebtoken::EncodingKey::from_ec_pem(&partner_keys().read(other)).unwrap()
        }
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(&partner_keys().read(other)).unwrap(),
    };
    let mut h = jsonwebtoken::Header::new(match alg {
        Algorithm::RS256 => Algorithm::ES256,
        _ => Algorithm::RS256,
    });
    h.kid = Some(kid.to_owned());
    let forged = jsonwebtoken::encode(&h, &claims, &forged_key).unwrap();
    assert_eq!(bearer_get(&gw, "/_mock/echo/x", &forged).status, 401);
}

#[test]
fn an_es256_signing_key_is_published_in_jwks_and_verifies_independently() {
    asymmetric_signing_key_is_published_and_used(Algorithm::ES256, "ec.pem", "own-ec");
}

#[test]
fn an_rs256_signing_key_is_published_in_jwks_and_verifies_independently() {
    asymmetric_signing_key_is_published_and_used(Algorithm::RS256, "rsa.pem", "own-rsa");
}
