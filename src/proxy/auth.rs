//! The endpoints fingate serves itself on the public listener, before routing:
//! the token endpoint (`auth.token_endpoint.path`) and the JWKS of an asymmetric
//! signing key (`/.well-known/jwks.json`).

use super::local::{reject, respond};
use super::Ctx;
use crate::auth::token_endpoint::{body_too_large, TokenRequest, MAX_BODY};
use crate::auth::JWKS_PATH;
use crate::error::{ErrorCode, GatewayError, LocalResponse};
use crate::runtime::Runtime;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Method, StatusCode};
use pingora::proxy::Session;
use pingora::Result;
use std::sync::Arc;

/// Whether `path` is one of these endpoints. Checked before [`serve`] is entered,
/// so a proxied request's future does not carry `serve`'s state (see
/// [`super::local::respond`]).
pub(super) fn handles(runtime: &Runtime, path: &str) -> bool {
    let auth = &runtime.auth;
    (path == JWKS_PATH && auth.publishes_jwks())
        || auth
            .token_endpoint
            .as_ref()
            .is_some_and(|e| e.config.path == path)
}

/// Answers the request when it is for one of the auth endpoints: `Ok(true)` when
/// it did.
pub(super) async fn serve(
    session: &mut Session,
    ctx: &mut Ctx,
    runtime: &Runtime,
    path: &str,
) -> Result<bool> {
    let auth = &runtime.auth;
    if path == JWKS_PATH {
        let Some(jwks) = auth.jwks() else {
            return Ok(false);
        };
        ctx.req.path = path.to_owned();
        ctx.req.route = Some(Arc::from("jwks"));
        let local = if matches!(ctx.req.method, Method::GET | Method::HEAD) {
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
                body: Bytes::from(jwks.to_string()),
            }
        } else {
            GatewayError::new(ErrorCode::MethodNotAllowed, "use GET")
                .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"))
                .into_response(Some(&ctx.req.request_id))
        };
        respond(session, ctx, local).await?;
        return Ok(true);
    }
    let Some(endpoint) = &auth.token_endpoint else {
        return Ok(false);
    };
    if path != endpoint.config.path {
        return Ok(false);
    }
    ctx.req.path = path.to_owned();
    ctx.req.route = Some(Arc::from("token_endpoint"));
    let Some(body) = read_body(session).await? else {
        reject(session, ctx, body_too_large().closing()).await?;
        return Ok(true);
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
            respond(session, ctx, issued.response).await?;
        }
        Err(e) => reject(session, ctx, e).await?,
    }
    Ok(true)
}

/// The request body, or `None` when it is larger than [`MAX_BODY`] (judged from
/// `Content-Length` before reading, and while reading for chunked bodies).
async fn read_body(session: &mut Session) -> Result<Option<Bytes>> {
    let declared = session
        .req_header()
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Ok(None);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}
