//! The `tracing:` section: its file type and validation.

use super::export::ExportSettings;
use crate::units::DurationStr;
use crate::yaml::{typed, Errors};
use serde::Deserialize;
use serde_yaml::Value;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TracingFile {
    #[serde(default)]
    otlp_endpoint: Option<String>,
    #[serde(default)]
    sample_ratio: Option<f64>,
    #[serde(default)]
    service_name: Option<String>,
    #[serde(default)]
    export_timeout: Option<DurationStr>,
}

/// Validated `tracing:` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// Where spans go; None: propagate trace context only.
    pub endpoint: Option<Endpoint>,
    /// The share of requests without a sampled parent that are sampled.
    pub sample_ratio: f64,
    pub service_name: String,
    /// Longest one export request may take.
    pub export_timeout: Duration,
}

impl TracingConfig {
    pub fn export_settings(&self) -> Option<ExportSettings> {
        Some(ExportSettings {
            endpoint: self.endpoint.clone()?,
            service_name: self.service_name.clone(),
            timeout: self.export_timeout,
        })
    }
}

/// An OTLP/HTTP endpoint (`http://host:port/path` or `https://...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://`: the collector's certificate is checked against the system's
    /// trusted roots.
    pub tls: bool,
    /// `host[:port]` as written.
    pub authority: String,
    pub path: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.path)
    }
}

const DEFAULT_SERVICE_NAME: &str = "fingate";
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads `tracing:`; None when the section is absent (tracing off).
pub fn tracing(value: Value, errors: &mut Errors) -> Option<TracingConfig> {
    if value.is_null() {
        return None;
    }
    let file: TracingFile = typed(value, "tracing", errors)?;
    let endpoint = file
        .otlp_endpoint
        .as_deref()
        .and_then(|text| endpoint(text, errors));
    let sample_ratio = file.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        errors.push((
            "tracing.sample_ratio".into(),
            format!("{sample_ratio} is out of range: use 0 (none) to 1 (all)"),
        ));
    }
    let service_name = file
        .service_name
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.into());
    if service_name.is_empty() || service_name.len() > 128 {
        errors.push((
            "tracing.service_name".into(),
            "use 1 to 128 characters".into(),
        ));
    }
    let export_timeout = file.export_timeout.map_or(DEFAULT_EXPORT_TIMEOUT, |d| d.0);
    if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&export_timeout) {
        errors.push(("tracing.export_timeout".into(), "use 100ms to 60s".into()));
    }
    Some(TracingConfig {
        endpoint,
        sample_ratio,
        service_name,
        export_timeout,
    })
}

fn endpoint(text: &str, errors: &mut Errors) -> Option<Endpoint> {
    let mut bad = |m: String| {
        errors.push(("tracing.otlp_endpoint".into(), m));
        None
    };
    let Ok(uri) = text.parse::<http::Uri>() else {
        return bad(format!(
            "{text:?} is not a URL: expected e.g. http://127.0.0.1:4318/v1/traces"
        ));
    };
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            let expected = "an http:// or https:// URL, e.g. http://127.0.0.1:4318/v1/traces";
            return bad(format!("{text:?}: expected {expected}"));
        }
    };
    let Some(authority) = uri.authority() else {
        return bad(format!("{text:?} has no host"));
    };
    if authority.as_str().contains('@') {
        return bad("credentials in the URL are not supported".into());
    }
    let path = match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("/") | Some("") => {
            return bad(format!(
                "{text:?} has no path: OTLP/HTTP collectors take traces at /v1/traces"
            ))
        }
        Some(p) => p.to_owned(),
    };
    Some(Endpoint {
        tls,
        authority: authority.as_str().to_owned(),
        path,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> (Option<TracingConfig>, Errors) {
        let mut errors = Errors::new();
        let value: Value = serde_yaml::from_str(yaml).unwrap();
        (tracing(value, &mut errors), errors)
    }

    #[test]
    fn defaults_and_a_full_section() {
        let (c, e) = check("{}");
        assert!(e.is_empty(), "{e:?}");
        let c = c.unwrap();
        assert_eq!((c.endpoint, c.sample_ratio), (None, 1.0));
        assert_eq!(c.service_name, "fingate");
        let (c, e) = check("{ otlp_endpoint: 'http://[::1]:4318/v1/traces', sample_ratio: 0.1, service_name: gw, export_timeout: 2s }");
        assert!(e.is_empty(), "{e:?}");
        let c = c.unwrap();
        let ep = c.endpoint.unwrap();
        assert_eq!(
            (ep.tls, ep.authority.as_str(), ep.path.as_str()),
            (false, "[::1]:4318", "/v1/traces")
        );
        assert_eq!(ep.to_string(), "http://[::1]:4318/v1/traces");
        assert_eq!(
            (c.sample_ratio, c.export_timeout),
            (0.1, Duration::from_secs(2))
        );
        let (c, e) = check("{ otlp_endpoint: 'https://collector.example/v1/traces' }");
        assert!(e.is_empty(), "{e:?}");
        let ep = c.unwrap().endpoint.unwrap();
        assert!(ep.tls);
        assert_eq!(ep.to_string(), "https://collector.example/v1/traces");
    }

    #[test]
    fn bad_values_are_named() {
        for (yaml, path, says) in [
            (
                "{ sample_ratio: 1.5 }",
                "tracing.sample_ratio",
                "out of range",
            ),
            (
                "{ sample_ratio: lots }",
                "tracing.sample_ratio",
                "invalid type",
            ),
            (
                "{ otlp_endpoint: 'grpc://c:4317' }",
                "tracing.otlp_endpoint",
                "http://",
            ),
            (
                "{ otlp_endpoint: 'http://c:4318' }",
                "tracing.otlp_endpoint",
                "no path",
            ),
            ("{ service_name: '' }", "tracing.service_name", "1 to 128"),
            ("{ export_timeout: 1ms }", "tracing.export_timeout", "100ms"),
            ("{ endpoint: x }", "tracing.endpoint", "unknown field"),
        ] {
            let (_, e) = check(yaml);
            assert_eq!(e.len(), 1, "{yaml}: {e:?}");
            assert_eq!(e[0].0, path, "{yaml}");
            assert!(e[0].1.contains(says), "{yaml}: {}", e[0].1);
        }
    }
}
