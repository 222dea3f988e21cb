//! Token claims: what fingate issues and what it reads back.
//!
//! Claims are deserialized into strict types: a wrong-typed `exp`, `nbf`, `iss`,
//! `aud` or `sub` (e.g. `"nbf": "later"`) fails decoding instead of being treated
//! as absent, so a claim can never be skipped by changing its type.

use serde::{Deserialize, Serialize};

/// The claims the `jwt` filter needs. Unknown claims are ignored.
#[derive(Debug, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default)]
    pub nbf: Option<u64>,
    pub iss: String,
    pub aud: Audience,
    /// Space-separated scopes (RFC 8693 `scope`).
    #[serde(default)]
    pub scope: Option<String>,
    /// When it was issued: a consumer's revocation refuses tokens issued until then.
    #[serde(default)]
    pub iat: Option<u64>,
    /// The token's id: what a revocation of one token names.
    #[serde(default)]
    pub jti: Option<String>,
}

/// `aud` is a string or a list of strings (RFC 7519 §4.1.3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims of a token fingate issues.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IssuedClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    pub scope: String,
}

/// True when every scope in `required` is among the space-separated `granted`.
/// Allocation-free: both lists are short.
pub fn has_scopes(granted: Option<&str>, required: &[String]) -> bool {
    let granted = granted.unwrap_or("");
    required
        .iter()
        .all(|r| granted.split(' ').any(|g| !g.is_empty() && g == r))
}

/// The consumer a token identifies: its `sub` when the gateway's own issuer
/// (`own`) issued it, else `<iss>#<sub>`. Two issuers may both have a
/// `mobile-app`; only the gateway's own is the local consumer of that name (a local
/// username never contains `#`, a partner's issuer is refused with one).
pub fn consumer_id<'a>(iss: &str, sub: &'a str, own: &str) -> std::borrow::Cow<'a, str> {
    if iss == own {
        std::borrow::Cow::Borrowed(sub)
    } else {
        std::borrow::Cow::Owned(format!("{iss}#{sub}"))
    }
}

pub use crate::clock::rfc3339;

/// Seconds since the Unix epoch now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_required_scope_must_be_granted() {
        let req = vec!["accounts:read".to_owned(), "payments:write".to_owned()];
        assert!(has_scopes(Some("payments:write accounts:read"), &req));
        assert!(!has_scopes(Some("accounts:read"), &req));
        assert!(!has_scopes(Some("accounts:readx payments:write"), &req));
        assert!(!has_scopes(None, &req));
        assert!(has_scopes(None, &[]));
        assert!(
            !has_scopes(Some(""), &["".to_owned()]),
            "empty scope never matches"
        );
    }

    #[test]
    fn only_the_own_issuer_keeps_the_plain_sub() {
        assert_eq!(
            consumer_id("fingate", "mobile-app", "fingate"),
            "mobile-app"
        );
        assert_eq!(
            consumer_id("https://idp.example", "mobile-app", "fingate"),
            "https://idp.example#mobile-app"
        );
    }

    #[test]
    fn wrong_typed_claims_do_not_decode() {
        let ok = r#"{"sub":"a","exp":10,"iss":"i","aud":["x","y"]}"#;
        assert!(serde_json::from_str::<Claims>(ok).is_ok());
        for bad in [
            r#"{"sub":"a","exp":"10","iss":"i","aud":"x"}"#,
            r#"{"sub":"a","exp":10,"nbf":"later","iss":"i","aud":"x"}"#,
            r#"{"sub":"a","exp":10,"iss":["i"],"aud":"x"}"#,
            r#"{"sub":"a","exp":10,"iss":"i","aud":7}"#,
            r#"{"sub":1,"exp":10,"iss":"i","aud":"x"}"#,
            r#"{"sub":"a","iss":"i","aud":"x"}"#,
            r#"{"sub":"a","exp":10,"iss":"i","aud":"x","iat":"now"}"#,
            r#"{"sub":"a","exp":10,"iss":"i","aud":"x","jti":7}"#,
        ] {
            assert!(serde_json::from_str::<Claims>(bad).is_err(), "{bad}");
        }
    }
}
