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

/// What the live flash-sale watch sends the page over its Tauri channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveMsg {
    /// A new sample of the sale's figures (about one a second while it runs).
    Figures { id: String, figures: crate::FlashLive },
    /// The stream dropped or went quiet; the app reconnects from the last
    /// event it saw (`Last-Event-ID`), backing off up to 5 s.
    Reconnecting { attempt: u32, error: String },
    /// The shop ended the session: the watch stops.
    SignedOut,
    /// The sale is over or gone: the watch stops.
    Ended { reason: String },
}

/// One row of a stock CSV file (`sku_id,stock_count`), checked before any
/// change is sent: a preview shows every row's fate first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockCsvRow {
    /// 1-based, as a spreadsheet numbers it (the header is line 1).
    pub line: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku_id: Option<uuid::Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_count: Option<i64>,
    /// Why the row cannot be applied (it is then left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What happened to one row of a bulk update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockCsvResult {
    pub line: usize,
    pub sku_id: uuid::Uuid,
    pub stock_count: i64,
    /// The shop's refusal, in its words; `None` when applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
