//! Rate-limit arithmetic shared by every store: one decision from the stored state
//! and the current time.
//!
//! The memory store runs these functions; the redis store runs the Lua scripts below,
//! which are the same steps line for line (integer microseconds, the same float
//! expressions), so one instance decides the same with either backend. Times are
//! microseconds since the Unix epoch: Redis `TIME` in Redis, the system clock here.

use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Generic cell rate algorithm: a bucket of `limit + burst` requests refilled
    /// evenly at `limit` per `per`. One timestamp of state per key.
    #[default]
    Gcra,
    /// Weighted two-window counter: the previous fixed window's count, weighted by
    /// how much of it still overlaps the sliding window, plus the current one.
    SlidingWindow,
}

/// One limit: `limit` requests per `per`, plus `burst` extra at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rule {
    pub algorithm: Algorithm,
    pub limit: u32,
    pub per: Duration,
    pub burst: u32,
}

impl Rule {
    /// Requests allowed at once from a fresh state: `limit + burst`.
    pub fn capacity(&self) -> i64 {
        i64::from(self.limit) + i64::from(self.burst)
    }

    pub fn per_us(&self) -> i64 {
        i64::try_from(self.per.as_micros())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    /// GCRA's emission interval: the time one request's allowance takes to come back.
    pub fn interval_us(&self) -> i64 {
        (self.per_us() / i64::from(self.limit.max(1))).max(1)
    }

    /// A short, stable tag of the rule, part of every key: two rules never read
    /// each other's state (a GCRA timestamp means nothing to another interval).
    pub fn tag(&self) -> String {
        let a = match self.algorithm {
            Algorithm::Gcra => "g",
            Algorithm::SlidingWindow => "w",
        };
        format!(
            "{a}{}/{}ms+{}",
            self.limit,
            self.per.as_millis(),
            self.burst
        )
    }
}

/// The outcome of one decision for `cost` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// All `cost` requests passed (cost 0: one more would pass).
    pub allowed: bool,
    /// How many of the `cost` requests passed, first come first: a batch of
    /// requests is granted as many as fit, never all-or-nothing.
    pub granted: u32,
    /// Requests still allowed right now after the granted ones.
    pub remaining: u64,
    /// Until the allowance is fully restored.
    pub reset: Duration,
    /// Until the next request would be allowed (zero when all were granted).
    pub retry_after: Duration,
}

impl Decision {
    /// From the four integers a script returns (granted, remaining, reset µs, retry
    /// µs) and the cost that was asked for.
    pub fn from_parts(
        granted: i64,
        remaining: i64,
        reset_us: i64,
        retry_us: i64,
        cost: u32,
    ) -> Self {
        let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        let granted = u32::try_from(granted).unwrap_or(0);
        Self {
            allowed: granted >= cost.max(1),
            granted,
            remaining: u64::try_from(remaining).unwrap_or(0),
            reset: us(reset_us),
            retry_after: us(retry_us),
        }
    }
}

/// How many of `cost` requests to grant when `fit` more would fit now (cost 0:
/// whether one more would, without counting it).
fn grant(fit: i64, cost: u32) -> i64 {
    fit.clamp(0, i64::from(cost.max(1)))
}

/// A GCRA decision. `tat` is the stored theoretical arrival time. `cost` 0 asks
/// whether one more request would pass without counting it. Returns the decision
/// and the new `tat` to store (None: leave the state as it is).
pub fn gcra(tat: Option<i64>, now: i64, rule: &Rule, cost: u32) -> (Decision, Option<i64>) {
    let interval = rule.interval_us();
    let cap = rule.capacity();
    let tat = tat.unwrap_or(now).max(now);
    // Request k (1-based) passes while tat + k·interval − cap·interval ≤ now.
    let fit = cap + (now - tat).div_euclid(interval);
    let granted = grant(fit, cost);
    if granted == 0 {
        let retry = tat + interval - cap * interval - now;
        return (Decision::from_parts(0, 0, tat - now, retry, cost), None);
    }
    let stored = if cost > 0 {
        tat + granted * interval
    } else {
        tat
    };
    let remaining = (now + cap * interval - stored) / interval;
    let retry = if granted < i64::from(cost) {
        stored + interval - cap * interval - now
    } else {
        0
    };
    let decision = Decision::from_parts(granted, remaining, stored - now, retry, cost);
    (decision, (cost > 0).then_some(stored))
}

