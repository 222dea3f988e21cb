//! Forwarding headers, the headers only the gateway may send, and hop-by-hop
//! headers.
//!
//! The gateway states who the client is: `X-Forwarded-For`, `X-Forwarded-Proto` and
//! `Forwarded` are replaced with what the gateway saw, unless the peer is a
//! configured trusted proxy, whose values are kept and appended to. Client-sent
//! identity headers, and other spellings of these, are removed ([`owned`]).
//! Hop-by-hop headers (RFC 9110 §7.6.1) are dropped both ways.

use super::limits::IpNet;
use http::{header, HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;
use std::cell::RefCell;
use std::net::IpAddr;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Whether `ip` is one of the configured trusted proxies.
pub fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|n| n.contains(ip))
}

/// Whether a client-sent header is one only the gateway may send upstream.
/// Ordered: a head's most demanding header decides whether it needs a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Owned {
    /// An ordinary header (or one the gateway replaces itself: `X-Forwarded-For`,
    /// `X-Forwarded-Proto`, `Forwarded`).
    #[default]
    No,
    /// `X-Real-IP`, `X-Forwarded-Host`: what a trusted proxy says about its client,
    /// anyone else's claim.
    FromUntrusted,
    /// Never from a client: `X-Consumer-*` (the gateway's word on who is calling)
    /// in any spelling, and the `_` spellings of the forwarding headers.
    Always,
}

/// `x-consumer-` (the gateway's word on who is calling: `X-Consumer-Id`,
/// `X-Consumer-Scopes`) in any spelling, with anything after; lowercase bytes.
fn identity_spelling(name: &[u8]) -> bool {
    let sep = |b: &u8| *b == b'-' || *b == b'_';
    matches!(name, [b'x', s1, b'c', b'o', b'n', b's', b'u', b'm', b'e', b'r', s2, ..] if sep(s1) && sep(s2))
}

/// Whether a header name is an identity header in any spelling (`X-Consumer-Id`,
/// `X_Consumer_Id`, ...): only the gateway's authentication may send one upstream.
pub fn is_identity(name: &HeaderName) -> bool {
    identity_spelling(name.as_str().as_bytes())
}

/// The forwarding headers a client may spell with `_`, as the gateway writes them.
const FORWARDING: [&[u8]; 4] = [
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-real-ip",
];

/// What [`Owned`] a request header name is.
///
/// CGI, WSGI, Rack and PHP hand headers to applications as `HTTP_X_CONSUMER_ID`,
/// with `-` turned into `_`: `X_Consumer_Id` and `X-Consumer-Id` reach them as the
/// same variable, and which of two wins is the server's choice. So a name counts
/// whichever of `-` or `_` separates its words (the `http` crate has already
/// lowercased it). Every request's names pass through here: a name not starting
/// with `x` is decided by its first byte.
pub fn owned(name: &HeaderName) -> Owned {
    let name = name.as_str().as_bytes();
    if name.first() != Some(&b'x') {
        return Owned::No;
    }
    if identity_spelling(name) {
        return Owned::Always;
    }
    for canonical in FORWARDING {
        let same = name.len() == canonical.len()
            && name
                .iter()
                .zip(canonical)
                .all(|(n, c)| n == c || (*n == b'_' && *c == b'-'));
        if !same {
            continue;
        }
        return if name.contains(&b'_') {
            // Never how a proxy writes it: only there to shadow the real one.
            Owned::Always
        } else if name == b"x-forwarded-host" || name == b"x-real-ip" {
            Owned::FromUntrusted
        } else {
            Owned::No
        };
    }
    Owned::No
}

/// All values of a header joined with ", " (several header lines are one list).
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let parts: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the
/// right-most address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    if !trusted(peer, proxies) {
        return peer;
    }
    let Some(list) = joined(headers, &X_FORWARDED_FOR) else {
        return peer;
    };
    let mut last = peer;
    for hop in list.rsplit(',').map(str::trim) {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted(ip, proxies) => last = ip,
            Ok(ip) => return ip,
            // Garbage from further left cannot be trusted: stop at what we know.
            Err(_) => return last,
        }
    }
    last
}

/// What the gateway itself says about a direct client: `X-Forwarded-For`,
/// `Forwarded` and `X-Forwarded-Proto` values for `peer` over `proto`.
fn own_values(peer: IpAddr, proto: &'static str) -> [HeaderValue; 3] {
    // The requests of a keep-alive connection come from one peer, and a worker
    // thread serves a connection's requests in turn: remembering the last peer
    // per thread formats the address about once per connection instead of three
    // times per request (benches/RESULTS.md has the cost).
    thread_local! {
        static LAST: RefCell<Option<(IpAddr, &'static str, [HeaderValue; 3])>> =
            const { RefCell::new(None) };
    }
    LAST.with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            return format_own(peer, proto);
        };
        match &*last {
            Some((ip, p, values)) if *ip == peer && *p == proto => values.clone(),
            _ => {
                let values = format_own(peer, proto);
                *last = Some((peer, proto, values.clone()));
                values
            }
        }
    })
}

