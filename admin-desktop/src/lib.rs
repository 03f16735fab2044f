//! Mercato Seller, the sellers' desktop app: a Tauri window whose UI (the
//! `ui/` crate, Leptos) calls the commands here, which speak the shop's REST
//! API with one HTTP client and keep the session token on this side.

pub mod api;
pub mod commands;
pub mod session;
pub mod settings;

use std::sync::Arc;

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
    pub session: Session,
    pub settings: SettingsFile,
}

impl Desktop {
    pub fn new(base: Url, store: Arc<dyn TokenStore>, settings: SettingsFile) -> Desktop {
        Desktop { api: Api::new(base), session: Session::new(store), settings }
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
        let Some(token) = self.session.token() else {
            return Err(signed_out());
        };
        match self.api.call(method, path, Some(token.expose()), body).await {
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
    ])
}

pub fn run() {
    app_builder(tauri::Builder::default(), Desktop::from_env())
        .run(tauri::generate_context!())
        .expect("the desktop app failed to start");
}

#[cfg(test)]
mod tests;
