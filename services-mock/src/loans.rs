//! Loans service: annuity quotes computed entirely in integer minor units.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;
use crate::ledger::lock;
use crate::payments::{parse_json_body, valid_currency};

pub const MAX_PRINCIPAL: i64 = 1_000_000_000_000;
pub const MAX_RATE_BPS: i64 = 100_000;
pub const MAX_MONTHS: u32 = 480;

/// bps per year -> fraction per month: rate = bps / (10_000 * 12).
const MONTHLY_DENOM: i128 = 120_000;
/// Fixed-point scale for the discount factor; keeps products inside i128.
const SCALE: i128 = 1_000_000_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installment {
    pub n: u32,
    pub payment: i64,
    pub interest: i64,
    pub principal: i64,
    pub balance_after: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Quote {
    pub id: String,
    pub principal: i64,
    pub annual_rate_bps: i64,
    pub months: u32,
    pub currency: String,
    pub installment: i64,
    pub total_interest: i64,
    pub schedule: Vec<Installment>,
}

/// Round-half-up division for non-negative operands.
fn div_round(num: i128, den: i128) -> i128 {
    (num + den / 2) / den
}

fn to_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Level annuity payment P*r / (1 - (1+r)^-n), rounded to the minor unit.
/// (1+r)^-n is computed in 1e18 fixed point so the whole computation stays
/// integer; rate 0 degenerates to P/n.
pub fn level_payment(principal: i64, rate_bps: i64, months: u32) -> i64 {
    let (p, b, n) = (
        i128::from(principal),
        i128::from(rate_bps),
        i128::from(months.max(1)),
    );
    if b == 0 {
        return to_i64(div_round(p, n));
    }
    let v = div_round(MONTHLY_DENOM * SCALE, MONTHLY_DENOM + b);
    let mut vn = SCALE;
    for _ in 0..months {
        vn = div_round(vn * v, SCALE);
    }
    to_i64(div_round(p * b * SCALE, MONTHLY_DENOM * (SCALE - vn)))
}

/// Schedule with interest = round(balance * rate / 12) each month. The final
/// installment repays whatever balance is left, so principal parts sum to the
/// principal exactly and the loan ends at 0.
pub fn schedule(principal: i64, rate_bps: i64, months: u32) -> (i64, Vec<Installment>) {
    let level = level_payment(principal, rate_bps, months);
    let mut balance = i128::from(principal);
    let mut rows = Vec::with_capacity(months as usize);
    for n in 1..=months {
        let interest = div_round(balance * i128::from(rate_bps), MONTHLY_DENOM);
        let principal_part = if n == months {
            balance
        } else {
            // Rounding of tiny loans could otherwise overshoot or go negative.
            (i128::from(level) - interest).clamp(0, balance)
        };
        balance -= principal_part;
        rows.push(Installment {
            n,
            payment: to_i64(principal_part + interest),
            interest: to_i64(interest),
            principal: to_i64(principal_part),
            balance_after: to_i64(balance),
        });
    }
    (level, rows)
}

#[derive(Debug, Deserialize)]
struct QuoteRequest {
    principal: i64,
    annual_rate_bps: i64,
    months: i64,
    currency: Option<String>,
}

fn validate(r: &QuoteRequest) -> Result<(u32, String), ApiError> {
    if !(1..=MAX_PRINCIPAL).contains(&r.principal) {
        return Err(ApiError::bad_request(
            "invalid_principal",
            format!("principal must be in 1..={MAX_PRINCIPAL} minor units"),
        ));
    }
    if !(0..=MAX_RATE_BPS).contains(&r.annual_rate_bps) {
        return Err(ApiError::bad_request(
            "invalid_rate",
            format!("annual_rate_bps must be in 0..={MAX_RATE_BPS}"),
        ));
    }
    let months = u32::try_from(r.months)
        .ok()
        .filter(|m| (1..=MAX_MONTHS).contains(m))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_months",
                format!("months must be in 1..={MAX_MONTHS}"),
            )
        })?;
    let currency = r.currency.clone().unwrap_or_else(|| "EUR".to_string());
    if !valid_currency(&currency) {
        return Err(ApiError::bad_request(
            "invalid_currency",
            "currency must be a 3-letter ISO code",
        ));
    }
    Ok((months, currency))
}

#[derive(Default)]
pub struct LoanStore {
    quotes: Mutex<HashMap<String, Quote>>,
}

pub fn router() -> Router {
    Router::new()
        .route("/loans/quote", post(quote))
        .route("/loans/{id}", get(get_quote))
        .with_state(Arc::new(LoanStore::default()))
}

pub fn build_quote(body: &[u8]) -> Result<Quote, ApiError> {
    let value: Value = parse_json_body(body)?;
    let req: QuoteRequest = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
    let (months, currency) = validate(&req)?;
    let (installment, rows) = schedule(req.principal, req.annual_rate_bps, months);
    Ok(Quote {
        id: String::new(),
        principal: req.principal,
        annual_rate_bps: req.annual_rate_bps,
        months,
        currency,
        installment,
        total_interest: rows.iter().map(|r| r.interest).sum(),
        schedule: rows,
    })
}

