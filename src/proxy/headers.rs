//! [`HeaderEdit`] over Pingora's header types, and the removal of client-sent
//! headers only the gateway may send.

use crate::edge::forwarded::{self, Owned};
use crate::filter::HeaderEdit;
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use smallvec::SmallVec;

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

/// Removes the client-sent headers only the gateway may send upstream
/// ([`forwarded::owned`]): identity headers and `_` spellings of forwarding headers
/// always, `X-Real-IP` and `X-Forwarded-Host` unless the peer is a trusted proxy.
/// So a service can trust them. Called only for heads the edge checks found such a
/// header in; allocates only past four names.
pub fn strip_client_headers(req: &mut RequestHeader, peer_trusted: bool) {
    let remove = |name: &HeaderName| match forwarded::owned(name) {
        Owned::No => false,
        Owned::FromUntrusted => !peer_trusted,
        Owned::Always => true,
    };
    let names: SmallVec<[HeaderName; 4]> =
        req.headers.keys().filter(|n| remove(n)).cloned().collect();
    for name in names {
        req.remove_header(&name);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_are_removed_in_every_spelling() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("X-Consumer-Id", "admin").unwrap();
        req.append_header("x-consumer-scopes", "all").unwrap();
        req.append_header("X-CONSUMER-ID", "again").unwrap();
        req.append_header("X_Consumer_Id", "cgi").unwrap();
        req.append_header("X_Consumer_Scopes", "cgi").unwrap();
        req.append_header("X_Forwarded_For", "6.6.6.6").unwrap();
        req.append_header("X-Real-IP", "6.6.6.6").unwrap();
        req.append_header("X-Consumers", "not identity").unwrap();
        req.append_header("X_Other", "kept").unwrap();
        strip_client_headers(&mut req, true);
        for gone in [
            "x-consumer-id",
            "x-consumer-scopes",
            "x_consumer_id",
            "x_consumer_scopes",
            "x_forwarded_for",
        ] {
            assert!(req.headers.get(gone).is_none(), "{gone}");
        }
        assert_eq!(req.headers.get("x-consumers").unwrap(), "not identity");
        assert_eq!(req.headers.get("x_other").unwrap(), "kept");
        // A trusted proxy's X-Real-IP stays; anyone else's goes.
        assert_eq!(req.headers.get("x-real-ip").unwrap(), "6.6.6.6");
        strip_client_headers(&mut req, false);
        assert!(req.headers.get("x-real-ip").is_none());
        assert_eq!(req.headers.len(), 2);
    }
}
