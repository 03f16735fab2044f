//! Password rules and Argon2id hashing. Hashing is deliberately slow (tens of
//! milliseconds), so it always runs on the blocking pool, never on the async
//! workers that serve other requests.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::{Error, Result};

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

pub async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(e.to_string()))
    })
    .await
    .map_err(Error::internal)?
}

/// A PHC string for a password nobody has: verifying against it costs what
/// a real check costs, so an unknown email answers as slowly as a wrong password.
const DECOY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0qGqLJvgtxUqjz2XF8mU1XUq1m1Lx/d/dM3Cm4HwHKY";

pub async fn verify(password: String, phc: Option<String>) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| DECOY.to_owned());
        let parsed = PasswordHash::new(&phc).map_err(|e| Error::internal(e.to_string()))?;
        let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(known && ok)
    })
    .await
    .map_err(Error::internal)?
}

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
        let phc = hash("correct horse battery".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse battery".into(), Some(phc.clone())).await.unwrap());
        assert!(!verify("wrong horse battery".into(), Some(phc)).await.unwrap());
        assert!(!verify("anything at all".into(), None).await.unwrap());
    }
}
