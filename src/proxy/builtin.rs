//! The endpoints fingate serves itself, as route targets (`serve:`): the token
//! endpoint and the JWKS of an asymmetric signing key. They run after routing and
//! the route's filters, like any other route.

use super::local::{read_body, reject, respond};
use super::Ctx;
use crate::auth::token_endpoint::{body_too_large, TokenRequest, MAX_BODY};
use crate::auth::AuthRuntime;
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
    }
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
    let local = LocalResponse {
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
        body: Bytes::from(jwks.to_string()),
    };
    respond(session, ctx, local).await
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
    let outcome = endpoint
        .handle(TokenRequest {
            method: &method,
            content_type: content_type.as_deref(),
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
