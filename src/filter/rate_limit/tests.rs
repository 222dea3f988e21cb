use super::*;
use crate::store::testing::TestStore;

fn options(yaml: &str) -> RateLimitOptions {
    serde_yaml::from_str(yaml).unwrap()
}

fn filter(yaml: &str, store: Arc<dyn Store>) -> RateLimitFilter {
    let deps = FilterDeps {
        store,
        route: Some(Arc::from("r")),
        ..FilterDeps::standalone()
    };
    RateLimitFilter::new(&options(yaml), &deps).unwrap()
}

fn errors(yaml: &str) -> Vec<String> {
    match RateLimitFilter::new(&options(yaml), &FilterDeps::standalone()) {
        Ok(_) => Vec::new(),
        Err(es) => es
            .into_iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect(),
    }
}

async fn call(
    f: &RateLimitFilter,
    ctx: &mut RequestContext,
    headers: &mut http::HeaderMap,
) -> Option<crate::filter::LocalResponse> {
    let id = ctx.request_id.clone();
    f.request(headers, ctx).await.unwrap().into_answer(&id)
}

fn ctx(consumer: Option<&str>) -> RequestContext {
    let mut c = RequestContext::new(http::Method::GET, "/x".into());
    c.consumer = consumer.map(str::to_owned);
    c.client_ip = "192.0.2.7".parse().ok();
    c
}

#[test]
fn options_are_checked_with_clear_messages() {
    assert!(errors("{key: consumer, limit: 10, per: 1m}").is_empty());
    assert!(errors("{key: [consumer, ip, 'header:X-Api-Key'], limit: 1, per: 100ms, burst: 5, algorithm: sliding_window, on_store_error: deny}").is_empty());
    let e = errors("{key: user, limit: 0, per: 10ms}");
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].starts_with("key: unknown key \"user\""), "{e:?}");
    assert!(e[1].starts_with("limit: must be between 1"), "{e:?}");
    assert!(e[2].starts_with("per: must be between 100ms"), "{e:?}");
    let e = errors("{key: [ip, ip, 'header:bad name'], limit: 1, per: 1s}");
    assert!(e[0].starts_with("key[1]: \"ip\" is listed twice"), "{e:?}");
    assert!(e[1].starts_with("key[2]: invalid header name"), "{e:?}");
    assert!(
        serde_yaml::from_str::<RateLimitOptions>("{key: ip, limit: 1, per: 1s, rate: 2}").is_err()
    );
}

#[tokio::test]
async fn refuses_over_the_limit_with_retry_after_and_headers() {
    let f = filter(
        "{key: consumer, limit: 2, per: 10s, burst: 1}",
        Arc::new(MemoryStore::default()),
    );
    for remaining in ["2", "1", "0"] {
        let mut c = ctx(Some("alice"));
        assert!(call(&f, &mut c, &mut http::HeaderMap::new())
            .await
            .is_none());
        let mut resp = http::HeaderMap::new();
        f.response(&mut resp, &mut c);
        assert_eq!(resp["ratelimit-limit"], "3");
        assert_eq!(resp["ratelimit-remaining"], remaining);
    }
    let mut c = ctx(Some("alice"));
    let refusal = call(&f, &mut c, &mut http::HeaderMap::new()).await.unwrap();
    assert_eq!(refusal.status, http::StatusCode::TOO_MANY_REQUESTS);
    let retry = refusal
        .headers
        .iter()
        .find(|(n, _)| n == http::header::RETRY_AFTER)
        .unwrap();
    assert_eq!(retry.1, "5");
    assert!(String::from_utf8_lossy(&refusal.body).contains("\"rate_limited\""));
    // Another consumer has its own allowance.
    assert!(call(&f, &mut ctx(Some("bob")), &mut http::HeaderMap::new())
        .await
        .is_none());
}

#[tokio::test]
async fn requests_without_their_key_share_the_anonymous_bucket() {
    let f = filter(
        "{key: 'header:X-Api-Key', limit: 1, per: 1m}",
        Arc::new(MemoryStore::default()),
    );
    assert!(call(&f, &mut ctx(None), &mut http::HeaderMap::new())
        .await
        .is_none());
    assert!(call(&f, &mut ctx(None), &mut http::HeaderMap::new())
        .await
        .is_some());
    let mut h = http::HeaderMap::new();
    h.insert("x-api-key", HeaderValue::from_static("k1"));
    assert!(call(&f, &mut ctx(None), &mut h).await.is_none());
}

