//! `jwt`: requires `Authorization: Bearer <token>` signed by an accepted key, with
//! valid `exp` / `nbf` / `iss` / `aud` and the route's `scopes`.
//!
//! Keys and their `Validation` are decoded once when the config is built; a request
//! looks its key up by `kid` (or, without one, by the algorithm of the candidates)
//! and verifies. The algorithm always comes from the key. On success the upstream
//! receives `X-Consumer-Id` and `X-Consumer-Scopes` (the proxy has already dropped
//! any a client sent); on failure the client gets RFC 6750 401 / 403 answers and
//! the reason is counted in `fingate_auth_failures_total{route,reason}`.

use super::{Filter, FilterDeps, FilterError, Flow, HeaderEdit, OptionError};
use crate::auth::claims::{self, has_scopes, Audience, Claims};
use crate::auth::keys::{Accept, Key};
use crate::auth::settings::scope_problem;
use crate::auth::verified::VerifiedTokens;
use crate::context::RequestContext;
use crate::error::{ErrorCode, GatewayError};
use crate::metrics::metrics;
use async_trait::async_trait;
use http::{header, HeaderName, HeaderValue};
use jsonwebtoken::errors::ErrorKind;
use prometheus::IntCounter;
use serde::Deserialize;
use std::sync::Arc;

/// Tokens above this size are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct JwtOptions {
    /// Scopes the token must all carry.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Keys accepted on this route (by id), instead of every `accept: everywhere` key.
    #[serde(default)]
    pub keys: Option<Vec<String>>,
}

/// Why a request was refused: the `reason` label (a fixed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Missing,
    Malformed,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    InsufficientScope,
    UnknownKey,
}

const REASONS: [Reason; 9] = [
    Reason::Missing,
    Reason::Malformed,
    Reason::BadSignature,
    Reason::Expired,
    Reason::NotYetValid,
    Reason::WrongIssuer,
    Reason::WrongAudience,
    Reason::InsufficientScope,
    Reason::UnknownKey,
];

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::InsufficientScope => "insufficient_scope",
            Self::UnknownKey => "unknown_key",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Missing => "send Authorization: Bearer <token> (get one from the token endpoint)",
            Self::Malformed => "the bearer token is malformed",
            Self::BadSignature => "the token signature is invalid",
            Self::Expired => "the token has expired",
            Self::NotYetValid => "the token is not valid yet",
            Self::WrongIssuer => "the token was issued by an issuer this route does not accept",
            Self::WrongAudience => "the token is for another audience",
            Self::InsufficientScope => "the token lacks a scope this route requires",
            Self::UnknownKey => "the token is signed with a key this route does not accept",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

fn reason_of(e: &jsonwebtoken::errors::Error) -> Reason {
    match e.kind() {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_) => Reason::BadSignature,
        ErrorKind::ExpiredSignature => Reason::Expired,
        ErrorKind::ImmatureSignature => Reason::NotYetValid,
        ErrorKind::InvalidIssuer => Reason::WrongIssuer,
        ErrorKind::InvalidAudience => Reason::WrongAudience,
        _ => Reason::Malformed,
    }
}

/// The verified caller, kept for the upstream-request phase.
#[derive(Debug, Clone)]
struct Identity {
    id: HeaderValue,
    scopes: HeaderValue,
}

static CONSUMER_ID: HeaderName = HeaderName::from_static("x-consumer-id");
static CONSUMER_SCOPES: HeaderName = HeaderName::from_static("x-consumer-scopes");

/// A token that passed verification, as the cache keeps it.
#[derive(Debug)]
pub struct Verified {
    pub claims: Claims,
    identity: Identity,
}

/// Tokens a filter keeps verified (per filter, so a reload starts afresh).
const VERIFIED_TOKENS: usize = 10_000;

#[derive(Debug)]
pub struct JwtFilter {
    keys: Vec<Arc<Key>>,
    verified: VerifiedTokens<Arc<Verified>>,
    scopes: Vec<String>,
    /// One counter per reason, resolved for this route at build time.
    failures: Vec<IntCounter>,
    /// `WWW-Authenticate` for 403, naming the required scopes.
    scope_challenge: HeaderValue,
}