async fn quote(
    State(store): State<Arc<LoanStore>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Quote>), ApiError> {
    let mut q = build_quote(&body?)?;
    let mut quotes = lock(&store.quotes);
    q.id = format!("LOAN-{:06}", quotes.len() + 1);
    quotes.insert(q.id.clone(), q.clone());
    Ok((StatusCode::CREATED, Json(q)))
}

async fn get_quote(
    State(store): State<Arc<LoanStore>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Quote>, ApiError> {
    let Path(id) = id?;
    lock(&store.quotes)
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("loan quote {id} not found")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// Independent float reference for the level payment.
    fn float_payment(p: i64, bps: i64, n: u32) -> f64 {
        if bps == 0 {
            return p as f64 / f64::from(n);
        }
        let r = bps as f64 / 120_000.0;
        p as f64 * r / (1.0 - (1.0 + r).powi(-(n as i32)))
    }

    #[test]
    fn schedules_repay_exactly() {
        let principals = [
            1,
            7,
            99,
            100,
            12_345,
            1_000_000,
            25_000_000,
            987_654_321,
            MAX_PRINCIPAL,
        ];
        let rates = [0, 1, 99, 650, 1_999, 10_000, MAX_RATE_BPS];
        let months = [1, 2, 3, 12, 59, 360, MAX_MONTHS];
        for &p in &principals {
            for &b in &rates {
                for &m in &months {
                    let (level, rows) = schedule(p, b, m);
                    let ctx = format!("p={p} bps={b} m={m}");
                    assert_eq!(rows.len(), m as usize, "{ctx}");
                    assert_eq!(rows.iter().map(|r| r.principal).sum::<i64>(), p, "{ctx}");
                    assert_eq!(rows.last().unwrap().balance_after, 0, "{ctx}");
                    let mut bal = p;
                    for r in &rows {
                        assert!(r.principal >= 0 && r.interest >= 0, "{ctx} {r:?}");
                        assert_eq!(r.payment, r.principal + r.interest, "{ctx}");
                        assert_eq!(
                            r.interest as i128,
                            div_round(bal as i128 * b as i128, 120_000),
                            "{ctx}"
                        );
                        bal -= r.principal;
                        assert_eq!(r.balance_after, bal, "{ctx}");
                    }
                    let reference = float_payment(p, b, m);
                    assert!(
                        (level as f64 - reference).abs() <= 0.5 + reference * 1e-9,
                        "{ctx}: {level} vs {reference}"
                    );
                    // Non-trivial loans pay the level amount every month but the last.
                    if p >= 1_000_000 {
                        assert!(
                            rows[..rows.len() - 1].iter().all(|r| r.payment == level),
                            "{ctx}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn known_values() {
        // 10,000.00 at 6.50% over 12 months: 862.96 per month (bank calculators agree).
        assert_eq!(level_payment(1_000_000, 650, 12), 86_296);
        // Rate 0: plain split, last installment absorbs the remainder.
        let (level, rows) = schedule(1_000, 0, 3);
        assert_eq!(level, 333);
        assert_eq!(
            rows.iter().map(|r| r.payment).collect::<Vec<_>>(),
            [333, 333, 334]
        );
        // One month: principal plus one month of interest.
        let (_, rows) = schedule(1_000_000, 1_200, 1);
        assert_eq!(rows[0].payment, 1_010_000);
    }

    #[test]
    fn rejects_bad_input() {
        let code = |body: &str| build_quote(body.as_bytes()).unwrap_err().code;
        assert_eq!(
            code(r#"{"principal":0,"annual_rate_bps":650,"months":12}"#),
            "invalid_principal"
        );
        assert_eq!(
            code(r#"{"principal":100,"annual_rate_bps":-1,"months":12}"#),
            "invalid_rate"
        );
        assert_eq!(
            code(r#"{"principal":100,"annual_rate_bps":650,"months":0}"#),
            "invalid_months"
        );
        assert_eq!(
            code(r#"{"principal":100,"annual_rate_bps":650,"months":481}"#),
            "invalid_months"
        );
        assert_eq!(
            code(r#"{"principal":100.5,"annual_rate_bps":650,"months":12}"#),
            "invalid_request"
        );
        assert_eq!(
            code(r#"{"principal":100,"annual_rate_bps":650,"months":12,"currency":"euro"}"#),
            "invalid_currency"
        );
        assert_eq!(code(r#"{"principal":100,"#), "malformed_json");
        let q = build_quote(br#"{"principal":100000,"annual_rate_bps":0,"months":1}"#).unwrap();
        assert_eq!(
            (q.installment, q.total_interest, q.currency.as_str()),
            (100_000, 0, "EUR")
        );
    }
}
