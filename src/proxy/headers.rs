//! [`HeaderEdit`] over Pingora's header types, the removal of client-sent
//! headers only the gateway may send, and room in a head for the headers the
//! gateway adds.

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
            fn set_static(&mut self, name: &'static str, value: HeaderValue) {
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

/// Headers the gateway may add to a head on its way through: the forwarding and
/// trace headers, the identity headers, the answer headers of the filters.
const ROOM: usize = 8;

/// Gives a request head room for [`ROOM`] more headers, and lets go of the
/// original spelling of its header names.
///
/// Pingora sizes a parsed head's header map to the headers it read, and keeps a
/// second map with each name as the client spelled it: every header the gateway
/// then adds grows both maps (rehashing every entry) and spells its name twice,
/// and the copy made for the upstream copies both. Without the spelling map, names
/// go out lowercase (Pingora title-cases a dozen common ones: `Host`,
/// `Content-Type`, `Content-Length`, `Date`, `Server`...) — as they always did for
/// HTTP/2 clients, whose names are lowercase on the wire.
/// Header names are case-insensitive (RFC 9110 §5.1); HAProxy and Envoy send them
/// lowercase too.
pub fn make_room(req: &mut RequestHeader) {
    let placeholder = RequestHeader::from(http::Request::new(()).into_parts().0);
    let head = std::mem::replace(req, placeholder);
    // A target the URI does not reproduce (absolute-form, not UTF-8) is kept as sent.
    let raw = (!from_uri(&head)).then(|| head.raw_path().to_vec());
    let send_end_stream = head.send_end_stream();
    let mut parts = http::request::Parts::from(head);
    parts.headers.reserve(ROOM);
    *req = RequestHeader::from(parts);
    if let Some(raw) = raw {
        // The bytes were a valid target a moment ago.
        let _ = req.set_raw_path(&raw);
    }
    if let Some(end) = send_end_stream {
        req.set_send_end_stream(end);
    }
}

/// Whether the head's request-target is its URI's path and query, byte for byte.
fn from_uri(head: &RequestHeader) -> bool {
    let uri = head.uri.path_and_query().map(|p| p.as_str().as_bytes());
    head.raw_path_is_utf8() && uri == Some(head.raw_path())
}

/// [`make_room`] for a response head.
pub fn make_room_in_response(resp: &mut ResponseHeader) {
    let placeholder = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let head = std::mem::replace(resp, placeholder);
    // Only a phrase other than the status's usual one is stored.
    let reason = head
        .get_reason_phrase()
        .filter(|r| Some(*r) != head.status.canonical_reason())
        .map(str::to_owned);
    let mut parts = http::response::Parts::from(head);
    parts.headers.reserve(ROOM);
    *resp = ResponseHeader::from(parts);
    if reason.is_some() {
        // It was a valid reason phrase a moment ago.
        let _ = resp.set_reason_phrase(reason.as_deref());
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

    #[test]
    fn room_keeps_the_request_and_names_go_out_lowercase() {
        let mut req = RequestHeader::build("POST", b"/pay?x=1", Some(2)).unwrap();
        req.append_header("X-Device-Id", "d1").unwrap();
        req.append_header("Accept", "a").unwrap();
        req.append_header("accept", "b").unwrap();
        make_room(&mut req);
        assert_eq!(req.method, "POST");
        assert_eq!(req.raw_path(), b"/pay?x=1");
        let accepts: Vec<_> = req.headers.get_all("accept").iter().collect();
        assert_eq!(accepts, ["a", "b"]);
        assert!(req.headers.capacity() >= req.headers.len() + ROOM);
        let mut wire = Vec::new();
        req.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        assert!(wire.contains("x-device-id: d1\r\n"), "{wire}");
        assert!(wire.contains("accept: a\r\naccept: b\r\n"), "{wire}");
        req.insert_header(http::header::CONTENT_TYPE, "text/plain")
            .unwrap();
        let mut wire = Vec::new();
        req.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        assert!(wire.contains("Content-Type: text/plain\r\n"), "{wire}");
    }

    #[test]
    fn room_keeps_a_target_the_uri_does_not_reproduce() {
        for target in [&b"http://bank.example/pay?x=1"[..], b"/caf\xe9"] {
            let mut req = RequestHeader::build("GET", target, None).unwrap();
            let utf8 = req.raw_path_is_utf8();
            make_room(&mut req);
            assert_eq!(req.raw_path(), target);
            assert_eq!(req.raw_path_is_utf8(), utf8);
        }
    }

    #[test]
    fn room_keeps_the_response_and_its_reason() {
        let mut resp = ResponseHeader::build(299, Some(1)).unwrap();
        resp.set_reason_phrase(Some("Quite Fine")).unwrap();
        resp.append_header("X-Served-By", "accounts").unwrap();
        make_room_in_response(&mut resp);
        assert_eq!(resp.status, 299);
        assert_eq!(resp.get_reason_phrase(), Some("Quite Fine"));
        assert_eq!(resp.headers["x-served-by"], "accounts");
        assert!(resp.headers.capacity() >= resp.headers.len() + ROOM);
        let mut plain = ResponseHeader::build(200, None).unwrap();
        make_room_in_response(&mut plain);
        assert_eq!(plain.get_reason_phrase(), Some("OK"));
    }
}