/// Sliding-window state: the fixed window's index, its count, the previous count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub index: i64,
    pub current: i64,
    pub previous: i64,
}

/// A sliding-window decision; returns the state to store (None: unchanged) and how
/// long it must live.
pub fn sliding_window(
    state: Option<Window>,
    now: i64,
    rule: &Rule,
    cost: u32,
) -> (Decision, Option<(Window, i64)>) {
    let per = rule.per_us();
    let cap = rule.capacity();
    let index = now / per;
    let elapsed = now - index * per;
    let (c, p) = match state {
        Some(w) if w.index == index => (w.current, w.previous),
        Some(w) if w.index == index - 1 => (0, w.current),
        _ => (0, 0),
    };
    let count = p as f64 * (per - elapsed) as f64 / per as f64 + c as f64;
    let granted = grant((cap as f64 - count).floor() as i64, cost);
    if granted == 0 {
        let retry = window_retry(c, p, cap, per, elapsed);
        let reset = window_reset(c, p, per, elapsed);
        return (Decision::from_parts(0, 0, reset, retry, cost), None);
    }
    let c = if cost > 0 { c + granted } else { c };
    let left = (cap as f64 - (p as f64 * (per - elapsed) as f64 / per as f64 + c as f64)).floor();
    let retry = if granted < i64::from(cost) {
        window_retry(c, p, cap, per, elapsed)
    } else {
        0
    };
    let decision = Decision::from_parts(
        granted,
        left as i64,
        window_reset(c, p, per, elapsed),
        retry,
        cost,
    );
    let write = (cost > 0).then_some((
        Window {
            index,
            current: c,
            previous: p,
        },
        2 * per - elapsed,
    ));
    (decision, write)
}

/// Until one more request fits, given the counts `c` (this window) and `p`
/// (the previous one) that leave no room now.
fn window_retry(c: i64, p: i64, cap: i64, per: i64, elapsed: i64) -> i64 {
    let retry = if c < cap {
        // Wait until enough of the previous window has slid out.
        ((per as f64) - ((cap - c - 1) as f64 * per as f64 / p as f64)).ceil() as i64 - elapsed
    } else {
        // Wait for the next window, where this one's count is the previous.
        (per - elapsed) + ((per as f64) - ((cap - 1) as f64 * per as f64 / c as f64)).ceil() as i64
    };
    retry.max(1)
}

/// Until the weighted count is back to zero.
fn window_reset(c: i64, p: i64, per: i64, elapsed: i64) -> i64 {
    if c > 0 {
        2 * per - elapsed
    } else if p > 0 {
        per - elapsed
    } else {
        0
    }
}

/// [`gcra`] in Redis. KEYS[1]: the limiter key; ARGV: interval µs, capacity, cost.
/// `%d` formatting keeps 16-digit microsecond times exact (Lua's default `%.14g`
/// would round them).
pub const GCRA_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local want = cost
if want < 1 then want = 1 end
local granted = cap + math.floor((now - tat) / interval)
if granted > want then granted = want end
if granted < 1 then return {0, 0, tat - now, tat + interval - cap * interval - now} end
local stored = tat
if cost > 0 then
  stored = tat + granted * interval
  redis.call('SET', KEYS[1], string.format('%d', stored), 'PX', math.ceil((stored - now) / 1000) + 1)
