//! The shop's address, and whether it answers.

use model::desktop::{CmdError, Settings};
use tauri::State;

use crate::settings::parse_server_url;
use crate::Desktop;

#[tauri::command(rename_all = "snake_case")]
pub fn settings_get(state: State<'_, Desktop>) -> Settings {
    Settings { server_url: state.api.base().to_string() }
}

/// A new address signs out of the old shop (its token means nothing to
/// another), and is saved for the next start.
#[tauri::command(rename_all = "snake_case")]
pub fn settings_set(state: State<'_, Desktop>, server_url: String) -> Result<Settings, CmdError> {
    let url = parse_server_url(&server_url)?;
    if url != state.api.base() {
        state.session.forget();
        state.api.set_base(url.clone());
    }
    let settings = Settings { server_url: url.to_string() };
    state.settings.save(&settings)?;
    Ok(settings)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn ping(state: State<'_, Desktop>) -> Result<(), CmdError> {
    state.api.ping().await
}
