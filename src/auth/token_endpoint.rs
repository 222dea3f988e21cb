//! `POST /auth/token`: a registered client trades its username and
//! password for a signed token — as JSON (`{"username", "password"}`), or as an
//! OAuth 2.0 client-credentials grant (RFC 6749 §4.4, form-encoded, see
//! [`client_credentials`]). Both check the password the same way: the attempt is
//! counted before the (argon2id, bounded) check, failures lock out.
//!
//! Pingora-free: the proxy reads the body (at most [`MAX_BODY`]) and hands it here
//! with the method and content type; the answer is a [`LocalResponse`].

mod client_credentials;
pub use client_credentials::GRANT;

use super::claims::{now, rfc3339, IssuedClaims};
use super::consumers::ConsumerStore;
use super::keys::Key;
use super::password::{Verifier, VerifyError};
use super::settings::TokenEndpointConfig;
use super::throttle::{Admission, LoginThrottle};
use crate::error::{ErrorCode, GatewayError, LocalResponse};
use crate::units::DurationStr;
use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Largest accepted request body: a username, a password and a lifetime.
pub const MAX_BODY: usize = 16 * 1024;

/// The login, ready to serve.
#[derive(Debug)]
pub struct TokenEndpoint {
    pub config: TokenEndpointConfig,
    pub issuer: String,
    pub audience: String,
    pub signing_key: Arc<Key>,
    pub consumers: Arc<dyn ConsumerStore>,
    pub throttle: Arc<LoginThrottle>,
    pub verifier: Arc<Verifier>,
}

/// One login request as the proxy read it.
#[derive(Debug)]
pub struct TokenRequest<'a> {
    pub method: &'a Method,
    pub content_type: Option<&'a [u8]>,
    /// The `Authorization` header (HTTP Basic client authentication).
    pub authorization: Option<&'a [u8]>,
    pub body: &'a [u8],
    pub client_ip: Option<IpAddr>,
    pub request_id: &'a str,
}

/// The parsed body.
#[derive(Debug, PartialEq, Eq)]
struct Login {
    username: String,
    password: String,
    ttl: Option<Duration>,
}

/// A login that succeeded: the answer to send and the consumer it logged in.
#[derive(Debug)]
pub struct TokenIssued {
    pub response: LocalResponse,
    pub consumer: String,
}

/// The answer when the login body is over [`MAX_BODY`] (also judged by the caller
/// while reading it).
pub fn body_too_large() -> GatewayError {
    GatewayError::new(
        ErrorCode::PayloadTooLarge,
        "the login body is limited to 16 KiB",
    )
}

/// Whether the media type of `content_type` is `media`.
fn is_media(content_type: Option<&[u8]>, media: &str) -> bool {
    content_type
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(media))
}

fn is_json(content_type: Option<&[u8]>) -> bool {
    is_media(content_type, "application/json")
}

/// Why a password check let nobody in.
enum LoginError {
    /// Unknown, disabled, or the wrong password (each answered alike).
    BadCredentials,
    /// Locked out, too busy, or the store is down: the answer says which.
    Refused(GatewayError),
}

/// Parses the body, naming the first problem found.
fn parse(body: &[u8]) -> Result<Login, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err("the body must be a JSON object: {\"username\": ..., \"password\": ..., \"tokenexp\": 900}".into());
    };
    let text = |key: &str| match map.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(format!("`{key}` is empty")),
        Some(_) => Err(format!("`{key}` must be a string")),
        None => Err(format!("`{key}` is missing")),
    };
    let username = text("username")?;
    let password = text("password")?;
    let ttl = match map.get("tokenexp") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(s) if s > 0 => Some(Duration::from_secs(s)),
            _ => return Err(
                "`tokenexp` must be a positive whole number of seconds or a duration like \"15m\""
                    .into(),
            ),
        },
        Some(Value::String(s)) => match DurationStr::parse(s) {
            Ok(d) if d.0 >= Duration::from_secs(1) => Some(d.0),
            Ok(_) => return Err("`tokenexp` must be at least 1s".into()),
            Err(e) => return Err(format!("`tokenexp`: {e}")),
        },
        Some(_) => {
            return Err(
                "`tokenexp` must be a number of seconds or a duration string like \"15m\"".into(),
            )
        }
    };
    Ok(Login {
        username,
        password,
        ttl,
    })
}

