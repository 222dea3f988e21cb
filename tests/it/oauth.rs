//! OAuth 2.0 client credentials (RFC 6749 §4.4) at the token endpoint, with real
//! clients: curl (`-u id:secret -d grant_type=client_credentials`) and Python's
//! `requests`; every §5.1 / §5.2 answer; and the RFC 8414 metadata document.

use crate::authkit::*;
use crate::curl::curl;
use crate::harness::*;
use serde_json::Value;
use std::process::Command;

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn grant(gw: &Gateway, headers: &[(&str, &str)], body: &str) -> Response {
    let mut all = vec![FORM];
    all.extend_from_slice(headers);
    request(gw.addr, "POST", "/auth/token", &all, body.as_bytes())
}

fn basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// An RFC 6749 §5.2 error: the status, `error` and an `error_description`.
fn assert_oauth_error(r: &Response, status: u16, error: &str) {
    assert_eq!(r.status, status, "{}", r.body_text());
    let body = r.json();
    assert_eq!(body["error"], error, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

#[test]
fn curl_gets_a_token_with_http_basic_and_it_opens_a_protected_route() {
    let (_m, gw) = start(NO_LOCKOUT);
    let url = format!("http://{}/auth/token", gw.addr);
    let userpass = format!("mobile-app:{PASSWORD}");
    let r = curl(&["-u", &userpass, "-d", "grant_type=client_credentials", &url]);
    assert_eq!(r.status, 200, "{} {}", r.body, r.stderr);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    let body = r.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "accounts:read payments:write");
    let token = body["access_token"].as_str().unwrap();
    let seen = bearer_get(&gw, "/write", token);
    assert_eq!(seen.status, 200, "{}", seen.body_text());
    assert_eq!(seen.json()["headers"]["x-consumer-id"][0], "mobile-app");

    // A narrower scope: the token carries only what was asked for.
    let r = curl(&[
        "-u",
        &userpass,
        "-d",
        "grant_type=client_credentials",
        "-d",
        "scope=accounts:read",
        &url,
    ]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["scope"], "accounts:read");
    let narrow = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(bearer_get(&gw, "/_mock/echo", &narrow).status, 200);
    assert_eq!(bearer_get(&gw, "/write", &narrow).status, 403);

    // As OAuth libraries send it (Go's oauth2, oauthlib): the secret form-encoded
    // inside Basic (RFC 6749 §2.3.1), its spaces as `+`.
    let encoded = format!("mobile-app:{}", PASSWORD.replace(' ', "+"));
    let r = curl(&["-u", &encoded, "-d", "grant_type=client_credentials", &url]);
    assert_eq!(r.status, 200, "{}", r.body);

    // client_secret_post works the same.
    let r = curl(&[
        "--data-urlencode",
        "grant_type=client_credentials",
        "--data-urlencode",
        "client_id=web-app",
        "--data-urlencode",
        &format!("client_secret={PASSWORD}"),
        &url,
    ]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["scope"], "accounts:read");
}

#[test]
fn every_error_answer_follows_rfc_6749() {
    let (_m, gw) = start(NO_LOCKOUT);
    let good = basic("mobile-app", PASSWORD);
    // invalid_client: 401 with WWW-Authenticate: Basic.
    for (headers, body) in [
        (
            vec![("Authorization", basic("mobile-app", "wrong"))],
            "grant_type=client_credentials".to_owned(),
        ),
        (
            vec![("Authorization", basic("nobody", PASSWORD))],
            "grant_type=client_credentials".to_owned(),
        ),
        (
            vec![("Authorization", basic("bob", PASSWORD))],
            "grant_type=client_credentials".to_owned(),
        ),
        (vec![], "grant_type=client_credentials".to_owned()),
        (
            vec![],
            "grant_type=client_credentials&client_id=mobile-app&client_secret=nope".to_owned(),
        ),
        (
            vec![("Authorization", "Basic !!notbase64".to_owned())],
            "grant_type=client_credentials".to_owned(),
        ),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let r = grant(&gw, &headers, &body);
        assert_oauth_error(&r, 401, "invalid_client");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"fingate\""),
            "{body}"
        );
    }
    // invalid_request: a missing grant type, two ways of authenticating, a
    // repeated parameter, a missing secret.
    for (auth, body) in [
        (true, "scope=accounts:read"),
        (
            true,
            "grant_type=client_credentials&client_id=mobile-app&client_secret=x",
        ),
        (
            true,
            "grant_type=client_credentials&grant_type=client_credentials",
        ),
        (false, "grant_type=client_credentials&client_id=mobile-app"),
    ] {
        let headers: Vec<(&str, &str)> = if auth {
            vec![("Authorization", &good)]
        } else {
            vec![]
        };
        assert_oauth_error(&grant(&gw, &headers, body), 400, "invalid_request");
    }
    // unsupported_grant_type and invalid_scope.
    let auth = [("Authorization", good.as_str())];
    for grant_type in ["password", "authorization_code", "refresh_token"] {
        let r = grant(&gw, &auth, &format!("grant_type={grant_type}"));
        assert_oauth_error(&r, 400, "unsupported_grant_type");
    }
    for scope in ["admin", "accounts:read%20admin", ""] {
        let r = grant(
            &gw,
            &auth,
            &format!("grant_type=client_credentials&scope={scope}"),
        );
        assert_oauth_error(&r, 400, "invalid_scope");
    }
    // The JSON login of the same endpoint is unchanged.
    let r = login(
        &gw,
        &format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#),
    );
    assert_eq!(r.status, 200);
    assert!(r.json()["token"].is_string());
    let r = request(
        gw.addr,
        "POST",
        "/auth/token",
        &[("Content-Type", "text/plain")],
        b"x",
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body_text().contains("x-www-form-urlencoded"),
        "{}",
        r.body_text()
    );
}

