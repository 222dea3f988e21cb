//! `cors`: lets pages from listed origins call the route from a browser.
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is
//! answered here, 204 or 403 `cors_rejected`, before any other filter and never
//! forwarded; the pipeline matches it to the route the real request would take.
//! A real request from an allowed origin gets `Access-Control-Allow-Origin` and
//! `Access-Control-Expose-Headers` on its answer, whoever made it (the gateway's
//! own errors included: the chain runs `cors` first and every gateway-made answer
//! passes back through the filters entered). A request whose `Origin` is not
//! allowed is refused, 403 `origin_not_allowed`; requests without `Origin` are
//! not from a page and pass untouched. Every answer on the route carries
//! `Vary: Origin`, since it depends on it.

use super::{header_name, Filter, FilterError, Flow, HeaderEdit, LocalResponse, OptionError};
use crate::context::RequestContext;
use crate::error::{ErrorCode, GatewayError};
use crate::units::DurationStr;
use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, StatusCode};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CorsOptions {
    /// `https://app.example.com`, `https://*.example.com` (one leading label), or `*`.
    pub origins: Vec<String>,
    /// Default: the route's methods (any, when the route allows any).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Request headers a page may send. Default: `Authorization`, `Content-Type`.
    #[serde(default)]
    pub headers: Option<Vec<String>>,
    /// Response headers a page may read.
    #[serde(default)]
    pub expose: Option<Vec<String>>,
    #[serde(default)]
    pub credentials: bool,
    /// How long a browser may reuse a preflight answer. Default 10m.
    #[serde(default)]
    pub max_age: Option<DurationStr>,
}

const DEFAULT_HEADERS: &[&str] = &["authorization", "content-type"];
const DEFAULT_EXPOSE: &str =
    "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, X-Request-Id";
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(600);

/// One allowed origin.
#[derive(Debug, Clone, PartialEq)]
enum OriginPattern {
    Any,
    /// `scheme://host[:port]`, lowercased.
    Exact(String),
    /// `scheme://*.rest`: `prefix` is `scheme://`, `suffix` is `.rest` (with any port).
    Label {
        prefix: String,
        suffix: String,
    },
}

impl OriginPattern {
    fn parse(text: &str) -> Result<Self, String> {
        if text == "*" {
            return Ok(Self::Any);
        }
        let lower = text.to_ascii_lowercase();
        let bad = || {
            format!(
                "{text:?} is not an origin: write scheme://host[:port] without a path, e.g. https://app.example.com"
            )
        };
        let (scheme, authority) = lower.split_once("://").ok_or_else(bad)?;
        if !matches!(scheme, "http" | "https")
            || authority.is_empty()
            || authority.contains(['/', '?', '#', '@', ' '])
        {
            return Err(bad());
        }
        match authority.strip_prefix("*.") {
            Some(rest) if !rest.is_empty() && !rest.contains('*') && rest.contains('.') => {
                Ok(Self::Label {
                    prefix: format!("{scheme}://"),
                    suffix: format!(".{rest}"),
                })
            }
            Some(_) => Err(format!(
                "{text:?}: a wildcard stands for one leading label of a domain with at least two more, e.g. https://*.example.com"
            )),
            None if authority.contains('*') => Err(format!(
                "{text:?}: `*` is allowed only as the whole first label (https://*.example.com) or alone"
            )),
            None => Ok(Self::Exact(lower)),
        }
    }

    fn matches(&self, origin: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(o) => o.eq_ignore_ascii_case(origin),
            Self::Label { prefix, suffix } => {
                let lower = origin.to_ascii_lowercase();
                lower
                    .strip_prefix(prefix.as_str())
                    .and_then(|rest| rest.strip_suffix(suffix.as_str()))
                    .is_some_and(|label| {
                        !label.is_empty()
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    })
            }
        }
    }
}

/// The filter's options, checked.
#[derive(Debug, Clone)]
pub struct CorsConfig {
    origins: Vec<OriginPattern>,
    /// None: the route's methods.
    methods: Option<Vec<Method>>,
    headers: Vec<HeaderName>,
    expose: HeaderValue,
    credentials: bool,
    max_age: Duration,
}

