//! Who is signed in. The token lives here, on the Rust side, and never
//! reaches the page's JavaScript; when the seller asks to be remembered it
//! is also kept in the OS keyring (never a plain-text file), one entry per
//! shop URL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use model::User;

/// Where a remembered token is kept between runs. Failures are words, never
/// fatal: a locked or absent keyring only means the seller signs in again.
pub trait TokenStore: Send + Sync {
    fn load(&self, server: &str) -> Result<Option<String>, String>;
    fn save(&self, server: &str, token: &str) -> Result<(), String>;
    fn clear(&self, server: &str) -> Result<(), String>;
}

const KEYRING_SERVICE: &str = "mercato-seller";

/// The OS keyring (Secret Service on Linux, Keychain, Credential Manager).
/// Entries are kept once made: keyring's mock store, which the tests use,
/// holds a secret only inside its `Entry`.
#[derive(Default)]
pub struct KeyringStore {
    entries: Mutex<HashMap<String, keyring::Entry>>,
}

impl KeyringStore {
    fn with_entry<T>(&self, server: &str, f: impl FnOnce(&keyring::Entry) -> keyring::Result<T>) -> Result<T, String> {
        let mut entries = self.entries.lock().expect("keyring entries lock");
        let entry = match entries.entry(server.to_owned()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(keyring::Entry::new(KEYRING_SERVICE, server).map_err(|e| e.to_string())?)
            }
        };
        f(entry).map_err(|e| e.to_string())
    }
}

impl TokenStore for KeyringStore {
    fn load(&self, server: &str) -> Result<Option<String>, String> {
        self.with_entry(server, |e| match e.get_password() {
            Ok(token) => Ok(Some(token)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(other) => Err(other),
        })
    }

    fn save(&self, server: &str, token: &str) -> Result<(), String> {
        self.with_entry(server, |e| e.set_password(token))
    }

    fn clear(&self, server: &str) -> Result<(), String> {
        self.with_entry(server, |e| match e.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(other) => Err(other),
        })
    }
}

/// Remembers nothing (`MERCATO_DESKTOP_KEYRING=off`: a headless test
/// machine has no Secret Service).
pub struct NullStore;

impl TokenStore for NullStore {
    fn load(&self, _: &str) -> Result<Option<String>, String> {
        Ok(None)
    }
    fn save(&self, _: &str, _: &str) -> Result<(), String> {
        Err("remembering is turned off (MERCATO_DESKTOP_KEYRING=off)".into())
    }
    fn clear(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
}

/// A token that does not print: `{:?}` of the session shows no secret.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

pub struct Session {
    signed_in: RwLock<Option<(Token, User)>>,
    store: Arc<dyn TokenStore>,
}

impl Session {
    pub fn new(store: Arc<dyn TokenStore>) -> Session {
        Session { signed_in: RwLock::new(None), store }
    }

    pub fn token(&self) -> Option<Token> {
        self.signed_in.read().expect("session lock").as_ref().map(|(t, _)| t.clone())
    }

    pub fn user(&self) -> Option<User> {
        self.signed_in.read().expect("session lock").as_ref().map(|(_, u)| u.clone())
    }

    pub fn set(&self, token: String, user: User) {
        *self.signed_in.write().expect("session lock") = Some((Token(token), user));
    }

    /// Forgets the session in memory only: a 401 may be a server restart
    /// that lost sessions, and the keyring entry is retried (and then
    /// cleared) by the next restore.
    pub fn forget(&self) {
        *self.signed_in.write().expect("session lock") = None;
    }

    /// Forgets the session only if it is still the one `token` belongs to.
    pub fn forget_if(&self, token: &Token) {
        let mut signed_in = self.signed_in.write().expect("session lock");
        if signed_in.as_ref().is_some_and(|(t, _)| t.0 == token.0) {
            *signed_in = None;
        }
    }

    pub fn store(&self) -> Arc<dyn TokenStore> {
        self.store.clone()
    }
}
