//! Validation and normalisation of the `match` fields (path patterns, hosts)
//! and of the request `Host` header at lookup time.

use std::net::{IpAddr, Ipv6Addr};

/// One segment of a parsed path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    Literal(Box<str>),
    Param(Box<str>),
}

/// Parses a path pattern into segments; a trailing slash is dropped so `/a/`
/// and `/a` are the same pattern, and `/` has no segments.
///
/// Rejects anything that could never match a normalised request path
/// (empty, `//`, dot segments, `?`, `#`, whitespace) so that a typo fails at
/// load time instead of silently never matching. `allow_params` is false for
/// prefixes, which may not contain `{}` at all.
pub(super) fn parse_path(pattern: &str, allow_params: bool) -> Result<Vec<Segment>, String> {
    if pattern.is_empty() {
        return Err("must not be empty".into());
    }
    let Some(rest) = pattern.strip_prefix('/') else {
        return Err(format!("`{pattern}` must start with '/'"));
    };
    if let Some(c) = pattern
        .chars()
        .find(|c| matches!(c, '?' | '#') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "`{pattern}` contains {c:?}, which a request path never does"
        ));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut segments = Vec::new();
    for seg in rest.split('/') {
        segments.push(parse_segment(pattern, seg, allow_params, &segments)?);
    }
    Ok(segments)
}

fn parse_segment(
    pattern: &str,
    seg: &str,
    allow_params: bool,
    before: &[Segment],
) -> Result<Segment, String> {
    if seg.is_empty() {
        return Err(format!("`{pattern}` contains an empty segment (`//`)"));
    }
    if seg == "." || seg == ".." {
        return Err(format!("`{pattern}` contains a dot segment `{seg}`"));
    }
    if !seg.contains(['{', '}']) {
        return Ok(Segment::Literal(seg.into()));
    }
    if !allow_params {
        return Err(format!(
            "`{pattern}`: a prefix cannot contain parameters ('{{' or '}}'); use `path:` for `{{name}}` segments"
        ));
    }
    if !braces_balanced(pattern) {
        return Err(format!("`{pattern}` has unbalanced braces"));
    }
    let name = seg
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .filter(|n| !n.contains(['{', '}']))
        .ok_or_else(|| {
            format!("`{pattern}`: parameter `{seg}` must be a whole segment, like `/{{name}}/`")
        })?;
    if name.is_empty() {
        return Err(format!("`{pattern}` has an empty parameter name `{{}}`"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "`{pattern}`: parameter name `{name}` may only contain ASCII letters, digits, '_' and '-'"
        ));
    }
    let duplicate = before
        .iter()
        .any(|s| matches!(s, Segment::Param(n) if &**n == name));
    if duplicate {
        return Err(format!("`{pattern}` uses parameter `{{{name}}}` twice"));
    }
    Ok(Segment::Param(name.into()))
}

/// True if every `{` is closed by a `}` before the next `{` (no nesting).
fn braces_balanced(s: &str) -> bool {
    let mut open = false;
    for c in s.chars() {
        match c {
            '{' if open => return false,
            '{' => open = true,
            '}' if !open => return false,
            '}' => open = false,
            _ => {}
        }
    }
    !open
}

/// A validated, normalised virtual host. Ordered names first, then IPs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum HostKey {
    /// Lowercased DNS name without a trailing dot.
    Name(Box<str>),
    /// IP addresses are compared as addresses, so `[::1]` == `[0::1]`.
    Ip(IpAddr),
}

/// Validates a configured `host`: a DNS name (letters, digits, '-', '_' in
/// dot-separated labels of at most 63 bytes, at most 253 bytes in total,
/// one optional trailing dot), an IPv4 address or an IPv6 address with or
/// without brackets. Ports and wildcards are rejected: matching ignores the
/// request's port, so a port here would be misleading.
pub(super) fn parse_host(host: &str) -> Result<HostKey, String> {
    if host.is_empty() {
        return Err("must not be empty; omit `host` to match any host".into());
    }
    if host.contains('*') {
        return Err(format!(
            "`{host}`: wildcard hosts are not supported; omit `host` to match any host"
        ));
    }
    let unbracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    if let Some(ip) = unbracketed
        .unwrap_or(host)
        .parse::<IpAddr>()
        .ok()
        .filter(|ip| {
            // Brackets are only valid around IPv6.
            unbracketed.is_none() || ip.is_ipv6()
        })
    {
        return Ok(HostKey::Ip(ip));
    }
    if host.contains(':') {
        return Err(format!(
            "`{host}` must not include a port (matching ignores the port) and is not an IP address"
        ));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!("`{host}` is not a valid host name or IP address"));
    }
    Ok(HostKey::Name(name.to_ascii_lowercase().into()))
}

