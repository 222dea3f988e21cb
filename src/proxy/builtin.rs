//! The endpoints fingate serves itself, as route targets (`serve:`): the token
//! endpoint, the JWKS of its asymmetric keys, and the OAuth 2.0 metadata that
//! points at both. They run after routing and the route's filters, like any other
//! route.

use super::local::{read_body, reject, respond};
use super::Ctx;
use crate::auth::token_endpoint::{body_too_large, TokenRequest, MAX_BODY};
use crate::auth::{metadata, AuthRuntime};
use crate::config::Builtin;
use crate::error::{ErrorCode, GatewayError, LocalResponse};
use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use pingora::proxy::Session;
use pingora::Result;

/// Answers the request with the built-in endpoint `builtin`.
pub(super) async fn serve(
    session: &mut Session,
    ctx: &mut Ctx,
    auth: &AuthRuntime,
    builtin: Builtin,
) -> Result<()> {
    match builtin {
        Builtin::Jwks => jwks(session, ctx, auth).await,
        Builtin::TokenEndpoint => token(session, ctx, auth).await,
        Builtin::OauthMetadata => oauth_metadata(session, ctx, auth).await,
    }
}

/// The first route serving `builtin` at one exact path on every host: where the
/// metadata says that endpoint is.
fn path_of(config: &crate::config::Config, builtin: Builtin) -> Option<&str> {
    config
        .routes
        .iter()
        .find_map(|r| match (&r.target, &r.spec) {
            (
                crate::config::RouteTarget::Serve(b),
                crate::routing::RouteSpec {
                    host: None,
                    pattern: crate::routing::PathPattern::Exact(path),
                    ..
                },
            ) if *b == builtin && !path.contains('{') => Some(path.as_str()),
            _ => None,
        })
}

async fn oauth_metadata(session: &mut Session, ctx: &mut Ctx, auth: &AuthRuntime) -> Result<()> {
    if !matches!(ctx.req.method, Method::GET | Method::HEAD) {
        let e = GatewayError::new(ErrorCode::MethodNotAllowed, "use GET")
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return reject(session, ctx, e).await;
    }
    let Some(runtime) = ctx.runtime.clone() else {
        let e = GatewayError::new(ErrorCode::InternalError, "no configuration");
        return reject(session, ctx, e).await;
    };
    let issuer = &auth.config.issuer;
    // An issuer URL places the endpoints; otherwise they are where this request
    // came in (its scheme and Host).
    let base = metadata::issuer_origin(issuer).unwrap_or_else(|| {
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let scheme = if tls { "https" } else { "http" };
        format!(
            "{scheme}://{}",
            ctx.req.host.as_deref().unwrap_or("localhost")
        )
    });
    let at = metadata::Endpoints {
        base: &base,
        token: path_of(&runtime.config, Builtin::TokenEndpoint),
        jwks: auth
            .publishes_jwks()
            .then(|| path_of(&runtime.config, Builtin::Jwks))
            .flatten(),
    };
    let document = metadata::document(issuer, &at).to_string();
    respond(session, ctx, public_json(document)).await
}

async fn jwks(session: &mut Session, ctx: &mut Ctx, auth: &AuthRuntime) -> Result<()> {
    let Some(jwks) = auth.jwks() else {
        // Validation refuses `serve: jwks` without a key to publish; a reload
        // race cannot leave one behind, but answer sensibly if it did.
        let e = GatewayError::new(ErrorCode::RouteNotFound, "no key set is published here");
        return reject(session, ctx, e).await;
    };
    if !matches!(ctx.req.method, Method::GET | Method::HEAD) {
        let e = GatewayError::new(ErrorCode::MethodNotAllowed, "use GET")
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return reject(session, ctx, e).await;
    }
    respond(session, ctx, public_json(jwks.to_string())).await
}

/// A public JSON document (key set, server metadata) that clients may cache for
/// five minutes: keys roll over slower than that.
fn public_json(body: String) -> LocalResponse {
    LocalResponse {
        status: StatusCode::OK,
        headers: vec![
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body: Bytes::from(body),
    }
}

async fn token(session: &mut Session, ctx: &mut Ctx, auth: &AuthRuntime) -> Result<()> {
    let Some(endpoint) = &auth.token_endpoint else {
        let e = GatewayError::new(ErrorCode::RouteNotFound, "no token endpoint is configured");
        return reject(session, ctx, e).await;
    };
    let read = match ctx.body.take() {
        Some(checked) => Some(checked),
        None => read_body(session, MAX_BODY as u64).await?,
    };
    let Some(body) = read else {
        return reject(session, ctx, body_too_large().closing()).await;
    };
    let head = session.req_header();
    let method = head.method.clone();
    let content_type = head
        .headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.as_bytes().to_vec());
    let authorization = head
        .headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let outcome = endpoint
        .handle(TokenRequest {
            method: &method,
            content_type: content_type.as_deref(),
            authorization: authorization.as_deref(),
            body: &body,
            client_ip: ctx.req.client_ip,
            request_id: &ctx.req.request_id,
        })
        .await;
    match outcome {
        Ok(issued) => {
            ctx.req.consumer = Some(issued.consumer);
            respond(session, ctx, issued.response).await
        }
        Err(e) => reject(session, ctx, e).await,
    }
}