#[test]
fn the_metadata_document_points_at_the_token_endpoint() {
    let (_m, gw) = start(NO_LOCKOUT);
    let r = gw.get("/.well-known/oauth-authorization-server");
    assert_eq!(r.status, 200, "{}", r.body_text());
    let doc = r.json();
    assert_eq!(doc["issuer"], "fingate");
    assert_eq!(
        doc["token_endpoint"],
        format!("http://{}/auth/token", gw.addr)
    );
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    assert!(
        doc.get("jwks_uri").is_none(),
        "an HMAC key publishes no JWKS"
    );
    // A route of its own: counted under its name.
    assert_eq!(
        gw.metric("fingate_requests_total{method=\"GET\",route=\"oauth_metadata\",status=\"200\"}"),
        Some(1.0)
    );
    let r = request(
        gw.addr,
        "POST",
        "/.well-known/oauth-authorization-server",
        &[],
        b"",
    );
    assert_eq!(r.status, 405);
}

/// Python's `requests` with form encoding, as a client library would send it.
#[test]
fn python_requests_gets_a_token() {
    let available = Command::new("python3")
        .args(["-c", "import requests"])
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        assert!(
            std::env::var_os("FINGATE_REQUIRE_PYTHON_REQUESTS").is_none(),
            "python3-requests should be installed (scripts/test installs it)"
        );
        eprintln!(
            "python3 with requests not found: skipped (scripts/test installs python3-requests)"
        );
        return;
    }
    let (_m, gw) = start(NO_LOCKOUT);
    let script = format!(
        r#"
import json, requests
base = "http://{addr}"
meta = requests.get(base + "/.well-known/oauth-authorization-server", timeout=10).json()
r = requests.post(meta["token_endpoint"], data={{"grant_type": "client_credentials", "scope": "accounts:read"}},
                  auth=("mobile-app", "{PASSWORD}"), timeout=10)
r.raise_for_status()
token = r.json()["access_token"]
seen = requests.get(base + "/_mock/echo", headers={{"Authorization": "Bearer " + token}}, timeout=10)
print(json.dumps({{"status": seen.status_code, "scope": r.json()["scope"], "type": r.json()["token_type"]}}))
"#,
        addr = gw.addr
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["scope"], "accounts:read");
    assert_eq!(v["type"], "Bearer");
}
