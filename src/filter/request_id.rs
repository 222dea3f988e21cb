//! `request_id`: keeps a well-formed incoming `X-Request-Id` (or makes one), passes it
//! upstream and returns it to the client. The access log always carries it.

use super::{header_name, Filter, FilterError, Flow, HeaderEdit, OptionError};
use crate::context::RequestContext;
use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RequestIdOptions {
    /// Header carrying the id; default `X-Request-Id`.
    #[serde(default)]
    pub header: Option<String>,
}

#[derive(Debug)]
pub struct RequestIdFilter {
    header: HeaderName,
}

/// Longest incoming id we keep; longer ones are replaced, so a client cannot bloat
/// every log line and upstream request.
const MAX_INCOMING_LEN: usize = 128;

impl RequestIdFilter {
    pub fn new(options: &RequestIdOptions) -> Result<Self, Vec<OptionError>> {
        let header = match &options.header {
            Some(name) => header_name("header", name).map_err(|e| vec![e])?,
            None => HeaderName::from_static("x-request-id"),
        };
        Ok(Self { header })
    }
}

/// Accepts ids made of visible ASCII without spaces or quotes, so they are safe to
/// log and to echo back.
fn acceptable(value: &HeaderValue) -> Option<&str> {
    let s = value.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= MAX_INCOMING_LEN
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    ok.then_some(s)
}

#[async_trait]
impl Filter for RequestIdFilter {
    async fn request(
        &self,
        req: &mut dyn HeaderEdit,
        ctx: &mut RequestContext,
    ) -> Result<Flow, FilterError> {
        if let Some(id) = req.get(&self.header).and_then(acceptable) {
            ctx.request_id = id.to_owned();
        }
        Ok(Flow::Continue)
    }

    fn upstream_request(&self, req: &mut dyn HeaderEdit, ctx: &RequestContext) {
        if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
            req.set(self.header.clone(), v);
        }
    }

    fn response(&self, resp: &mut dyn HeaderEdit, ctx: &mut RequestContext) {
        if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
            resp.set(self.header.clone(), v);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn run(incoming: Option<&str>) -> (String, HeaderMap, HeaderMap) {
        let f = RequestIdFilter::new(&RequestIdOptions::default()).unwrap();
        let mut req = HeaderMap::new();
        if let Some(v) = incoming {
            req.insert("x-request-id", HeaderValue::from_str(v).unwrap());
        }
        let mut ctx = RequestContext::new(http::Method::GET, "/".into());
        tokio_test_block_on(f.request(&mut req, &mut ctx)).unwrap();
        let mut up = HeaderMap::new();
        f.upstream_request(&mut up, &ctx);
        let mut resp = HeaderMap::new();
        f.response(&mut resp, &mut ctx);
        assert_eq!(up.get("x-request-id"), resp.get("x-request-id"));
        (ctx.request_id, up, resp)
    }

    fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn keeps_a_good_incoming_id() {
        let (id, up, _) = run(Some("abc-123"));
        assert_eq!(id, "abc-123");
        assert_eq!(up.get("x-request-id").unwrap(), "abc-123");
    }

    #[test]
    fn replaces_missing_or_hostile_ids() {
        for incoming in [None, Some("has space"), Some(&"x".repeat(200) as &str)] {
            let (id, up, _) = run(incoming);
            assert_ne!(Some(id.as_str()), incoming);
            assert_eq!(id.len(), 36, "a UUID: {id}");
            assert_eq!(up.get("x-request-id").unwrap().to_str().unwrap(), id);
        }
    }
}