/// Longest host name a request can usefully carry (253 for DNS names; IPv6
/// text is shorter); longer values cannot match any configured host.
pub(super) const MAX_HOST: usize = 253;

/// The request `Host` value reduced to what routes are keyed by, without
/// allocating: a borrowed name lowercased into `buf`, or an IP address.
pub(super) enum RequestHost<'b> {
    Name(&'b str),
    Ip(IpAddr),
}

/// Strips a `:port` (also after `[v6]`), brackets and one trailing dot, and
/// lowercases names into `buf`. Returns `None` for values that cannot match
/// any configured host.
pub(super) fn request_host<'b>(raw: &str, buf: &'b mut [u8; MAX_HOST]) -> Option<RequestHost<'b>> {
    let raw = raw.trim();
    let host = if let Some(v6) = raw.strip_prefix('[') {
        let (inner, after) = v6.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return inner
            .parse::<Ipv6Addr>()
            .ok()
            .map(|a| RequestHost::Ip(a.into()));
    } else if raw.bytes().filter(|&b| b == b':').count() > 1 {
        // A bare IPv6 address (not valid in Host, but unambiguous).
        raw
    } else {
        raw.split_once(':').map_or(raw, |(h, _port)| h)
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(RequestHost::Ip(ip));
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let dst = buf.get_mut(..host.len())?;
    for (d, s) in dst.iter_mut().zip(host.bytes()) {
        *d = s.to_ascii_lowercase();
    }
    // ASCII lowercasing keeps valid UTF-8 valid, so this does not fail.
    std::str::from_utf8(dst).ok().map(RequestHost::Name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn host_of(raw: &str) -> Option<String> {
        let mut buf = [0; MAX_HOST];
        match request_host(raw, &mut buf)? {
            RequestHost::Name(n) => Some(n.to_string()),
            RequestHost::Ip(ip) => Some(format!("ip:{ip}")),
        }
    }

    #[test]
    fn request_host_normalisation() {
        assert_eq!(host_of("API.Example.com:8443").unwrap(), "api.example.com");
        assert_eq!(host_of("api.example.com.").unwrap(), "api.example.com");
        assert_eq!(host_of("[::1]:8080").unwrap(), "ip:::1");
        assert_eq!(host_of("[0:0::1]").unwrap(), "ip:::1");
        assert_eq!(host_of("::1").unwrap(), "ip:::1");
        assert_eq!(host_of("10.0.0.1:80").unwrap(), "ip:10.0.0.1");
        assert_eq!(host_of("[::1]x"), None);
        assert_eq!(host_of(&"a".repeat(300)), None);
    }

    #[test]
    fn configured_hosts() {
        assert_eq!(
            parse_host("Api.Example.COM.").unwrap(),
            HostKey::Name("api.example.com".into())
        );
        assert!(matches!(parse_host("[::1]").unwrap(), HostKey::Ip(ip) if ip.is_loopback()));
        assert!(matches!(parse_host("::1").unwrap(), HostKey::Ip(_)));
        assert!(matches!(parse_host("127.0.0.1").unwrap(), HostKey::Ip(_)));
        for bad in [
            "",
            "a..b",
            "-a.com",
            "a b",
            "example.com:80",
            "*.example.com",
            "[1.2.3.4]",
            "é.com",
        ] {
            assert!(parse_host(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse_host(&format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn path_segments() {
        use Segment::*;
        assert_eq!(parse_path("/", true).unwrap(), vec![]);
        assert_eq!(
            parse_path("/a/{id}/", true).unwrap(),
            vec![Literal("a".into()), Param("id".into())]
        );
        assert_eq!(
            parse_path("/api/", false).unwrap(),
            vec![Literal("api".into())]
        );
    }
}
