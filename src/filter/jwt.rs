//! `jwt`: requires `Authorization: Bearer <token>` signed by an accepted key, with
//! valid `exp` / `nbf` / `iss` / `aud` and the route's `scopes`.
//!
//! Keys and their `Validation` are decoded once when the config is built; a request
//! looks its key up by `kid` (or, without one, by the algorithm of the candidates)
//! among the route's keys and remote key sets, and verifies. The algorithm always
//! comes from the key. A `kid` no key set knows asks the remote sets for a fetch
//! (rate-limited per set, see `auth/remote.rs`).
//!
//! The consumer is the token's `sub` when the gateway's own issuer signed it, else
//! `<iss>#<sub>`, so a partner's `mobile-app` is never the local one (its cache
//! entries, limits, idempotency keys). A verified token is then checked against the
//! revocations this gateway holds in memory (no store call). On success the
//! upstream receives `X-Consumer-Id`, `X-Consumer-Scopes` and, for another issuer,
//! `X-Consumer-Issuer` (the proxy has already dropped any a client sent); on
//! failure the client gets RFC 6750 401 / 403 answers and the reason is counted in
//! `fingate_auth_failures_total{route,reason}`.

use super::{
    Filter, FilterDeps, FilterError, Flow, HeaderEdit, OptionError, CONSUMER_ID, CONSUMER_SCOPES,
};
use crate::auth::claims::{consumer_id, has_scopes, now, Audience, Claims};
use crate::auth::keys::{Accept, Key};
use crate::auth::remote::{Lookup, RemoteKeys};
use crate::auth::settings::scope_problem;
use crate::auth::verified::VerifiedTokens;
use crate::context::RequestContext;
use crate::error::{ErrorCode, GatewayError};
use crate::metrics::metrics;
use crate::store::RevocationSet;
use async_trait::async_trait;
use http::{header, HeaderValue};
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
    KeysUnavailable,
    Revoked,
}

const REASONS: [Reason; 11] = [
    Reason::Missing,
    Reason::Malformed,
    Reason::BadSignature,
    Reason::Expired,
    Reason::NotYetValid,
    Reason::WrongIssuer,
    Reason::WrongAudience,
    Reason::InsufficientScope,
    Reason::UnknownKey,
    Reason::KeysUnavailable,
    Reason::Revoked,
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
            Self::KeysUnavailable => "keys_unavailable",
            Self::Revoked => "revoked",
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
            Self::KeysUnavailable => {
                "the keys of the token's issuer cannot be fetched now; try again later"
            }
            Self::Revoked => "token revoked",
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
    /// Set for tokens of another issuer than the gateway's own.
    issuer: Option<HeaderValue>,
}

/// The issuer of a token from another identity provider than the gateway's own.
const CONSUMER_ISSUER: &str = "x-consumer-issuer";

/// A verified token: its claims and the consumer it identifies.
#[derive(Debug)]
pub struct Verified {
    pub claims: Claims,
    /// `sub`, or `<iss>#<sub>` for another issuer than the gateway's own.
    pub consumer: String,
    /// What the upstream is told.
    identity: Identity,
}

/// Tokens a filter keeps verified (per filter, so a reload starts afresh).
const VERIFIED_TOKENS: usize = 10_000;

#[derive(Debug)]
pub struct JwtFilter {
    keys: Vec<Arc<Key>>,
    /// The route's remote key sets (`jwks_url`).
    remote: Vec<Arc<RemoteKeys>>,
    /// `auth.issuer`: its tokens' consumer is the plain `sub`.
    own_issuer: Arc<str>,
    revocations: Arc<RevocationSet>,
    /// Tokens verified with one of `keys` (remote key sets change while the filter
    /// lives, so their tokens are verified every time).
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
    /// Ids of the remote key sets, found in the runtime's sets when built.
    remote: Vec<String>,
    own_issuer: Arc<str>,
    scopes: Vec<String>,
}

impl JwtConfig {
    pub fn check(
        options: &JwtOptions,
        auth: &crate::auth::AuthConfig,
    ) -> Result<Self, Vec<OptionError>> {
        let mut errors = Vec::new();
        let set = &auth.keys;
        let known = set.ids();
        if known.is_empty() {
            errors.push(OptionError::new(
                "",
                "`jwt` needs verification keys: configure auth.keys",
            ));
        }
        let mut keys: Vec<Arc<Key>> = Vec::new();
        let mut remote: Vec<String> = Vec::new();
        match &options.keys {
            Some(ids) => {
                if ids.is_empty() && !known.is_empty() {
                    errors.push(OptionError::new("keys", "list at least one key id, or leave `keys` out to accept every `accept: everywhere` key"));
                }
                for (i, id) in ids.iter().enumerate() {
                    if let Some(k) = set.get(id) {
                        keys.push(k.clone());
                    } else if set.remote(id).is_some() {
                        remote.push(id.clone());
                    } else if !known.is_empty() {
                        errors.push(OptionError::new(
                            format!("keys[{i}]"),
                            format!("unknown key {id:?} (known: {})", known.join(", ")),
                        ));
                    }
                }
            }
            None => {
                let everywhere = |a: Accept| a == Accept::Everywhere;
                keys.extend(set.keys.iter().filter(|k| everywhere(k.accept)).cloned());
                remote.extend(
                    set.remote
                        .iter()
                        .filter(|r| everywhere(r.accept))
                        .map(|r| r.id.clone()),
                );
            }
        }
        if keys.is_empty() && remote.is_empty() && errors.is_empty() {
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
            remote,
            own_issuer: Arc::from(auth.issuer.as_str()),
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
            // The runtime builds a set for every configured source.
            remote: config
                .remote
                .iter()
                .filter_map(|id| deps.remote_keys.get(id).cloned())
                .collect(),
            own_issuer: config.own_issuer.clone(),
            revocations: deps.store.revocations(),
            verified: VerifiedTokens::new(VERIFIED_TOKENS),
            scopes: config.scopes.clone(),
            failures,
            scope_challenge: HeaderValue::from_str(&challenge).unwrap_or_else(|_| {
                HeaderValue::from_static("Bearer error=\"insufficient_scope\"")
            }),
        }
    }