impl CorsConfig {
    pub fn check(o: &CorsOptions) -> Result<Self, Vec<OptionError>> {
        let mut errors = Vec::new();
        if o.origins.is_empty() {
            errors.push(OptionError::new(
                "origins",
                "list at least one origin, e.g. [https://app.example.com]",
            ));
        }
        let mut origins = Vec::new();
        for (i, text) in o.origins.iter().enumerate() {
            match OriginPattern::parse(text) {
                Ok(OriginPattern::Any) if o.credentials => errors.push(OptionError::new(
                    format!("origins[{i}]"),
                    "\"*\" cannot be used with `credentials: true` (browsers refuse it): list the origins",
                )),
                Ok(p) => origins.push(p),
                Err(e) => errors.push(OptionError::new(format!("origins[{i}]"), e)),
            }
        }
        let methods = o.methods.as_ref().map(|list| {
            let mut out = Vec::new();
            if list.is_empty() {
                errors.push(OptionError::new(
                    "methods",
                    "list at least one method, or leave `methods` out for the route's",
                ));
            }
            for (i, m) in list.iter().enumerate() {
                match Method::from_bytes(m.as_bytes()) {
                    Ok(method) if m.bytes().all(|b| b.is_ascii_uppercase()) => out.push(method),
                    _ => errors.push(OptionError::new(
                        format!("methods[{i}]"),
                        format!("invalid method {m:?}: write it in capitals, e.g. POST"),
                    )),
                }
            }
            out
        });
        let headers = match &o.headers {
            None => DEFAULT_HEADERS
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect(),
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(i, h)| {
                    header_name(&format!("headers[{i}]"), h)
                        .map_err(|e| errors.push(e))
                        .ok()
                })
                .collect(),
        };
        let expose = match &o.expose {
            None => Some(HeaderValue::from_static(DEFAULT_EXPOSE)),
            Some(list) => {
                for (i, h) in list.iter().enumerate() {
                    if let Err(e) = header_name(&format!("expose[{i}]"), h) {
                        errors.push(e);
                    }
                }
                HeaderValue::from_str(&list.join(", ")).ok()
            }
        };
        let max_age = o.max_age.map_or(DEFAULT_MAX_AGE, |d| d.0);
        if max_age > Duration::from_secs(86_400) {
            errors.push(OptionError::new(
                "max_age",
                "at most 24h (browsers cap it lower anyway)",
            ));
        }
        match expose {
            Some(expose) if errors.is_empty() => Ok(Self {
                origins,
                methods,
                headers,
                expose,
                credentials: o.credentials,
                max_age,
            }),
            _ => Err(errors),
        }
    }
}

/// The page's origin, allowed: remembered for the answer's headers.
#[derive(Debug, Clone)]
struct Allowed(HeaderValue);

#[derive(Debug)]
pub struct CorsFilter {
    config: CorsConfig,
    /// The methods a preflight may ask for; None: any.
    methods: Option<Vec<Method>>,
}

impl CorsFilter {
    /// `route_methods`: the route's own (None: any method).
    pub fn build(config: &CorsConfig, route_methods: Option<&[Method]>) -> Self {
        let methods = config
            .methods
            .clone()
            .or_else(|| route_methods.map(<[Method]>::to_vec));
        Self {
            config: config.clone(),
            methods,
        }
    }

