//! One attempt as Pingora's peer: the target's address and timeouts, and its
//! group's TLS and HTTP version. Everything TLS needs was read and parsed when the
//! configuration loaded; here it is only shared (`Arc`s) into the peer.

use crate::upstream::attempt::Attempt;
use crate::upstream::UpstreamGroup;
use pingora::prelude::HttpPeer;
use pingora::upstreams::peer::HttpUpstreamRequestPolicy;

/// Concurrent requests on one HTTP/2 connection to a target (Pingora's default
/// allows a single one, which would open a connection per concurrent request); a
/// server that allows fewer says so in its settings, and Pingora keeps to that.
const H2_STREAMS_PER_CONNECTION: usize = 100;

pub(super) fn peer(group: &UpstreamGroup, attempt: &Attempt) -> HttpPeer {
    let tls = group.config.tls.as_deref();
    let name = group
        .targets
        .get(attempt.index)
        .map_or_else(String::new, |t| t.server_name.clone());
    let mut peer = HttpPeer::new(attempt.address, tls.is_some(), name);
    // Pingora's pool key has the address, SNI, verify flags and the client
    // certificate's serial, but not the CA or the HTTP version.
    peer.group_key = group.connection_key;
    if let Some(tls) = tls {
        peer.client_cert_key = tls.client_key.clone();
    }
    let o = &mut peer.options;
    o.connection_timeout = Some(attempt.connect_timeout);
    o.read_timeout = Some(attempt.read_timeout);
    o.write_timeout = attempt.write_timeout;
    o.idle_timeout = Some(attempt.idle_timeout);
    // Pingora strips the request's hop-by-hop headers (the fixed ones and those
    // `Connection` names, refusing nominations of Host or X-Forwarded-*) before
    // `upstream_request_filter`; upgrades are not proxied, so `Upgrade` goes too.
    o.http_upstream_request_policy = HttpUpstreamRequestPolicy::deny_upgrades();
    if let Some(tls) = tls {
        o.verify_cert = tls.settings.verify;
        o.ca = tls.ca.clone();
    }
    if group.config.http2 {
        // Over TLS, h2 is offered by ALPN with HTTP/1.1 as the fallback. Without
        // TLS nothing negotiates, so h2 is spoken from the first byte (h2c).
        let lowest = if tls.is_some() { 1 } else { 2 };
        o.set_http_version(2, lowest);
        o.max_h2_streams = H2_STREAMS_PER_CONNECTION;
    }
    peer
}
