//! Consumer identity as forwarded by the gateway. The gateway authenticates
//! and sets `X-Consumer-Id`; without the header the request is an
//! unauthenticated demo call and is not restricted.

use axum::http::HeaderMap;

use crate::error::ApiError;

pub const CONSUMER_HEADER: &str = "x-consumer-id";

/// The consumer id if the header is present (lossy, so a non-UTF-8 value is
/// still "present" and simply matches no owner).
pub fn consumer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONSUMER_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

pub fn may_use(consumer: Option<&str>, owner: &str) -> bool {
    consumer.map_or(true, |c| c == owner)
}

pub fn require_owner(
    consumer: Option<&str>,
    owner: &str,
    account_id: &str,
) -> Result<(), ApiError> {
    if may_use(consumer, owner) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "account {account_id} does not belong to this consumer"
        )))
    }
}
