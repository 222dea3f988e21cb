//! Idempotency keys: one record per key, taken *before* the request it guards is
//! forwarded, so two requests with the same key can never both reach the service.
//!
//! A record holds the request's fingerprint and either the token of the claim that
//! holds it (in flight, expiring after `hold`) or the stored answer (done, expiring
//! after `ttl`). Three operations, each one atomic step:
//!
//! - **claim**: a free key is taken (in flight, with this claim's token); otherwise
//!   the caller learns what holds it: the same request still running, the same
//!   request done (its answer), or a different request (fingerprints differ);
//! - **complete**: the answer is stored and the token dropped — only while the key
//!   is still held by this claim's token;
//! - **release**: the key is deleted — only while still held by this token, so a
//!   late release never frees a key another request took after this hold expired.
//!
//! The memory store runs [`Record::claim`], [`Record::complete`] and
//! [`Record::held_by`] (then deletes) under its lock; the redis store runs [`CLAIM_LUA`],
//! [`COMPLETE_LUA`] and [`RELEASE_LUA`], the same steps, one round trip each. In
//! Redis a record is a hash (`f` fingerprint, `t` token while in flight, `a` answer
//! once done) under one key, so a decision never spans two slots.

use std::sync::Arc;
use std::time::Duration;

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key was free: this claim holds it now.
    New,
    /// Another request with the same fingerprint holds the key; its hold ends in
    /// `expires_in` at the latest.
    InFlight { expires_in: Duration },
    /// A request with the same fingerprint completed: its stored answer.
    Done(Vec<u8>),
    /// The key is held or done for a request with another fingerprint.
    Mismatch,
}

/// One key's record in the memory store.
#[derive(Debug, Clone)]
pub struct Record {
    pub fingerprint: String,
    pub state: State,
    /// µs since the epoch.
    pub expires: i64,
}

#[derive(Debug, Clone)]
pub enum State {
    /// In flight, held by the claim with this token.
    Held(String),
    /// Completed: the stored answer.
    Done(Arc<[u8]>),
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Record {
    /// Claims the key whose live record is `existing` (None: free or expired).
    /// Returns the outcome and, for a new claim, the record to store.
    pub fn claim(
        existing: Option<&Record>,
        now: i64,
        fingerprint: &str,
        token: &str,
        hold: Duration,
    ) -> (Claim, Option<Record>) {
        match existing {
            None => (
                Claim::New,
                Some(Record {
                    fingerprint: fingerprint.to_owned(),
                    state: State::Held(token.to_owned()),
                    expires: now.saturating_add(micros(hold)),
                }),
            ),
            Some(r) if r.fingerprint != fingerprint => (Claim::Mismatch, None),
            Some(Record {
                state: State::Done(answer),
                ..
            }) => (Claim::Done(answer.to_vec()), None),
            Some(Record {
                state: State::Held(_),
                expires,
                ..
            }) => {
                let left = u64::try_from(expires.saturating_sub(now)).unwrap_or(0);
                (
                    Claim::InFlight {
                        expires_in: Duration::from_micros(left),
                    },
                    None,
                )
            }
        }
    }

    /// Stores `answer` for `ttl` when this record is still held by `token`;
    /// false otherwise (the record is left as it was).
    pub fn complete(&mut self, now: i64, token: &str, answer: &[u8], ttl: Duration) -> bool {
        if !matches!(&self.state, State::Held(t) if t == token) {
            return false;
        }
        self.state = State::Done(Arc::from(answer));
        self.expires = now.saturating_add(micros(ttl));
        true
    }

    /// Whether `token` holds this record (a release by it deletes the record).
    pub fn held_by(&self, token: &str) -> bool {
        matches!(&self.state, State::Held(t) if t == token)
    }

    /// Bytes of answer this record holds (for the memory store's budget).
    pub fn answer_len(&self) -> usize {
        match &self.state {
            State::Done(a) => a.len(),
            State::Held(_) => 0,
        }
    }
}

/// [`Record::claim`] in Redis: KEYS[1]; ARGV = fingerprint, token, hold in ms.
/// Returns {0, 0, ''} new, {1, ms left, ''} in flight, {2, 0, answer} done,
/// {3, 0, ''} mismatch.
pub const CLAIM_LUA: &str = r"
local r = redis.call('HMGET', KEYS[1], 'f', 't', 'a')
if not r[1] then
  redis.call('HSET', KEYS[1], 'f', ARGV[1], 't', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {0, 0, ''}
end
if r[1] ~= ARGV[1] then
  return {3, 0, ''}
end
if r[3] then
  return {2, 0, r[3]}
end
return {1, redis.call('PTTL', KEYS[1]), ''}
";

/// [`Record::complete`] in Redis: KEYS[1]; ARGV = token, answer, ttl in ms.
/// Returns 1 when stored, 0 when the key is no longer held by this token.
pub const COMPLETE_LUA: &str = r"
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then
  return 0
end
redis.call('HDEL', KEYS[1], 't')
redis.call('HSET', KEYS[1], 'a', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Release in Redis: KEYS[1]; ARGV = token. Returns 1 when deleted.
pub const RELEASE_LUA: &str = r"
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
";

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_secs(10);

    #[test]
    fn a_free_key_is_held_and_then_seen_in_flight_done_or_mismatched() {
        let (c, r) = Record::claim(None, 0, "fp", "t1", HOLD);
        assert_eq!(c, Claim::New);
        let mut r = r.unwrap_or_else(|| unreachable!());
        let (c, w) = Record::claim(Some(&r), 4_000_000, "fp", "t2", HOLD);
        assert_eq!(
            c,
            Claim::InFlight {
                expires_in: Duration::from_secs(6)
            }
        );
        assert!(w.is_none(), "a held key is not taken over");
        assert_eq!(
            Record::claim(Some(&r), 0, "other", "t2", HOLD).0,
            Claim::Mismatch
        );
        assert!(
            !r.complete(0, "t2", b"no", HOLD),
            "only the holder completes"
        );
        assert!(r.complete(5, "t1", b"answer", Duration::from_secs(60)));
        assert_eq!(r.expires, 60_000_005);
        assert_eq!(
            Record::claim(Some(&r), 10, "fp", "t3", HOLD).0,
            Claim::Done(b"answer".to_vec())
        );
        assert_eq!(
            Record::claim(Some(&r), 10, "other", "t3", HOLD).0,
            Claim::Mismatch
        );
        assert!(!r.held_by("t1"), "a completed key is never released");
        assert!(!r.complete(6, "t1", b"again", HOLD), "completed once");
    }

    #[test]
    fn only_the_holder_releases() {
        let (_, r) = Record::claim(None, 0, "fp", "t1", HOLD);
        let r = r.unwrap_or_else(|| unreachable!());
        assert!(!r.held_by("t2"));
        assert!(r.held_by("t1"));
    }
}
