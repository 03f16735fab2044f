//! What crosses the desktop app's IPC bridge (the webview's UI to the app's
//! Rust side), not HTTP: one definition for both, so a renamed field breaks
//! the build instead of the app.

use serde::{Deserialize, Serialize};

use crate::User;

/// Why a command failed, in words the UI shows as they are.
///
/// `code` is the API's error code (`stock_below_reserved`, `not_found`, …)
/// or one of the app's own: `unreachable` (no answer from the shop),
/// `signed_out` (no session, or the shop ended it), `not_a_seller`,
/// `bad_input`, `bad_response`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmdError {
    pub code: String,
    pub message: String,
    /// The HTTP status when the shop answered with an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

impl CmdError {
    pub fn new(code: &str, message: impl Into<String>) -> CmdError {
        CmdError { code: code.to_owned(), message: message.into(), status: None }
    }

    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }
}

impl std::fmt::Display for CmdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The app's settings (never the token, which lives only in memory and,
/// when remembered, in the OS keyring).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub server_url: String,
}

/// A successful sign-in as the UI sees it: who, and whether "remember me"
/// took (the keyring can be missing or locked; that never fails a sign-in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInView {
    pub user: User,
    pub remembered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remember_error: Option<String>,
}
