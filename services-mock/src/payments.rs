//! Payments service: transfers between ledger accounts with idempotency keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::date::{now_rfc3339, Date};
use crate::error::ApiError;
use crate::identity::{consumer, may_use, require_owner};
use crate::ledger::{lock, SharedLedger, TransferError};

pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
const MAX_KEY_LEN: usize = 255;
const MAX_REFERENCE_LEN: usize = 140;

pub fn valid_currency(c: &str) -> bool {
    c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())
}

/// Distinguishes "not JSON at all" from "JSON of the wrong shape" so clients
/// get a precise error code for each.
pub fn parse_json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("request body is not valid JSON: {e}"),
        )
    })
}

#[derive(Debug, Deserialize)]
struct PaymentRequest {
    from_account: String,
    to_account: String,
    amount: i64,
    currency: String,
    reference: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Payment {
    pub id: String,
    pub status: &'static str,
    pub from_account: String,
    pub to_account: String,
    pub amount: i64,
    pub currency: String,
    pub reference: Option<String>,
    pub created_at: String,
}

/// The first answer given for a key, replayed verbatim for identical retries.
struct Recorded {
    request: Value,
    status: StatusCode,
    body: Value,
}

#[derive(Default)]
pub struct PaymentStore {
    payments: HashMap<String, Payment>,
    /// Keyed by (consumer or "", key): two consumers may use the same key.
    idempotency: HashMap<(String, String), Recorded>,
}

pub struct PaymentsState {
    ledger: SharedLedger,
    store: Mutex<PaymentStore>,
}

impl PaymentsState {
    pub fn new(ledger: SharedLedger) -> Self {
        Self {
            ledger,
            store: Mutex::new(PaymentStore::default()),
        }
    }

    /// Applies a payment request. Holding the store lock for the whole call
    /// serializes concurrent retries of the same key, so money moves once.
    pub fn submit(
        &self,
        who: Option<&str>,
        key: Option<&str>,
        body: &[u8],
    ) -> Result<(StatusCode, Value, bool), ApiError> {
        let request = parse_json_body(body)?;
        let mut store = lock(&self.store);
        let scoped = key.map(|k| (who.unwrap_or_default().to_string(), k.to_string()));
        if let Some(rec) = scoped.as_ref().and_then(|s| store.idempotency.get(s)) {
            if rec.request != request {
                return Err(ApiError::unprocessable(
                    "idempotency_key_reused",
                    "this Idempotency-Key was already used with a different request body",
                ));
            }
            return Ok((rec.status, rec.body.clone(), true));
        }
        let (status, answer) = match self.execute(&mut store, who, request.clone()) {
            Ok(p) => (
                StatusCode::CREATED,
                serde_json::to_value(&p).unwrap_or(Value::Null),
            ),
            Err(e) => (e.status, e.body()),
        };
        if let Some(s) = scoped {
            store.idempotency.insert(
                s,
                Recorded {
                    request,
                    status,
                    body: answer.clone(),
                },
            );
        }
        Ok((status, answer, false))
    }