end
local retry = 0
if granted < cost then retry = stored + interval - cap * interval - now end
return {granted, math.floor((now + cap * interval - stored) / interval), stored - now, retry}
"#;

/// [`sliding_window`] in Redis: one hash per key with fields w (window index),
/// c (its count), p (the previous window's count). ARGV: per µs, capacity, cost.
pub const SLIDING_WINDOW_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local per = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local index = math.floor(now / per)
local elapsed = now - index * per
local s = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local w, c, p = tonumber(s[1]), 0, 0
if w == index then c = tonumber(s[2]) or 0; p = tonumber(s[3]) or 0
elseif w == index - 1 then p = tonumber(s[2]) or 0 end
local function reset(cc)
  if cc > 0 then return 2 * per - elapsed elseif p > 0 then return per - elapsed else return 0 end
end
local function retry_after(cc)
  local r
  if cc < cap then
    r = math.ceil(per - ((cap - cc - 1) * per / p)) - elapsed
  else
    r = (per - elapsed) + math.ceil(per - ((cap - 1) * per / cc))
  end
  if r < 1 then r = 1 end
  return r
end
local want = cost
if want < 1 then want = 1 end
local count = p * (per - elapsed) / per + c
local granted = math.floor(cap - count)
if granted > want then granted = want end
if granted < 1 then return {0, 0, reset(c), retry_after(c)} end
if cost > 0 then
  c = c + granted
  redis.call('HSET', KEYS[1], 'w', string.format('%d', index), 'c', string.format('%d', c), 'p', string.format('%d', p))
  redis.call('PEXPIRE', KEYS[1], math.ceil((2 * per - elapsed) / 1000) + 1)
