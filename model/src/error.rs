//! The body of every API error (`{"error": code, "message": words}`), as a
//! client reads it. The server adds fields for some codes (`param`,
//! `dependency`, `decline_code`); a client that needs only the words ignores them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub error: String,
    pub message: String,
}
