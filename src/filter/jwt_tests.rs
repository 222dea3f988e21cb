use super::*;
use crate::auth::keys::{self, Material, Policy};
use crate::auth::settings::AuthConfig;
use http::HeaderMap;
use serde_json::json;
use std::time::Duration;

const SECRET: &str = "unit-test-secret-0123456789abcdef!!";

const PARTNER_SECRET: &str = "partner-test-secret-0123456789abcdef";

/// A HS256 key `id` of `issuer`, accepted everywhere.
fn key(id: &str, secret: &str, issuer: &str) -> Arc<keys::Key> {
    let policy = Policy {
        issuer: "fingate",
        audience: "api",
        leeway: Duration::from_secs(5),
    };
    let k = keys::build(
        id,
        jsonwebtoken::Algorithm::HS256,
        Material::Secret(secret),
        false,
        Accept::Everywhere,
        issuer,
        &policy,
    )
    .unwrap();
    Arc::new(k)
}

/// A filter accepting the gateway's key `main` and a partner's `partner`
/// (issuer `partner-idp`), over `deps`' store.
fn filter_over(scopes: &[&str], deps: FilterDeps) -> JwtFilter {
    let auth = AuthConfig {
        keys: Arc::new(keys::KeySet {
            keys: vec![
                key("main", SECRET, "fingate"),
                key("partner", PARTNER_SECRET, "partner-idp"),
            ],
            ..Default::default()
        }),
        ..AuthConfig::default()
    };
    let deps = FilterDeps {
        auth: Arc::new(auth),
        ..deps
    };
    let options = JwtOptions {
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        keys: None,
    };
    JwtFilter::new(&options, &deps).unwrap()
}

fn filter(scopes: &[&str]) -> JwtFilter {
    filter_over(scopes, FilterDeps::standalone())
}

