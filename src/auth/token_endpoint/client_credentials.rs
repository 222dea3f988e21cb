//! The OAuth 2.0 client-credentials grant (RFC 6749 §4.4) at the token endpoint:
//! `grant_type=client_credentials`, form-encoded, the client authenticated by
//! HTTP Basic (username = `client_id`) or by `client_id` and `client_secret` in the
//! form (never both, §2.3). A consumer is the client; its password the secret.
//!
//! Answers per §5.1 (`access_token`, `token_type`, `expires_in`, `scope`) and §5.2
//! (`error` with `error_description`, beside the gateway's usual `message` and
//! `request_id`): `invalid_client` is 401 with `WWW-Authenticate: Basic`.

use super::{issued, LoginError, TokenEndpoint, TokenIssued, TokenRequest};
use crate::error::{ErrorCode, GatewayError};
use base64::Engine as _;
use http::{header, HeaderValue};
use serde_json::json;
use std::collections::HashMap;

/// The media type of a grant request.
pub(super) const FORM: &str = "application/x-www-form-urlencoded";

/// The grant this endpoint supports.
pub const GRANT: &str = "client_credentials";

/// An RFC 6749 §5.2 error: the code, and its description in both fields.
fn oauth_error(code: ErrorCode, description: &str) -> GatewayError {
    let e =
        GatewayError::new(code, description).with_detail("error_description", json!(description));
    match code {
        ErrorCode::InvalidClient => e.with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"fingate\""),
        ),
        _ => e,
    }
}

fn invalid_request(description: &str) -> GatewayError {
    oauth_error(ErrorCode::InvalidRequest, description)
}

/// The form's parameters; each at most once (§3.2), names and values decoded.
fn form(body: &[u8]) -> Result<HashMap<String, String>, GatewayError> {
    let mut out = HashMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        if out.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(invalid_request(&format!(
                "`{name}` is given more than once"
            )));
        }
    }
    Ok(out)
}

/// `Authorization: Basic base64(id:secret)`: Some((id, secret)); None without
/// one; an error when it is not Basic or does not decode. The id and the secret
/// are each form-encoded inside (RFC 6749 §2.3.1: OAuth client libraries encode
/// them), so `%3A` is a colon in the secret and `+` a space.
fn basic(authorization: Option<&[u8]>) -> Result<Option<(String, String)>, GatewayError> {
    let Some(value) = authorization else {
        return Ok(None);
    };
    let bad = || {
        oauth_error(
            ErrorCode::InvalidClient,
            "authenticate the client with HTTP Basic (client_id:client_secret)",
        )
    };
    let text = std::str::from_utf8(value).map_err(|_| bad())?;
    let (scheme, encoded) = text.trim().split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let pair = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = pair.split_once(':').ok_or_else(bad)?;
    let decode = |part: &str| form_decode(part).ok_or_else(bad);
    Ok(Some((decode(id)?, decode(secret)?)))
}

