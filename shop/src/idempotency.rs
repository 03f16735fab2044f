//! Client-chosen `Idempotency-Key`s, as Stripe defines them: a key names one
//! attempt; a retry sends the same key and body and gets the first answer;
//! the same key with another body is refused. Checkout and product creation
//! each keep their keys in their own table; the rules live here once.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Keys are kept at least this long, so a client retrying through a day of
/// outage still finds its first answer.
pub const KEY_RETENTION: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::bad_input("Idempotency-Key", "send a client-generated key (e.g. a UUID) of 1 to 255 visible ASCII characters"));
    }
    Ok(())
}

/// What "the same body" means: the request as parsed, serialised again, so
/// whitespace and field order in the client's JSON do not matter.
pub fn request_hash(request: &impl Serialize) -> String {
    let canonical = serde_json::to_vec(request).expect("a request serialises");
    Sha256::digest(&canonical).iter().map(|b| format!("{b:02x}")).collect()
}

/// The refusal for a key already used with another body.
pub fn reused(what: &str) -> Error {
    Error::Rejected {
        code: "idempotency_key_reused",
        message: format!("this Idempotency-Key was already used for a different {what}; use a new key for a new attempt"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(validate_key("0b5f6a1e-5d4e-4c1a-9a51-6c7e2b1d2f3a").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("has space").is_err());
        assert!(validate_key(&"k".repeat(256)).is_err());
        assert!(validate_key(&"k".repeat(255)).is_ok());
    }

    #[derive(Serialize, serde::Deserialize)]
    struct Body {
        a: i64,
        b: Vec<i64>,
    }

    #[test]
    fn the_hash_follows_the_parsed_request_not_its_spelling() {
        let a: Body = serde_json::from_str(r#"{"a":1,"b":[2]}"#).unwrap();
        let b: Body = serde_json::from_str("{ \"b\": [2],\n \"a\": 1 }").unwrap();
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(request_hash(&a), request_hash(&Body { a: 2, b: vec![2] }));
    }
}
