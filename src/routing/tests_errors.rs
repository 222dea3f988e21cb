//! Every `RouteError` case of `RouteTable::build`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::tests::{exact, prefix};
use super::*;

fn errors(routes: Vec<RouteSpec>) -> Vec<RouteError> {
    let routes = routes.into_iter().map(|r| (r, ())).collect();
    match RouteTable::build(routes) {
        Ok(_) => Vec::new(),
        Err(errors) => errors,
    }
}

/// Builds `[valid, spec]` and expects exactly one error, on index 1.
fn single_error(spec: RouteSpec) -> RouteError {
    let errs = errors(vec![exact("/ok"), spec.clone()]);
    assert_eq!(errs.len(), 1, "{spec:?}: {errs:?}");
    assert_eq!(errs[0].index, 1);
    errs[0].clone()
}

#[test]
fn invalid_fields() {
    let cases = [
        (exact(""), "match.path", "must not be empty"),
        (exact("api/x"), "match.path", "must start with '/'"),
        (exact("/a/{id"), "match.path", "unbalanced braces"),
        (exact("/a/id}"), "match.path", "unbalanced braces"),
        (exact("/a/{{id}}"), "match.path", "unbalanced braces"),
        (exact("/a/{}"), "match.path", "empty parameter name"),
        (
            exact("/a/{id}/b/{id}"),
            "match.path",
            "uses parameter `{id}` twice",
        ),
        (exact("/a{b}"), "match.path", "must be a whole segment"),
        (
            exact("/a/{b}.json"),
            "match.path",
            "must be a whole segment",
        ),
        (exact("/a/{b.c}"), "match.path", "may only contain"),
        (exact("/a//b"), "match.path", "empty segment"),
        (exact("/a/../b"), "match.path", "dot segment"),
        (exact("/a?x=1"), "match.path", "contains '?'"),
        (exact("/a b"), "match.path", "contains ' '"),
        (prefix(""), "match.prefix", "must not be empty"),
        (prefix("api"), "match.prefix", "must start with '/'"),
        (
            prefix("/api/{v}"),
            "match.prefix",
            "cannot contain parameters",
        ),
        (
            prefix("/api/}"),
            "match.prefix",
            "cannot contain parameters",
        ),
        (exact("/x").on(""), "match.host", "must not be empty"),
        (exact("/x").on("bad host"), "match.host", "not a valid host"),
        (exact("/x").on("a..b"), "match.host", "not a valid host"),
        (
            exact("/x").on("api.example.com:8443"),
            "match.host",
            "must not include a port",
        ),
        (exact("/x").on("*.example.com"), "match.host", "wildcard"),
        (exact("/x").only(""), "match.methods", "at least one method"),
    ];
    for (spec, field, needle) in cases {
        let err = single_error(spec.clone());
        assert_eq!(err.field, field, "{spec:?}: {err}");
        assert!(err.message.contains(needle), "{spec:?}: {err}");
        assert!(err.to_string().starts_with(&format!("route 1: {field}: ")));
    }
}

#[test]
fn all_problems_are_reported() {
    let errs = errors(vec![
        exact("nope").on("bad host").only(""),
        exact("/fine"),
        prefix("/{x}"),
    ]);
    let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.index, e.field)).collect();
    assert_eq!(
        got,
        [
            (0, "match.host"),
            (0, "match.methods"),
            (0, "match.path"),
            (2, "match.prefix")
        ]
    );
}

#[test]
fn conflicts() {
    let conflicting = [
        // same pattern after trailing-slash normalisation, all methods
        (exact("/x/{a}"), exact("/x/{b}/"), "all methods"),
        (prefix("/api"), prefix("/api/"), "all methods"),
        (
            exact("/t").only("GET,POST"),
            exact("/t").only("POST,PUT"),
            "POST",
        ),
        (exact("/t"), exact("/t").only("DELETE"), "DELETE"),
        // hosts compare case-insensitively, trailing dot ignored
        (
            exact("/h").on("A.example"),
            exact("/h").on("a.example."),
            "all methods",
        ),
        (
            exact("/h").on("[::1]"),
            exact("/h").on("0::1"),
            "all methods",
        ),
    ];
    for (first, second, shared) in conflicting {
        let errs = errors(vec![exact("/other"), first.clone(), second.clone()]);
        assert_eq!(errs.len(), 1, "{first:?} vs {second:?}: {errs:?}");
        let err = &errs[0];
        assert_eq!(err.index, 2);
        let field = match second.pattern {
            PathPattern::Exact(_) => "match.path",
            PathPattern::Prefix(_) => "match.prefix",
        };
        assert_eq!(err.field, field);
        assert!(err.message.contains("conflicts with route 1"), "{err}");
        assert!(
            err.message.ends_with(&format!("both accept {shared}")),
            "{err}"
        );
    }
    let compatible = [
        (exact("/t").only("GET"), exact("/t").only("POST")),
        (exact("/t").only("GET"), exact("/t").only("HEAD")),
        (exact("/t"), prefix("/t")),
        (exact("/t").on("a.example"), exact("/t").on("b.example")),
        (exact("/t").on("a.example"), exact("/t")),
        (exact("/t/{a}"), exact("/t/a")),
    ];
    for (first, second) in compatible {
        let errs = errors(vec![first.clone(), second.clone()]);
        assert!(errs.is_empty(), "{first:?} vs {second:?}: {errs:?}");
    }
    // Three copies: each later one names the first.
    let errs = errors(vec![exact("/d"), exact("/d"), exact("/d")]);
    let got: Vec<(usize, bool)> = errs
        .iter()
        .map(|e| (e.index, e.message.contains("conflicts with route 0:")))
        .collect();
    assert_eq!(got, [(1, true), (2, true)]);
}
