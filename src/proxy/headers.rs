//! [`HeaderEdit`] over Pingora's header types, and the identity-header rule.

use crate::filter::HeaderEdit;
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

/// Request headers as filters see them.
pub struct ReqView<'a>(pub &'a mut RequestHeader);
/// Response headers as filters see them.
pub struct RespView<'a>(pub &'a mut ResponseHeader);

// Pingora's setters only fail on invalid values; `HeaderValue` is valid by
// construction, so their results carry no information here.
macro_rules! header_edit {
    ($view:ident, $status:expr) => {
        impl HeaderEdit for $view<'_> {
            fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
                self.0.headers.get(name)
            }
            fn get_all(&self, name: &HeaderName) -> http::header::GetAll<'_, HeaderValue> {
                self.0.headers.get_all(name)
            }
            fn set(&mut self, name: HeaderName, value: HeaderValue) {
                let _ = self.0.insert_header(name, value);
            }
            fn append(&mut self, name: HeaderName, value: HeaderValue) {
                let _ = self.0.append_header(name, value);
            }
            fn remove(&mut self, name: &HeaderName) -> Option<HeaderValue> {
                self.0.remove_header(name)
            }
            fn entries(&self) -> Vec<(HeaderName, HeaderValue)> {
                let h = &self.0.headers;
                h.iter().map(|(n, v)| (n.clone(), v.clone())).collect()
            }
            fn status(&self) -> Option<http::StatusCode> {
                #[allow(clippy::redundant_closure_call)]
                ($status)(&*self.0)
            }
            fn count(&self, name: &HeaderName) -> usize {
                self.0.headers.get_all(name).iter().count()
            }
        }
    };
}
header_edit!(ReqView, |_| None);
header_edit!(RespView, |h: &ResponseHeader| Some(h.status));

/// Prefix of the headers only the gateway may send upstream (`X-Consumer-Id`,
/// `X-Consumer-Scopes`): whatever a client sends under it is dropped on every route,
/// so a service can trust them.
const IDENTITY_PREFIX: &str = "x-consumer-";

/// Removes client-sent identity headers. Allocates only when there are some.
pub fn strip_identity_headers(req: &mut RequestHeader) {
    let is_identity = |n: &HeaderName| n.as_str().starts_with(IDENTITY_PREFIX);
    if !req.headers.keys().any(is_identity) {
        return;
    }
    let names: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|n| is_identity(n))
        .cloned()
        .collect();
    for name in names {
        req.remove_header(&name);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_are_removed_whatever_their_case() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("X-Consumer-Id", "admin").unwrap();
        req.append_header("x-consumer-scopes", "all").unwrap();
        req.append_header("X-CONSUMER-ID", "again").unwrap();
        req.append_header("X-Consumers", "not identity").unwrap();
        strip_identity_headers(&mut req);
        assert!(req.headers.get("x-consumer-id").is_none());
        assert!(req.headers.get("x-consumer-scopes").is_none());
        assert_eq!(req.headers.get("x-consumers").unwrap(), "not identity");
    }
}
