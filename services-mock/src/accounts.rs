//! Accounts service: balances and paginated statements over the ledger.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::date::Date;
use crate::error::ApiError;
use crate::identity::{consumer, may_use, require_owner};
use crate::ledger::{lock, Account, Ledger, SharedLedger};

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

pub fn router(ledger: SharedLedger) -> Router {
    Router::new()
        .route("/accounts", get(list))
        .route("/accounts/{id}", get(account))
        .route("/accounts/{id}/statement", get(statement))
        .with_state(ledger)
}

fn account_json(a: &Account) -> Value {
    json!({ "id": a.id, "owner": a.owner, "currency": a.currency, "balance": a.balance })
}

/// Lists the accounts the caller may see (all of them without a consumer).
async fn list(State(ledger): State<SharedLedger>, headers: HeaderMap) -> Json<Value> {
    let who = consumer(&headers);
    let ledger = lock(&ledger);
    let accounts: Vec<Value> = ledger
        .accounts()
        .filter(|a| may_use(who.as_deref(), &a.owner))
        .map(account_json)
        .collect();
    Json(json!({ "accounts": accounts }))
}

fn find<'a>(ledger: &'a Ledger, id: &str, who: Option<&str>) -> Result<&'a Account, ApiError> {
    let acc = ledger
        .account(id)
        .ok_or_else(|| ApiError::not_found(format!("account {id} not found")))?;
    require_owner(who, &acc.owner, id)?;
    Ok(acc)
}

async fn account(
    State(ledger): State<SharedLedger>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    let ledger = lock(&ledger);
    find(&ledger, &id, consumer(&headers).as_deref()).map(|a| Json(account_json(a)))
}

#[derive(Debug, Default, Deserialize)]
pub struct StatementQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// Validated statement parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct StatementParams {
    pub from: Option<Date>,
    pub to: Option<Date>,
    pub limit: usize,
    pub after: u64,
}

fn parse_date(name: &str, v: Option<&str>) -> Result<Option<Date>, ApiError> {
    v.map(|s| {
        Date::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_date",
                format!("{name}={s:?} is not a valid YYYY-MM-DD date"),
            )
        })
    })
    .transpose()
}

pub fn validate(account_id: &str, q: &StatementQuery) -> Result<StatementParams, ApiError> {
    let from = parse_date("from", q.from.as_deref())?;
    let to = parse_date("to", q.to.as_deref())?;
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(ApiError::bad_request(
                "invalid_date_range",
                format!("from ({f}) is after to ({t})"),
            ));
        }
    }
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_limit",
                    format!("limit must be an integer in 1..={MAX_LIMIT}, got {s:?}"),
                ))
            }
        },
    };
    let after = match q.cursor.as_deref() {
        None => 0,
        Some(c) => decode_cursor(account_id, c).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_cursor",
                "cursor is malformed or belongs to another account",
            )
        })?,
    };
    Ok(StatementParams {
        from,
        to,
        limit,
        after,
    })
}

/// Cursor = hex of `v1|<account>|<last seq>`: opaque to clients, bound to its
/// account, and pointing at a position that later appends cannot shift.
pub fn encode_cursor(account_id: &str, after: u64) -> String {
    format!("v1|{account_id}|{after}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn decode_cursor(account_id: &str, cursor: &str) -> Option<u64> {
    if cursor.len() % 2 != 0 || cursor.len() > 256 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let mut parts = text.splitn(3, '|');
    if parts.next()? != "v1" || parts.next()? != account_id {
        return None;
    }
    parts.next()?.parse().ok()
}

pub fn statement_json(ledger: &Ledger, acc: &Account, p: &StatementParams) -> Value {
    let page = ledger.statement(&acc.id, p.from, p.to, p.after, p.limit);
    let (txns, next) = page.map_or((Vec::new(), None), |pg| (pg.txns, pg.next_after));
    let transactions: Vec<Value> = txns
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "date": t.date.to_string(),
                "description": t.description,
                "amount": t.amount,
                "balance_after": t.balance_after,
            })
        })
        .collect();
    json!({
        "account_id": acc.id,
        "currency": acc.currency,
        "transactions": transactions,
        "next_cursor": next.map(|n| encode_cursor(&acc.id, n)),
    })
}

