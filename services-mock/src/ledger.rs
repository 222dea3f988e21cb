//! The in-memory ledger shared by the accounts and payments services.
//!
//! Transactions are append-only and carry a per-account sequence number that
//! only grows. Statement cursors point at a sequence number, which is what
//! keeps paging free of gaps and duplicates while payments keep arriving.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::date::Date;

pub type SharedLedger = Arc<Mutex<Ledger>>;

/// A poisoned lock only means another request panicked mid-update; the mock
/// keeps serving rather than turning every later request into a 500.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub seq: u64,
    pub id: String,
    pub date: Date,
    pub description: String,
    /// Minor units; negative is a debit.
    pub amount: i64,
    pub balance_after: i64,
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub owner: String,
    pub currency: String,
    pub balance: i64,
    txns: Vec<Txn>,
}

impl Account {
    fn new(id: &str, owner: &str, currency: &str) -> Self {
        Self {
            id: id.to_string(),
            owner: owner.to_string(),
            currency: currency.to_string(),
            balance: 0,
            txns: Vec::new(),
        }
    }

    #[cfg(test)]
    pub fn txns(&self) -> &[Txn] {
        &self.txns
    }

    /// Books are kept in date order by never dating a new entry before the
    /// last one (a back-dated entry would rewrite later running balances).
    fn append(&mut self, date: Date, description: String, amount: i64) -> Option<&Txn> {
        let balance_after = self.balance.checked_add(amount)?;
        let date = self.txns.last().map_or(date, |last| last.date.max(date));
        let seq = self.txns.len() as u64 + 1;
        self.balance = balance_after;
        self.txns.push(Txn {
            seq,
            id: format!("{}-T{seq:05}", self.id),
            date,
            description,
            amount,
            balance_after,
        });
        self.txns.last()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferError {
    UnknownAccount(String),
    /// Non-positive amount or a transfer to the same account.
    Invalid,
    InsufficientFunds {
        balance: i64,
    },
    Overflow,
}

/// One page of a statement; `next_after` is the sequence number to resume
/// after, present only when more matching transactions exist.
#[derive(Debug)]
pub struct StatementPage<'a> {
    pub txns: Vec<&'a Txn>,
    pub next_after: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Ledger {
    accounts: BTreeMap<String, Account>,
}

/// (id, owner, currency, opening deposit in minor units)
pub const SEED_ACCOUNTS: [(&str, &str, &str, i64); 4] = [
    ("ACC-1001", "mobile-app", "EUR", 250_000),
    ("ACC-1002", "mobile-app", "EUR", 80_000),
    ("ACC-2001", "web-app", "EUR", 1_200_000),
    ("ACC-3001", "web-app", "USD", 500_000),
];

const SEED_TXNS_PER_ACCOUNT: u64 = 30;

impl Ledger {
    pub fn shared(self) -> SharedLedger {
        Arc::new(Mutex::new(self))
    }

    /// Deterministic seed: same accounts, dates and amounts on every start, so
    /// tests and demos can rely on exact values.
    pub fn seeded() -> Self {
        let mut ledger = Self::default();
        let descriptions = [
            "Card payment - Grocer",
            "Card payment - Cafe",
            "Utility bill",
            "ATM withdrawal",
            "Online shop",
            "Transport pass",
        ];
        for (index, (id, owner, currency, opening)) in SEED_ACCOUNTS.iter().enumerate() {
            let mut acc = Account::new(id, owner, currency);
            let start = Date {
                year: 2026,
                month: 1,
                day: 2,
            };
            acc.append(start, "Opening deposit".to_string(), *opening);
            // Small LCG: reproducible pseudo-random amounts without a rand dependency.
            let mut state: u64 = 0x9E37_79B9 ^ ((index as u64 + 1) * 7919);
            for n in 1..SEED_TXNS_PER_ACCOUNT {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let roll = (state >> 33) as i64;
                let date = start.add_days(2 * n as i64);
                let (desc, amount) = if n % 10 == 5 {
                    ("Salary".to_string(), 150_000 + roll % 50_000)
                } else {
                    let d = descriptions[(roll as usize) % descriptions.len()];
                    (d.to_string(), -(500 + roll % 9_500))
                };
                // Keep seed balances non-negative: turn an overdrawing debit into a refund.
                let (desc, amount) = if acc.balance + amount < 0 {
                    (format!("Refund - {desc}"), -amount)
                } else {
                    (desc, amount)
                };
                acc.append(date, desc, amount);
            }
            ledger.accounts.insert(acc.id.clone(), acc);
        }
        ledger
    }

    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.get(id)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    /// Moves money atomically: either both legs are booked or neither is.
    pub fn transfer(
        &mut self,
        from: &str,
        to: &str,
        amount: i64,
        date: Date,
        debit_desc: String,
        credit_desc: String,
    ) -> Result<(), TransferError> {
        let from_balance = self
            .accounts
            .get(from)
            .ok_or_else(|| TransferError::UnknownAccount(from.to_string()))?
            .balance;
        let to_balance = self
            .accounts
            .get(to)
            .ok_or_else(|| TransferError::UnknownAccount(to.to_string()))?
            .balance;
        if amount <= 0 || from == to {
            return Err(TransferError::Invalid);
        }
        if from_balance < amount {
            return Err(TransferError::InsufficientFunds {
                balance: from_balance,
            });
        }
        to_balance
            .checked_add(amount)
            .ok_or(TransferError::Overflow)?;
        // Both checks passed, so neither append can fail now.
        if let Some(acc) = self.accounts.get_mut(from) {
            acc.append(date, debit_desc, -amount);
        }
        if let Some(acc) = self.accounts.get_mut(to) {
            acc.append(date, credit_desc, amount);
        }
        Ok(())
    }

    /// Transactions of `account` dated within `[from, to]` (inclusive) with a
    /// sequence number above `after`, oldest first, at most `limit` of them.
    pub fn statement(
        &self,
        account: &str,
        from: Option<Date>,
        to: Option<Date>,
        after: u64,
        limit: usize,
    ) -> Option<StatementPage<'_>> {
        let acc = self.accounts.get(account)?;
        let mut matching = acc.txns.iter().filter(|t| {
            t.seq > after && from.map_or(true, |f| t.date >= f) && to.map_or(true, |e| t.date <= e)
        });
        let txns: Vec<&Txn> = matching.by_ref().take(limit).collect();
        let next_after = match (matching.next(), txns.last()) {
            (Some(_), Some(last)) => Some(last.seq),
            _ => None,
        };
        Some(StatementPage { txns, next_after })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    #[test]
    fn seed_is_consistent() {
        let ledger = Ledger::seeded();
        assert_eq!(ledger.accounts().count(), SEED_ACCOUNTS.len());
        for acc in ledger.accounts() {
            assert_eq!(acc.txns().len() as u64, SEED_TXNS_PER_ACCOUNT);
            let mut running = 0i64;
            let mut prev: Option<Date> = None;
            for t in acc.txns() {
                running += t.amount;
                assert_eq!(t.balance_after, running, "{}", t.id);
                assert!(t.balance_after >= 0, "{}", t.id);
                assert_eq!(t.date.year, 2026);
                if let Some(p) = prev {
                    assert!(t.date >= p);
                }
                prev = Some(t.date);
            }
            assert_eq!(acc.balance, running);
        }
        // Determinism: two seeds are identical.
        let again = Ledger::seeded();
        for (a, b) in ledger.accounts().zip(again.accounts()) {
            assert_eq!(a.txns(), b.txns());
        }
    }

    #[test]
    fn transfer_moves_money_both_legs() {
        let mut l = Ledger::seeded();
        let a0 = l.account("ACC-1001").unwrap().balance;
        let b0 = l.account("ACC-1002").unwrap().balance;
        l.transfer(
            "ACC-1001",
            "ACC-1002",
            1234,
            d("2026-06-01"),
            "out".into(),
            "in".into(),
        )
        .unwrap();
        let a = l.account("ACC-1001").unwrap();
        let b = l.account("ACC-1002").unwrap();
        assert_eq!(a.balance, a0 - 1234);
        assert_eq!(b.balance, b0 + 1234);
        assert_eq!(a.txns().last().unwrap().amount, -1234);
        assert_eq!(a.txns().last().unwrap().balance_after, a0 - 1234);
        assert_eq!(b.txns().last().unwrap().balance_after, b0 + 1234);
    }

    #[test]
    fn transfer_rejects_overdraft_and_unknown_without_side_effects() {
        let mut l = Ledger::seeded();
        let a0 = l.account("ACC-1002").unwrap().clone();
        let err = l
            .transfer(
                "ACC-1002",
                "ACC-1001",
                a0.balance + 1,
                d("2026-06-01"),
                "x".into(),
                "y".into(),
            )
            .unwrap_err();
        assert_eq!(
            err,
            TransferError::InsufficientFunds {
                balance: a0.balance
            }
        );
        let err = l
            .transfer(
                "ACC-1002",
                "ACC-9999",
                1,
                d("2026-06-01"),
                "x".into(),
                "y".into(),
            )
            .unwrap_err();
        assert_eq!(err, TransferError::UnknownAccount("ACC-9999".into()));
        assert_eq!(l.account("ACC-1002").unwrap().txns(), a0.txns());
        // Exactly the whole balance is allowed.
        l.transfer(
            "ACC-1002",
            "ACC-1001",
            a0.balance,
            d("2026-06-01"),
            "x".into(),
            "y".into(),
        )
        .unwrap();
        assert_eq!(l.account("ACC-1002").unwrap().balance, 0);
    }

    #[test]
    fn backdated_entry_keeps_date_order() {
        let mut l = Ledger::seeded();
        l.transfer(
            "ACC-1001",
            "ACC-1002",
            1,
            d("2025-01-01"),
            "x".into(),
            "y".into(),
        )
        .unwrap();
        let txns = l.account("ACC-1001").unwrap().txns();
        let n = txns.len();
        assert!(txns[n - 1].date >= txns[n - 2].date);
    }

    /// Walks every page and checks the union is exactly the filtered list.
    fn collect_pages(
        l: &Ledger,
        acc: &str,
        from: Option<Date>,
        to: Option<Date>,
        limit: usize,
    ) -> Vec<String> {
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let page = l.statement(acc, from, to, after, limit).unwrap();
            assert!(page.txns.len() <= limit);
            seen.extend(page.txns.iter().map(|t| t.id.clone()));
            match page.next_after {
                Some(n) => after = n,
                None => break,
            }
        }
        seen
    }

    #[test]
    fn pagination_has_no_gaps_or_duplicates() {
        let l = Ledger::seeded();
        let all: Vec<String> = l
            .account("ACC-2001")
            .unwrap()
            .txns()
            .iter()
            .map(|t| t.id.clone())
            .collect();
        for limit in [1, 2, 3, 7, 29, 30, 31, 500] {
            assert_eq!(
                collect_pages(&l, "ACC-2001", None, None, limit),
                all,
                "limit {limit}"
            );
        }
        let (from, to) = (d("2026-01-10"), d("2026-02-01"));
        let expected: Vec<String> = l
            .account("ACC-2001")
            .unwrap()
            .txns()
            .iter()
            .filter(|t| t.date >= from && t.date <= to)
            .map(|t| t.id.clone())
            .collect();
        assert_eq!(
            expected.len(),
            12,
            "inclusive bounds: both edge days have a txn"
        );
        assert_eq!(
            collect_pages(&l, "ACC-2001", Some(from), Some(to), 5),
            expected
        );
    }

    #[test]
    fn pagination_survives_append_between_pages() {
        let mut l = Ledger::seeded();
        let first: Vec<String>;
        let after;
        {
            let page = l.statement("ACC-1001", None, None, 0, 10).unwrap();
            first = page.txns.iter().map(|t| t.id.clone()).collect();
            after = page.next_after.unwrap();
        }
        l.transfer(
            "ACC-1001",
            "ACC-1002",
            100,
            d("2026-11-01"),
            "x".into(),
            "y".into(),
        )
        .unwrap();
        let mut seen = first;
        let mut after = after;
        loop {
            let page = l.statement("ACC-1001", None, None, after, 10).unwrap();
            seen.extend(page.txns.iter().map(|t| t.id.clone()));
            match page.next_after {
                Some(n) => after = n,
                None => break,
            }
        }
        let all: Vec<String> = l
            .account("ACC-1001")
            .unwrap()
            .txns()
            .iter()
            .map(|t| t.id.clone())
            .collect();
        assert_eq!(all.len() as u64, SEED_TXNS_PER_ACCOUNT + 1);
        assert_eq!(seen, all);
    }
}
