//! Token revocations: a token by its `jti`, or every token of a consumer issued up
//! to a moment. Checked on every authenticated request, so the check never calls
//! the store: each gateway keeps a [`RevocationSet`] in memory and the store keeps
//! it current.
//!
//! The memory store's set is the state itself. The redis store records each
//! revocation in one of two hashes and publishes it on a channel in the same
//! script ([`REVOKE_LUA`]); every gateway subscribes, applies what it hears, and on
//! each (re)connection reads both hashes again ([`SYNC_LUA`]) so nothing published
//! while it was away is missed. The two hashes and the channel share the
//! `{revocations}` hash tag: one slot holds every key a decision reads.
//!
//! Entries end by themselves: a token's at its `until` (its `exp` when known), a
//! consumer's after [`HOLD`] (no token the gateway accepts outlives that).

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The hash of revoked tokens: field `jti`, value `until` (Unix seconds).
pub const TOKENS_KEY: &str = "fingate:{revocations}:jti";
/// The hash of revoked consumers: field consumer id, value `"<at> <until>"`.
pub const CONSUMERS_KEY: &str = "fingate:{revocations}:sub";
/// Where each new revocation is published, in [`Revocation::encode`] form.
pub const CHANNEL: &str = "fingate:{revocations}:events";

/// How long a revocation is kept when the token's own `exp` is not given: longer
/// than any token a gateway issues (`max_ttl` is at most a day) or should accept.
pub const HOLD: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// One revocation. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// The token with this `jti` is refused until `until`.
    Token { jti: String, until: u64 },
    /// Every token of `consumer` issued at or before `at` (by its `iat`) is refused;
    /// the entry is kept until `until`.
    Consumer {
        consumer: String,
        at: u64,
        until: u64,
    },
}

impl Revocation {
    /// The published form: `j <until> <jti>` or `s <at> <until> <consumer>` (the
    /// name last, so it may hold any character).
    pub fn encode(&self) -> String {
        match self {
            Self::Token { jti, until } => format!("j {until} {jti}"),
            Self::Consumer {
                consumer,
                at,
                until,
            } => format!("s {at} {until} {consumer}"),
        }
    }

    /// Reads [`Revocation::encode`]'s form; None for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let (kind, rest) = text.split_once(' ')?;
        match kind {
            "j" => {
                let (until, jti) = rest.split_once(' ')?;
                Some(Self::Token {
                    jti: nonempty(jti)?,
                    until: until.parse().ok()?,
                })
            }
            "s" => {
                let (at, rest) = rest.split_once(' ')?;
                let (until, consumer) = rest.split_once(' ')?;
                Some(Self::Consumer {
                    consumer: nonempty(consumer)?,
                    at: at.parse().ok()?,
                    until: until.parse().ok()?,
                })
            }
            _ => None,
        }
    }

    fn until(&self) -> u64 {
        match self {
            Self::Token { until, .. } | Self::Consumer { until, .. } => *until,
        }
    }
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

#[derive(Debug, Default, Clone)]
struct Snapshot {
    tokens: HashMap<Box<str>, u64>,
    /// consumer → (revoked at, kept until)
    consumers: HashMap<Box<str>, (u64, u64)>,
}

impl Snapshot {
    fn merge(&mut self, r: Revocation) {
        match r {
            Revocation::Token { jti, until } => {
                let e = self.tokens.entry(jti.into_boxed_str()).or_insert(0);
                *e = (*e).max(until);
            }
            Revocation::Consumer {
                consumer,
                at,
                until,
            } => {
                let e = self
                    .consumers
                    .entry(consumer.into_boxed_str())
                    .or_insert((0, 0));
                *e = (e.0.max(at), e.1.max(until));
            }
        }
    }

    fn prune(&mut self, now: u64) {
        self.tokens.retain(|_, until| *until >= now);
        self.consumers.retain(|_, (_, until)| *until >= now);
    }
}

/// The revocations one gateway knows: read on every request without a lock or a
/// store call (an atomic load of an immutable snapshot), replaced as a whole on
/// each change (revocations are rare, reads are constant).
#[derive(Debug, Default)]
pub struct RevocationSet {
    current: ArcSwap<Snapshot>,
    /// One writer at a time: a change copies the snapshot, edits, swaps.
    write: Mutex<()>,
}

impl RevocationSet {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Whether a token is refused: its `jti` is revoked, or its consumer was
    /// revoked at or after the token's `iat` (a token without `iat` cannot show it
    /// came later, and is refused too). `now` in Unix seconds.
    pub fn is_revoked(
        &self,
        jti: Option<&str>,
        consumer: &str,
        iat: Option<u64>,
        now: u64,
    ) -> bool {
        let s = self.current.load();
        if s.tokens.is_empty() && s.consumers.is_empty() {
            return false;
        }
        if let Some(until) = jti.and_then(|j| s.tokens.get(j)) {
            if *until >= now {
                return true;
            }
        }
        match s.consumers.get(consumer) {
            Some(&(at, until)) => until >= now && iat.map_or(true, |iat| iat <= at),
            None => false,
        }
    }

    /// Adds one revocation (a later one for the same token or consumer wins).
    pub fn apply(&self, r: Revocation) {
        let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = Snapshot::clone(&self.current.load());
        next.prune(crate::store::now_us().unsigned_abs() / 1_000_000);
        next.merge(r);
        self.current.store(Arc::new(next));
    }

    /// Replaces everything with `all` (a resynchronisation from the store).
    pub fn replace(&self, all: Vec<Revocation>) {
        let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let now = crate::store::now_us().unsigned_abs() / 1_000_000;
        let mut next = Snapshot::default();
        for r in all.into_iter().filter(|r| r.until() >= now) {
            next.merge(r);
        }
        self.current.store(Arc::new(next));
    }

