//! The app's one setting, the shop's URL: `MERCATO_DESKTOP_SERVER_URL` when
//! set (xtask and the tests), else the saved file, else the local shop.

use std::path::PathBuf;

use model::desktop::{CmdError, Settings};
use reqwest::Url;

pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:3000/";
pub const SERVER_URL_ENV: &str = "MERCATO_DESKTOP_SERVER_URL";

/// Where settings are saved: `$XDG_CONFIG_HOME/mercato-seller/settings.json`
/// (or `~/.config/…`); `None` keeps them in memory only (tests).
pub struct SettingsFile {
    path: Option<PathBuf>,
}

impl SettingsFile {
    pub fn at(path: Option<PathBuf>) -> SettingsFile {
        SettingsFile { path }
    }

    pub fn in_config_dir() -> SettingsFile {
        let dir = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")));
        SettingsFile { path: dir.map(|d| d.join("mercato-seller/settings.json")) }
    }

    pub fn load(&self) -> Option<Settings> {
        let text = std::fs::read_to_string(self.path.as_ref()?).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn save(&self, settings: &Settings) -> Result<(), CmdError> {
        let Some(path) = &self.path else { return Ok(()) };
        let fail = |e: std::io::Error| CmdError::new("settings_not_saved", format!("cannot save the settings in {}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let text = serde_json::to_string_pretty(settings).expect("settings serialize");
        std::fs::write(path, text).map_err(fail)
    }

    /// The URL to start with.
    pub fn initial_url(&self) -> Url {
        std::env::var(SERVER_URL_ENV)
            .ok()
            .and_then(|raw| parse_server_url(&raw).ok())
            .or_else(|| self.load().and_then(|s| parse_server_url(&s.server_url).ok()))
            .unwrap_or_else(|| Url::parse(DEFAULT_SERVER_URL).expect("the default URL parses"))
    }
}

/// An http(s) URL with a host; paths are joined below it, so it always ends
/// in `/`.
pub fn parse_server_url(raw: &str) -> Result<Url, CmdError> {
    let bad = |why: &str| CmdError::new("bad_input", format!("“{}” is not a shop address: {why}", raw.trim()));
    let mut url = Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("it must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not carry a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_checked_and_end_in_a_slash() {
        assert_eq!(parse_server_url(" http://shop.example:3000 ").unwrap().as_str(), "http://shop.example:3000/");
        assert_eq!(parse_server_url("https://shop.example/mercato").unwrap().as_str(), "https://shop.example/mercato/");
        for bad in ["", "shop.example", "ftp://shop.example", "http://shop.example/?a=1", "file:///etc/passwd"] {
            assert_eq!(parse_server_url(bad).unwrap_err().code, "bad_input", "{bad}");
        }
    }

    #[test]
    fn settings_round_trip_through_the_file() {
        let dir = std::env::temp_dir().join(format!("mercato-seller-settings-{}", std::process::id()));
        let file = SettingsFile::at(Some(dir.join("settings.json")));
        assert_eq!(file.load(), None);
        let settings = Settings { server_url: "http://shop.example:8080/".into() };
        file.save(&settings).unwrap();
        assert_eq!(file.load(), Some(settings));
        let _ = std::fs::remove_dir_all(dir);
    }
}
