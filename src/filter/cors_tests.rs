#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;

fn config(yaml: &str) -> Result<CorsConfig, Vec<OptionError>> {
    CorsConfig::check(&serde_yaml::from_str::<CorsOptions>(yaml).unwrap())
}

fn filter(yaml: &str, route_methods: Option<&[Method]>) -> CorsFilter {
    CorsFilter::build(&config(yaml).unwrap(), route_methods)
}

fn allowed(f: &CorsFilter, origin: &str) -> Option<String> {
    f.allow_origin(&HeaderValue::from_str(origin).unwrap())
        .map(|v| v.to_str().unwrap().to_owned())
}

#[test]
fn exact_origins_and_one_leading_wildcard_label() {
    let f = filter(
        "{ origins: [https://app.example.com, 'https://*.example.com', 'http://localhost:5173'] }",
        None,
    );
    assert_eq!(
        allowed(&f, "https://app.example.com").as_deref(),
        Some("https://app.example.com")
    );
    assert!(allowed(&f, "https://a.example.com").is_some());
    assert!(allowed(&f, "HTTPS://B.Example.COM").is_some());
    assert!(allowed(&f, "http://localhost:5173").is_some());
    for refused in [
        "https://example.com",
        "https://example.com.evil.test",
        "http://a.example.com",
        "https://a.b.example.com",
        "https://evil-example.com",
        "https://a.example.com.evil.test",
        "http://localhost:5174",
        "null",
    ] {
        assert!(allowed(&f, refused).is_none(), "{refused}");
    }
}

#[test]
fn any_origin_is_a_star_without_credentials_and_refused_with_them() {
    let f = filter("{ origins: ['*'] }", None);
    assert_eq!(allowed(&f, "https://x.test").as_deref(), Some("*"));
    let e = config("{ origins: ['*'], credentials: true }").unwrap_err();
    assert_eq!(e[0].path, "origins[0]");
    assert!(e[0].message.contains("credentials"), "{}", e[0].message);
}

#[test]
fn bad_options_name_their_place() {
    let e = config(
        "{ origins: [app.example.com, 'https://a.*.example.com', 'https://*.com', 'https://x.test/'], methods: [post], headers: ['Bad Name'], max_age: 2d }",
    )
    .unwrap_err();
    let paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "origins[0]",
            "origins[1]",
            "origins[2]",
            "origins[3]",
            "methods[0]",
            "headers[0]",
            "max_age"
        ]
    );
    assert_eq!(config("{ origins: [] }").unwrap_err()[0].path, "origins");
}

fn preflight(f: &CorsFilter, origin: &str, method: &str, headers: Option<&str>) -> LocalResponse {
    let mut req = http::HeaderMap::new();
    req.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
    req.insert(
        header::ACCESS_CONTROL_REQUEST_METHOD,
        HeaderValue::from_str(method).unwrap(),
    );
    if let Some(h) = headers {
        req.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_str(h).unwrap(),
        );
    }
    let ctx = RequestContext::new(Method::OPTIONS, "/".into());
    f.preflight(&req, &ctx).unwrap()
}

fn get<'a>(r: &'a LocalResponse, name: &HeaderName) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.to_str().unwrap())
}

#[test]
fn a_preflight_is_answered_for_the_route_s_methods_and_listed_headers() {
    let f = filter(
        "{ origins: [https://app.example.com], headers: [Authorization, Content-Type, Idempotency-Key], max_age: 5m }",
        Some(&[Method::POST]),
    );
    let ok = preflight(
        &f,
        "https://app.example.com",
        "POST",
        Some("content-type, idempotency-key"),
    );
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
    assert_eq!(
        get(&ok, &header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some("https://app.example.com")
    );
    assert_eq!(
        get(&ok, &header::ACCESS_CONTROL_ALLOW_METHODS),
        Some("POST")
    );
    assert_eq!(get(&ok, &header::ACCESS_CONTROL_MAX_AGE), Some("300"));
    assert_eq!(get(&ok, &header::VARY), Some("Origin"));
    for (origin, method, headers) in [
        ("https://evil.test", "POST", None),
        ("https://app.example.com", "DELETE", None),
        ("https://app.example.com", "POST", Some("x-debug")),
    ] {
        let r = preflight(&f, origin, method, headers);
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{origin} {method} {headers:?}"
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], "cors_rejected");
    }
}

#[tokio::test]
async fn real_requests_get_the_origin_back_or_are_refused() {
    let f = filter("{ origins: [https://app.example.com] }", None);
    let mut ctx = RequestContext::new(Method::GET, "/".into());
    let mut req = http::HeaderMap::new();
    // Without Origin: not from a page, untouched (but Vary is still set).
    assert!(matches!(
        f.request(&mut req, &mut ctx).await.unwrap(),
        Flow::Continue
    ));
    let mut resp = http::HeaderMap::new();
    f.response(&mut resp, &mut ctx);
    assert!(resp.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    assert_eq!(resp.get(header::VARY).unwrap(), "Origin");

    req.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://app.example.com"),
    );
    assert!(matches!(
        f.request(&mut req, &mut ctx).await.unwrap(),
        Flow::Continue
    ));
    let mut resp = http::HeaderMap::new();
    resp.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    f.response(&mut resp, &mut ctx);
    assert_eq!(
        resp.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
        "https://app.example.com"
    );
    assert!(resp
        .get(header::ACCESS_CONTROL_EXPOSE_HEADERS)
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Retry-After"));
    assert_eq!(resp.get_all(header::VARY).iter().count(), 2);

    let mut ctx = RequestContext::new(Method::GET, "/".into());
    req.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://evil.test"),
    );
    let Flow::Reject(e) = f.request(&mut req, &mut ctx).await.unwrap() else {
        panic!("an unlisted origin passed");
    };
    assert_eq!(e.code, ErrorCode::OriginNotAllowed);
}
