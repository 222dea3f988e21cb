//! FX rates: a deliberately cacheable endpoint for gateway caching tests.
//! Rates are fixed strings (never floats); `as_of` changes on every answer so
//! a test can tell a cached response from a fresh one.

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::date::now_rfc3339;
use crate::error::ApiError;

pub const CACHE_CONTROL: &str = "public, max-age=30";

const RATES: [(&str, &str); 8] = [
    ("EUR-USD", "1.0842"),
    ("USD-EUR", "0.9223"),
    ("EUR-GBP", "0.8571"),
    ("GBP-EUR", "1.1667"),
    ("GBP-USD", "1.2650"),
    ("USD-GBP", "0.7905"),
    ("EUR-CHF", "0.9412"),
    ("CHF-EUR", "1.0625"),
];

pub fn rate(pair: &str) -> Option<(&'static str, &'static str)> {
    let pair = pair.to_ascii_uppercase();
    RATES.iter().copied().find(|(p, _)| *p == pair)
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/fx/{pair}", get(fx))
}

async fn fx(pair: Result<Path<String>, PathRejection>) -> Result<Response, ApiError> {
    let Path(pair) = pair?;
    let (pair, rate) = rate(&pair)
        .ok_or_else(|| ApiError::not_found(format!("unknown currency pair {pair:?}")))?;
    let body = json!({ "pair": pair, "rate": rate, "as_of": now_rfc3339() });
    Ok(([(header::CACHE_CONTROL, CACHE_CONTROL)], Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_pairs() {
        assert_eq!(rate("EUR-USD"), Some(("EUR-USD", "1.0842")));
        assert_eq!(rate("eur-usd"), Some(("EUR-USD", "1.0842")));
        assert_eq!(rate("EUR-JPY"), None);
        assert_eq!(rate("EURUSD"), None);
    }
}