    /// (tokens, consumers) held now.
    pub fn len(&self) -> (usize, usize) {
        let s = self.current.load();
        (s.tokens.len(), s.consumers.len())
    }
}

/// Records one revocation and publishes it, atomically. KEYS: tokens hash,
/// consumers hash. ARGV: kind (`j`/`s`), name, at, until, channel. A consumer's
/// later revocation keeps the later moment. Entries past their `until` are dropped
/// by [`SYNC_LUA`].
pub const REVOKE_LUA: &str = r#"
local kind, name, at, untl = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local msg
if kind == 'j' then
  local old = tonumber(redis.call('HGET', KEYS[1], name) or '0')
  if old > untl then untl = old end
  redis.call('HSET', KEYS[1], name, untl)
  msg = 'j ' .. untl .. ' ' .. name
else
  local old = redis.call('HGET', KEYS[2], name)
  if old then
    local sp = string.find(old, ' ')
    local oat, ountl = tonumber(string.sub(old, 1, sp - 1)), tonumber(string.sub(old, sp + 1))
    if oat > at then at = oat end
    if ountl > untl then untl = ountl end
  end
  redis.call('HSET', KEYS[2], name, at .. ' ' .. untl)
  msg = 's ' .. at .. ' ' .. untl .. ' ' .. name
end
redis.call('PUBLISH', ARGV[5], msg)
return msg
"#;

/// Every revocation still in force, as [`Revocation::encode`] lines; drops the
/// ended ones first (by Redis time). KEYS: tokens hash, consumers hash.
pub const SYNC_LUA: &str = r#"
local now = tonumber(redis.call('TIME')[1])
local out = {}
local t = redis.call('HGETALL', KEYS[1])
for i = 1, #t, 2 do
  if tonumber(t[i + 1]) < now then redis.call('HDEL', KEYS[1], t[i])
  else out[#out + 1] = 'j ' .. t[i + 1] .. ' ' .. t[i] end
end
local s = redis.call('HGETALL', KEYS[2])
for i = 1, #s, 2 do
  local v = s[i + 1]
  local sp = string.find(v, ' ')
  if tonumber(string.sub(v, sp + 1)) < now then redis.call('HDEL', KEYS[2], s[i])
  else out[#out + 1] = 's ' .. v .. ' ' .. s[i] end
end
return out
"#;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: u64 = 4_000_000_000;

    #[test]
    fn the_published_form_round_trips_any_name() {
        for r in [
            Revocation::Token {
                jti: "a b c".into(),
                until: 7,
            },
            Revocation::Consumer {
                consumer: "https://idp.example#mobile app".into(),
                at: 5,
                until: 9,
            },
        ] {
            assert_eq!(Revocation::decode(&r.encode()), Some(r));
        }
        for bad in ["", "j", "j 5", "j x y", "s 1 2", "s 1 x y", "x 1 y", "j 5 "] {
            assert_eq!(Revocation::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_token_is_refused_by_jti_until_it_ends() {
        let set = RevocationSet::default();
        assert!(!set.is_revoked(Some("t1"), "alice", Some(1), NOW));
        set.apply(Revocation::Token {
            jti: "t1".into(),
            until: NOW + 10,
        });
        assert!(set.is_revoked(Some("t1"), "alice", Some(1), NOW));
        assert!(!set.is_revoked(Some("t2"), "alice", Some(1), NOW));
        assert!(!set.is_revoked(None, "alice", Some(1), NOW));
        assert!(!set.is_revoked(Some("t1"), "alice", Some(1), NOW + 11));
    }

    #[test]
    fn a_consumer_revocation_refuses_tokens_issued_until_then() {
        let set = RevocationSet::default();
        set.apply(Revocation::Consumer {
            consumer: "alice".into(),
            at: NOW,
            until: NOW + 100,
        });
        assert!(set.is_revoked(Some("x"), "alice", Some(NOW - 5), NOW));
        assert!(
            set.is_revoked(Some("x"), "alice", Some(NOW), NOW),
            "same second"
        );
        assert!(set.is_revoked(None, "alice", None, NOW), "no iat: refused");
        assert!(!set.is_revoked(None, "alice", Some(NOW + 1), NOW + 1));
        assert!(!set.is_revoked(None, "bob", Some(NOW - 5), NOW));
        // A later revocation moves the moment; an earlier one does not.
        set.apply(Revocation::Consumer {
            consumer: "alice".into(),
            at: NOW + 50,
            until: NOW + 100,
        });
        set.apply(Revocation::Consumer {
            consumer: "alice".into(),
            at: NOW + 1,
            until: NOW + 10,
        });
        assert!(set.is_revoked(None, "alice", Some(NOW + 20), NOW + 20));
        assert!(!set.is_revoked(None, "alice", Some(NOW + 20), NOW + 101));
    }

    #[test]
    fn a_resync_replaces_everything_and_drops_ended_entries() {
        let set = RevocationSet::default();
        set.apply(Revocation::Token {
            jti: "old".into(),
            until: u64::MAX,
        });
        set.replace(vec![
            Revocation::Token {
                jti: "new".into(),
                until: u64::MAX,
            },
            Revocation::Token {
                jti: "ended".into(),
                until: 1,
            },
        ]);
        assert_eq!(set.len(), (1, 0));
        assert!(set.is_revoked(Some("new"), "a", None, NOW));
        assert!(!set.is_revoked(Some("old"), "a", None, NOW));
    }
}
