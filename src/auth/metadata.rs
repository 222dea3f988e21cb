//! OAuth 2.0 authorization server metadata (RFC 8414): what a standard client
//! library reads to find the token endpoint, the JWKS and the supported grants.

use super::token_endpoint::GRANT;
use serde_json::{json, Value};

/// Where RFC 8414 clients look for the metadata.
pub const PATH: &str = "/.well-known/oauth-authorization-server";

/// Where this gateway's endpoints are, as routes serve them.
#[derive(Debug, Default)]
pub struct Endpoints<'a> {
    /// `scheme://host[:port]` every path below is made absolute with.
    pub base: &'a str,
    pub token: Option<&'a str>,
    pub jwks: Option<&'a str>,
}

/// `scheme://host[:port]` of `issuer` when it is an http(s) URL (RFC 8414 wants
/// one); the endpoints then live under it, whatever `Host` a request sent.
pub fn issuer_origin(issuer: &str) -> Option<String> {
    let url = url::Url::parse(issuer).ok()?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

/// The metadata document.
pub fn document(issuer: &str, at: &Endpoints<'_>) -> Value {
    let absolute = |path: &str| format!("{}{path}", at.base);
    let mut doc = json!({
        "issuer": issuer,
        "grant_types_supported": [GRANT],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        // No authorization endpoint: no response types (RFC 8414 §2).
        "response_types_supported": [],
    });
    if let Some(token) = at.token {
        doc["token_endpoint"] = json!(absolute(token));
    }
    if let Some(jwks) = at.jwks {
        doc["jwks_uri"] = json!(absolute(jwks));
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_absolute_endpoints() {
        let doc = document(
            "https://api.bank.example",
            &Endpoints {
                base: "https://api.bank.example",
                token: Some("/auth/token"),
                jwks: Some("/.well-known/jwks.json"),
            },
        );
        assert_eq!(doc["issuer"], "https://api.bank.example");
        assert_eq!(doc["token_endpoint"], "https://api.bank.example/auth/token");
        assert_eq!(
            doc["jwks_uri"],
            "https://api.bank.example/.well-known/jwks.json"
        );
        assert_eq!(doc["grant_types_supported"][0], "client_credentials");
        let without = document("fingate", &Endpoints::default());
        assert!(without.get("jwks_uri").is_none());
    }

    #[test]
    fn only_http_urls_give_an_origin() {
        assert_eq!(
            issuer_origin("https://api.bank.example/tenant"),
            Some("https://api.bank.example".into())
        );
        assert_eq!(
            issuer_origin("http://127.0.0.1:8080"),
            Some("http://127.0.0.1:8080".into())
        );
        assert_eq!(issuer_origin("fingate"), None);
        assert_eq!(issuer_origin("urn:fingate"), None);
    }
}