    fn execute(
        &self,
        store: &mut PaymentStore,
        who: Option<&str>,
        request: Value,
    ) -> Result<Payment, ApiError> {
        let r: PaymentRequest = serde_json::from_value(request)
            .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
        if r.amount <= 0 {
            return Err(ApiError::bad_request(
                "invalid_amount",
                "amount must be a positive integer in minor units",
            ));
        }
        if r.from_account == r.to_account {
            return Err(ApiError::bad_request(
                "same_account",
                "from_account and to_account must differ",
            ));
        }
        if !valid_currency(&r.currency) {
            return Err(ApiError::bad_request(
                "invalid_currency",
                "currency must be a 3-letter ISO code",
            ));
        }
        if r.reference
            .as_ref()
            .is_some_and(|s| s.chars().count() > MAX_REFERENCE_LEN)
        {
            return Err(ApiError::bad_request(
                "invalid_reference",
                format!("reference is longer than {MAX_REFERENCE_LEN} characters"),
            ));
        }
        let mut ledger = lock(&self.ledger);
        let currency_of = |id: &str| -> Result<(String, String), ApiError> {
            ledger
                .account(id)
                .map(|a| (a.owner.clone(), a.currency.clone()))
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "unknown_account",
                        format!("account {id} does not exist"),
                    )
                })
        };
        let (from_owner, from_ccy) = currency_of(&r.from_account)?;
        let (_, to_ccy) = currency_of(&r.to_account)?;
        require_owner(who, &from_owner, &r.from_account)?;
        if from_ccy != r.currency || to_ccy != r.currency {
            return Err(ApiError::unprocessable(
                "currency_mismatch",
                format!(
                    "payment in {} but {} is {from_ccy} and {} is {to_ccy}",
                    r.currency, r.from_account, r.to_account
                ),
            ));
        }
        let id = format!("PAY-{:06}", store.payments.len() + 1);
        let note = r
            .reference
            .as_deref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        ledger
            .transfer(
                &r.from_account,
                &r.to_account,
                r.amount,
                Date::today(),
                format!("Payment {id} to {}{note}", r.to_account),
                format!("Payment {id} from {}{note}", r.from_account),
            )
            .map_err(|e| match e {
                TransferError::InsufficientFunds { balance } => ApiError::unprocessable(
                    "insufficient_funds",
                    format!(
                        "{} has {balance} available, {} requested",
                        r.from_account, r.amount
                    ),
                ),
                TransferError::UnknownAccount(a) => ApiError::unprocessable(
                    "unknown_account",
                    format!("account {a} does not exist"),
                ),
                TransferError::Invalid | TransferError::Overflow => {
                    ApiError::unprocessable("invalid_transfer", "the ledger refused this transfer")
                }
            })?;
        let payment = Payment {
            id: id.clone(),
            status: "completed",
            from_account: r.from_account,
            to_account: r.to_account,
            amount: r.amount,
            currency: r.currency,
            reference: r.reference,
            created_at: now_rfc3339(),
        };
        store.payments.insert(id, payment.clone());
        Ok(payment)
    }

    /// A consumer sees payments that touch one of its accounts.
    pub fn get(&self, who: Option<&str>, id: &str) -> Result<Payment, ApiError> {
        let payment = lock(&self.store)
            .payments
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("payment {id} not found")))?;
        let ledger = lock(&self.ledger);
        let owns = |acc: &str| ledger.account(acc).is_some_and(|a| may_use(who, &a.owner));
        if owns(&payment.from_account) || owns(&payment.to_account) {
            Ok(payment)
        } else {
            Err(ApiError::forbidden(format!(
                "payment {id} does not involve this consumer"
            )))
        }
    }
}

pub fn router(ledger: SharedLedger) -> Router {
    Router::new()
        .route("/payments", post(create))
        .route("/payments/{id}", get(fetch))
        .with_state(Arc::new(PaymentsState::new(ledger)))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= MAX_KEY_LEN => Ok(Some(k.to_string())),
        _ => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1..={MAX_KEY_LEN} visible ASCII characters"),
        )),
    }
}

async fn create(
    State(state): State<Arc<PaymentsState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let key = idempotency_key(&headers)?;
    let who = consumer(&headers);
    let (status, answer, replayed) = state.submit(who.as_deref(), key.as_deref(), &body)?;
    let mut resp = (status, Json(answer)).into_response();
    if replayed {
        resp.headers_mut().insert(
            HeaderName::from_static(REPLAYED_HEADER),
            HeaderValue::from_static("true"),
        );
    }
    Ok(resp)
}

