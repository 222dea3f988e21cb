//! The audit log: one JSON line per administrative action, whatever changed the
//! gateway's state and however it was asked (admin API, SIGHUP, `--watch`).
//!
//! ```json
//! {"timestamp":"2026-12-07T10:00:00.123456Z","level":"INFO","audit":true,"action":"consumer_added","target":"partner-bank","result":"ok","via":"admin_api","source":"10.0.0.7"}
//! ```
//!
//! Lines go to stdout with the other logs, marked `"audit": true` so a pipeline
//! can route them to their own store. They are written directly, not through the
//! level filter: `FINGATE_LOG=warn` quiets the gateway, never its audit trail.
//! A line holds names and codes only — never a password, key, token or message
//! text (which may quote what was sent).
//!
//! An admin handler records its action once it knows the outcome, e.g. a token
//! revocation (`origin` is what the admin listener made for the request):
//!
//! ```
//! use fingate::logging::audit::{Action, AdminAction, Origin, Outcome};
//! let origin = Origin::admin_api("10.0.0.7".parse().ok());
//! AdminAction {
//!     action: Action::TokenRevoked,
//!     target: "jti:0f3c…",          // or "sub:mobile-app"; never the token itself
//!     outcome: Outcome::Ok,        // or Outcome::Error("store_unavailable")
//!     origin,
//!     details: &[],
//! }
//! .record();
//! ```

use std::io::Write;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Reload,
    ConsumerAdded,
    ConsumerRemoved,
    CachePurged,
    TokenRevoked,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Reload => "reload",
            Action::ConsumerAdded => "consumer_added",
            Action::ConsumerRemoved => "consumer_removed",
            Action::CachePurged => "cache_purged",
            Action::TokenRevoked => "token_revoked",
        }
    }
}

/// How the action was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    AdminApi,
    Sighup,
    Watch,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::AdminApi => "admin_api",
            Via::Sighup => "sighup",
            Via::Watch => "watch",
        }
    }
}

/// Who asked: the channel and, over the admin API, the client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub via: Via,
    pub source: Option<IpAddr>,
}

impl Origin {
    pub fn admin_api(source: Option<IpAddr>) -> Self {
        Self {
            via: Via::AdminApi,
            source,
        }
    }
    pub const SIGHUP: Origin = Origin {
        via: Via::Sighup,
        source: None,
    };
    pub const WATCH: Origin = Origin {
        via: Via::Watch,
        source: None,
    };
}

/// How it ended: `ok`, or `error` with a code (an error code such as `exists` or
/// `invalid_config`; never free text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    Ok,
    Error(&'a str),
}

/// One administrative action.
#[derive(Debug, Clone)]
pub struct AdminAction<'a> {
    pub action: Action,
    /// What it acted on: a consumer's name, a cache prefix (`*` for all), the
    /// configuration file, a token's `jti` or a consumer's name for revocations.
    pub target: &'a str,
    pub outcome: Outcome<'a>,
    pub origin: Origin,
    /// Further facts, as numbers or plain names (e.g. `purged`, `hash`).
    pub details: &'a [(&'static str, serde_json::Value)],
}

impl AdminAction<'_> {
    /// Writes the audit line.
    pub fn record(&self) {
        let mut line = self.line(SystemTime::now());
        line.push('\n');
        let mut out = std::io::stdout().lock();
        // stdout closed: nothing sensible to do.
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }

    fn line(&self, now: SystemTime) -> String {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut time = crate::clock::rfc3339(since.as_secs());
        time.pop();
        let time = format!("{time}.{:06}Z", since.subsec_micros());
        let text = |s: &str| serde_json::Value::from(s).to_string();
        let mut line = format!(
            "{{\"timestamp\":\"{time}\",\"level\":\"INFO\",\"audit\":true,\"action\":\"{}\",\"target\":{},",
            self.action.as_str(),
            text(self.target),
        );
        match self.outcome {
            Outcome::Ok => line.push_str("\"result\":\"ok\""),
            Outcome::Error(code) => {
                line.push_str("\"result\":\"error\",\"reason\":");
                line.push_str(&text(code));
            }
        }
        line.push_str(",\"via\":\"");
        line.push_str(self.origin.via.as_str());
        line.push('"');
        if let Some(ip) = self.origin.source {
            line.push_str(&format!(",\"source\":\"{ip}\""));
        }
        for (name, value) in self.details {
            line.push_str(&format!(",{}:{value}", text(name)));
        }
        line.push('}');
        line
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object_with_every_field() {
        let details = [("purged", serde_json::Value::from(3))];
        let a = AdminAction {
            action: Action::CachePurged,
            target: "/api/\"fx\"\n",
            outcome: Outcome::Ok,
            origin: Origin::admin_api("192.0.2.9".parse().ok()),
            details: &details,
        };
        let line = a.line(UNIX_EPOCH + std::time::Duration::from_micros(1_500_000));
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["timestamp"], "1970-01-01T00:00:01.500000Z");
        assert_eq!(v["audit"], true);
        assert_eq!(v["action"], "cache_purged");
        assert_eq!(v["target"], "/api/\"fx\"\n");
        assert_eq!(v["result"], "ok");
        assert_eq!(v["via"], "admin_api");
        assert_eq!(v["source"], "192.0.2.9");
        assert_eq!(v["purged"], 3);
        let refused = AdminAction {
            outcome: Outcome::Error("invalid_config"),
            origin: Origin::SIGHUP,
            action: Action::Reload,
            details: &[],
            ..a
        };
        let v: serde_json::Value = serde_json::from_str(&refused.line(SystemTime::now())).unwrap();
        assert_eq!(
            (v["result"].as_str(), v["reason"].as_str()),
            (Some("error"), Some("invalid_config"))
        );
        assert!(v.get("source").is_none() && v["via"] == "sighup");
    }
}
