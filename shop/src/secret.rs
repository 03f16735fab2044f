//! A value that must never reach a log: passwords in URLs, API keys, session
//! tokens. `Debug` prints `[redacted]` and there is no `Display`, so a
//! `{:?}` of any struct holding one (a config, an extractor, an error) is
//! safe to log; the value itself is read only through [`Secret::expose`],
//! which makes every use easy to find. A tiny newtype rather than the
//! `secrecy` crate: we need the redaction, not zeroising memory on drop.

use std::fmt;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself: for the one place that must send or compare it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_never_shows_the_value() {
        #[derive(Debug)]
        #[allow(dead_code)] // only read through Debug
        struct Holder {
            key: Secret<String>,
            maybe: Option<Secret<String>>,
        }
        let h = Holder { key: "sk_live_hunter2".into(), maybe: Some("pw-hunter2".into()) };
        let printed = format!("{h:?} {h:#?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("[redacted]"));
        assert_eq!(h.key.expose(), "sk_live_hunter2");
    }
}
