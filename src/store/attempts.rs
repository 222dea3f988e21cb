//! Attempt counting: a counter per key that is taken *before* the thing it guards
//! is tried, so concurrent attempts cannot all pass a check made before any of them
//! is counted. Used by the login throttle.
//!
//! Each call counts one attempt, allowed while the count stays within `limit`.
//! The window starts at the first attempt; an attempt over the limit is counted too
//! and starts the window again, so whoever keeps trying while refused stays
//! refused until they stop for a whole window. An attempt that turns out fine is
//! given back (the count goes down by one).
//!
//! The memory store runs [`take`]; the redis store runs [`TAKE_LUA`], the same
//! steps, atomically.

use std::time::Duration;

/// The outcome of one counted attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Attempts in the current window, this one included.
    pub count: u64,
    /// Whether this attempt is within the limit.
    pub allowed: bool,
    /// Until the count expires.
    pub reset: Duration,
}

/// Counts one attempt. `state` is the stored (count, expiry µs) if still live;
/// returns the outcome and the new state to store.
pub fn take(
    state: Option<(u64, i64)>,
    now: i64,
    limit: u32,
    window: Duration,
) -> (Attempt, (u64, i64)) {
    let window_us = i64::try_from(window.as_micros()).unwrap_or(i64::MAX).max(1);
    let (count, expires) = state.unwrap_or((0, now));
    let count = count.saturating_add(1);
    let allowed = count <= u64::from(limit);
    let expires = if count == 1 || !allowed {
        now.saturating_add(window_us)
    } else {
        expires
    };
    let reset = Duration::from_micros(u64::try_from(expires - now).unwrap_or(0));
    (
        Attempt {
            count,
            allowed,
            reset,
        },
        (count, expires),
    )
}

/// [`take`] in Redis: KEYS[1], ARGV = limit, window in ms. Returns {count, ms left}.
pub const TAKE_LUA: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 or n > tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {n, redis.call('PTTL', KEYS[1])}
";

/// Gives one attempt back: KEYS[1]. The key goes when its count reaches zero.
pub const GIVE_BACK_LUA: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 1 then
  redis.call('DECR', KEYS[1])
elseif n == 1 then
  redis.call('DEL', KEYS[1])
end
return 0
";

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn attempts_within_the_limit_pass_and_the_window_starts_at_the_first() {
        let (a, s) = take(None, 0, 2, MIN);
        assert_eq!((a.count, a.allowed, a.reset), (1, true, MIN));
        let (a, s) = take(Some(s), 10_000_000, 2, MIN);
        assert_eq!((a.count, a.allowed), (2, true));
        assert_eq!(
            a.reset,
            Duration::from_secs(50),
            "the window is not extended"
        );
        let (a, _) = take(Some(s), 20_000_000, 2, MIN);
        assert!(!a.allowed);
    }

    #[test]
    fn a_refused_attempt_counts_and_restarts_the_window() {
        let mut state = None;
        for t in 0..3 {
            state = Some(take(state, t, 2, MIN).1);
        }
        let (a, s) = take(state, 30_000_000, 2, MIN);
        assert_eq!((a.count, a.allowed, a.reset), (4, false, MIN));
        assert_eq!(s.1, 30_000_000 + 60_000_000);
    }
}