#[tokio::test]
async fn refused_keys_are_answered_without_a_store_call() {
    let store = Arc::new(TestStore::default());
    let f = filter("{key: ip, limit: 1, per: 1m}", store.clone());
    assert!(call(&f, &mut ctx(None), &mut http::HeaderMap::new())
        .await
        .is_none());
    assert!(call(&f, &mut ctx(None), &mut http::HeaderMap::new())
        .await
        .is_some());
    for _ in 0..10 {
        assert!(call(&f, &mut ctx(None), &mut http::HeaderMap::new())
            .await
            .is_some());
    }
    assert_eq!(store.calls(), 2);
}

#[tokio::test]
async fn a_failing_store_falls_back_locally_or_denies() {
    let broken = Arc::new(TestStore {
        broken: true,
        ..Default::default()
    });
    let allow = filter("{key: ip, limit: 2, per: 1m}", broken.clone());
    let mut passed = 0;
    for _ in 0..5 {
        passed += usize::from(
            call(&allow, &mut ctx(None), &mut http::HeaderMap::new())
                .await
                .is_none(),
        );
    }
    assert_eq!(passed, 2, "the local fallback still bounds the rate");
    let deny = filter("{key: ip, limit: 2, per: 1m, on_store_error: deny}", broken);
    let r = call(&deny, &mut ctx(None), &mut http::HeaderMap::new())
        .await
        .unwrap();
    assert_eq!(r.status, http::StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8_lossy(&r.body).contains("store_unavailable"));
}

#[tokio::test]
async fn several_limits_report_the_tightest() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let wide = filter("{key: ip, limit: 100, per: 1m}", store.clone());
    let tight = filter("{key: [ip, route], limit: 3, per: 1m}", store);
    let mut c = ctx(None);
    assert!(call(&wide, &mut c, &mut http::HeaderMap::new())
        .await
        .is_none());
    assert!(call(&tight, &mut c, &mut http::HeaderMap::new())
        .await
        .is_none());
    let mut resp = http::HeaderMap::new();
    tight.response(&mut resp, &mut c);
    wide.response(&mut resp, &mut c);
    assert_eq!(resp["ratelimit-limit"], "3");
    assert_eq!(resp["ratelimit-remaining"], "2");
}

#[test]
fn keys_escape_their_structure() {
    let f = filter(
        "{key: [consumer, route], limit: 1, per: 1s}",
        Arc::new(MemoryStore::default()),
    );
    let k = f.key(&http::HeaderMap::new(), &ctx(Some("a}b|c")));
    assert_eq!(k, "fingate:rl:{g1/1000ms+0|c=a%7Db%7Cc|r=r}");
    let anon = f.key(&http::HeaderMap::new(), &ctx(None));
    assert_eq!(anon, "fingate:rl:{g1/1000ms+0|c=~|r=r}");
}

#[test]
fn config_errors_name_the_filter_option_and_its_line() {
    let config = |filter: &str| {
        let yaml = format!("listen: [{{ address: '127.0.0.1:8080' }}]\nupstreams:\n  svc: {{ targets: ['127.0.0.1:9101'] }}\nroutes:\n  - name: r\n    match: {{ prefix: / }}\n    upstream: svc\n    filters:\n      - rate_limit: {filter}\n");
        crate::config::parse(
            &yaml,
            std::path::Path::new("gw.yaml"),
            &|_| None,
            crate::config::Secrets::Production,
        )
        .unwrap_err()
        .to_string()
    };
    let text = config("{ key: 'header:', limit: 0, per: 1m }");
    assert!(text.contains("gw.yaml:9:"), "{text}");
    assert!(
        text.contains("routes[0].filters[0].rate_limit.key: unknown key \"header:\""),
        "{text}"
    );
    assert!(
        text.contains("routes[0].filters[0].rate_limit.limit: must be between 1"),
        "{text}"
    );
    let text = config("{ key: ip, limit: lots, per: 1m }");
    assert!(text.contains("gw.yaml:9:32: routes[0].filters[0].rate_limit.limit: invalid type: string \"lots\", expected a whole number from 0 to 4294967295"), "{text}");
}
