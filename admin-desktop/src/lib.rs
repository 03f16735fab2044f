//! Mercato Seller, the sellers' desktop app: a Tauri window whose UI (the
//! `ui/` crate, Leptos) calls the commands here, which speak the shop's REST
//! API with one HTTP client and keep the session token on this side.

pub mod api;
pub mod commands;
pub mod csv;
pub mod live;
pub mod session;
pub mod settings;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use model::desktop::CmdError;
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tauri::Runtime;

use api::Api;
use session::{KeyringStore, NullStore, Session, TokenStore};
use settings::SettingsFile;

/// The app's state, managed by Tauri and handed to every command.
pub struct Desktop {
    pub api: Api,
    /// Shared with the live watches, which outlive the command that starts them.
    pub session: Arc<Session>,
    pub settings: SettingsFile,
    /// Live flash-sale watches by their channel's id, to stop on request.
    pub watches: Mutex<HashMap<u32, tauri::async_runtime::JoinHandle<()>>>,
}

impl Desktop {
    pub fn new(base: Url, store: Arc<dyn TokenStore>, settings: SettingsFile) -> Desktop {
        Desktop { api: Api::new(base), session: Arc::new(Session::new(store)), settings, watches: Mutex::default() }
    }

    /// As the app starts: the URL from the environment or the settings
    /// file, the OS keyring unless `MERCATO_DESKTOP_KEYRING=off`.
    pub fn from_env() -> Desktop {
        let settings = SettingsFile::in_config_dir();
        let store: Arc<dyn TokenStore> = match std::env::var("MERCATO_DESKTOP_KEYRING").as_deref() {
            Ok("off") => Arc::new(NullStore),
            _ => Arc::new(KeyringStore::default()),
        };
        Desktop::new(settings.initial_url(), store, settings)
    }

    /// A call as the signed-in seller. No session: `signed_out` without a
    /// request. A 401 ends the session it was made with (not a newer one a
    /// concurrent sign-in made) and comes back as `signed_out`, which the UI
    /// answers with the sign-in screen over whatever was being edited.
    pub async fn authed<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, CmdError> {
        self.authed_with_key(method, path, body, None).await
    }

    pub async fn authed_with_key<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        key: Option<uuid::Uuid>,
    ) -> Result<T, CmdError> {
        let Some(token) = self.session.token() else {
            return Err(signed_out());
        };
        match self.api.call_with_key(method, path, Some(token.expose()), body, key).await {
            Err(e) if e.status == Some(401) => {
                self.session.forget_if(&token);
                Err(CmdError { status: Some(401), ..signed_out() })
            }
            other => other,
        }
    }

    /// The keyring entry's name: one per shop.
    pub fn server_key(&self) -> String {
        self.api.base().to_string()
    }
}

pub fn signed_out() -> CmdError {
    CmdError::new("signed_out", "You are signed out: please sign in again.")
}

/// The app without its window and context, so the tests build it on
/// Tauri's mock runtime with the same commands.
pub fn app_builder<R: Runtime>(builder: tauri::Builder<R>, desktop: Desktop) -> tauri::Builder<R> {
    builder.manage(desktop).invoke_handler(tauri::generate_handler![
        commands::settings::settings_get,
        commands::settings::settings_set,
        commands::settings::ping,
        commands::auth::session_restore,
        commands::auth::sign_in,
        commands::auth::sign_out,
        commands::stock::list_skus,
        commands::stock::set_stock,
        commands::stock::set_shards,
        commands::stock::preview_stock_csv,
        commands::stock::bulk_set_stock,
        commands::products::list_products,
        commands::products::get_product,
        commands::products::create_product,
        commands::products::update_product,
        commands::products::list_categories,
        commands::orders::list_orders,
        commands::orders::ship_order,
        commands::orders::refund_order,
        commands::flash::list_flash_sales,
        commands::flash::get_flash_sale,
        commands::flash::create_flash_sale,
        commands::flash::cancel_flash_sale,
        commands::flash::watch_flash_sale,
        commands::flash::unwatch,
        commands::admin::reconcile,
    ])
}

pub fn run() {
    app_builder(tauri::Builder::default(), Desktop::from_env())
        .run(tauri::generate_context!())
        .expect("the desktop app failed to start");
}

#[cfg(test)]
mod tests;
