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