impl TokenEndpoint {
    pub async fn handle(&self, req: TokenRequest<'_>) -> Result<TokenIssued, GatewayError> {
        if *req.method != Method::POST {
            return Err(GatewayError::new(
                ErrorCode::MethodNotAllowed,
                "log in with POST and a JSON body, or an OAuth 2.0 form",
            )
            .with_header(header::ALLOW, HeaderValue::from_static("POST")));
        }
        if req.body.len() > MAX_BODY {
            return Err(body_too_large());
        }
        if is_media(req.content_type, client_credentials::FORM) {
            return self.client_credentials(&req).await;
        }
        if !is_json(req.content_type) {
            return Err(GatewayError::new(
                ErrorCode::BadRequest,
                "send Content-Type: application/json (or application/x-www-form-urlencoded for an OAuth 2.0 client-credentials grant)",
            ));
        }
        let login = parse(req.body).map_err(|m| GatewayError::new(ErrorCode::BadRequest, m))?;
        let consumer = match self
            .authenticate(&login.username, login.password, &req)
            .await
        {
            Ok(c) => c,
            Err(LoginError::Refused(e)) => return Err(e),
            Err(LoginError::BadCredentials) => {
                return Err(GatewayError::new(
                    ErrorCode::InvalidCredentials,
                    "unknown username or wrong password",
                ))
            }
        };
        let ttl = login
            .ttl
            .unwrap_or(self.config.default_ttl)
            .min(self.config.max_ttl);
        let (token, exp) = self.sign(&consumer.username, &consumer.scopes.join(" "), ttl)?;
        let body = json!({
            "token": token,
            "token_type": "Bearer",
            "expires_in": ttl.as_secs(),
            "expires_at": rfc3339(exp),
        });
        Ok(TokenIssued {
            response: issued(&body),
            consumer: consumer.username.clone(),
        })
    }

    /// Checks `password` for `username`, counting the attempt first (so concurrent
    /// guesses cannot all pass a check made before any of them failed).
    async fn authenticate(
        &self,
        username: &str,
        password: String,
        req: &TokenRequest<'_>,
    ) -> Result<std::sync::Arc<super::consumers::Consumer>, LoginError> {
        let ticket = match self.throttle.admit(username, req.client_ip).await {
            Admission::Check(ticket) => ticket,
            Admission::Refused { retry_after } => {
                return Err(LoginError::Refused(
                    GatewayError::new(
                        ErrorCode::RateLimited,
                        "too many failed logins; try again later",
                    )
                    .retry_after(retry_after),
                ));
            }
        };
        if !ticket.delay.is_zero() {
            tokio::time::sleep(ticket.delay).await;
        }
        let consumer = match self.consumers.get(username).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "consumer lookup failed");
                self.throttle.unchecked(ticket).await;
                return Err(LoginError::Refused(GatewayError::new(
                    ErrorCode::StoreUnavailable,
                    "the consumer store is unavailable",
                )));
            }
        };
        // Unknown and disabled consumers are checked too (against a dummy hash /
        // their own), so every refusal costs the same time.
        let phc = consumer.as_ref().and_then(|c| c.password_hash.clone());
        let ok = match self.verifier.verify(password, phc).await {
            Ok(ok) => ok,
            Err(VerifyError::Busy) => {
                self.throttle.unchecked(ticket).await;
                return Err(LoginError::Refused(
                    GatewayError::new(
                        ErrorCode::RateLimited,
                        "too many logins in progress; retry shortly",
                    )
                    .retry_after(Duration::from_secs(1)),
                ));
            }
        };
        match consumer {
            Some(c) if ok && !c.disabled => {
                self.throttle.succeeded(ticket).await;
                Ok(c)
            }
            _ => {
                // The attempt taken above stays counted: that is the failure.
                tracing::info!(
                    request_id = req.request_id,
                    "login refused: invalid credentials"
                );
                Err(LoginError::BadCredentials)
            }
        }
    }

    /// A token for `sub` with `scope`, living `ttl`: (token, exp).
    fn sign(&self, sub: &str, scope: &str, ttl: Duration) -> Result<(String, u64), GatewayError> {
        mint(
            &self.signing_key,
            &self.issuer,
            &self.audience,
            sub,
            scope,
            ttl,
        )
        .map_err(|e| {
            tracing::error!(error = %e, "signing a token failed");
            GatewayError::new(ErrorCode::InternalError, "the token could not be signed")
        })
    }
}