end
local retry = 0
if granted < cost then retry = retry_after(c) end
local left = math.floor(cap - (p * (per - elapsed) / per + c))
return {granted, left, reset(c), retry}
"#;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rule(algorithm: Algorithm, limit: u32, per_ms: u64, burst: u32) -> Rule {
        Rule {
            algorithm,
            limit,
            per: Duration::from_millis(per_ms),
            burst,
        }
    }

    #[test]
    fn gcra_allows_limit_plus_burst_at_once_then_one_per_interval() {
        let r = rule(Algorithm::Gcra, 5, 60_000, 2);
        let now = 1_700_000_000_000_000;
        let mut tat = None;
        let mut allowed = 0;
        for _ in 0..20 {
            let (d, next) = gcra(tat, now, &r, 1);
            if d.allowed {
                allowed += 1;
                tat = next;
            }
        }
        assert_eq!(allowed, 7);
        let (d, _) = gcra(tat, now, &r, 1);
        assert_eq!(d.retry_after, Duration::from_secs(12));
        assert_eq!(d.remaining, 0);
        // One interval later exactly one more passes.
        let later = now + 12_000_000;
        let (d, next) = gcra(tat, later, &r, 1);
        assert!(d.allowed);
        assert!(!gcra(next, later, &r, 1).0.allowed);
    }

    #[test]
    fn gcra_remaining_counts_down_and_peek_does_not_count() {
        let r = rule(Algorithm::Gcra, 3, 3_000, 0);
        let now = 10_000_000;
        let (d, tat) = gcra(None, now, &r, 1);
        assert_eq!((d.allowed, d.remaining), (true, 2));
        assert_eq!(d.reset, Duration::from_secs(1));
        let (peek, unchanged) = gcra(tat, now, &r, 0);
        assert_eq!((peek.allowed, peek.remaining, unchanged), (true, 2, None));
    }

    #[test]
    fn sliding_window_counts_within_a_window_and_weights_the_previous() {
        let r = rule(Algorithm::SlidingWindow, 10, 1_000, 0);
        let start = 5_000_000; // a window boundary
        let mut state = None;
        let mut allowed = 0;
        for _ in 0..15 {
            let (d, write) = sliding_window(state, start, &r, 1);
            if let Some((w, _)) = write {
                state = Some(w);
            }
            allowed += i32::from(d.allowed);
        }
        assert_eq!(allowed, 10);
        // Refused in the full window: wait for the next, then until 10% slid out.
        let (d, _) = sliding_window(state, start, &r, 1);
        assert_eq!(d.retry_after, Duration::from_millis(1_100));
        // Half-way through the next window half of the previous still counts.
        let mid = start + 1_500_000;
        let mut more = 0;
        for _ in 0..15 {
            let (d, write) = sliding_window(state, mid, &r, 1);
            if let Some((w, _)) = write {
                state = Some(w);
            }
            more += i32::from(d.allowed);
        }
        assert_eq!(more, 5);
    }

    #[test]
    fn sliding_window_forgets_windows_older_than_the_previous() {
        let r = rule(Algorithm::SlidingWindow, 2, 1_000, 1);
        let old = Window {
            index: 1,
            current: 3,
            previous: 3,
        };
        let (d, _) = sliding_window(Some(old), 10_000_000, &r, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
    }

    /// A batch of `n` must decide exactly like `n` single requests at the same
    /// instant: the same number granted and the same state left behind.
    #[test]
    fn a_batch_grants_what_the_same_requests_one_by_one_would() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for algorithm in [Algorithm::Gcra, Algorithm::SlidingWindow] {
            let r = rule(algorithm, 1 + next(20) as u32, 1_000, next(5) as u32);
            let (mut batched_g, mut single_g) = (None, None);
            let (mut batched_w, mut single_w) = (None, None);
            let mut now = 7_000_000_000i64;
            for _ in 0..2_000 {
                now += next(400_000) as i64;
                let n = 1 + next(8) as u32;
                let (granted, one_by_one) = match algorithm {
                    Algorithm::Gcra => {
                        let (d, w) = gcra(batched_g, now, &r, n);
                        batched_g = w.or(batched_g);
                        let mut ok = 0;
                        for _ in 0..n {
                            let (d1, w1) = gcra(single_g, now, &r, 1);
                            single_g = w1.or(single_g);
                            ok += u32::from(d1.allowed);
                        }
                        assert_eq!(batched_g, single_g, "{algorithm:?} state");
                        (d, ok)
                    }
                    Algorithm::SlidingWindow => {
                        let (d, w) = sliding_window(batched_w, now, &r, n);
                        batched_w = w.map(|(w, _)| w).or(batched_w);
                        let mut ok = 0;
                        for _ in 0..n {
                            let (d1, w1) = sliding_window(single_w, now, &r, 1);
                            single_w = w1.map(|(w, _)| w).or(single_w);
                            ok += u32::from(d1.allowed);
                        }
                        assert_eq!(batched_w, single_w, "{algorithm:?} state");
                        (d, ok)
                    }
                };
                assert_eq!(granted.granted, one_by_one, "{algorithm:?} at {now}");
                assert_eq!(granted.allowed, one_by_one == n);
                assert_eq!(granted.retry_after.is_zero(), one_by_one == n);
            }
        }
    }

    #[test]
    fn gcra_grants_part_of_a_batch_and_says_when_the_next_fits() {
        let r = rule(Algorithm::Gcra, 5, 60_000, 2);
        let (d, tat) = gcra(None, 1_000_000, &r, 10);
        assert_eq!((d.granted, d.allowed, d.remaining), (7, false, 0));
        assert_eq!(d.retry_after, Duration::from_secs(12));
        assert_eq!(tat, Some(1_000_000 + 7 * 12_000_000));
    }

    #[test]
    fn rule_tags_differ_when_rules_differ() {
        let a = rule(Algorithm::Gcra, 5, 1_000, 0);
        let b = rule(Algorithm::SlidingWindow, 5, 1_000, 0);
        assert_ne!(a.tag(), b.tag());
        assert_eq!(a.interval_us(), 200_000);
    }
}
