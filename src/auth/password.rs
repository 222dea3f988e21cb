//! Password hashing: argon2id at OWASP's parameters (m=19456 KiB, t=2, p=1).
//!
//! One check costs ≈ 30–35 ms of CPU and 19 MiB of memory, so checks run on
//! tokio's blocking pool and at most `max_concurrent` at once: a login storm then
//! queues behind the semaphore instead of taking every core from the proxy.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// OWASP Password Storage Cheat Sheet, argon2id option 2.
fn argon2() -> Argon2<'static> {
    // The parameters are constants within argon2's bounds; `default()` is the same.
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) for `password`.
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing failed: {e}"))
}

/// Checks that `phc` is an argon2id hash fingate can verify (config validation).
pub fn check_phc(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| {
        format!("not a PHC hash string ({e}): make one with `fingate hash-password`")
    })?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "{} hashes are not accepted: use argon2id (`fingate hash-password`)",
            parsed.algorithm
        ));
    }
    Params::try_from(&parsed)
        .map(|_| ())
        .map_err(|e| format!("invalid argon2 parameters: {e}"))
}

/// Verifies `password` against `phc` (blocking: call through [`Verifier`]).
fn verify_blocking(password: &[u8], phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| argon2().verify_password(password, &h).is_ok())
}

/// A hash of a random password, checked for unknown usernames so that they take
/// as long as a wrong password (no username enumeration by timing).
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash(&uuid::Uuid::new_v4().to_string()).unwrap_or_default())
}

/// Runs password checks on the blocking pool, a bounded number at a time.
#[derive(Debug)]
pub struct Verifier {
    permits: Arc<Semaphore>,
    /// Longest wait for a permit before the login is refused as busy.
    queue_timeout: Duration,
}

/// Why a check could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("too many logins in progress")]
    Busy,
}

impl Verifier {
    pub fn new(max_concurrent: usize, queue_timeout: Duration) -> Self {
        // Warm the dummy hash on the caller's thread (config load), not on a login.
        let _ = dummy_hash();
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            queue_timeout,
        }
    }

    /// Verifies `password` against `phc`, or against the dummy hash when `phc` is
    /// `None` (unknown user: the answer is always false, in the same time).
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, VerifyError> {
        let permit = tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| VerifyError::Busy)?
            .map_err(|_| VerifyError::Busy)?;
        let known = phc.is_some();
        let outcome = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let phc = phc.as_deref().unwrap_or_else(|| dummy_hash());
            verify_blocking(password.as_bytes(), phc)
        })
        .await
        .unwrap_or(false);
        Ok(known && outcome)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        check_phc(&h).unwrap();
        assert!(verify_blocking(b"correct horse", &h));
        assert!(!verify_blocking(b"correct horsf", &h));
    }

    #[test]
    fn other_hash_formats_are_refused() {
        assert!(check_phc("plaintext").is_err());
        let bcrypt_like = "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
        assert!(check_phc(bcrypt_like).unwrap_err().contains("argon2id"));
    }

    #[tokio::test]
    async fn unknown_users_never_verify() {
        let v = Verifier::new(1, Duration::from_secs(5));
        let h = hash("pw").unwrap();
        assert_eq!(v.verify("pw".into(), Some(h)).await, Ok(true));
        assert_eq!(v.verify("pw".into(), None).await, Ok(false));
    }
}
