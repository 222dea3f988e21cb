//! `validate`: checks a JSON request body against a JSON Schema (draft 2020-12)
//! before the request reaches the service.
//!
//! The body is read whole, up to `max_body`, before anything is sent upstream, and
//! the gateway forwards exactly the bytes it checked. Not JSON by `Content-Type`:
//! 415 `unsupported_media_type`; not parseable: 400 `bad_request`; against the
//! schema: 422 `invalid_body` with `errors: [{pointer, message}]` (at most
//! [`MAX_ERRORS`]). Requests without a body pass when their method carries none
//! (GET, HEAD, DELETE, OPTIONS); a POST, PUT or PATCH without one is a 400.

use super::{Filter, FilterCheck, FilterError, Flow, HeaderEdit, OptionError};
use crate::context::RequestContext;
use crate::error::{ErrorCode, GatewayError};
use crate::units::SizeStr;
use async_trait::async_trait;
use http::{header, Method};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Errors listed in one refusal; the rest are counted.
pub const MAX_ERRORS: usize = 10;

/// The largest body `validate` reads: the gateway keeps it to forward it after
/// checking, and Pingora forwards a kept body of at most this size.
pub const MAX_BODY: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ValidateOptions {
    /// A schema file (JSON), relative to the configuration file's folder.
    #[serde(default)]
    pub json_schema: Option<String>,
    /// The schema written inline.
    #[serde(default)]
    pub schema: Option<Value>,
    /// Largest body checked (413 above); default and most 64KiB.
    #[serde(default)]
    pub max_body: Option<SizeStr>,
}

/// The options, checked: a compiled schema.
#[derive(Clone)]
pub struct ValidateFilter {
    schema: Arc<jsonschema::Validator>,
    max_body: u64,
}

impl std::fmt::Debug for ValidateFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidateFilter")
            .field("max_body", &self.max_body)
            .finish()
    }
}

impl ValidateFilter {
    pub fn new(o: &ValidateOptions, check: &FilterCheck<'_>) -> Result<Self, Vec<OptionError>> {
        let mut errors = Vec::new();
        let max_body = o.max_body.map_or(MAX_BODY, |s| s.0);
        if max_body == 0 || max_body > MAX_BODY {
            errors.push(OptionError::new(
                "max_body",
                "use 1B to 64KiB: the body is held whole while it is checked",
            ));
        }
        let (key, schema) = match (&o.json_schema, &o.schema) {
            (Some(file), None) => {
                let path = check.base_dir.join(file);
                let schema = std::fs::read(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
                    .and_then(|bytes| {
                        serde_json::from_slice::<Value>(&bytes)
                            .map_err(|e| format!("{} is not JSON: {e}", path.display()))
                    });
                ("json_schema", schema)
            }
            (None, Some(inline)) => ("schema", Ok(inline.clone())),
            _ => {
                errors.push(OptionError::new(
                    "",
                    "give exactly one of `json_schema` (a file) or `schema` (inline)",
                ));
                return Err(errors);
            }
        };
        let compiled = schema.and_then(|s| {
            jsonschema::draft202012::new(&s)
                .map_err(|e| format!("the schema does not compile: {e}"))
        });
        match compiled {
            Ok(schema) if errors.is_empty() => Ok(Self {
                schema: Arc::new(schema),
                max_body,
            }),
            Ok(_) => Err(errors),
            Err(message) => {
                errors.push(OptionError::new(key, message));
                Err(errors)
            }
        }
    }

    /// The refusal for `body`, if any (the body phase's work).
    pub fn judge(&self, body: &[u8]) -> Option<GatewayError> {
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return Some(GatewayError::new(
                    ErrorCode::BadRequest,
                    format!("the body is not valid JSON: {e}"),
                ))
            }
        };
        let mut listed = Vec::new();
        let mut total = 0usize;
        for e in self.schema.iter_errors(&value) {
            total += 1;
            if listed.len() < MAX_ERRORS {
                listed.push(
                    json!({ "pointer": e.instance_path().to_string(), "message": e.to_string() }),
                );
            }
        }
        (total > 0).then(|| {
            GatewayError::new(
                ErrorCode::InvalidBody,
                format!(
                    "the body does not match the route's schema ({total} problem{})",
                    if total == 1 { "" } else { "s" }
                ),
            )
            .with_detail("errors", Value::Array(listed))
        })
    }
}

