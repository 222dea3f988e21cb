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

/// The outcome of one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests still allowed right now after this one.
    pub remaining: u64,
    /// Until the allowance is fully restored.
    pub reset: Duration,
    /// Until the next request would be allowed (zero when allowed).
    pub retry_after: Duration,
}

impl Decision {
    /// From the four integers a script returns: allowed, remaining, reset µs, retry µs.
    pub fn from_parts(allowed: i64, remaining: i64, reset_us: i64, retry_us: i64) -> Self {
        let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Self {
            allowed: allowed == 1,
            remaining: u64::try_from(remaining).unwrap_or(0),
            reset: us(reset_us),
            retry_after: us(retry_us),
        }
    }
}

/// A GCRA decision. `tat` is the stored theoretical arrival time. `cost` 0 asks
/// whether one more request would pass without counting it. Returns the decision
/// and the new `tat` to store (None: leave the state as it is).
pub fn gcra(tat: Option<i64>, now: i64, rule: &Rule, cost: u32) -> (Decision, Option<i64>) {
    let interval = rule.interval_us();
    let cap = rule.capacity();
    let tat = tat.unwrap_or(now).max(now);
    let n = i64::from(cost.max(1));
    let new_tat = tat + n * interval;
    let allow_at = new_tat - cap * interval;
    if allow_at > now {
        return (Decision::from_parts(0, 0, tat - now, allow_at - now), None);
    }
    let stored = if cost > 0 { new_tat } else { tat };
    let remaining = (now + cap * interval - stored) / interval;
    let decision = Decision::from_parts(1, remaining, stored - now, 0);
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
    let n = i64::from(cost.max(1));
    let count = p as f64 * (per - elapsed) as f64 / per as f64 + c as f64;
    if count + n as f64 > cap as f64 {
        let retry = if c + n <= cap {
            // Wait until enough of the previous window has slid out.
            ((per as f64) - ((cap - c - n) as f64 * per as f64 / p as f64)).ceil() as i64 - elapsed
        } else {
            // Wait for the next window, where this one's count is the previous.
            (per - elapsed)
                + ((per as f64) - ((cap - n) as f64 * per as f64 / c as f64)).ceil() as i64
        };
        let reset = window_reset(c, p, per, elapsed);
        return (Decision::from_parts(0, 0, reset, retry.max(1)), None);
    }
    let c = if cost > 0 { c + i64::from(cost) } else { c };
    let left = (cap as f64 - (p as f64 * (per - elapsed) as f64 / per as f64 + c as f64)).floor();
    let decision = Decision::from_parts(1, left as i64, window_reset(c, p, per, elapsed), 0);
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
local n = cost
if n < 1 then n = 1 end
local new_tat = tat + n * interval
local allow_at = new_tat - cap * interval
if allow_at > now then return {0, 0, tat - now, allow_at - now} end
local stored = tat
if cost > 0 then
  stored = new_tat
  redis.call('SET', KEYS[1], string.format('%d', stored), 'PX', math.ceil((stored - now) / 1000) + 1)
end
return {1, math.floor((now + cap * interval - stored) / interval), stored - now, 0}
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
local n = cost
if n < 1 then n = 1 end
local count = p * (per - elapsed) / per + c
if count + n > cap then
  local retry
  if c + n <= cap then
    retry = math.ceil(per - ((cap - c - n) * per / p)) - elapsed
  else
    retry = (per - elapsed) + math.ceil(per - ((cap - n) * per / c))
  end
  if retry < 1 then retry = 1 end
  return {0, 0, reset(c), retry}
end
if cost > 0 then
  c = c + cost
  redis.call('HSET', KEYS[1], 'w', string.format('%d', index), 'c', string.format('%d', c), 'p', string.format('%d', p))
  redis.call('PEXPIRE', KEYS[1], math.ceil((2 * per - elapsed) / 1000) + 1)
end
local left = math.floor(cap - (p * (per - elapsed) / per + c))
return {1, left, reset(c), 0}
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

    #[test]
    fn rule_tags_differ_when_rules_differ() {
        let a = rule(Algorithm::Gcra, 5, 1_000, 0);
        let b = rule(Algorithm::SlidingWindow, 5, 1_000, 0);
        assert_ne!(a.tag(), b.tag());
        assert_eq!(a.interval_us(), 200_000);
    }
}