fn signed(kid: &str, secret: &str, claims: &serde_json::Value) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(
        &h,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn token(claims: serde_json::Value) -> String {
    signed("main", SECRET, &claims)
}

/// The whole parse of the header: what the filter reads, then the character
/// check `verify` makes on a cache miss.
fn bearer(req: &dyn HeaderEdit) -> Result<&str, Reason> {
    let token = bearer_unchecked(req)?;
    if token68(token) {
        Ok(token)
    } else {
        Err(Reason::Malformed)
    }
}

/// `verify` in one poll (it awaits only when a remote key set fetches).
fn verify(f: &JwtFilter, value: &str) -> Result<Arc<Verified>, Reason> {
    use futures_util::FutureExt as _;
    let req = with_auth(value);
    let token = bearer(&req)?;
    f.verify(token).now_or_never().unwrap()
}

fn now() -> u64 {
    crate::auth::claims::now()
}

fn with_auth(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
    h
}

#[test]
fn bearer_parsing() {
    assert_eq!(bearer(&with_auth("Bearer abc.def.ghi")), Ok("abc.def.ghi"));
    assert_eq!(bearer(&with_auth("bearer abc")), Ok("abc"));
    assert_eq!(bearer(&HeaderMap::new()), Err(Reason::Missing));
    for bad in [
        "Bearer",
        "Bearer ",
        "Basic abc",
        "Bearer a b",
        "Bearer a\"b",
        "Bearerabc",
    ] {
        assert_eq!(bearer(&with_auth(bad)), Err(Reason::Malformed), "{bad:?}");
    }
    let mut two = with_auth("Bearer a");
    two.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
    assert_eq!(bearer(&two), Err(Reason::Malformed));
    let huge = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
    assert_eq!(bearer(&with_auth(&huge)), Err(Reason::Malformed));
}

#[tokio::test]
async fn success_sets_the_consumer_and_the_upstream_identity() {
    let f = filter(&["accounts:read"]);
    let t = token(
        json!({"sub": "alice", "exp": now() + 60, "iss": "fingate", "aud": ["other", "api"], "scope": "accounts:read x"}),
    );
    let mut req = with_auth(&format!("Bearer {t}"));
    let mut ctx = RequestContext::new(http::Method::GET, "/".into());
    assert!(matches!(
        f.request(&mut req, &mut ctx).await.unwrap(),
        Flow::Continue
    ));
    assert_eq!(ctx.consumer.as_deref(), Some("alice"));
    let mut upstream = HeaderMap::new();
    f.upstream_request(&mut upstream, &ctx);
    assert_eq!(upstream.get("x-consumer-id").unwrap(), "alice");
    assert_eq!(
        upstream.get("x-consumer-scopes").unwrap(),
        "accounts:read x"
    );
}

#[test]
fn verify_checks_the_tokens_characters_unless_it_verified_those_bytes_before() {
    use futures_util::FutureExt as _;
    let f = filter(&[]);
    let good = token(json!({"sub": "alice", "exp": now() + 60, "iss": "fingate", "aud": "api"}));
    // The filter reads the header without the character check; verify makes it.
    for bad in [
        format!("{good}!"),
        format!("{good} x"),
        good.replacen('.', ",", 1),
    ] {
        let got = f.verify(&bad).now_or_never().unwrap();
        assert_eq!(got.unwrap_err(), Reason::Malformed, "{bad:?}");
    }
    assert!(f.verify(&good).now_or_never().unwrap().is_ok());
    // Now cached: found again without reading its characters.
    assert!(f.verify(&good).now_or_never().unwrap().is_ok());
}

#[test]
fn claims_are_checked() {
    let f = filter(&[]);
    let base = json!({"sub": "alice", "exp": now() + 60, "iss": "fingate", "aud": "api"});
    let check = |patch: serde_json::Value| {
        let mut c = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        verify(&f, &format!("Bearer {}", token(c))).map(|v| v.claims.sub.clone())
    };
    assert_eq!(check(json!({})), Ok("alice".into()));
    assert_eq!(
        check(json!({"exp": now() - 3})),
        Ok("alice".into()),
        "within leeway"
    );
    assert_eq!(
        check(json!({"exp": now() - 30})).unwrap_err(),
        Reason::Expired
    );
    assert_eq!(
        check(json!({"nbf": now() + 30})).unwrap_err(),
        Reason::NotYetValid
    );
    assert_eq!(check(json!({"iss": "x"})).unwrap_err(), Reason::WrongIssuer);
    assert_eq!(
        check(json!({"aud": "x"})).unwrap_err(),
        Reason::WrongAudience
    );
    assert_eq!(
        check(json!({"aud": []})).unwrap_err(),
        Reason::WrongAudience
    );
    assert_eq!(check(json!({"exp": null})).unwrap_err(), Reason::Malformed);
    assert_eq!(check(json!({"sub": null})).unwrap_err(), Reason::Malformed);
    assert_eq!(
        check(json!({"nbf": "soon"})).unwrap_err(),
        Reason::Malformed
    );
}

#[tokio::test]
async fn a_missing_scope_is_403() {
    let f = filter(&["payments:write"]);
    let t = token(
        json!({"sub": "a", "exp": now() + 60, "iss": "fingate", "aud": "api", "scope": "accounts:read"}),
    );
    let mut ctx = RequestContext::new(http::Method::GET, "/".into());
    let Flow::Reject(r) = f
        .request(&mut with_auth(&format!("Bearer {t}")), &mut ctx)
        .await
        .unwrap()
    else {
        panic!("should refuse");
    };
    assert_eq!(r.status, http::StatusCode::FORBIDDEN);
    assert!(ctx.consumer.is_none());
}

#[test]
fn jwt_without_keys_is_a_config_error() {
    let e = JwtFilter::new(&JwtOptions::default(), &FilterDeps::standalone()).unwrap_err();
    assert!(e[0].message.contains("auth.keys"), "{e:?}");
}

#[tokio::test]
async fn another_issuers_sub_is_never_a_local_consumer() {
    let f = filter(&[]);
    let claims =
        |iss: &str| json!({"sub": "mobile-app", "exp": now() + 60, "iss": iss, "aud": "api"});
    let mut ctx = RequestContext::new(http::Method::GET, "/".into());
    let partner = signed("partner", PARTNER_SECRET, &claims("partner-idp"));
    let mut req = with_auth(&format!("Bearer {partner}"));
    assert!(matches!(
        f.request(&mut req, &mut ctx).await.unwrap(),
        Flow::Continue
    ));
    assert_eq!(ctx.consumer.as_deref(), Some("partner-idp#mobile-app"));
    let mut upstream = HeaderMap::new();
    f.upstream_request(&mut upstream, &ctx);
    assert_eq!(upstream["x-consumer-id"], "partner-idp#mobile-app");
    assert_eq!(upstream["x-consumer-issuer"], "partner-idp");
    // The gateway's own token keeps the plain sub, without an issuer header.
    let mut ctx = RequestContext::new(http::Method::GET, "/".into());
    let own = token(claims("fingate"));
    f.request(&mut with_auth(&format!("Bearer {own}")), &mut ctx)
        .await
        .unwrap();
    assert_eq!(ctx.consumer.as_deref(), Some("mobile-app"));
    let mut upstream = HeaderMap::new();
    f.upstream_request(&mut upstream, &ctx);
    assert!(upstream.get("x-consumer-issuer").is_none());
    // A partner cannot claim the gateway's issuer with its own key.
    let forged = signed("partner", PARTNER_SECRET, &claims("fingate"));
    assert_eq!(
        verify(&f, &format!("Bearer {forged}")).unwrap_err(),
        Reason::WrongIssuer
    );
}

#[tokio::test]
async fn revoked_tokens_are_refused_from_the_local_set() {
    use crate::store::Revocation;
    let deps = FilterDeps::standalone();
    let store = deps.store.clone();
    let f = filter_over(&[], deps);
    let t = |jti: &str, iat: u64| {
        token(
            json!({"sub": "alice", "exp": now() + 60, "iss": "fingate", "aud": "api", "jti": jti, "iat": iat}),
        )
    };
    assert!(f.verify(&(t("one", now()))).await.is_ok());
    store
        .revoke(&Revocation::Token {
            jti: "one".into(),
            until: now() + 60,
        })
        .await
        .unwrap();
    assert_eq!(
        f.verify(&(t("one", now()))).await.unwrap_err(),
        Reason::Revoked
    );
    assert!(f.verify(&(t("two", now()))).await.is_ok());
    store
        .revoke(&Revocation::Consumer {
            consumer: "alice".into(),
            at: now(),
            until: now() + 60,
        })
        .await
        .unwrap();
    assert_eq!(
        f.verify(&(t("two", now() - 1))).await.unwrap_err(),
        Reason::Revoked
    );
    assert!(
        f.verify(&(t("three", now() + 2))).await.is_ok(),
        "issued after the revocation"
    );
    let mut ctx = RequestContext::new(http::Method::GET, "/".into());
    let Flow::Reject(e) = f
        .request(
            &mut with_auth(&format!("Bearer {}", t("one", now()))),
            &mut ctx,
        )
        .await
        .unwrap()
    else {
        panic!("should refuse");
    };
    assert_eq!(e.code, ErrorCode::InvalidToken);
    assert_eq!(e.message, "token revoked");
}

#[test]
fn a_verified_token_is_answered_from_the_cache_until_its_exp() {
    let f = filter(&[]);
    let exp = now() + 100;
    let t = token(json!({"sub": "alice", "exp": exp, "iss": "fingate", "aud": "api"}));
    let first = verify(&f, &format!("Bearer {t}")).unwrap();
    let again = verify(&f, &format!("Bearer {t}")).unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "the second request is a cache hit"
    );
    assert!(f.verified.get(&t, exp - 1).is_some());
    assert!(f.verified.get(&t, exp).is_none(), "never past exp");
}