fn format_own(peer: IpAddr, proto: &'static str) -> [HeaderValue; 3] {
    let addr = peer.to_string();
    let element = match peer {
        IpAddr::V4(_) => format!("for={addr};proto={proto}"),
        IpAddr::V6(_) => format!("for=\"[{addr}]\";proto={proto}"),
    };
    // Addresses and `http`/`https` are always valid header text.
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    [
        value(&addr),
        value(&element),
        HeaderValue::from_static(proto),
    ]
}

/// The forwarding headers to set on the upstream request. `proto` is `http` or
/// `https`.
///
/// Names come in their usual spelling as static text: that is what Pingora's
/// case-preserving header map keeps for the wire without copying (given a
/// `HeaderName`, it would look up and copy a spelling for each).
pub fn forwarding_headers(
    headers: &HeaderMap,
    peer: IpAddr,
    proto: &'static str,
    proxies: &[IpNet],
) -> [(&'static str, HeaderValue); 3] {
    let [xff, fwd, xfp] = own_values(peer, proto);
    if !trusted(peer, proxies) {
        return [
            ("X-Forwarded-For", xff),
            ("Forwarded", fwd),
            ("X-Forwarded-Proto", xfp),
        ];
    }
    // A trusted proxy's values are kept, ours appended.
    let extend = |name: &HeaderName, ours: HeaderValue| match joined(headers, name) {
        Some(theirs) => {
            let both = format!("{theirs}, {}", ours.to_str().unwrap_or_default());
            HeaderValue::from_str(&both).unwrap_or(ours)
        }
        None => ours,
    };
    let xfp = joined(headers, &X_FORWARDED_PROTO)
        .and_then(|v| HeaderValue::from_str(&v).ok())
        .unwrap_or(xfp);
    [
        ("X-Forwarded-For", extend(&X_FORWARDED_FOR, xff)),
        ("Forwarded", extend(&FORWARDED, fwd)),
        ("X-Forwarded-Proto", xfp),
    ]
}

/// Whether a response header is hop-by-hop in itself (RFC 9110 §7.6.1 and
/// §11.7.1, plus the `Keep-Alive` / `Proxy-Connection` of HTTP/1.0 peers).
/// `Connection` is not listed: Pingora writes its own on HTTP/1 (replacing the
/// upstream's) and drops it on HTTP/2. Transfer-Encoding and Content-Length are
/// framing, which Pingora redoes itself.
fn fixed_hop_by_hop(name: &HeaderName) -> bool {
    match *name {
        header::TE | header::TRAILER | header::UPGRADE | header::PROXY_AUTHENTICATE => true,
        _ => matches!(name.as_str(), "keep-alive" | "proxy-connection"),
    }
}

/// The hop-by-hop headers of an upstream response to drop before it goes to the
/// client: the fixed ones plus those named in `Connection`.
///
/// The request side needs no such pass: Pingora strips a request's hop-by-hop
/// headers itself (its standard upstream request policy). One pass over the
/// names, and no allocation unless more than four are present: upstream
/// responses carry `Connection: keep-alive` almost always, which names nothing
/// to remove here.
pub fn response_hop_by_hop(headers: &HeaderMap) -> SmallVec<[HeaderName; 4]> {
    let mut out: SmallVec<[HeaderName; 4]> = SmallVec::new();
    let mut has_connection = false;
    for name in headers.keys() {
        if *name == header::CONNECTION {
            has_connection = true;
        } else if fixed_hop_by_hop(name) {
            out.push(name.clone());
        }
    }
    if !has_connection {
        return out;
    }
    for v in headers.get_all(header::CONNECTION) {
        for token in v.to_str().unwrap_or_default().split(',').map(str::trim) {
            // `keep-alive`, the usual token, names a header the first pass covers.
            if token.is_empty() || token.eq_ignore_ascii_case("keep-alive") {
                continue;
            }
            let named = |n: &HeaderName| n.as_str().eq_ignore_ascii_case(token);
            let framing = ["transfer-encoding", "content-length", "connection"]
                .iter()
                .any(|f| f.eq_ignore_ascii_case(token));
            // `contains_key(&str)` looks up without building a name.
            if framing || out.iter().any(named) || !headers.contains_key(token) {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                out.push(name);
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(*n, HeaderValue::from_static(v));
        }
        m
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn gateway_owned_names_in_every_spelling() {
        let of = |n: &str| owned(&HeaderName::from_bytes(n.as_bytes()).unwrap());
        for name in [
            "X-Consumer-Id",
            "x-consumer-scopes",
            "X_Consumer_Id",
            "X_CONSUMER_SCOPES",
            "x-consumer_id",
            "X_Consumer-Scopes",
            "x-consumer-anything",
            "X_Forwarded_For",
            "x-forwarded_proto",
            "X_Forwarded-Host",
            "X_Real_IP",
            "x_real-ip",
        ] {
            assert_eq!(of(name), Owned::Always, "{name}");
        }
        for name in ["X-Real-IP", "x-forwarded-host", "X-FORWARDED-HOST"] {
            assert_eq!(of(name), Owned::FromUntrusted, "{name}");
        }
        for name in [
            "X-Forwarded-For",
            "x-forwarded-proto",
            "Forwarded",
            "X-Consumers",
            "X-Consumer",
            "x.consumer.id",
            "X-Real-IPs",
            "X_Forwarded_Fo",
            "X-Request-Id",
            "X_Other",
            "Host",
            "x",
        ] {
            assert_eq!(of(name), Owned::No, "{name}");
        }
        assert!(Owned::Always > Owned::FromUntrusted && Owned::FromUntrusted > Owned::No);
    }

    #[test]
    fn untrusted_clients_cannot_spoof() {
        let headers = h(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        let proxies = [IpNet::parse("10.0.0.0/8").unwrap()];
        assert_eq!(
            client_ip(ip("203.0.113.9"), &headers, &proxies),
            ip("203.0.113.9")
        );
        let set = forwarding_headers(&headers, ip("203.0.113.9"), "http", &proxies);
        assert_eq!(set[0].1, "203.0.113.9");
        assert_eq!(set[1].1, "for=203.0.113.9;proto=http");
        assert_eq!(set[2].1, "http");
    }

    #[test]
    fn trusted_proxies_are_appended_to() {
        let headers = h(&[
            ("x-forwarded-for", "198.51.100.7, 10.1.1.1"),
            ("x-forwarded-proto", "https"),
        ]);
        let proxies = [
            IpNet::parse("10.0.0.0/8").unwrap(),
            IpNet::parse("127.0.0.1").unwrap(),
        ];
        assert_eq!(
            client_ip(ip("127.0.0.1"), &headers, &proxies),
            ip("198.51.100.7")
        );
        let set = forwarding_headers(&headers, ip("127.0.0.1"), "http", &proxies);
        assert_eq!(set[0].1, "198.51.100.7, 10.1.1.1, 127.0.0.1");
        assert_eq!(set[2].1, "https");
        let v6 = forwarding_headers(&HeaderMap::new(), ip("::1"), "http", &[]);
        assert_eq!(v6[1].1, "for=\"[::1]\";proto=http");
    }

    #[test]
    fn the_per_thread_cache_follows_the_peer_and_the_protocol() {
        let none = HeaderMap::new();
        for (peer, proto) in [
            ("192.0.2.1", "http"),
            ("192.0.2.2", "http"),
            ("192.0.2.2", "https"),
            ("192.0.2.1", "http"),
        ] {
            let set = forwarding_headers(&none, ip(peer), proto, &[]);
            assert_eq!(set[0].1, peer);
            assert_eq!(set[1].1, format!("for={peer};proto={proto}").as_str());
            assert_eq!(set[2].1, proto);
        }
    }

    #[test]
    fn response_hop_by_hop_names() {
        let headers = h(&[
            (
                "connection",
                "keep-alive, X-Secret, transfer-encoding, Connection",
            ),
            ("keep-alive", "timeout=5"),
            ("x-secret", "s"),
            ("upgrade", "h2c"),
            ("proxy-authenticate", "Basic"),
            ("transfer-encoding", "chunked"),
            ("x-kept", "k"),
        ]);
        let names: Vec<_> = response_hop_by_hop(&headers)
            .iter()
            .map(|n| n.as_str().to_owned())
            .collect();
        assert_eq!(
            names,
            ["keep-alive", "upgrade", "proxy-authenticate", "x-secret"]
        );
        // Named but absent, or named twice: nothing extra.
        let twice = h(&[
            ("connection", "x-gone, X-Secret, x-secret"),
            ("x-secret", "s"),
        ]);
        assert_eq!(response_hop_by_hop(&twice).as_slice(), ["x-secret"]);
        assert!(response_hop_by_hop(&h(&[("x-kept", "k")])).is_empty());
        assert!(response_hop_by_hop(&h(&[("connection", "keep-alive")])).is_empty());
    }
}