/// `jwt` options, checked against the config's keys: what the runtime builds from.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    keys: Vec<Arc<Key>>,
    scopes: Vec<String>,
}

impl JwtConfig {
    pub fn check(
        options: &JwtOptions,
        auth: &crate::auth::AuthConfig,
    ) -> Result<Self, Vec<OptionError>> {
        let mut errors = Vec::new();
        let all = &auth.keys.keys;
        if all.is_empty() {
            errors.push(OptionError::new(
                "",
                "`jwt` needs verification keys: configure auth.keys",
            ));
        }
        let keys: Vec<Arc<Key>> = match &options.keys {
            Some(ids) => {
                if ids.is_empty() && !all.is_empty() {
                    errors.push(OptionError::new("keys", "list at least one key id, or leave `keys` out to accept every `accept: everywhere` key"));
                }
                ids.iter()
                    .enumerate()
                    .filter_map(|(i, id)| match auth.keys.get(id) {
                        Some(k) => Some(k.clone()),
                        None => {
                            if !all.is_empty() {
                                let known: Vec<_> = all.iter().map(|k| k.id.as_str()).collect();
                                errors.push(OptionError::new(
                                    format!("keys[{i}]"),
                                    format!("unknown key {id:?} (known: {})", known.join(", ")),
                                ));
                            }
                            None
                        }
                    })
                    .collect()
            }
            None => all
                .iter()
                .filter(|k| k.accept == Accept::Everywhere)
                .cloned()
                .collect(),
        };
        if keys.is_empty() && errors.is_empty() {
            errors.push(OptionError::new(
                "keys",
                "every key is `accept: when_listed`: name the keys this route accepts",
            ));
        }
        for (i, s) in options.scopes.iter().enumerate() {
            if let Some(msg) = scope_problem(s) {
                errors.push(OptionError::new(format!("scopes[{i}]"), msg));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            keys,
            scopes: options.scopes.clone(),
        })
    }
}

impl JwtFilter {
    /// Checks the options and builds the filter (tests; the gateway checks at
    /// validation and builds with [`JwtFilter::build`]).
    pub fn new(options: &JwtOptions, deps: &FilterDeps) -> Result<Self, Vec<OptionError>> {
        Ok(Self::build(&JwtConfig::check(options, &deps.auth)?, deps))
    }

    pub fn build(config: &JwtConfig, deps: &FilterDeps) -> Self {
        let route = deps.route.as_deref().unwrap_or("global");
        let failures = REASONS
            .iter()
            .map(|r| {
                metrics()
                    .auth_failures_total
                    .with_label_values(&[route, r.label()])
            })
            .collect();
        let challenge = format!(
            "Bearer realm=\"fingate\", error=\"insufficient_scope\", scope=\"{}\"",
            config.scopes.join(" ")
        );
        Self {
            keys: config.keys.clone(),
            verified: VerifiedTokens::new(VERIFIED_TOKENS),
            scopes: config.scopes.clone(),
            failures,
            scope_challenge: HeaderValue::from_str(&challenge).unwrap_or_else(|_| {
                HeaderValue::from_static("Bearer error=\"insufficient_scope\"")
            }),
        }
    }

    /// The key for a token: by `kid` among this route's keys, else the first key of
    /// the token's algorithm (the signature check then decides).
    fn key_for(&self, header: &jsonwebtoken::Header) -> Option<&Arc<Key>> {
        match &header.kid {
            Some(kid) => self.keys.iter().find(|k| &k.id == kid),
            None => self.keys.iter().find(|k| k.algorithm == header.alg),
        }
    }

    /// The request's token, verified: from the cache when this filter verified the
    /// same token before and it has not expired, else checked now (and kept).
    pub fn verify(&self, req: &dyn HeaderEdit) -> Result<Arc<Verified>, Reason> {
        let token = bearer(req)?;
        let now = claims::now();
        if let Some(verified) = self.verified.get(token, now) {
            return Ok(verified);
        }
        let claims = self.verify_token(token)?;
        let scopes = claims.scope.as_deref().unwrap_or("");
        let (Ok(id), Ok(scopes)) = (
            HeaderValue::from_str(&claims.sub),
            HeaderValue::from_str(scopes),
        ) else {
            return Err(Reason::Malformed);
        };
        let exp = claims.exp;
        let verified = Arc::new(Verified {
            claims,
            identity: Identity { id, scopes },
        });
        self.verified.insert(token, verified.clone(), exp, now);
        Ok(verified)
    }