fn is_json(content_type: Option<&http::HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

#[async_trait]
impl Filter for ValidateFilter {
    async fn request(
        &self,
        req: &mut dyn HeaderEdit,
        ctx: &mut RequestContext,
    ) -> Result<Flow, FilterError> {
        if !ctx.has_body {
            if matches!(ctx.method, Method::POST | Method::PUT | Method::PATCH) {
                return Ok(Flow::Reject(GatewayError::new(
                    ErrorCode::BadRequest,
                    "a JSON body is required",
                )));
            }
            return Ok(Flow::Continue);
        }
        if !is_json(req.get(&header::CONTENT_TYPE)) {
            return Ok(Flow::Reject(GatewayError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON (Content-Type: application/json)",
            )));
        }
        Ok(Flow::Continue)
    }

    fn body_limit(&self) -> Option<u64> {
        Some(self.max_body)
    }

    async fn request_body(
        &self,
        body: &[u8],
        _ctx: &mut RequestContext,
    ) -> Result<Flow, FilterError> {
        Ok(self.judge(body).map_or(Flow::Continue, Flow::Reject))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn filter(schema: Value) -> ValidateFilter {
        let auth = crate::auth::AuthConfig::default();
        let check = FilterCheck {
            auth: &auth,
            base_dir: std::path::Path::new("."),
        };
        let o = ValidateOptions {
            schema: Some(schema),
            ..Default::default()
        };
        ValidateFilter::new(&o, &check).unwrap()
    }

    fn payment() -> ValidateFilter {
        filter(json!({
            "type": "object",
            "required": ["amount", "currency"],
            "properties": {
                "amount": {"type": "integer", "minimum": 1},
                "currency": {"enum": ["EUR", "USD"]}
            }
        }))
    }

    #[test]
    fn a_matching_body_passes_and_others_name_each_problem() {
        let f = payment();
        assert!(f.judge(br#"{"amount": 5, "currency": "EUR"}"#).is_none());
        let e = f.judge(br#"{"amount": -5, "currency": "GBP"}"#).unwrap();
        assert_eq!(e.code, ErrorCode::InvalidBody);
        let errors = e.details["errors"].as_array().unwrap();
        let pointers: Vec<_> = errors
            .iter()
            .map(|e| e["pointer"].as_str().unwrap())
            .collect();
        assert_eq!(pointers, ["/amount", "/currency"]);
        assert_eq!(f.judge(b"{not json").unwrap().code, ErrorCode::BadRequest);
    }

    #[test]
    fn at_most_ten_problems_are_listed() {
        let f = filter(json!({"type": "array", "items": {"type": "string"}}));
        let body = serde_json::to_vec(&(0..25).collect::<Vec<i32>>()).unwrap();
        let e = f.judge(&body).unwrap();
        assert_eq!(e.details["errors"].as_array().unwrap().len(), MAX_ERRORS);
        assert!(e.message.contains("25 problems"), "{}", e.message);
    }

    #[test]
    fn json_content_types() {
        let v = |s: &'static str| Some(http::HeaderValue::from_static(s));
        assert!(is_json(v("application/json").as_ref()));
        assert!(is_json(v("Application/JSON; charset=utf-8").as_ref()));
        assert!(is_json(v("application/merge-patch+json").as_ref()));
        assert!(!is_json(v("text/plain").as_ref()));
        assert!(!is_json(None));
    }
}
