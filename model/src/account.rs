use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Seller,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Seller => "seller",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "customer" => Some(Role::Customer),
            "seller" => Some(Role::Seller),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A signed-in person, as the API and the storefront show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// The seller shop a seller acts for.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub seller_id: Option<Uuid>,
}

/// The answer to a sign-up or sign-in. Browsers use the session cookie it
/// also sets; API clients (the desktop app) send `token` as a bearer token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedIn {
    pub user: User,
    pub token: String,
}
