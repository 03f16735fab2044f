//! Admin: reconciliation of the stock counters against PostgreSQL.

use model::desktop::CmdError;
use model::inventory::ReconcileReport;
use reqwest::Method;
use serde_json::json;
use tauri::State;

use crate::Desktop;

#[tauri::command(rename_all = "snake_case")]
pub async fn reconcile(state: State<'_, Desktop>) -> Result<ReconcileReport, CmdError> {
    state.authed(Method::POST, "api/v1/admin/reconcile", Some(&json!({}))).await
}
