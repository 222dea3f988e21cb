//! `POST /admin/tokens/revoke`: refuse a token now rather than at its `exp`.
//!
//! `{"jti": "..."}` revokes one token (until its `exp` when given as `"exp"`, else
//! for the longest a token lives); `{"sub": "..."}` every token of that consumer
//! issued until now (`"issuer"` names another issuer than the gateway's own; the
//! `sub` may also be the consumer as `X-Consumer-Id` shows it, `<issuer>#<sub>`).
//! The revocation goes through the store: with Redis every gateway of the fleet
//! refuses the token within a second.
//!
//! The handler returns an [`Outcome`] — its target and the result — which the
//! admin listener renders and writes to the audit log.

use crate::auth::claims::{consumer_id, now, rfc3339};
use crate::error::{ErrorCode, GatewayError};
use crate::runtime::Runtime;
use crate::store::revocation::HOLD;
use crate::store::Revocation;
use serde::Deserialize;
use serde_json::{json, Value};

/// Longest `jti` or `sub` accepted.
const MAX_NAME: usize = 1024;

/// What an admin action did: enough to answer it and to report it.
#[derive(Debug)]
pub struct Outcome {
    /// What it acted on, e.g. `jti:0f3c…` or `sub:mobile-app`; empty when the
    /// request did not say.
    pub target: String,
    /// The answer's body, or the refusal.
    pub result: Result<Value, GatewayError>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
}

const SHAPE: &str = "send {\"jti\": \"<token id>\"} (optionally with its \"exp\") or {\"sub\": \"<consumer>\"} (optionally with its \"issuer\")";

fn bad(message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorCode::BadRequest, message)
}

/// The revocation a body asks for, and its target.
fn parse(body: &[u8], own_issuer: &str) -> Result<(Revocation, String), (String, GatewayError)> {
    let b: RevokeBody =
        serde_json::from_slice(body).map_err(|e| (String::new(), bad(format!("{SHAPE}: {e}"))))?;
    let now = now();
    let until = now + HOLD.as_secs();
    let checked = |what: &str, v: String| {
        if v.is_empty() || v.len() > MAX_NAME {
            Err(bad(format!("`{what}` must be 1 to {MAX_NAME} bytes")))
        } else {
            Ok(v)
        }
    };
    match (b.jti, b.sub) {
        (Some(jti), None) => {
            let target = format!("jti:{jti}");
            if b.issuer.is_some() {
                return Err((
                    target,
                    bad("`issuer` goes with `sub`; a `jti` alone names the token"),
                ));
            }
            let jti = checked("jti", jti).map_err(|e| (target.clone(), e))?;
            let until = b.exp.unwrap_or(until);
            Ok((Revocation::Token { jti, until }, target))
        }
        (None, Some(sub)) => {
            if b.exp.is_some() {
                return Err((format!("sub:{sub}"), bad("`exp` goes with `jti`: a consumer's revocation covers every token issued until now")));
            }
            let issuer = b.issuer.as_deref().unwrap_or(own_issuer);
            let consumer = consumer_id(issuer, &sub, own_issuer).into_owned();
            let target = format!("sub:{consumer}");
            let consumer = checked("sub", consumer).map_err(|e| (target.clone(), e))?;
            Ok((
                Revocation::Consumer {
                    consumer,
                    at: now,
                    until,
                },
                target,
            ))
        }
        _ => Err((String::new(), bad(format!("{SHAPE}: exactly one of them")))),
    }
}

/// Revokes what `body` names, through the runtime's store.
pub(super) async fn revoke(body: &[u8], runtime: &Runtime) -> Outcome {
    let (revocation, target) = match parse(body, &runtime.config.auth.issuer) {
        Ok(r) => r,
        Err((target, e)) => {
            return Outcome {
                target,
                result: Err(e),
            }
        }
    };
    let result = match runtime.store.revoke(&revocation).await {
        Ok(()) => Ok(match &revocation {
            Revocation::Token { jti, until } => {
                json!({ "result": "revoked", "jti": jti, "until": rfc3339(*until) })
            }
            Revocation::Consumer {
                consumer,
                at,
                until,
            } => json!({
                "result": "revoked",
                "consumer": consumer,
                "issued_until": rfc3339(*at),
                "until": rfc3339(*until),
            }),
        }),
        Err(e) => Err(GatewayError::new(
            ErrorCode::StoreUnavailable,
            format!("the revocation could not be recorded: {e}"),
        )),
    };
    Outcome { target, result }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bodies_name_one_token_or_one_consumer() {
        let (r, target) = parse(br#"{"jti":"abc","exp":7}"#, "fingate").unwrap();
        assert_eq!(
            r,
            Revocation::Token {
                jti: "abc".into(),
                until: 7
            }
        );
        assert_eq!(target, "jti:abc");
        let (r, target) = parse(br#"{"sub":"mobile-app"}"#, "fingate").unwrap();
        assert!(matches!(r, Revocation::Consumer { ref consumer, .. } if consumer == "mobile-app"));
        assert_eq!(target, "sub:mobile-app");
        let (_, target) = parse(
            br#"{"sub":"mobile-app","issuer":"https://idp.example"}"#,
            "fingate",
        )
        .unwrap();
        assert_eq!(target, "sub:https://idp.example#mobile-app");
        for (body, says) in [
            (&br#"{}"#[..], "exactly one"),
            (br#"{"jti":"a","sub":"b"}"#, "exactly one"),
            (br#"{"jti":""}"#, "1 to"),
            (br#"{"jti":"a","issuer":"x"}"#, "`issuer` goes with `sub`"),
            (br#"{"sub":"a","exp":5}"#, "`exp` goes with `jti`"),
            (br#"{"token":"a"}"#, "unknown field"),
            (b"nope", "send {"),
        ] {
            let (_, e) = parse(body, "fingate").unwrap_err();
            assert!(
                e.message.contains(says),
                "{}: {}",
                String::from_utf8_lossy(body),
                e.message
            );
            assert_eq!(e.code, ErrorCode::BadRequest);
        }
    }
}
