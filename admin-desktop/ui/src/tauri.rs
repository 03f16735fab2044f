//! The bridge to the app's Rust side: `window.__TAURI__.core.invoke`
//! (exposed by `withGlobalTauri`), with arguments and answers through
//! serde_json so they are exactly the `model` types the commands use.

use model::desktop::CmdError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = ["window", "__TAURI__", "core"], js_name = invoke, catch)]
    async fn tauri_invoke(cmd: &str, args: JsValue) -> Result<JsValue, JsValue>;
}

pub async fn invoke<A: Serialize, T: DeserializeOwned>(cmd: &str, args: &A) -> Result<T, CmdError> {
    let json = serde_json::to_string(args).map_err(|e| CmdError::new("bad_input", e.to_string()))?;
    let js_args = js_sys::JSON::parse(&json).map_err(|_| CmdError::new("bad_input", "the arguments are not JSON"))?;
    match tauri_invoke(cmd, js_args).await {
        Ok(value) => from_js(&value),
        Err(error) => Err(from_js::<CmdError>(&error).unwrap_or_else(|_| {
            // Tauri's own refusals (an argument that does not parse) are bare strings.
            CmdError::new("bad_input", error.as_string().unwrap_or_else(|| format!("{cmd} failed")))
        })),
    }
}

fn from_js<T: DeserializeOwned>(value: &JsValue) -> Result<T, CmdError> {
    let text = if value.is_undefined() || value.is_null() {
        "null".to_owned()
    } else {
        js_sys::JSON::stringify(value).ok().and_then(|s| s.as_string()).unwrap_or_else(|| "null".to_owned())
    };
    serde_json::from_str(&text).map_err(|e| CmdError::new("bad_response", format!("unexpected answer from the app: {e}")))
}
