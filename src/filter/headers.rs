//! `headers`: set / add / remove / rename request and response headers.
//!
//! Per direction the operations run in a fixed order — remove, rename, set, add —
//! whatever order the YAML lists them in, so a config reads the same every time.

use super::{header_name, header_value, Filter, HeaderEdit, OptionError};
use crate::context::RequestContext;
use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HeadersOptions {
    /// Applied to the request sent upstream.
    #[serde(default)]
    pub request: HeaderOps,
    /// Applied to the response sent to the client.
    #[serde(default)]
    pub response: HeaderOps,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HeaderOps {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct CompiledOps {
    remove: Vec<HeaderName>,
    rename: Vec<(HeaderName, HeaderName)>,
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug)]
pub struct HeadersFilter {
    request: CompiledOps,
    response: CompiledOps,
}

/// Headers only the gateway may set upstream: letting a transform write them
/// would let configuration (or a typo) impersonate an authenticated consumer.
/// Every spelling counts (`X_Consumer_Id` reaches CGI-style services as the same
/// variable as `X-Consumer-Id`).
fn is_identity_header(name: &HeaderName) -> bool {
    crate::edge::forwarded::is_identity(name)
}

impl CompiledOps {
    fn compile(ops: &HeaderOps, dir: &str, errors: &mut Vec<OptionError>) -> Self {
        let mut out = Self::default();
        let name = |errors: &mut Vec<OptionError>, path: String, raw: &str| {
            let parsed = header_name(&path, raw).map_err(|e| errors.push(e)).ok()?;
            if dir == "request" && is_identity_header(&parsed) {
                errors.push(OptionError::new(
                    path,
                    format!("{raw} is set by the gateway from the verified token; a transform cannot change it"),
                ));
                return None;
            }
            Some(parsed)
        };
        for (i, raw) in ops.remove.iter().enumerate() {
            out.remove
                .extend(name(errors, format!("{dir}.remove[{i}]"), raw));
        }
        for (from, to) in &ops.rename {
            let path = format!("{dir}.rename.{from}");
            let pair = (name(errors, path.clone(), from), name(errors, path, to));
            if let (Some(f), Some(t)) = pair {
                out.rename.push((f, t));
            }
        }
        for (kind, map) in [("set", &ops.set), ("add", &ops.add)] {
            for (raw, value) in map {
                let path = format!("{dir}.{kind}.{raw}");
                let Some(n) = name(errors, path.clone(), raw) else {
                    continue;
                };
                match header_value(&path, value) {
                    Ok(v) if kind == "set" => out.set.push((n, v)),
                    Ok(v) => out.add.push((n, v)),
                    Err(e) => errors.push(e),
                }
            }
        }
        out
    }

    fn apply(&self, headers: &mut dyn HeaderEdit) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (from, to) in &self.rename {
            if let Some(v) = headers.remove(from) {
                headers.set(to.clone(), v);
            }
        }
        for (name, value) in &self.set {
            headers.set(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

impl HeadersFilter {
    pub fn new(options: &HeadersOptions) -> Result<Self, Vec<OptionError>> {
        let mut errors = Vec::new();
        let request = CompiledOps::compile(&options.request, "request", &mut errors);
        let response = CompiledOps::compile(&options.response, "response", &mut errors);
        if errors.is_empty() {
            Ok(Self { request, response })
        } else {
            Err(errors)
        }
    }
}

#[async_trait]
impl Filter for HeadersFilter {
    fn upstream_request(&self, req: &mut dyn HeaderEdit, _ctx: &RequestContext) {
        self.request.apply(req);
    }

    fn response(&self, resp: &mut dyn HeaderEdit, _ctx: &mut RequestContext) {
        self.response.apply(resp);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn options(yaml: &str) -> HeadersOptions {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn applies_remove_rename_set_add_in_that_order() {
        let f = HeadersFilter::new(&options(
            "response:\n  add: { Via: fingate }\n  set: { Cache-Control: no-store, X-Old: fresh }\n  rename: { X-Old: X-New }\n  remove: [Server]\n",
        ))
        .unwrap();
        let mut h = HeaderMap::new();
        h.insert("server", HeaderValue::from_static("upstream"));
        h.insert("x-old", HeaderValue::from_static("kept"));
        h.insert("via", HeaderValue::from_static("1.1 lb"));
        let mut ctx = RequestContext::new(http::Method::GET, "/".into());
        f.response(&mut h, &mut ctx);
        assert!(h.get("server").is_none());
        assert_eq!(h.get("x-new").unwrap(), "kept");
        assert_eq!(h.get("x-old").unwrap(), "fresh");
        assert_eq!(h.get("cache-control").unwrap(), "no-store");
        let via: Vec<_> = h.get_all("via").iter().collect();
        assert_eq!(via, ["1.1 lb", "fingate"]);
    }

    #[test]
    fn request_ops_do_not_touch_the_response() {
        let f = HeadersFilter::new(&options("request:\n  set: { X-Service: accounts }\n")).unwrap();
        let mut ctx = RequestContext::new(http::Method::GET, "/".into());
        let (mut req, mut resp) = (HeaderMap::new(), HeaderMap::new());
        f.upstream_request(&mut req, &ctx);
        f.response(&mut resp, &mut ctx);
        assert_eq!(req.get("x-service").unwrap(), "accounts");
        assert!(resp.is_empty());
    }

    #[test]
    fn reports_every_bad_option() {
        let errs = HeadersFilter::new(&options(
            "request:\n  set: { 'Bad Name': x, X-Consumer-Id: admin, X-Ok: \"line\\nbreak\" }\n  add: { X_Consumer_Scopes: all }\n",
        ))
        .unwrap_err();
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "request.set.Bad Name",
                "request.set.X-Consumer-Id",
                "request.set.X-Ok",
                "request.add.X_Consumer_Scopes"
            ]
        );
    }
}