/// One form-encoded value (`+` a space, `%XX` a byte); None if not UTF-8 after.
fn form_decode(part: &str) -> Option<String> {
    let spaced = part.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// The scope to grant: the requested one if every scope in it is the client's,
/// else all of the client's.
fn granted_scope(requested: Option<&str>, allowed: &[String]) -> Result<String, GatewayError> {
    let Some(requested) = requested else {
        return Ok(allowed.join(" "));
    };
    let asked: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
    if asked.is_empty() {
        return Err(oauth_error(ErrorCode::InvalidScope, "`scope` is empty"));
    }
    if let Some(extra) = asked.iter().find(|s| !allowed.iter().any(|a| a == *s)) {
        return Err(oauth_error(
            ErrorCode::InvalidScope,
            &format!("the scope {extra:?} is not granted to this client"),
        ));
    }
    let mut unique: Vec<&str> = Vec::with_capacity(asked.len());
    for s in asked {
        if !unique.contains(&s) {
            unique.push(s);
        }
    }
    Ok(unique.join(" "))
}

impl TokenEndpoint {
    pub(super) async fn client_credentials(
        &self,
        req: &TokenRequest<'_>,
    ) -> Result<TokenIssued, GatewayError> {
        let params = form(req.body)?;
        match params.get("grant_type").map(String::as_str) {
            None => return Err(invalid_request("`grant_type` is missing")),
            Some(GRANT) => {}
            Some(other) => {
                return Err(oauth_error(
                    ErrorCode::UnsupportedGrantType,
                    &format!(
                        "the grant type {other:?} is not supported here; use client_credentials"
                    ),
                ))
            }
        }
        let in_body = (params.get("client_id"), params.get("client_secret"));
        let (client_id, secret) = match (basic(req.authorization)?, in_body) {
            (Some(_), (Some(_), _) | (_, Some(_))) => return Err(invalid_request(
                "authenticate the client one way: HTTP Basic or client_id/client_secret, not both",
            )),
            (Some(pair), _) => pair,
            (None, (Some(id), Some(secret))) => (id.clone(), secret.clone()),
            (None, (Some(_), None)) => return Err(invalid_request("`client_secret` is missing")),
            (None, _) => {
                return Err(oauth_error(
                    ErrorCode::InvalidClient,
                    "authenticate the client with HTTP Basic or client_id and client_secret",
                ))
            }
        };
        if client_id.is_empty() || secret.is_empty() {
            return Err(oauth_error(
                ErrorCode::InvalidClient,
                "the client id and secret must not be empty",
            ));
        }
        let client = match self.authenticate(&client_id, secret, req).await {
            Ok(c) => c,
            Err(LoginError::Refused(e)) => return Err(e),
            Err(LoginError::BadCredentials) => {
                return Err(oauth_error(
                    ErrorCode::InvalidClient,
                    "unknown client or wrong secret",
                ))
            }
        };
        let scope = granted_scope(params.get("scope").map(String::as_str), &client.scopes)?;
        let ttl = self.config.default_ttl;
        let (token, _) = self.sign(&client.username, &scope, ttl)?;
        let body = json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ttl.as_secs(),
            "scope": scope,
        });
        Ok(TokenIssued {
            response: issued(&body),
            consumer: client.username.clone(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_decoded_and_repeats_refused() {
        let p = form(b"grant_type=client_credentials&scope=a%3Aread+b").unwrap();
        assert_eq!(p["grant_type"], "client_credentials");
        assert_eq!(p["scope"], "a:read b");
        let e = form(b"scope=a&scope=b").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn basic_credentials() {
        let h = |v: &str| basic(Some(v.as_bytes()));
        assert_eq!(
            h("Basic bW9iaWxlLWFwcDpzM2NyZXQ6eA==").unwrap(),
            Some(("mobile-app".into(), "s3cret:x".into()))
        );
        assert_eq!(basic(None).unwrap(), None);
        // Each part form-encoded first (RFC 6749 §2.3.1): base64("my%20app:s%3Ac+r%25t").
        assert_eq!(
            h("Basic bXklMjBhcHA6cyUzQWMrciUyNXQ=").unwrap(),
            Some(("my app".into(), "s:c r%t".into()))
        );
        // base64("app:%FF"): not UTF-8 once decoded.
        for bad in [
            "Bearer abc",
            "Basic !!!",
            "Basic bm9jb2xvbg==",
            "Basic",
            "Basic YXBwOiVGRg==",
        ] {
            let e = h(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidClient, "{bad}");
            assert!(e.headers.iter().any(|(n, _)| n == header::WWW_AUTHENTICATE));
        }
    }

    #[test]
    fn a_narrower_scope_is_granted_and_a_wider_one_refused() {
        let allowed = vec!["accounts:read".to_owned(), "payments:write".to_owned()];
        assert_eq!(
            granted_scope(None, &allowed).unwrap(),
            "accounts:read payments:write"
        );
        assert_eq!(
            granted_scope(Some("accounts:read accounts:read"), &allowed).unwrap(),
            "accounts:read"
        );
        for bad in [
            Some(""),
            Some("  "),
            Some("admin"),
            Some("accounts:read admin"),
        ] {
            let e = granted_scope(bad, &allowed).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidScope, "{bad:?}");
        }
    }
}
