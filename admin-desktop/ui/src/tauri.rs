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

thread_local! {
    /// The live watches' message handlers, kept alive until unwatched.
    static WATCHES: std::cell::RefCell<std::collections::HashMap<u32, Closure<dyn FnMut(JsValue)>>> = Default::default();
}

/// Starts the Rust side's live watch of a flash sale: `on` gets every
/// message it pushes over a Tauri channel. Answers the watch's id.
pub async fn watch_flash_sale(sale_id: uuid::Uuid, mut on: impl FnMut(model::desktop::LiveMsg) + 'static) -> Result<u32, CmdError> {
    use js_sys::Reflect;
    let broken = |_| CmdError::new("bad_response", "the app's channel is unavailable");
    let core = Reflect::get(&Reflect::get(&js_sys::global(), &"__TAURI__".into()).map_err(broken)?, &"core".into()).map_err(broken)?;
    let ctor: js_sys::Function = Reflect::get(&core, &"Channel".into()).map_err(broken)?.dyn_into().map_err(|_| broken(JsValue::NULL))?;
    let channel = Reflect::construct(&ctor, &js_sys::Array::new()).map_err(broken)?;
    let handler = Closure::<dyn FnMut(JsValue)>::new(move |message: JsValue| match from_js(&message) {
        Ok(msg) => on(msg),
        Err(e) => web_sys_log(&e.message),
    });
    Reflect::set(&channel, &"onmessage".into(), handler.as_ref()).map_err(broken)?;
    let args = js_sys::Object::new();
    Reflect::set(&args, &"sale_id".into(), &sale_id.to_string().into()).map_err(broken)?;
    Reflect::set(&args, &"on_event".into(), &channel).map_err(broken)?;
    let id: u32 = match tauri_invoke("watch_flash_sale", args.into()).await {
        Ok(v) => from_js(&v)?,
        Err(e) => return Err(from_js::<CmdError>(&e).unwrap_or_else(|_| CmdError::new("bad_input", "the watch did not start"))),
    };
    WATCHES.with(|w| w.borrow_mut().insert(id, handler));
    Ok(id)
}

pub fn unwatch(id: u32) {
    WATCHES.with(|w| w.borrow_mut().remove(&id));
    leptos::task::spawn_local(async move {
        let _ = invoke::<_, ()>("unwatch", &serde_json::json!({ "watch_id": id })).await;
    });
}

fn web_sys_log(message: &str) {
    let console = js_sys::Reflect::get(&js_sys::global(), &"console".into()).ok();
    if let Some(log) = console.and_then(|c| js_sys::Reflect::get(&c, &"warn".into()).ok()).and_then(|f| f.dyn_into::<js_sys::Function>().ok()) {
        let _ = log.call1(&JsValue::NULL, &message.into());
    }
}
