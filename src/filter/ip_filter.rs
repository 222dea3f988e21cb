//! `ip_filter`: lets a route be reached only from listed networks, or not from
//! listed ones, judged on the client address (after `trusted_proxies`).
//!
//! A `deny` match refuses whatever `allow` says. With a non-empty `allow`, an
//! address in none of its networks is refused too. A request whose client address
//! is unknown (no IP peer) passes only when `allow` is empty. Refusals are 403
//! `ip_forbidden`; they do not say which list matched.

use super::{Filter, FilterError, Flow, HeaderEdit, OptionError};
use crate::context::RequestContext;
use crate::edge::limits::{IpNet, IpSet};
use crate::error::{ErrorCode, GatewayError};
use async_trait::async_trait;
use serde::Deserialize;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IpFilterOptions {
    /// Networks or addresses allowed; empty: every address not denied.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Networks or addresses refused, whatever `allow` says.
    #[serde(default)]
    pub deny: Vec<String>,
}

#[derive(Debug)]
pub struct IpFilter {
    allow: IpSet,
    deny: IpSet,
}

fn networks(list: &[String], key: &str, errors: &mut Vec<OptionError>) -> Vec<IpNet> {
    list.iter()
        .enumerate()
        .filter_map(|(i, text)| {
            IpNet::parse(text)
                .map_err(|e| errors.push(OptionError::new(format!("{key}[{i}]"), e)))
                .ok()
        })
        .collect()
}

impl IpFilter {
    pub fn new(options: &IpFilterOptions) -> Result<Self, Vec<OptionError>> {
        let mut errors = Vec::new();
        if options.allow.is_empty() && options.deny.is_empty() {
            errors.push(OptionError::new(
                "",
                "list networks in `allow` and/or `deny`, e.g. { allow: [10.0.0.0/8] }",
            ));
        }
        let allow = networks(&options.allow, "allow", &mut errors);
        let deny = networks(&options.deny, "deny", &mut errors);
        if errors.is_empty() {
            Ok(Self {
                allow: IpSet::new(&allow),
                deny: IpSet::new(&deny),
            })
        } else {
            Err(errors)
        }
    }

    /// Whether a request from `ip` may pass.
    pub fn admits(&self, ip: Option<IpAddr>) -> bool {
        match ip {
            Some(ip) if self.deny.contains(ip) => false,
            Some(ip) => self.allow.is_empty() || self.allow.contains(ip),
            None => self.allow.is_empty(),
        }
    }
}

#[async_trait]
impl Filter for IpFilter {
    async fn request(
        &self,
        _req: &mut dyn HeaderEdit,
        ctx: &mut RequestContext,
    ) -> Result<Flow, FilterError> {
        if self.admits(ctx.client_ip) {
            return Ok(Flow::Continue);
        }
        Ok(Flow::Reject(GatewayError::new(
            ErrorCode::IpForbidden,
            "this route is not available from your network",
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn filter(allow: &[&str], deny: &[&str]) -> IpFilter {
        let list = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        IpFilter::new(&IpFilterOptions {
            allow: list(allow),
            deny: list(deny),
        })
        .unwrap()
    }

    fn admits(f: &IpFilter, ip: &str) -> bool {
        f.admits(Some(ip.parse().unwrap()))
    }

    #[test]
    fn allow_lists_networks_and_everything_else_is_refused() {
        let f = filter(&["10.0.0.0/8", "2001:db8::/32"], &[]);
        assert!(admits(&f, "10.1.2.3"));
        assert!(admits(&f, "2001:db8::7"));
        assert!(admits(&f, "::ffff:10.1.2.3"), "an IPv4-mapped peer");
        assert!(!admits(&f, "192.0.2.1"));
        assert!(!admits(&f, "2001:db9::7"));
        assert!(!f.admits(None), "no client address, and an allow list");
    }

    #[test]
    fn deny_wins_over_allow() {
        let f = filter(&["10.0.0.0/8"], &["10.6.6.6", "::ffff:10.7.0.0/112"]);
        assert!(admits(&f, "10.1.1.1"));
        assert!(!admits(&f, "10.6.6.6"));
        assert!(!admits(&f, "::ffff:10.6.6.6"));
        let only_deny = filter(&[], &["203.0.113.0/24"]);
        assert!(admits(&only_deny, "198.51.100.1"));
        assert!(!admits(&only_deny, "203.0.113.9"));
        assert!(only_deny.admits(None));
    }

    #[test]
    fn options_are_checked_with_their_position() {
        let e = IpFilter::new(&IpFilterOptions::default()).unwrap_err();
        assert_eq!(e[0].path, "");
        let bad = IpFilterOptions {
            allow: vec!["10.0.0.0/8".into(), "ten".into()],
            deny: vec!["10.0.0.1/8".into()],
        };
        let e = IpFilter::new(&bad).unwrap_err();
        let paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["allow[1]", "deny[0]"]);
    }
}