    /// Verifies a token's signature and claims (no cache): the claims, or why not.
    pub fn verify_token(&self, token: &str) -> Result<Claims, Reason> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Reason::Malformed)?;
        let key = self.key_for(&header).ok_or(Reason::UnknownKey)?;
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &key.validation)
            .map_err(|e| reason_of(&e))?;
        let claims = data.claims;
        // jsonwebtoken checks these too; checking the typed claims again costs
        // nothing and does not depend on its parsing of absent or odd values.
        let aud_ok = match &claims.aud {
            Audience::One(a) => key.validation.aud.as_ref().is_some_and(|s| s.contains(a)),
            Audience::Many(list) => list
                .iter()
                .any(|a| key.validation.aud.as_ref().is_some_and(|s| s.contains(a))),
        };
        if !aud_ok {
            return Err(Reason::WrongAudience);
        }
        if claims.iss != key.issuer {
            return Err(Reason::WrongIssuer);
        }
        Ok(claims)
    }

    fn refuse(&self, reason: Reason) -> Flow {
        if let Some(c) = self.failures.get(reason.index()) {
            c.inc();
        }
        let (code, challenge) = if reason == Reason::InsufficientScope {
            (ErrorCode::InsufficientScope, self.scope_challenge.clone())
        } else {
            let text = format!(
                "Bearer realm=\"fingate\", error=\"invalid_token\", error_description=\"{}\"",
                reason.message()
            );
            let v = HeaderValue::from_str(&text)
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\""));
            (ErrorCode::InvalidToken, v)
        };
        Flow::Reject(
            GatewayError::new(code, reason.message())
                .with_header(header::WWW_AUTHENTICATE, challenge),
        )
    }
}

/// The token of the one `Authorization: Bearer <token>` header.
pub fn bearer(req: &dyn HeaderEdit) -> Result<&str, Reason> {
    let value = match req.count(&header::AUTHORIZATION) {
        0 => return Err(Reason::Missing),
        1 => req.get(&header::AUTHORIZATION).ok_or(Reason::Missing)?,
        _ => return Err(Reason::Malformed),
    };
    if value.len() > MAX_TOKEN_BYTES + 16 {
        return Err(Reason::Malformed);
    }
    let text = value.to_str().map_err(|_| Reason::Malformed)?;
    let (scheme, token) = text.split_once(' ').ok_or(Reason::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Reason::Malformed);
    }
    let token = token.trim_start_matches(' ');
    // token68 (RFC 6750 §2.1): no inner spaces, and JWS compact form is three parts.
    let ok = !token.is_empty()
        && token.len() <= MAX_TOKEN_BYTES
        && token.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
        });
    if ok {
        Ok(token)
    } else {
        Err(Reason::Malformed)
    }
}

#[async_trait]
impl Filter for JwtFilter {
    async fn request(
        &self,
        req: &mut dyn HeaderEdit,
        ctx: &mut RequestContext,
    ) -> Result<Flow, FilterError> {
        let verified = match self.verify(req) {
            Ok(v) => v,
            Err(reason) => return Ok(self.refuse(reason)),
        };
        if !has_scopes(verified.claims.scope.as_deref(), &self.scopes) {
            return Ok(self.refuse(Reason::InsufficientScope));
        }
        ctx.extensions.insert(verified.identity.clone());
        ctx.consumer = Some(verified.claims.sub.clone());
        Ok(Flow::Continue)
    }

    fn upstream_request(&self, req: &mut dyn HeaderEdit, ctx: &RequestContext) {
        if let Some(identity) = ctx.extensions.get::<Identity>() {
            req.set(CONSUMER_ID.clone(), identity.id.clone());
            req.set(CONSUMER_SCOPES.clone(), identity.scopes.clone());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
#[path = "jwt_tests.rs"]
mod tests;
