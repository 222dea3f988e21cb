//! Response-cache purges across a fleet. `DELETE /admin/cache` purges the gateway
//! that received it, then publishes the purge through the store; every gateway
//! sharing the store hears it and purges the same entries. A gateway that lost
//! its subscription cannot know what it missed, so when it subscribes again it
//! drops its whole cache. A message names the gateway that published it, which
//! ignores its own.

/// The pub/sub channel purges are published on.
pub const CHANNEL: &str = "fingate:{fleet}:cache-purge";

/// Takes the purges heard from the fleet: the response cache.
pub trait PurgeListener: Send + Sync {
    /// Drops the entries whose path starts with `prefix` (None: every entry);
    /// returns how many.
    fn purge(&self, prefix: Option<&str>) -> u64;
}

/// A name for this gateway's messages, unique within the fleet.
pub fn new_origin() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The message `origin` publishes for a purge of `prefix` (None: everything).
pub fn encode(origin: &str, prefix: Option<&str>) -> String {
    format!("{origin} {}", prefix.unwrap_or("*"))
}

/// Who published a message, and the purge it asks for: None for everything, a
/// path prefix otherwise. None for a message that is not a purge.
pub fn decode(message: &str) -> Option<(&str, Option<&str>)> {
    let (origin, purge) = message.split_once(' ')?;
    match purge {
        "*" => Some((origin, None)),
        p if p.starts_with('/') => Some((origin, Some(p))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let origin = new_origin();
        for purge in [None, Some("/api/fx"), Some("/"), Some("/a b")] {
            assert_eq!(
                decode(&encode(&origin, purge)),
                Some((origin.as_str(), purge))
            );
        }
        assert_ne!(new_origin(), origin);
        for not_a_purge in ["api/fx", "", "*", "x api/fx"] {
            assert_eq!(decode(not_a_purge), None, "{not_a_purge}");
        }
    }
}
