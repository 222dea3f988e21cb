//! One attempt at an upstream for one request: the consistent-hash key, the target
//! (the group's balancing, avoiding targets already tried), the connection
//! settings for it, and whether a failed connect may try another target.
//!
//! Pingora-free: the proxy turns an [`Attempt`] into its peer type.

use super::config::{Balance, HashOn};
use super::UpstreamGroup;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How long an idle upstream connection stays in the keep-alive pool.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where and how to connect for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// The target's index in the group.
    pub index: usize,
    pub address: SocketAddr,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Only for requests with a body: a head alone goes into an idle socket's empty
    /// buffer at once, and the read timeout covers the wait after it.
    pub write_timeout: Option<Duration>,
    pub idle_timeout: Duration,
}

/// What the hash key may be made of.
#[derive(Debug, Clone, Copy)]
pub struct HashInput<'a> {
    pub consumer: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
    pub headers: &'a http::HeaderMap,
}

impl UpstreamGroup {
    /// The consistent-hash key of a request, when the group hashes.
    pub fn hash_key(&self, input: HashInput<'_>) -> Option<Vec<u8>> {
        let Balance::ConsistentHash(on) = &self.config.balance else {
            return None;
        };
        match on {
            HashOn::Consumer => input.consumer.map(|c| c.as_bytes().to_vec()),
            HashOn::Ip => input.client_ip.map(|ip| ip.to_string().into_bytes()),
            HashOn::Header(name) => input.headers.get(name).map(|v| v.as_bytes().to_vec()),
        }
    }

    /// The next attempt, avoiding `tried`; None when no target is available.
    pub fn attempt(
        &self,
        hash_key: Option<&[u8]>,
        tried: &[usize],
        carries_body: bool,
    ) -> Option<Attempt> {
        let index = self.select(hash_key, tried)?;
        let c = &self.config;
        Some(Attempt {
            index,
            address: self.targets[index].address,
            connect_timeout: c.connect_timeout,
            read_timeout: c.read_timeout,
            write_timeout: carries_body.then_some(c.read_timeout),
            idle_timeout: IDLE_TIMEOUT,
        })
    }

    /// After a failed connect: whether another target may be tried (within
    /// `retries`, and one is available that was not tried yet).
    pub fn may_retry(&self, tried: &[usize]) -> bool {
        let attempts = tried.len() as u32;
        attempts <= self.config.retries
            && (0..self.targets.len()).any(|i| !tried.contains(&i) && self.targets[i].available())
    }
}
