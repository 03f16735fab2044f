//! Sign-in, sign-out and the remembered session. The page gets the user,
//! never the token.

use model::account::SignedIn;
use model::desktop::{CmdError, SignInView};
use model::{Role, User};
use reqwest::Method;
use serde_json::json;
use tauri::State;

use super::blocking;
use crate::Desktop;

#[tauri::command(rename_all = "snake_case")]
pub async fn sign_in(state: State<'_, Desktop>, email: String, password: String, remember: bool) -> Result<SignInView, CmdError> {
    state.sign_in(&email, &password, remember).await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn sign_out(state: State<'_, Desktop>) -> Result<(), CmdError> {
    state.sign_out().await
}

/// The user signed in now, or the one a remembered token still belongs to.
#[tauri::command(rename_all = "snake_case")]
pub async fn session_restore(state: State<'_, Desktop>) -> Result<Option<User>, CmdError> {
    state.restore().await
}

impl Desktop {
    pub async fn sign_in(&self, email: &str, password: &str, remember: bool) -> Result<SignInView, CmdError> {
        if email.trim().is_empty() || password.is_empty() {
            return Err(CmdError::new("bad_input", "Enter your email and password."));
        }
        let body = json!({ "email": email.trim(), "password": password });
        let signed: SignedIn = self.api.call(Method::POST, "api/v1/auth/login", None, Some(&body)).await?;
        if signed.user.role == Role::Customer {
            // The shop made a session; end it rather than leave it live.
            let _ = self.api.call::<(), ()>(Method::POST, "api/v1/auth/logout", Some(&signed.token), None).await;
            return Err(CmdError::new("not_a_seller", "This app is for sellers and admins: that account is a customer's."));
        }
        self.session.set(signed.token.clone(), signed.user.clone());
        let (store, server) = (self.session.store(), self.server_key());
        let (remembered, remember_error) = if remember {
            match blocking(move || store.save(&server, &signed.token)).await {
                Ok(()) => (true, None),
                Err(e) => {
                    tracing::warn!(error = %e, "could not remember the session");
                    (false, Some(format!("Signed in, but this computer could not remember you: {e}")))
                }
            }
        } else {
            // An earlier remembered session must not outlive this choice.
            if let Err(e) = blocking(move || store.clear(&server)).await {
                tracing::warn!(error = %e, "could not forget an earlier session");
            }
            (false, None)
        };
        Ok(SignInView { user: signed.user, remembered, remember_error })
    }

    /// Forgets the token here and in the keyring, then ends it at the shop
    /// (best effort: an unreachable shop must not keep the seller signed in).
    pub async fn sign_out(&self) -> Result<(), CmdError> {
        let token = self.session.token();
        self.session.forget();
        let (store, server) = (self.session.store(), self.server_key());
        let cleared = blocking(move || store.clear(&server)).await;
        if let Some(token) = token {
            if let Err(e) = self.api.call::<(), ()>(Method::POST, "api/v1/auth/logout", Some(token.expose()), None).await {
                tracing::info!(error = %e, "the shop did not end the session");
            }
        }
        cleared.map_err(|e| CmdError::new("keyring", format!("Signed out, but the remembered session could not be erased: {e}")))
    }

    pub async fn restore(&self) -> Result<Option<User>, CmdError> {
        if let Some(user) = self.session.user() {
            return Ok(Some(user));
        }
        let (store, server) = (self.session.store(), self.server_key());
        let loaded = blocking({
            let server = server.clone();
            let store = store.clone();
            move || store.load(&server)
        })
        .await;
        let token = match loaded {
            Ok(Some(token)) => token,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the keyring");
                return Ok(None);
            }
        };
        match self.api.call::<(), User>(Method::GET, "api/v1/me", Some(&token), None).await {
            Ok(user) if user.role != Role::Customer => {
                self.session.set(token, user.clone());
                Ok(Some(user))
            }
            Ok(_) => Ok(None),
            Err(e) if e.status == Some(401) => {
                // The shop no longer knows it: forget it for good.
                let _ = blocking(move || store.clear(&server)).await;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