    /// The value for `Access-Control-Allow-Origin`, when `origin` is allowed.
    pub fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        let text = origin.to_str().ok()?;
        let pattern = self.config.origins.iter().find(|p| p.matches(text))?;
        if *pattern == OriginPattern::Any && !self.config.credentials {
            Some(HeaderValue::from_static("*"))
        } else {
            Some(origin.clone())
        }
    }

    fn method_allowed(&self, method: &Method) -> bool {
        match &self.methods {
            None => true,
            Some(list) => {
                list.contains(method) || (*method == Method::HEAD && list.contains(&Method::GET))
            }
        }
    }

    /// Whether every header a preflight names may be sent.
    fn headers_allowed(&self, requested: Option<&HeaderValue>) -> bool {
        let Some(list) = requested.and_then(|v| v.to_str().ok()) else {
            return requested.is_none();
        };
        list.split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .all(|h| {
                self.config
                    .headers
                    .iter()
                    .any(|allowed| allowed.as_str().eq_ignore_ascii_case(h))
            })
    }

    /// The answer to a preflight, or None when `req` is not one.
    pub fn preflight(&self, req: &dyn HeaderEdit, ctx: &RequestContext) -> Option<LocalResponse> {
        let origin = req.get(&header::ORIGIN)?;
        let method = req.get(&header::ACCESS_CONTROL_REQUEST_METHOD)?;
        let requested_headers = req.get(&header::ACCESS_CONTROL_REQUEST_HEADERS);
        let method = Method::from_bytes(method.as_bytes()).ok();
        let allow_origin = self.allow_origin(origin);
        let ok = allow_origin.is_some()
            && method.as_ref().is_some_and(|m| self.method_allowed(m))
            && self.headers_allowed(requested_headers);
        let (Some(allow_origin), Some(method), true) = (allow_origin, method, ok) else {
            let refusal = GatewayError::new(
                ErrorCode::CorsRejected,
                "this origin, method or request header is not allowed here",
            )
            .with_header(header::VARY, HeaderValue::from_static("Origin"));
            return Some(refusal.into_response(Some(&ctx.request_id)));
        };
        let methods = match &self.methods {
            Some(list) => list
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            None => method.as_str().to_owned(),
        };
        let headers = self
            .config
            .headers
            .iter()
            .map(HeaderName::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let mut out = vec![
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin),
            (header::VARY, HeaderValue::from_static("Origin")),
            (
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from(self.config.max_age.as_secs()),
            ),
        ];
        for (name, value) in [
            (header::ACCESS_CONTROL_ALLOW_METHODS, methods),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, headers),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                out.push((name, v));
            }
        }
        if self.config.credentials {
            out.push((
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        Some(LocalResponse {
            status: StatusCode::NO_CONTENT,
            headers: out,
            body: Bytes::new(),
        })
    }
}

/// Adds `Origin` to the answer's `Vary` unless it is there.
fn vary_origin(resp: &mut dyn HeaderEdit) {
    // Most answers have no `Vary`; only those that have one pay for copying the
    // headers to look through every value.
    let has = resp.get(&header::VARY).is_some()
        && resp.entries().iter().any(|(n, v)| {
            *n == header::VARY
                && v.to_str().is_ok_and(|v| {
                    v.split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case("origin") || t.trim() == "*")
                })
        });
    if !has {
        resp.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

#[async_trait]
impl Filter for CorsFilter {
    async fn request(
        &self,
        req: &mut dyn HeaderEdit,
        ctx: &mut RequestContext,
    ) -> Result<Flow, FilterError> {
        let Some(origin) = req.get(&header::ORIGIN) else {
            return Ok(Flow::Continue);
        };
        match self.allow_origin(origin) {
            Some(allowed) => {
                ctx.extensions.insert(Allowed(allowed));
                Ok(Flow::Continue)
            }
            None => Ok(Flow::Reject(
                GatewayError::new(
                    ErrorCode::OriginNotAllowed,
                    "requests from this origin are not allowed here",
                )
                .with_header(header::VARY, HeaderValue::from_static("Origin")),
            )),
        }
    }

    fn response(&self, resp: &mut dyn HeaderEdit, ctx: &mut RequestContext) {
        vary_origin(resp);
        let Some(Allowed(origin)) = ctx.extensions.get::<Allowed>() else {
            return;
        };
        resp.set(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        resp.set(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            self.config.expose.clone(),
        );
        if self.config.credentials {
            resp.set(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }

    fn preflight(&self, req: &dyn HeaderEdit, ctx: &RequestContext) -> Option<LocalResponse> {
        CorsFilter::preflight(self, req, ctx)
    }
}

#[cfg(test)]
#[path = "cors_tests.rs"]
mod tests;
