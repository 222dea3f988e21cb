//! Counter children resolved once and kept beside what they count (a route, an
//! upstream target), so the request path skips `with_label_values`: that hashes
//! every label value and takes the vector's lock, twice per proxied request.
//!
//! A child is resolved on first use, as `with_label_values` would create it, so a
//! series still appears only once it has counted something.

use super::metrics;
use prometheus::{IntCounter, IntCounterVec};
use std::sync::OnceLock;

/// Children of one counter vector that share their leading label values; the
/// caller numbers the remaining combinations (`slot`).
#[derive(Debug)]
pub struct CounterTable {
    vec: IntCounterVec,
    leading: Vec<String>,
    slots: Box<[OnceLock<IntCounter>]>,
}

impl CounterTable {
    pub fn new(vec: &IntCounterVec, leading: &[&str], slots: usize) -> Self {
        Self {
            vec: vec.clone(),
            leading: leading.iter().map(|s| (*s).to_owned()).collect(),
            slots: (0..slots).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Adds one to the child labelled `leading + rest`. `slot` must stand for `rest`
    /// alone in this table; `None` (a rare combination) looks the child up.
    pub fn inc(&self, slot: Option<usize>, rest: &[&str]) {
        let resolve = || {
            let mut labels: Vec<&str> = self.leading.iter().map(String::as_str).collect();
            labels.extend_from_slice(rest);
            self.vec.with_label_values(&labels)
        };
        match slot.and_then(|i| self.slots.get(i)) {
            Some(cell) => cell.get_or_init(resolve).inc(),
            None => resolve().inc(),
        }
    }
}

/// Method label values: a fixed set, so a client inventing methods cannot create
/// unbounded series.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER",
];

/// Statuses common enough to keep resolved; others are looked up each time.
const STATUSES: [u16; 20] = [
    200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404, 405, 409, 413, 422, 429, 500, 502, 503,
    504,
];

fn method_index(method: &http::Method) -> usize {
    match *method {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        http::Method::POST => 2,
        http::Method::PUT => 3,
        http::Method::PATCH => 4,
        http::Method::DELETE => 5,
        http::Method::OPTIONS => 6,
        _ => 7,
    }
}

/// `fingate_requests_total` of one route label.
#[derive(Debug)]
pub struct RequestCounters(CounterTable);

impl RequestCounters {
    pub fn new(route: &str) -> Self {
        let vec = &metrics().requests_total;
        Self(CounterTable::new(
            vec,
            &[route],
            METHODS.len() * STATUSES.len(),
        ))
    }

    pub fn inc(&self, method: &http::Method, status: u16) {
        let m = method_index(method);
        let slot = STATUSES
            .iter()
            .position(|&s| s == status)
            .map(|s| m * STATUSES.len() + s);
        let mut digits = itoa::Buffer::new();
        self.0.inc(slot, &[METHODS[m], digits.format(status)]);
    }
}

/// `fingate_requests_total` for a request without a resolved table (unmatched,
/// the gateway's own endpoints).
pub fn count_request(route: &str, method: &http::Method, status: u16) {
    let mut digits = itoa::Buffer::new();
    metrics()
        .requests_total
        .with_label_values(&[route, METHODS[method_index(method)], digits.format(status)])
        .inc();
}

/// Outcomes of upstream attempts (`fingate_upstream_requests_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Timeout,
    Error,
    ConnectError,
}

impl Outcome {
    const ALL: [Outcome; 4] = [Self::Ok, Self::Timeout, Self::Error, Self::ConnectError];

    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Timeout => "timeout",
            Self::Error => "error",
            Self::ConnectError => "connect_error",
        }
    }
}

/// `fingate_upstream_requests_total` of one target of one group.
#[derive(Debug)]
pub struct UpstreamCounters(CounterTable);

impl UpstreamCounters {
    pub fn new(group: &str, target: &str) -> Self {
        let vec = &metrics().upstream_requests_total;
        Self(CounterTable::new(vec, &[group, target], Outcome::ALL.len()))
    }

    pub fn inc(&self, outcome: Outcome) {
        self.0.inc(Some(outcome as usize), &[outcome.label()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(route: &str, method: &str, status: &str) -> u64 {
        metrics()
            .requests_total
            .with_label_values(&[route, method, status])
            .get()
    }

    #[test]
    fn each_slot_counts_its_own_series() {
        let c = RequestCounters::new("resolved-test");
        c.inc(&http::Method::GET, 200);
        c.inc(&http::Method::GET, 200);
        c.inc(&http::Method::POST, 200);
        c.inc(&http::Method::GET, 404);
        c.inc(&http::Method::GET, 418); // not kept resolved
        c.inc(&http::Method::from_bytes(b"BREW").unwrap_or_default(), 504);
        assert_eq!(value("resolved-test", "GET", "200"), 2);
        assert_eq!(value("resolved-test", "POST", "200"), 1);
        assert_eq!(value("resolved-test", "GET", "404"), 1);
        assert_eq!(value("resolved-test", "GET", "418"), 1);
        assert_eq!(value("resolved-test", "OTHER", "504"), 1);
        assert_eq!(value("resolved-test", "HEAD", "200"), 0);
    }

    #[test]
    fn a_second_table_for_the_same_labels_shares_the_series() {
        // A reload rebuilds routes; their counts must continue, not restart.
        RequestCounters::new("resolved-reload").inc(&http::Method::PUT, 201);
        RequestCounters::new("resolved-reload").inc(&http::Method::PUT, 201);
        assert_eq!(value("resolved-reload", "PUT", "201"), 2);
    }

    #[test]
    fn upstream_outcomes_have_their_own_series() {
        let c = UpstreamCounters::new("resolved-group", "127.0.0.1:9");
        for outcome in Outcome::ALL {
            c.inc(outcome);
        }
        c.inc(Outcome::Ok);
        let get = |o: &str| {
            metrics()
                .upstream_requests_total
                .with_label_values(&["resolved-group", "127.0.0.1:9", o])
                .get()
        };
        assert_eq!(get("ok"), 2);
        assert_eq!(get("timeout"), 1);
        assert_eq!(get("error"), 1);
        assert_eq!(get("connect_error"), 1);
    }
}