async fn fetch(
    State(state): State<Arc<PaymentsState>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Payment>, ApiError> {
    let Path(id) = id?;
    state.get(consumer(&headers).as_deref(), &id).map(Json)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::ledger::Ledger;

    fn state() -> PaymentsState {
        PaymentsState::new(Ledger::seeded().shared())
    }

    fn balance(s: &PaymentsState, id: &str) -> i64 {
        lock(&s.ledger).account(id).unwrap().balance
    }

    fn body(from: &str, to: &str, amount: i64, ccy: &str) -> Vec<u8> {
        serde_json::json!({"from_account": from, "to_account": to, "amount": amount, "currency": ccy, "reference": "rent"})
            .to_string()
            .into_bytes()
    }

    fn code(r: Result<(StatusCode, Value, bool), ApiError>) -> (StatusCode, String) {
        match r {
            Ok((s, v, _)) => (s, v["error"].as_str().unwrap_or("").to_string()),
            Err(e) => (e.status, e.code.to_string()),
        }
    }

    #[test]
    fn payment_moves_money_and_is_retrievable() {
        let s = state();
        let (a0, b0) = (balance(&s, "ACC-1001"), balance(&s, "ACC-2001"));
        let (status, v, replayed) = s
            .submit(None, None, &body("ACC-1001", "ACC-2001", 2_500, "EUR"))
            .unwrap();
        assert_eq!((status, replayed), (StatusCode::CREATED, false));
        assert_eq!(v["status"], "completed");
        assert_eq!(v["reference"], "rent");
        assert_eq!(
            (balance(&s, "ACC-1001"), balance(&s, "ACC-2001")),
            (a0 - 2_500, b0 + 2_500)
        );
        let id = v["id"].as_str().unwrap();
        assert!(id.starts_with("PAY-"));
        assert_eq!(s.get(None, id).unwrap().amount, 2_500);
        assert_eq!(
            s.get(None, "PAY-999999").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        // Without the key, a second identical request is a second payment.
        s.submit(None, None, &body("ACC-1001", "ACC-2001", 2_500, "EUR"))
            .unwrap();
        assert_eq!(balance(&s, "ACC-1001"), a0 - 5_000);
    }

    #[test]
    fn idempotency_key_moves_money_once() {
        let s = state();
        let a0 = balance(&s, "ACC-1001");
        let req = body("ACC-1001", "ACC-1002", 700, "EUR");
        let first = s.submit(Some("mobile-app"), Some("k-1"), &req).unwrap();
        let again = s.submit(Some("mobile-app"), Some("k-1"), &req).unwrap();
        assert_eq!(
            (first.0, &first.1, first.2),
            (StatusCode::CREATED, &again.1, false)
        );
        assert!(again.2, "second answer is a replay");
        assert_eq!(again.0, StatusCode::CREATED);
        assert_eq!(balance(&s, "ACC-1001"), a0 - 700);
        // Key order in the JSON body does not matter, the content does.
        let reordered = br#"{"reference":"rent","currency":"EUR","amount":700,"to_account":"ACC-1002","from_account":"ACC-1001"}"#;
        assert!(
            s.submit(Some("mobile-app"), Some("k-1"), reordered)
                .unwrap()
                .2
        );
        let changed = body("ACC-1001", "ACC-1002", 701, "EUR");
        assert_eq!(
            code(s.submit(Some("mobile-app"), Some("k-1"), &changed)),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused".into()
            )
        );
        // Keys are per consumer: the same key from an anonymous caller is new.
        let other = s.submit(None, Some("k-1"), &req).unwrap();
        assert!(!other.2);
        assert_ne!(other.1["id"], first.1["id"]);
        assert_eq!(balance(&s, "ACC-1001"), a0 - 1_400);
    }

    #[test]
    fn failed_first_attempt_is_replayed_too() {
        let s = state();
        let too_much = body("ACC-1002", "ACC-1001", 1_000_000_000, "EUR");
        let first = s.submit(None, Some("k-2"), &too_much).unwrap();
        assert_eq!(first.0, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(first.1["error"], "insufficient_funds");
        let again = s.submit(None, Some("k-2"), &too_much).unwrap();
        assert_eq!((again.0, again.1, again.2), (first.0, first.1, true));
    }

    #[test]
    fn insufficient_funds_moves_nothing() {
        let s = state();
        let b = balance(&s, "ACC-1002");
        let r = s.submit(None, None, &body("ACC-1002", "ACC-1001", b + 1, "EUR"));
        assert_eq!(
            code(r),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "insufficient_funds".into()
            )
        );
        assert_eq!(balance(&s, "ACC-1002"), b);
        let r = s.submit(None, None, &body("ACC-1002", "ACC-1001", b, "EUR"));
        assert_eq!(code(r).0, StatusCode::CREATED);
        assert_eq!(balance(&s, "ACC-1002"), 0);
    }

    #[test]
    fn currency_must_match_both_accounts() {
        let s = state();
        let a0 = balance(&s, "ACC-1001");
        for (from, to, ccy) in [
            ("ACC-1001", "ACC-3001", "EUR"),
            ("ACC-1001", "ACC-3001", "USD"),
            ("ACC-1001", "ACC-2001", "USD"),
        ] {
            let r = s.submit(None, None, &body(from, to, 100, ccy));
            assert_eq!(
                code(r),
                (StatusCode::UNPROCESSABLE_ENTITY, "currency_mismatch".into()),
                "{from}->{to} {ccy}"
            );
        }
        assert_eq!(balance(&s, "ACC-1001"), a0);
    }

    #[test]
    fn validation_errors() {
        let s = state();
        let cases: [(&[u8], StatusCode, &str); 9] = [
            (b"{not json", StatusCode::BAD_REQUEST, "malformed_json"),
            (br#"{"from_account":"ACC-1001","to_account":"ACC-2001","amount":1.5,"currency":"EUR"}"#, StatusCode::BAD_REQUEST, "invalid_request"),
            (br#"{"from_account":"ACC-1001","to_account":"ACC-2001","amount":"100","currency":"EUR"}"#, StatusCode::BAD_REQUEST, "invalid_request"),
            (br#"{"from_account":"ACC-1001","amount":100,"currency":"EUR"}"#, StatusCode::BAD_REQUEST, "invalid_request"),
            (br#"{"from_account":"ACC-1001","to_account":"ACC-2001","amount":0,"currency":"EUR"}"#, StatusCode::BAD_REQUEST, "invalid_amount"),
            (br#"{"from_account":"ACC-1001","to_account":"ACC-2001","amount":-5,"currency":"EUR"}"#, StatusCode::BAD_REQUEST, "invalid_amount"),
            (br#"{"from_account":"ACC-1001","to_account":"ACC-1001","amount":5,"currency":"EUR"}"#, StatusCode::BAD_REQUEST, "same_account"),
            (br#"{"from_account":"ACC-1001","to_account":"ACC-2001","amount":5,"currency":"eur"}"#, StatusCode::BAD_REQUEST, "invalid_currency"),
            (br#"{"from_account":"ACC-1001","to_account":"ACC-9999","amount":5,"currency":"EUR"}"#, StatusCode::UNPROCESSABLE_ENTITY, "unknown_account"),
        ];
        for (b, status, err) in cases {
            assert_eq!(
                code(s.submit(None, None, b)),
                (status, err.to_string()),
                "{}",
                String::from_utf8_lossy(b)
            );
        }
    }

    #[test]
    fn consumers_only_spend_and_see_their_own() {
        let s = state();
        let r = s.submit(
            Some("web-app"),
            None,
            &body("ACC-1001", "ACC-2001", 100, "EUR"),
        );
        assert_eq!(code(r), (StatusCode::FORBIDDEN, "forbidden".into()));
        // Paying INTO someone else's account is fine.
        let (status, v, _) = s
            .submit(
                Some("mobile-app"),
                None,
                &body("ACC-1001", "ACC-2001", 100, "EUR"),
            )
            .unwrap();
        assert_eq!(status, StatusCode::CREATED);
        let id = v["id"].as_str().unwrap();
        assert!(s.get(Some("mobile-app"), id).is_ok());
        assert!(
            s.get(Some("web-app"), id).is_ok(),
            "web-app owns the receiving account"
        );
        assert_eq!(
            s.get(Some("someone-else"), id).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
    }
}