async fn statement(
    State(ledger): State<SharedLedger>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<StatementQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    let Query(query) = query?;
    let ledger = lock(&ledger);
    let acc = find(&ledger, &id, consumer(&headers).as_deref())?;
    let params = validate(&id, &query)?;
    Ok(Json(statement_json(&ledger, acc, &params)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::ledger::Ledger;

    fn q(
        from: Option<&str>,
        to: Option<&str>,
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> StatementQuery {
        StatementQuery {
            from: from.map(String::from),
            to: to.map(String::from),
            limit: limit.map(String::from),
            cursor: cursor.map(String::from),
        }
    }

    fn err_code(r: Result<StatementParams, ApiError>) -> &'static str {
        r.unwrap_err().code
    }

    #[test]
    fn rejects_bad_parameters() {
        let id = "ACC-1001";
        assert_eq!(
            err_code(validate(id, &q(Some("2026-02-30"), None, None, None))),
            "invalid_date"
        );
        assert_eq!(
            err_code(validate(id, &q(None, Some("yesterday"), None, None))),
            "invalid_date"
        );
        assert_eq!(
            err_code(validate(id, &q(Some(""), None, None, None))),
            "invalid_date"
        );
        assert_eq!(
            err_code(validate(
                id,
                &q(Some("2026-03-01"), Some("2026-02-01"), None, None)
            )),
            "invalid_date_range"
        );
        for bad in ["0", "501", "-1", "ten", "1.5", ""] {
            assert_eq!(
                err_code(validate(id, &q(None, None, Some(bad), None))),
                "invalid_limit",
                "{bad}"
            );
        }
        let other = encode_cursor("ACC-2001", 3);
        for bad in ["zz", "abc", "", other.as_str(), "7631"] {
            assert_eq!(
                err_code(validate(id, &q(None, None, None, Some(bad)))),
                "invalid_cursor",
                "{bad}"
            );
        }
        let ok = validate(
            id,
            &q(Some("2026-01-01"), Some("2026-01-01"), Some("500"), None),
        )
        .unwrap();
        assert_eq!(ok.limit, 500);
        assert_eq!(
            validate(id, &q(None, None, None, None)).unwrap().limit,
            DEFAULT_LIMIT
        );
    }

    #[test]
    fn consumers_see_only_their_accounts() {
        let ledger = Ledger::seeded();
        assert!(find(&ledger, "ACC-1001", None).is_ok());
        assert!(find(&ledger, "ACC-1001", Some("mobile-app")).is_ok());
        assert_eq!(
            find(&ledger, "ACC-1001", Some("web-app")).unwrap_err().code,
            "forbidden"
        );
        assert_eq!(
            find(&ledger, "ACC-1001", Some("")).unwrap_err().code,
            "forbidden"
        );
        assert_eq!(
            find(&ledger, "ACC-0000", Some("web-app")).unwrap_err().code,
            "not_found"
        );
        let visible: Vec<&str> = ledger
            .accounts()
            .filter(|a| may_use(Some("web-app"), &a.owner))
            .map(|a| a.id.as_str())
            .collect();
        assert_eq!(visible, ["ACC-2001", "ACC-3001"]);
    }

    #[test]
    fn cursor_round_trips() {
        let c = encode_cursor("ACC-1001", 17);
        assert!(c.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(decode_cursor("ACC-1001", &c), Some(17));
        assert_eq!(decode_cursor("ACC-1002", &c), None);
    }

    /// Pages through the JSON statement and checks the running balance of
    /// every returned line against the account's opening position.
    #[test]
    fn statement_pages_have_correct_running_balance() {
        let shared = Ledger::seeded().shared();
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        let mut running: Option<i64> = None;
        let mut appended = false;
        loop {
            let page = {
                let ledger = lock(&shared);
                let acc = ledger.account("ACC-2001").unwrap();
                let p = validate("ACC-2001", &q(None, None, Some("7"), cursor.as_deref())).unwrap();
                statement_json(&ledger, acc, &p)
            };
            for t in page["transactions"].as_array().unwrap() {
                let amount = t["amount"].as_i64().unwrap();
                let after = t["balance_after"].as_i64().unwrap();
                running = Some(running.unwrap_or(0) + amount);
                assert_eq!(Some(after), running, "{t}");
                ids.push(t["id"].as_str().unwrap().to_string());
            }
            // Append a transfer after the first page: it must show up once, at the end.
            if !appended {
                appended = true;
                let mut l = lock(&shared);
                let date = Date::parse("2026-10-10").unwrap();
                l.transfer("ACC-2001", "ACC-1001", 99, date, "out".into(), "in".into())
                    .unwrap();
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let ledger = lock(&shared);
        let all: Vec<String> = ledger
            .account("ACC-2001")
            .unwrap()
            .txns()
            .iter()
            .map(|t| t.id.clone())
            .collect();
        assert_eq!(ids.len(), 31, "30 seed lines plus the appended one");
        assert_eq!(ids, all);
        assert_eq!(running, Some(ledger.account("ACC-2001").unwrap().balance));
    }
}
