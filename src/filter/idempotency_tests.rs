//! Unit tests of the `idempotency` filter: the phases driven by hand over a
//! memory store, no sockets (tests/it/idempotency.rs runs the real thing).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::filter::test_resp::Resp;
use crate::store::testing::TestStore;
use crate::store::MemoryStore;
use http::HeaderMap;

fn options(yaml: &str) -> IdempotencyOptions {
    serde_yaml::from_str(yaml).unwrap()
}

fn filter_on(yaml: &str, store: Arc<dyn Store>) -> IdempotencyFilter {
    let deps = FilterDeps {
        store,
        route: Some(Arc::from("pay")),
        upstream_wait: Some(Duration::from_secs(3)),
        ..FilterDeps::standalone()
    };
    IdempotencyFilter::new(&options(yaml), &deps).unwrap()
}

fn filter(yaml: &str) -> IdempotencyFilter {
    filter_on(yaml, Arc::new(MemoryStore::default()))
}

fn errors(yaml: &str) -> Vec<String> {
    match IdempotencyConfig::check(&options(yaml)) {
        Ok(_) => Vec::new(),
        Err(es) => es
            .into_iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect(),
    }
}

fn ctx(consumer: Option<&str>) -> RequestContext {
    let mut c = RequestContext::new(Method::POST, "/payments".into());
    c.consumer = consumer.map(str::to_owned);
    c.client_ip = "192.0.2.7".parse().ok();
    c.has_body = true;
    c
}

fn key(k: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(&IDEMPOTENCY_KEY, HeaderValue::from_str(k).unwrap());
    h
}

/// The request and body phases: the answer, if the filter gave one.
async fn arrive(
    f: &IdempotencyFilter,
    c: &mut RequestContext,
    headers: &mut HeaderMap,
    body: &[u8],
) -> Option<LocalResponse> {
    let id = c.request_id.clone();
    if let Some(a) = f.request(headers, c).await.unwrap().into_answer(&id) {
        return Some(a);
    }
    if c.has_body {
        return f.request_body(body, c).await.unwrap().into_answer(&id);
    }
    None
}

/// The upstream answers: response phases, then settle.
async fn upstream(f: &IdempotencyFilter, c: &mut RequestContext, status: u16, body: &[u8]) {
    let mut resp = Resp {
        status: StatusCode::from_u16(status).unwrap(),
        headers: HeaderMap::new(),
    };
    resp.headers
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp.headers
        .insert("location", HeaderValue::from_static("/payments/PAY-1"));
    resp.headers
        .insert("set-cookie", HeaderValue::from_static("session=secret"));
    resp.headers
        .insert("x-request-id", HeaderValue::from_static("first-request"));
    resp.headers
        .insert("content-length", HeaderValue::from(body.len()));
    c.upstream_responded = true;
    f.response(&mut resp, c);
    let (a, b) = body.split_at(body.len() / 2);
    f.response_body(&Some(Bytes::copy_from_slice(a)), false, c);
    f.response_body(&Some(Bytes::copy_from_slice(b)), false, c);
    f.response_body(&None, true, c);
    f.settle(c).await;
}

fn code(a: &LocalResponse) -> (u16, String) {
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
    (
        a.status.as_u16(),
        v["error"].as_str().unwrap_or("").to_owned(),
    )
}

fn header<'a>(a: &'a LocalResponse, name: &str) -> Option<&'a str> {
    a.headers
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.to_str().ok())
}

