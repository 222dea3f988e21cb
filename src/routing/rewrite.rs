//! Upstream path rewriting for a matched route.

use std::fmt;

use super::Params;

/// How to turn the request path into the upstream path. The query string is
/// always carried over unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// Removes this prefix (which starts with '/'; a trailing '/' is
    /// ignored) at a segment boundary: `/api` turns `/api/accounts/1` into
    /// `/accounts/1` and `/api` into `/`; paths not under it are unchanged.
    StripPrefix(String),
    /// Replaces the path with a template filled from the route's captures.
    Template(PathTemplate),
}

impl Rewrite {
    /// The upstream path and query: the rewritten `path`, plus `?query` if
    /// `query` is `Some` and non-empty. `path` is the normalised request path
    /// without its query; `params` are the captures of the matched route.
    pub fn apply(&self, path: &str, params: &Params<'_, '_>, query: Option<&str>) -> String {
        let query = query.filter(|q| !q.is_empty());
        let extra = query.map_or(0, |q| q.len() + 1);
        let mut out = match self {
            Rewrite::StripPrefix(prefix) => {
                let rest = strip_prefix(path, prefix);
                let mut out = String::with_capacity(rest.len().max(1) + extra);
                out.push_str(if rest.is_empty() { "/" } else { rest });
                out
            }
            Rewrite::Template(template) => template.render(params, extra),
        };
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        out
    }
}

/// What remains of `path` after `prefix` at a segment boundary, or `path`.
fn strip_prefix<'a>(path: &'a str, prefix: &str) -> &'a str {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => path,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Param(String),
}

/// A path template such as `/v1/accounts/{id}/statement`. `{name}` may stand
/// anywhere (also inside a segment, e.g. `/files/{id}.pdf`) and is replaced
/// by the captured segment as received (still percent-encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    source: String,
    parts: Vec<Part>,
}

impl PathTemplate {
    /// Parses `template`, checking it only uses `{name}`s that the route's
    /// path captures (`route_params`, e.g. from
    /// [`PathPattern::param_names`](super::PathPattern::param_names)).
    /// Errors on: not starting with '/', `?` or `#` (the query is carried
    /// over separately), whitespace, unbalanced or nested braces, an empty
    /// name, or an unknown name.
    pub fn parse(template: &str, route_params: &[&str]) -> Result<Self, String> {
        if !template.starts_with('/') {
            return Err(format!("rewrite template `{template}` must start with '/'"));
        }
        if let Some(c) = template
            .chars()
            .find(|c| matches!(c, '?' | '#') || c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "rewrite template `{template}` must not contain {c:?} (the query string is carried over as is)"
            ));
        }
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            let literal_end = rest.find(['{', '}']).unwrap_or(rest.len());
            let (literal, tail) = rest.split_at(literal_end);
            if !literal.is_empty() {
                parts.push(Part::Literal(literal.to_string()));
            }
            rest = tail;
            let Some(after_open) = rest.strip_prefix('{') else {
                if rest.is_empty() {
                    break;
                }
                return Err(format!(
                    "rewrite template `{template}` has an unmatched '}}'"
                ));
            };
            let Some((name, tail)) = after_open.split_once('}') else {
                return Err(format!(
                    "rewrite template `{template}` has an unclosed '{{'"
                ));
            };
            if name.contains('{') {
                return Err(format!("rewrite template `{template}` has nested braces"));
            }
            if name.is_empty() {
                return Err(format!("rewrite template `{template}` has an empty `{{}}`"));
            }
            if !route_params.contains(&name) {
                let known = if route_params.is_empty() {
                    "none".to_string()
                } else {
                    route_params.join(", ")
                };
                return Err(format!(
                    "rewrite template `{template}` uses `{{{name}}}`, which the route's path does not capture (captures: {known})"
                ));
            }
            parts.push(Part::Param(name.to_string()));
            rest = tail;
        }
        Ok(PathTemplate {
            source: template.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    fn render(&self, params: &Params<'_, '_>, extra: usize) -> String {
        let mut out = String::with_capacity(self.source.len() + extra + 16);
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                // Parsing checked the name against the route; a mismatched
                // `Params` (programming error) renders as an empty segment.
                Part::Param(name) => out.push_str(params.get(name).unwrap_or_default()),
            }
        }
        out
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::routing::{Lookup, PathPattern, RouteSpec, RouteTable};

    fn strip(prefix: &str, path: &str, query: Option<&str>) -> String {
        Rewrite::StripPrefix(prefix.into()).apply(path, &Params::empty(), query)
    }

    #[test]
    fn strip_prefix_cases() {
        assert_eq!(strip("/api", "/api/accounts/1", None), "/accounts/1");
        assert_eq!(strip("/api/", "/api/accounts/1", None), "/accounts/1");
        assert_eq!(strip("/api", "/api", None), "/");
        assert_eq!(strip("/api", "/api/", None), "/");
        assert_eq!(strip("/api", "/apix/1", None), "/apix/1");
        assert_eq!(strip("/api", "/other", None), "/other");
        assert_eq!(strip("/", "/a/b", None), "/a/b");
        assert_eq!(strip("/api", "/api/x", Some("a=1&b=2")), "/x?a=1&b=2");
        assert_eq!(strip("/api", "/api", Some("a=1")), "/?a=1");
        assert_eq!(strip("/api", "/api/x", Some("")), "/x");
    }

    #[test]
    fn template_substitutes_captures_and_keeps_query() {
        let spec = RouteSpec {
            host: None,
            methods: None,
            pattern: PathPattern::Exact("/api/accounts/{id}/tx/{tx}".into()),
        };
        let names = spec.pattern.param_names();
        assert_eq!(names, ["id", "tx"]);
        let table = RouteTable::build(vec![(spec.clone(), ())]).unwrap();
        let Lookup::Found { params, .. } =
            table.find(None, &http::Method::GET, "/api/accounts/42/tx/a%2Fb")
        else {
            panic!("expected a match");
        };
        let t = PathTemplate::parse("/v1/accounts/{id}/statement/{tx}.json", &names).unwrap();
        assert_eq!(t.as_str(), "/v1/accounts/{id}/statement/{tx}.json");
        let r = Rewrite::Template(t);
        assert_eq!(
            r.apply("/ignored", &params, None),
            "/v1/accounts/42/statement/a%2Fb.json"
        );
        assert_eq!(
            r.apply("/ignored", &params, Some("from=2024-01-01")),
            "/v1/accounts/42/statement/a%2Fb.json?from=2024-01-01"
        );
        assert_eq!(
            r.apply("/ignored", &params, Some("")),
            "/v1/accounts/42/statement/a%2Fb.json"
        );
        let fixed = Rewrite::Template(PathTemplate::parse("/static", &[]).unwrap());
        assert_eq!(fixed.apply("/x", &Params::empty(), Some("q")), "/static?q");
    }

    #[test]
    fn template_errors() {
        let ok = ["id"];
        for (bad, why) in [
            ("v1/{id}", "start with '/'"),
            ("/v1/{id", "unclosed"),
            ("/v1/id}", "unmatched"),
            ("/v1/{{id}}", "nested"),
            ("/v1/{}", "empty"),
            ("/v1/{other}", "does not capture"),
            ("/v1/{id}?x=1", "must not contain"),
            ("/v1/ {id}", "must not contain"),
        ] {
            let err = PathTemplate::parse(bad, &ok).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
