//! Password rules and Argon2id hashing. Hashing is deliberately slow (tens of
//! milliseconds), so it always runs on the blocking pool, never on the async
//! workers that serve other requests.
//!
//! Each hash also holds `m_cost` KiB (19 MiB with the default parameters)
//! for its whole run, so a flood of sign-ins could exhaust memory long
//! before it exhausts CPU. [`Hashing`] bounds that: at most
//! `budget / m_cost` hashes run at once; the rest wait their turn (FIFO) for
//! a short while and then get a 503 with Retry-After instead of piling up.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};
use tokio::sync::Semaphore;

use crate::error::Dependency;
use crate::{Error, Result};

/// The process's Argon2 capacity: permits sized so that permits × m_cost
/// fits the memory budget.
#[derive(Debug)]
pub struct Hashing {
    permits: Arc<Semaphore>,
    size: usize,
    queue_wait: Duration,
}

impl Hashing {
    /// `memory_budget_kib` for all hashes at once; a caller waits at most
    /// `queue_wait` for its turn. At least one hash can always run.
    pub fn new(memory_budget_kib: u32, queue_wait: Duration) -> Self {
        // Every hash we make uses the default parameters (so does the decoy);
        // a stored hash with a bigger m_cost would overshoot the budget, which
        // is why `hash` never takes parameters from outside.
        let size = (memory_budget_kib / Params::DEFAULT_M_COST).max(1) as usize;
        Self { permits: Arc::new(Semaphore::new(size)), size, queue_wait }
    }

    /// How many hashes may run at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `work` (a hash, or anything as heavy) on the blocking pool once
    /// a permit is free, or refuses with 503 after `queue_wait`. The permit
    /// moves into the blocking task: a caller that gives up (a dropped
    /// request) cannot free the memory early, because the hash keeps
    /// running to the end either way.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        let permit = match tokio::time::timeout(self.queue_wait, self.permits.clone().acquire_owned()).await {
            Ok(permit) => permit.expect("the semaphore is never closed"),
            Err(_) => {
                return Err(Error::Unavailable {
                    dependency: Dependency::PasswordHashing,
                    // About one queue's worth of hashes from now.
                    retry_after: self.queue_wait.max(Duration::from_secs(1)),
                    source: format!("all {} password hashing slots busy for {:?}", self.size, self.queue_wait).into(),
                })
            }
        };
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(Error::internal)?
    }

    pub async fn hash(&self, password: String) -> Result<String> {
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| Error::internal(e.to_string()))
        })
        .await
    }

    /// True when `password` matches `phc`; `None` (no such user) checks
    /// against a decoy, so it costs the same and is always false.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool> {
        self.run(move || {
            let known = phc.is_some();
            let phc = phc.unwrap_or_else(|| DECOY.to_owned());
            let parsed = PasswordHash::new(&phc).map_err(|e| Error::internal(e.to_string()))?;
            let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
            Ok(known && ok)
        })
        .await
    }
}

pub const MIN_LEN: usize = 10;
pub const MAX_LEN: usize = 128;

/// Why a password is refused, in words a person can act on.
pub fn check_rules(password: &str, email: &str) -> Result<()> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(Error::Invalid(format!("choose a password of at least {MIN_LEN} characters")));
    }
    if len > MAX_LEN {
        return Err(Error::Invalid(format!("a password can be at most {MAX_LEN} characters")));
    }
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err(Error::Invalid("a password needs more than one repeated character".into()));
    }
    if password.trim().eq_ignore_ascii_case(email.trim()) {
        return Err(Error::Invalid("a password must not be your email address".into()));
    }
    Ok(())
}

/// A PHC string for a password nobody has: verifying against it costs what
/// a real check costs, so an unknown email answers as slowly as a wrong password.
const DECOY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0qGqLJvgtxUqjz2XF8mU1XUq1m1Lx/d/dM3Cm4HwHKY";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_explain_themselves() {
        assert!(check_rules("short", "a@b.c").unwrap_err().to_string().contains("at least 10"));
        assert!(check_rules("aaaaaaaaaaaa", "a@b.c").unwrap_err().to_string().contains("repeated"));
        assert!(check_rules("me@example.com", "me@example.com").unwrap_err().to_string().contains("email"));
        assert!(check_rules(&"x1".repeat(65), "a@b.c").is_err());
        assert!(check_rules("correct horse battery", "a@b.c").is_ok());
    }

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_pass() {
        let hashing = Hashing::new(64 * 1024, Duration::from_secs(30));
        let phc = hashing.hash("correct horse battery".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(hashing.verify("correct horse battery".into(), Some(phc.clone())).await.unwrap());
        assert!(!hashing.verify("wrong horse battery".into(), Some(phc)).await.unwrap());
        assert!(!hashing.verify("anything at all".into(), None).await.unwrap());
    }

    #[test]
    fn permits_times_memory_fit_the_budget() {
        let m = Params::DEFAULT_M_COST;
        for budget_mib in [1u32, 19, 64, 128, 1024] {
            let h = Hashing::new(budget_mib * 1024, Duration::from_secs(1));
            assert!(h.size() >= 1);
            assert!(h.size() == 1 || h.size() as u32 * m <= budget_mib * 1024, "{budget_mib} MiB: {} permits", h.size());
        }
        assert_eq!(Hashing::new(128 * 1024, Duration::ZERO).size(), 6, "128 MiB holds six 19 MiB hashes");
    }

    /// Takes a slot with work that runs until `release` is sent; returns once
    /// the work has started.
    async fn occupy(hashing: &Arc<Hashing>) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<Result<()>>) {
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (started, wait_started) = tokio::sync::oneshot::channel();
        let holder = hashing.clone();
        let busy = tokio::spawn(async move {
            holder
                .run(move || {
                    let _ = started.send(());
                    let _ = hold.recv();
                    Ok(())
                })
                .await
        });
        wait_started.await.unwrap();
        (release, busy)
    }

    #[tokio::test]
    async fn a_full_pool_answers_503_after_the_queue_wait() {
        // One slot, taken by a hash we hold open; the next caller queues
        // briefly, then is refused with the dependency named.
        let hashing = Arc::new(Hashing::new(Params::DEFAULT_M_COST, Duration::from_millis(50)));
        let (release, busy) = occupy(&hashing).await;
        let refused = hashing.verify("x".into(), None).await.unwrap_err();
        match refused {
            Error::Unavailable { dependency: Dependency::PasswordHashing, retry_after, .. } => assert!(retry_after >= Duration::from_secs(1)),
            other => panic!("expected 503, got {other:?}"),
        }
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        assert!(!hashing.verify("x".into(), None).await.unwrap(), "a free slot serves again");
    }

    #[tokio::test]
    async fn a_caller_queues_while_the_slot_frees_within_its_wait() {
        let hashing = Arc::new(Hashing::new(Params::DEFAULT_M_COST, Duration::from_secs(30)));
        let (release, busy) = occupy(&hashing).await;
        let waiter = hashing.clone();
        let queued = tokio::spawn(async move { waiter.verify("x".into(), None).await });
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        assert!(!queued.await.unwrap().unwrap(), "served, not refused");
    }
}
