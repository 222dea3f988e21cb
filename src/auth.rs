//! Authentication: keys, registered clients (consumers), password hashing, the
//! token endpoint and its failure throttle. The `jwt` filter (`filter/jwt.rs`)
//! verifies the tokens issued here (and a partner's).
//!
//! Consumers come from the file and, with the redis store, from run-time
//! registration ([`consumers::SharedConsumers`]); login failures are counted in the
//! same store ([`throttle::LoginThrottle`]), so a fleet shares both.
pub mod claims;

pub mod consumers;
pub mod keys;
pub mod metadata;
pub mod password;
pub mod remote;
pub mod settings;
pub mod throttle;
pub mod token_endpoint;
pub mod verified;

pub use settings::AuthConfig;

use crate::store::Store;
use consumers::{Consumer, ConsumerStore};
use password::Verifier;
use std::sync::Arc;
use std::time::Duration;
use throttle::LoginThrottle;
use token_endpoint::TokenEndpoint;

/// How long a login waits for a password-check slot before it is refused as busy.
const LOGIN_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// The auth parts of one runtime generation.
#[derive(Debug)]
pub struct AuthRuntime {
    pub config: Arc<AuthConfig>,
    pub consumers: Arc<dyn ConsumerStore>,
    pub token_endpoint: Option<TokenEndpoint>,
    /// The key sets fetched from identity providers (`jwks_url`).
    pub remote: Arc<remote::RemoteKeySets>,
}

impl AuthRuntime {
    /// Builds the auth runtime over the runtime's `store`. Failure counts live in
    /// the store (they survive reloads with it); the password-check limiter
    /// survives a reload that keeps its setting (`previous`).
    pub fn build(
        config: &AuthConfig,
        consumers: &[Consumer],
        store: &Arc<dyn Store>,
        previous: Option<&AuthRuntime>,
    ) -> Self {
        let config = Arc::new(config.clone());
        let remote = Arc::new(remote::RemoteKeySets::build(
            &config.keys.remote,
            previous.map(|p| p.remote.as_ref()),
        ));
        let consumers = consumers::over_store(consumers, store);
        let token_endpoint = config.token_endpoint.as_ref().and_then(|te| {
            let signing_key = config.keys.signing()?.clone();
            let verifier = previous
                .and_then(|p| p.token_endpoint.as_ref())
                .filter(|p| p.config.max_concurrent_logins == te.max_concurrent_logins)
                .map_or_else(
                    || Arc::new(Verifier::new(te.max_concurrent_logins, LOGIN_QUEUE_TIMEOUT)),
                    |p| p.verifier.clone(),
                );
            let throttle = Arc::new(LoginThrottle::new(store.clone(), te.lockout));
            Some(TokenEndpoint {
                config: te.clone(),
                issuer: config.issuer.clone(),
                audience: config.audience.clone(),
                signing_key,
                consumers: consumers.clone(),
                throttle,
                verifier,
            })
        });
        Self {
            config,
            consumers,
            token_endpoint,
            remote,
        }
    }

    /// Whether there is a JWKS to publish: the signing key is asymmetric (an HMAC
    /// secret has no public half).
    pub fn publishes_jwks(&self) -> bool {
        self.config.keys.signing().is_some_and(|k| k.jwk.is_some())
    }

    /// The JWKS document, when [`Self::publishes_jwks`].
    pub fn jwks(&self) -> Option<serde_json::Value> {
        self.publishes_jwks()
            .then(|| self.config.keys.jwks(&self.config.issuer))
    }
}

/// Where the public half of the signing key is published.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
