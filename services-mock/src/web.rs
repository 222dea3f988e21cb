//! `services-mock web`: serves the example web client (static files, no build
//! step) on its own origin, as a real deployment would from a CDN, so the
//! browser's calls to the gateway are cross-origin and CORS is exercised.
//!
//! `/config.json` tells the page where the gateway is and how long a login
//! session should last; everything else is a file under the client's folder.

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the page is told at `/config.json`.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The folder holding `index.html` and its assets.
    pub dir: PathBuf,
    /// The gateway's base URL, e.g. `http://127.0.0.1:8080`.
    pub gateway: String,
    /// Asked for at login (`tokenexp`), e.g. `15m`.
    pub session: String,
}

pub fn router(config: WebConfig) -> Router {
    let config = Arc::new(config);
    Router::new()
        .route("/config.json", get(client_config))
        .route("/", get(index))
        .route("/{*path}", get(file))
        .with_state(config)
}

async fn client_config(State(c): State<Arc<WebConfig>>) -> Response {
    let mut r = Json(json!({ "gateway": c.gateway, "session": c.session })).into_response();
    no_store(&mut r);
    r
}

async fn index(State(c): State<Arc<WebConfig>>) -> Response {
    serve(&c.dir, "index.html").await
}

async fn file(State(c): State<Arc<WebConfig>>, UrlPath(path): UrlPath<String>) -> Response {
    serve(&c.dir, &path).await
}

/// A file under `dir`; a path with `..`, a hidden or an empty segment is not
/// looked up at all.
async fn serve(dir: &Path, path: &str) -> Response {
    let safe = path
        .split('/')
        .all(|s| !s.is_empty() && !s.starts_with('.') && !s.contains('\\'));
    if !safe {
        return not_found();
    }
    let Some(kind) = content_type(path) else {
        return not_found();
    };
    match tokio::fs::read(dir.join(path)).await {
        Ok(bytes) => {
            let mut r = (StatusCode::OK, bytes).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            no_store(&mut r);
            r
        }
        Err(_) => not_found(),
    }
}

/// The client changes while it is developed: never cached.
fn no_store(r: &mut Response) {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Only the kinds of file a static client is made of are served.
fn content_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::content_type;

    #[test]
    fn only_client_files_have_a_type() {
        assert_eq!(
            content_type("js/app.js"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(content_type("index.html"), Some("text/html; charset=utf-8"));
        assert_eq!(content_type("Cargo.toml"), None);
        assert_eq!(content_type("README"), None);
    }
}