    /// The key for a token: by `kid` among this route's keys, then in its remote
    /// sets (a `kid` none knows asks them for a fetch); without a `kid`, the first
    /// key of the token's algorithm (the signature check then decides).
    async fn key_for(&self, header: &jsonwebtoken::Header) -> Result<Arc<Key>, Reason> {
        let kid = header.kid.as_deref();
        let local = match kid {
            Some(kid) => self.keys.iter().find(|k| k.id == kid),
            None => self.keys.iter().find(|k| k.algorithm == header.alg),
        };
        if let Some(k) = local {
            return Ok(k.clone());
        }
        let mut unavailable = false;
        for set in &self.remote {
            match set.find(kid, header.alg) {
                Lookup::Found(k) => return Ok(k),
                Lookup::Unavailable => unavailable = true,
                Lookup::Unknown => {}
            }
        }
        if kid.is_some() || unavailable {
            for set in &self.remote {
                if set.refetch().await {
                    if let Lookup::Found(k) = set.find(kid, header.alg) {
                        return Ok(k);
                    }
                }
            }
            unavailable = self
                .remote
                .iter()
                .any(|s| matches!(s.find(kid, header.alg), Lookup::Unavailable));
        }
        Err(if unavailable {
            Reason::KeysUnavailable
        } else {
            Reason::UnknownKey
        })
    }

    /// Verifies a bearer token (see [`bearer_unchecked`]): the claims and consumer, or why
    /// not. A token this filter verified with one of its own keys is found in its
    /// cache until `exp`; revocations are checked every time.
    pub async fn verify(&self, token: &str) -> Result<Arc<Verified>, Reason> {
        let now = now();
        let verified = match self.verified.get(token, now) {
            Some(v) => v,
            None => {
                let (verified, own_key) = self.verify_token(token).await?;
                let verified = Arc::new(verified);
                if own_key {
                    let exp = verified.claims.exp;
                    self.verified.insert(token, verified.clone(), exp, now);
                }
                verified
            }
        };
        let claims = &verified.claims;
        if self
            .revocations
            .is_revoked(claims.jti.as_deref(), &verified.consumer, claims.iat, now)
        {
            return Err(Reason::Revoked);
        }
        Ok(verified)
    }

    /// Verifies a token's characters, signature and claims, without the cache or
    /// revocations: what it says, and whether one of the filter's own keys (not a
    /// remote set's) signed it.
    pub async fn verify_token(&self, token: &str) -> Result<(Verified, bool), Reason> {
        if !token68(token) {
            return Err(Reason::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Reason::Malformed)?;
        let key = self.key_for(&header).await?;
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
        let consumer = consumer_id(&claims.iss, &claims.sub, &self.own_issuer).into_owned();
        // Tokens of the gateway's own issuer keep the plain `sub`, without an issuer.
        let issuer = match *claims.iss == *self.own_issuer {
            true => None,
            false => Some(HeaderValue::from_str(&claims.iss).map_err(|_| Reason::Malformed)?),
        };
        let (Ok(id), Ok(scopes)) = (
            HeaderValue::from_str(&consumer),
            HeaderValue::from_str(claims.scope.as_deref().unwrap_or("")),
        ) else {
            return Err(Reason::Malformed);
        };
        let own_key = self.keys.iter().any(|k| Arc::ptr_eq(k, &key));
        let verified = Verified {
            claims,
            consumer,
            identity: Identity { id, scopes, issuer },
        };
        Ok((verified, own_key))
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

/// The token of the one `Authorization: Bearer <token>` header, without the
/// check of its characters ([`token68`]), which [`JwtFilter::verify_token`]
/// makes (on a cache miss): a token found in the cache is the same bytes as one that passed
/// it (the check reads every byte, ~4% of a verified request's instructions).
pub fn bearer_unchecked(req: &dyn HeaderEdit) -> Result<&str, Reason> {
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
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(Reason::Malformed);
    }
    Ok(token)
}

/// token68 (RFC 6750 §2.1): no inner spaces or other separators.
fn token68(token: &str) -> bool {
    token.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
    })
}

#[async_trait]
impl Filter for JwtFilter {
    async fn request(
        &self,
        req: &mut dyn HeaderEdit,
        ctx: &mut RequestContext,
    ) -> Result<Flow, FilterError> {
        let verified = match bearer_unchecked(req) {
            Ok(token) => self.verify(token).await,
            Err(reason) => Err(reason),
        };
        let verified = match verified {
            Ok(v) => v,
            Err(reason) => return Ok(self.refuse(reason)),
        };
        if !has_scopes(verified.claims.scope.as_deref(), &self.scopes) {
            return Ok(self.refuse(Reason::InsufficientScope));
        }
        ctx.extensions.insert(verified.identity.clone());
        ctx.consumer = Some(verified.consumer.clone());
        Ok(Flow::Continue)
    }

    fn upstream_request(&self, req: &mut dyn HeaderEdit, ctx: &RequestContext) {
        if let Some(identity) = ctx.extensions.get::<Identity>() {
            req.set_static(CONSUMER_ID, identity.id.clone());
            req.set_static(CONSUMER_SCOPES, identity.scopes.clone());
            if let Some(issuer) = &identity.issuer {
                req.set_static(CONSUMER_ISSUER, issuer.clone());
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
#[path = "jwt_tests.rs"]
mod tests;