#[test]
fn options_are_checked_with_clear_messages() {
    assert!(errors("{}").is_empty());
    assert!(errors("{required: true, methods: [POST, PUT, DELETE], ttl: 7d, max_response: 16MiB, on_store_error: allow}").is_empty());
    assert_eq!(
        errors("{methods: [], ttl: 500ms, max_response: 17MiB}"),
        [
            "methods: list at least one method, e.g. [POST]",
            "ttl: must be between 1s and 7d, got 500ms",
            "max_response: use 1B to 16MiB: a stored answer is held whole in memory and in the store",
        ]
    );
    let e = errors("{methods: [post, GET, POST, POST], ttl: 8d}");
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(
        e[0].starts_with("methods[0]: invalid method \"post\": write it in capitals, e.g. POST"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("methods[1]: GET requests change nothing"),
        "{e:?}"
    );
    assert!(
        e[2].starts_with("methods[3]: POST is listed twice"),
        "{e:?}"
    );
    assert!(
        e[3].starts_with("ttl: must be between 1s and 7d, got 8d"),
        "{e:?}"
    );
    assert!(serde_yaml::from_str::<IdempotencyOptions>("{on_store_error: fail}").is_err());
    assert!(serde_yaml::from_str::<IdempotencyOptions>("{header: X-Key}").is_err());
}

#[test]
fn keys_are_bare_or_quoted_visible_ascii() {
    let parse = |values: &[&str]| {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(&IDEMPOTENCY_KEY, HeaderValue::from_str(v).unwrap());
        }
        parse_key(&h)
    };
    assert_eq!(parse(&["demo-1"]).unwrap(), "demo-1");
    assert_eq!(parse(&["\"demo-1\""]).unwrap(), "demo-1", "an sf-string");
    assert_eq!(parse(&[r#""a\"b\\c""#]).unwrap(), r#"a"b\c"#);
    assert_eq!(parse(&[&"k".repeat(255)]).unwrap().len(), 255);
    assert_eq!(parse(&[]), Err(KeyError::Missing));
    for (bad, why) in [
        (vec!["a", "b"], "several"),
        (vec!["\"\""], "empty"),
        (vec![&"k".repeat(256) as &str], "longer than 255"),
        (vec!["two words"], "visible ASCII"),
        (vec!["\"open"], "one \"string\""),
        (vec!["\"a\"b\""], "one \"string\""),
        (vec![r#""a\x""#], "one \"string\""),
    ] {
        match parse(&bad) {
            Err(KeyError::Malformed(m)) => assert!(m.contains(why), "{bad:?}: {m}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn fingerprints_cover_method_path_query_and_body() {
    let base = fingerprint(&Method::POST, "/p", None, b"{}");
    assert_eq!(base, fingerprint(&Method::POST, "/p", None, b"{}"));
    assert_eq!(base.len(), 64);
    for other in [
        fingerprint(&Method::PATCH, "/p", None, b"{}"),
        fingerprint(&Method::POST, "/q", None, b"{}"),
        fingerprint(&Method::POST, "/p", Some(""), b"{}"),
        fingerprint(&Method::POST, "/p", Some("a=1"), b"{}"),
        fingerprint(&Method::POST, "/p", None, b"{ }"),
    ] {
        assert_ne!(base, other);
    }
}

#[test]
fn stored_answers_decode_to_what_was_encoded() {
    let a = Answer {
        status: StatusCode::CREATED,
        headers: vec![
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("1"),
            ),
            (
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("2"),
            ),
        ],
        body: BytesMut::from(&b"{\"id\":\"PAY-1\"}"[..]),
    };
    assert_eq!(decode(&encode(&a)), Some(a));
    assert_eq!(decode(b"FGI1"), None);
    assert_eq!(decode(b"not a record"), None);
}

#[tokio::test]
async fn the_first_answer_is_stored_and_replayed_to_retries() {
    let f = filter("{required: true}");
    let mut c = ctx(Some("alice"));
    assert!(arrive(&f, &mut c, &mut key("k1"), b"{\"amount\":5}")
        .await
        .is_none());
    assert!(c.detach, "a held key runs detached");
    upstream(&f, &mut c, 201, b"{\"id\":\"PAY-1\"}").await;

    let mut c = ctx(Some("alice"));
    let replay = arrive(&f, &mut c, &mut key("\"k1\""), b"{\"amount\":5}")
        .await
        .expect("a replay");
    assert!(!c.detach);
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(&replay.body[..], b"{\"id\":\"PAY-1\"}");
    assert_eq!(header(&replay, "idempotent-replayed"), Some("true"));
    assert_eq!(header(&replay, "location"), Some("/payments/PAY-1"));
    assert_eq!(header(&replay, "content-type"), Some("application/json"));
    for gone in ["set-cookie", "x-request-id", "content-length"] {
        assert_eq!(header(&replay, gone), None, "{gone} is not stored");
    }
    // Another consumer's key of the same name is its own.
    let mut c = ctx(Some("bob"));
    assert!(arrive(&f, &mut c, &mut key("k1"), b"{\"amount\":5}")
        .await
        .is_none());
    assert!(c.detach);
    // And an anonymous client's is scoped to its address.
    let mut c = ctx(None);
    assert!(arrive(&f, &mut c, &mut key("k1"), b"{\"amount\":5}")
        .await
        .is_none());
}

#[tokio::test]
async fn a_key_is_refused_while_in_flight_and_for_another_request() {
    let f = filter("{}");
    let mut first = ctx(Some("alice"));
    assert!(arrive(&f, &mut first, &mut key("k"), b"a").await.is_none());
    let mut c = ctx(Some("alice"));
    let busy = arrive(&f, &mut c, &mut key("k"), b"a").await.unwrap();
    assert_eq!(code(&busy), (409, "idempotency_key_in_use".into()));
    assert_eq!(header(&busy, "retry-after"), Some("1"));
    let mut c = ctx(Some("alice"));
    let other = arrive(&f, &mut c, &mut key("k"), b"b").await.unwrap();
    assert_eq!(code(&other), (422, "idempotency_key_reused".into()));
    upstream(&f, &mut first, 200, b"ok").await;
    // Done: still another request's key.
    let mut c = ctx(Some("alice"));
    let other = arrive(&f, &mut c, &mut key("k"), b"b").await.unwrap();
    assert_eq!(code(&other), (422, "idempotency_key_reused".into()));
    let mut c = ctx(Some("alice"));
    c.path = "/other".into();
    let other = arrive(&f, &mut c, &mut key("k"), b"a").await.unwrap();
    assert_eq!(code(&other), (422, "idempotency_key_reused".into()));
}

#[tokio::test]
async fn server_errors_failures_and_large_answers_release_the_key() {
    let f = filter("{max_response: 8B}");
    let body = b"{}";
    // 5xx: released, the retry is new.
    let mut c = ctx(None);
    assert!(arrive(&f, &mut c, &mut key("k"), body).await.is_none());
    upstream(&f, &mut c, 503, b"down").await;
    // The gateway's own answer (a later filter refused): never stored.
    let mut c = ctx(None);
    assert!(arrive(&f, &mut c, &mut key("k"), body).await.is_none());
    let mut refusal = Resp {
        status: StatusCode::NO_CONTENT,
        headers: HeaderMap::new(),
    };
    f.response(&mut refusal, &mut c);
    f.settle(&mut c).await;
    // An answer that never completed (the upstream broke off, a gateway error).
    let mut c = ctx(None);
    assert!(arrive(&f, &mut c, &mut key("k"), body).await.is_none());
    c.upstream_responded = true;
    f.response(
        &mut Resp {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
        },
        &mut c,
    );
    f.response_body(&Some(Bytes::from_static(b"part")), false, &mut c);
    f.settle(&mut c).await;
    // Too large to store.
    let mut c = ctx(None);
    assert!(arrive(&f, &mut c, &mut key("k"), body).await.is_none());
    upstream(&f, &mut c, 200, b"nine bytes").await;
    let mut c = ctx(None);
    assert!(
        arrive(&f, &mut c, &mut key("k"), body).await.is_none(),
        "still free"
    );
    upstream(&f, &mut c, 200, b"fits").await;
    let mut c = ctx(None);
    let replay = arrive(&f, &mut c, &mut key("k"), body).await.unwrap();
    assert_eq!(&replay.body[..], b"fits");
    // A bodiless answer is whole with its head.
    let mut c = ctx(None);
    assert!(arrive(&f, &mut c, &mut key("k2"), body).await.is_none());
    let mut resp = Resp {
        status: StatusCode::NO_CONTENT,
        headers: HeaderMap::new(),
    };
    c.upstream_responded = true;
    f.response(&mut resp, &mut c);
    f.settle(&mut c).await;
    let mut c = ctx(None);
    let replay = arrive(&f, &mut c, &mut key("k2"), body).await.unwrap();
    assert_eq!(replay.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn missing_and_malformed_keys_and_other_methods() {
    let required = filter("{required: true}");
    let mut c = ctx(None);
    let refusal = arrive(&required, &mut c, &mut HeaderMap::new(), b"{}")
        .await
        .unwrap();
    assert_eq!(code(&refusal), (400, "idempotency_key_missing".into()));
    let mut c = ctx(None);
    let refusal = arrive(&required, &mut c, &mut key("a b"), b"{}")
        .await
        .unwrap();
    assert_eq!(code(&refusal), (400, "bad_request".into()));
    let optional = filter("{}");
    let mut c = ctx(None);
    assert!(arrive(&optional, &mut c, &mut HeaderMap::new(), b"{}")
        .await
        .is_none());
    assert!(!c.detach, "no key, nothing held");
    let mut c = ctx(None);
    c.method = Method::PUT;
    assert!(arrive(&required, &mut c, &mut HeaderMap::new(), b"{}")
        .await
        .is_none());
    // A request without a body claims in its request phase.
    let mut c = ctx(None);
    c.has_body = false;
    assert!(required
        .request(&mut key("nb"), &mut c)
        .await
        .unwrap()
        .into_answer("r")
        .is_none());
    assert!(c.detach);
}

#[tokio::test]
async fn a_store_that_fails_denies_or_lets_through() {
    let broken = || {
        Arc::new(TestStore {
            broken: true,
            ..TestStore::default()
        }) as Arc<dyn Store>
    };
    let deny = filter_on("{}", broken());
    let mut c = ctx(None);
    let refusal = arrive(&deny, &mut c, &mut key("k"), b"{}").await.unwrap();
    assert_eq!(code(&refusal), (503, "store_unavailable".into()));
    let allow = filter_on("{on_store_error: allow}", broken());
    let mut c = ctx(None);
    assert!(arrive(&allow, &mut c, &mut key("k"), b"{}").await.is_none());
    assert!(!c.detach, "passed through without idempotency");
}

#[tokio::test]
async fn a_hold_lasts_the_routes_upstream_wait_and_a_margin() {
    let store = Arc::new(MemoryStore::default());
    let f = filter_on("{}", store.clone());
    assert_eq!(f.hold, Duration::from_secs(3) + HOLD_MARGIN);
    let mut c = ctx(None);
    assert!(arrive(&f, &mut c, &mut key("k"), b"{}").await.is_none());
    let Some(State::Held(held)) = c.extensions.get::<State>() else {
        panic!("held");
    };
    assert!(held.store_key.starts_with("fingate:idem:{") && held.store_key.ends_with('}'));
    let fp = fingerprint(&Method::POST, "/payments", None, b"{}");
    match store.claim(&held.store_key, &fp, "t", f.hold).unwrap() {
        Claim::InFlight { expires_in } => {
            assert!(expires_in > f.hold - Duration::from_secs(1) && expires_in <= f.hold)
        }
        other => panic!("{other:?}"),
    }
}
