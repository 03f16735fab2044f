//! The commands the UI invokes, one module per screen. Each is a thin
//! wrapper: the work is on `Desktop`, so tests drive it through Tauri's IPC
//! (argument names, registration) and directly alike.

pub mod admin;
pub mod auth;
pub mod flash;
pub mod orders;
pub mod products;
pub mod settings;
pub mod stock;

/// Keyring calls block on D-Bus: off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tauri::async_runtime::spawn_blocking(f).await.map_err(|e| format!("the keyring call stopped: {e}"))?
}

/// A list endpoint's path and query: `limit` (1 to 100, 50 when absent),
/// `cursor`, and the other pairs that have a non-empty value, URL-encoded.
fn page_path(path: &str, limit: Option<u32>, cursor: Option<uuid::Uuid>, extra: &[(&str, Option<&str>)]) -> String {
    let mut url = reqwest::Url::parse("http://query.invalid/").expect("a static URL");
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("limit", &limit.unwrap_or(50).clamp(1, 100).to_string());
        if let Some(cursor) = cursor {
            query.append_pair("cursor", &cursor.to_string());
        }
        for (name, value) in extra {
            if let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) {
                query.append_pair(name, value);
            }
        }
    }
    format!("{path}?{}", url.query().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn list_paths_are_encoded_and_bounded() {
        let cursor = uuid::Uuid::from_u128(1);
        assert_eq!(super::page_path("api/v1/x", None, None, &[("q", Some("  "))]), "api/v1/x?limit=50");
        assert_eq!(
            super::page_path("api/v1/x", Some(500), Some(cursor), &[("q", Some("oak & brass"))]),
            format!("api/v1/x?limit=100&cursor={cursor}&q=oak+%26+brass")
        );
    }
}