/// A 200 with a token in `body`: never to be stored by a cache (RFC 6749 §5.1).
fn issued(body: &Value) -> LocalResponse {
    LocalResponse {
        status: StatusCode::OK,
        headers: vec![
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        body: Bytes::from(body.to_string()),
    }
}

/// Signs a token for `sub`: (token, exp). Also used by `fingate token`.
pub fn mint(
    key: &Key,
    issuer: &str,
    audience: &str,
    sub: &str,
    scope: &str,
    ttl: Duration,
) -> Result<(String, u64), String> {
    let encoding = key.encoding.as_ref().ok_or("this key cannot sign")?;
    let iat = now();
    let exp = iat + ttl.as_secs();
    let claims = IssuedClaims {
        iss: issuer.into(),
        aud: audience.into(),
        sub: sub.into(),
        iat,
        exp,
        jti: uuid::Uuid::new_v4().to_string(),
        scope: scope.into(),
    };
    let mut header = jsonwebtoken::Header::new(key.algorithm);
    header.kid = Some(key.id.clone());
    jsonwebtoken::encode(&header, &claims, encoding)
        .map(|t| (t, exp))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_parsed_strictly() {
        let ok = parse(br#"{"username":"u","password":"p","tokenexp":"15m"}"#).unwrap();
        assert_eq!(ok.ttl, Some(Duration::from_secs(900)));
        assert_eq!(
            parse(br#"{"username":"u","password":"p","tokenexp":60}"#)
                .unwrap()
                .ttl,
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse(br#"{"username":"u","password":"p"}"#).unwrap().ttl,
            None
        );
        for (body, says) in [
            (&b"not json"[..], "not valid JSON"),
            (br#"["u","p"]"#, "JSON object"),
            (br#"{"username":"u"}"#, "`password` is missing"),
            (
                br#"{"username":7,"password":"p"}"#,
                "`username` must be a string",
            ),
            (br#"{"username":"u","password":""}"#, "`password` is empty"),
            (
                br#"{"username":"u","password":"p","tokenexp":-5}"#,
                "positive",
            ),
            (
                br#"{"username":"u","password":"p","tokenexp":1.5}"#,
                "positive",
            ),
            (
                br#"{"username":"u","password":"p","tokenexp":"soon"}"#,
                "tokenexp",
            ),
            (
                br#"{"username":"u","password":"p","tokenexp":true}"#,
                "tokenexp",
            ),
        ] {
            let e = parse(body).unwrap_err();
            assert!(e.contains(says), "{e} should mention {says}");
        }
    }

    #[test]
    fn the_content_type_must_be_json() {
        assert!(is_json(Some(b"application/json")));
        assert!(is_json(Some(b"Application/JSON; charset=utf-8")));
        assert!(!is_json(Some(b"text/plain")));
        assert!(!is_json(Some(b"application/jsonx")));
        assert!(!is_json(None));
    }
}