#[test]
fn a_token_differing_in_one_byte_from_a_cached_one_is_verified_again() {
    let f = filter(&[]);
    let t = token(json!({"sub": "alice", "exp": now() + 100, "iss": "fingate", "aud": "api"}));
    assert!(verify(&f, &format!("Bearer {t}")).is_ok());
    // One character inside the signature (its last one has unused bits).
    let i = t.len() - 5;
    let other = if &t[i..=i] == "A" { "B" } else { "A" };
    let forged = format!("{}{other}{}", &t[..i], &t[i + 1..]);
    assert_eq!(
        verify(&f, &format!("Bearer {forged}")).err(),
        Some(Reason::BadSignature)
    );
}

#[tokio::test]
async fn the_routes_scopes_are_checked_on_every_request_cached_or_not() {
    let f = filter(&["payments:write"]);
    let t = token(
        json!({"sub": "a", "exp": now() + 60, "iss": "fingate", "aud": "api", "scope": "accounts:read"}),
    );
    for _ in 0..2 {
        let mut ctx = RequestContext::new(http::Method::GET, "/".into());
        let flow = f
            .request(&mut with_auth(&format!("Bearer {t}")), &mut ctx)
            .await
            .unwrap();
        assert!(matches!(flow, Flow::Reject(r) if r.status == http::StatusCode::FORBIDDEN));
    }
}
