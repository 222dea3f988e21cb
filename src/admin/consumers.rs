//! `GET|POST /admin/consumers`, `DELETE /admin/consumers/{username}`: run-time
//! registration through the [`ConsumerStore`] seam. The file's consumers are
//! listed; with the memory store, changes answer 409 saying what to do instead.

use super::{error, json_response};
use crate::auth::consumers::{Consumer, ConsumerStoreError};
use crate::auth::settings::{scope_problem, username_problem};
use crate::auth::{password, AuthRuntime};
use crate::error::{ErrorCode, GatewayError};
use crate::logging::audit::{Action, AdminAction, Origin, Outcome};
use http::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

/// Registration body: the password is hashed here and never stored or logged.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewConsumer {
    username: String,
    password: String,
    #[serde(default)]
    scopes: Vec<String>,
    /// Registered but refused at login, like a wrong password (as in the file).
    #[serde(default)]
    disabled: bool,
}

/// The audit line of a change to the run-time consumers (`code`: None when it
/// succeeded, else the error code it was refused with).
fn audit(action: Action, username: &str, code: Option<ErrorCode>, origin: Origin) {
    AdminAction {
        action,
        target: username,
        outcome: code.map_or(Outcome::Ok, |c| Outcome::Error(c.as_str())),
        origin,
        details: &[],
    }
    .record();
}

fn store_error_code(e: &ConsumerStoreError) -> ErrorCode {
    match e {
        ConsumerStoreError::ReadOnly(_) => ErrorCode::ReadOnly,
        ConsumerStoreError::Exists(_) => ErrorCode::Exists,
        ConsumerStoreError::Unavailable(_) => ErrorCode::StoreUnavailable,
        ConsumerStoreError::Corrupt(_) => ErrorCode::InternalError,
    }
}

fn store_error(e: &ConsumerStoreError) -> Response<Vec<u8>> {
    match e {
        ConsumerStoreError::ReadOnly(m) => error(GatewayError::new(ErrorCode::ReadOnly, m)),
        ConsumerStoreError::Exists(_) => error(GatewayError::new(ErrorCode::Exists, e.to_string())),
        ConsumerStoreError::Unavailable(_) => error(GatewayError::new(
            ErrorCode::StoreUnavailable,
            e.to_string(),
        )),
        ConsumerStoreError::Corrupt(m) => error(GatewayError::new(ErrorCode::InternalError, m)),
    }
}

pub(super) async fn handle(
    method: &Method,
    path: &str,
    body: &[u8],
    auth: &AuthRuntime,
    origin: Origin,
) -> Response<Vec<u8>> {
    let store = &auth.consumers;
    match (method, path.strip_prefix("/admin/consumers")) {
        (&Method::GET, Some("")) => match store.list().await {
            Ok(list) => json_response(StatusCode::OK, &json!({ "consumers": list })),
            Err(e) => store_error(&e),
        },
        (&Method::POST, Some("")) => {
            let new: NewConsumer = match serde_json::from_slice(body) {
                Ok(n) => n,
                Err(e) => {
                    return error(GatewayError::new(
                        ErrorCode::BadRequest,
                        format!(
                        "expected {{\"username\", \"password\", \"scopes\", \"disabled\"}}: {e}"
                    ),
                    ))
                }
            };
            let problem = username_problem(&new.username)
                .or_else(|| new.scopes.iter().find_map(|s| scope_problem(s)))
                .or_else(|| {
                    new.password
                        .is_empty()
                        .then(|| "the password is empty".to_owned())
                });
            if let Some(p) = problem {
                return error(GatewayError::new(ErrorCode::BadRequest, p));
            }
            let password = new.password;
            let hash = match tokio::task::spawn_blocking(move || password::hash(&password)).await {
                Ok(Ok(h)) => h,
                _ => {
                    return error(GatewayError::new(
                        ErrorCode::InternalError,
                        "hashing failed",
                    ))
                }
            };
            let consumer = Consumer {
                username: new.username.clone(),
                password_hash: Some(hash),
                client_cert: None,
                scopes: new.scopes,
                disabled: new.disabled,
            };
            let added = store.add(consumer).await;
            let code = added.as_ref().err().map(store_error_code);
            audit(Action::ConsumerAdded, &new.username, code, origin);
            match added {
                Ok(()) => json_response(StatusCode::CREATED, &json!({ "username": new.username })),
                Err(e) => store_error(&e),
            }
        }
        (&Method::DELETE, Some(rest)) if rest.len() > 1 && rest.starts_with('/') => {
            let removed = store.remove(&rest[1..]).await;
            let code = match &removed {
                Ok(true) => None,
                Ok(false) => Some(ErrorCode::NotFound),
                Err(e) => Some(store_error_code(e)),
            };
            audit(Action::ConsumerRemoved, &rest[1..], code, origin);
            match removed {
                Ok(true) => json_response(StatusCode::OK, &json!({ "removed": &rest[1..] })),
                Ok(false) => error(GatewayError::new(
                    ErrorCode::NotFound,
                    "no such run-time consumer",
                )),
                Err(e) => store_error(&e),
            }
        }
        (_, Some("")) => super::method_not_allowed("GET, POST"),
        _ => error(GatewayError::new(
            ErrorCode::RouteNotFound,
            "consumers API: GET|POST /admin/consumers, DELETE /admin/consumers/{username}",
        )),
    }
}
