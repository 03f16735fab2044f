//! Installs what the commands need, each piece only when it is missing or at
//! the wrong version. Root installs Debian packages itself; anyone else is
//! told the exact command to run.

use std::path::Path;
use std::process::Command;

use crate::{cmd, root, step, Result};

/// cargo-leptos 0.3.11 does not build on rustc 1.95; 0.3.10 does.
const CARGO_LEPTOS_VERSION: &str = "0.3.10";
/// The fake Stripe API (PyPI) local runs and tests pay against.
const LOCALSTRIPE_VERSION: &str = "1.15.10";
/// The SMTP sink (npm) the shop's emails go to locally and in tests. 2.x:
/// its REST API (`GET /email`) is what the tests read mail through.
const MAILDEV_VERSION: &str = "2.2.1";

/// The seller desktop app's end-to-end driver (crates.io). Pinned: 3.x
/// alphas are published too.
const TAURI_DRIVER_VERSION: &str = "2.1.0";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The shop (`cargo xtask run`).
    Run,
    /// The shop's Rust tests without the browser or desktop suites (`--no-e2e`).
    TestRust,
    /// Every suite, the browser's and the desktop app's included.
    Test,
    /// The seller desktop app alone (`cargo xtask desktop`): the shop runs apart.
    Desktop,
}

pub fn ensure(purpose: Purpose) -> Result {
    step("Checking tools");
    ensure_debian_packages(purpose)?;
    ensure_wasm_target()?;
    ensure_wasm_bindgen()?;
    if purpose == Purpose::Desktop {
        return Ok(());
    }
    ensure_npm_packages()?;
    ensure_cargo_leptos()?;
    ensure_localstripe()?;
    ensure_maildev()?;
    if purpose == Purpose::Test {
        ensure_tauri_driver()?;
    }
    Ok(())
}

pub fn tauri_driver_bin() -> std::path::PathBuf {
    root().join("target/tools/tauri-driver/bin/tauri-driver")
}

/// Into target/tools like the other tools, so a fresh clone's CI and a
/// user's ~/.cargo stay apart.
fn ensure_tauri_driver() -> Result {
    let have = cmd::output(Command::new(tauri_driver_bin()).arg("--version"));
    if have.as_deref().is_some_and(|v| v.contains(TAURI_DRIVER_VERSION)) {
        println!("    tauri-driver {TAURI_DRIVER_VERSION}: present");
        return Ok(());
    }
    println!("    installing tauri-driver {TAURI_DRIVER_VERSION} (crates.io, into target/tools/tauri-driver; about a minute)");
    cmd::run(cmd::cargo().args(["install", "tauri-driver", "--version", &format!("={TAURI_DRIVER_VERSION}"), "--locked", "--root"]).arg(root().join("target/tools/tauri-driver")))
}

/// Where maildev lives: a folder of its own under target/, apart from the
/// root package.json, so the front-end tools' lock file stays theirs.
pub fn maildev_bin() -> std::path::PathBuf {
    root().join("target/tools/maildev/node_modules/.bin/maildev")
}

fn ensure_maildev() -> Result {
    let dir = root().join("target/tools/maildev");
    let installed = std::fs::read_to_string(dir.join("node_modules/maildev/package.json")).unwrap_or_default();
    let wanted = format!("\"version\": \"{MAILDEV_VERSION}\"");
    if maildev_bin().exists() && installed.contains(&wanted) {
        println!("    maildev {MAILDEV_VERSION}: present");
        return Ok(());
    }
    println!("    installing maildev {MAILDEV_VERSION} (npm, into target/tools/maildev)");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let manifest = format!(
        "{{\n  \"private\": true,\n  \"description\": \"maildev for cargo xtask run|test (written by xtask)\",\n  \"dependencies\": {{ \"maildev\": \"{MAILDEV_VERSION}\" }}\n}}\n"
    );
    std::fs::write(dir.join("package.json"), manifest).map_err(|e| e.to_string())?;
    cmd::run(Command::new("npm").args(["install", "--no-audit", "--no-fund", "--loglevel", "error"]).current_dir(&dir))
}

/// Where localstripe lives: a virtualenv of its own under target/, so the
/// system Python is never touched.
pub fn localstripe_bin() -> std::path::PathBuf {
    root().join("target/tools/localstripe/bin/localstripe")
}

fn ensure_localstripe() -> Result {
    let venv = root().join("target/tools/localstripe");
    let pip = venv.join("bin/pip");
    let have = cmd::output(Command::new(&pip).args(["show", "localstripe"]));
    if localstripe_bin().exists()
        && have.as_deref().is_some_and(|info| info.lines().any(|l| l == format!("Version: {LOCALSTRIPE_VERSION}")))
    {
        println!("    localstripe {LOCALSTRIPE_VERSION}: present");
        return Ok(());
    }
    println!("    installing localstripe {LOCALSTRIPE_VERSION} (PyPI, into target/tools/localstripe)");
    cmd::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    cmd::run(Command::new(&pip).args(["install", "--quiet", "--disable-pip-version-check", &format!("localstripe=={LOCALSTRIPE_VERSION}")]))
}

/// Python with the venv module (Debian splits it into python3-venv).
fn python_venv_works() -> bool {
    cmd::output(Command::new("python3").args(["-c", "import ensurepip, venv; print('ok')"])).as_deref() == Some("ok")
}

/// Debian packages: (package, a file it installs that proves it is there).
fn wanted_packages(purpose: Purpose) -> Vec<(&'static str, &'static str)> {
    // The desktop app's build: WebKitGTK and what Tauri links (tray, xdo,
    // librsvg), D-Bus for the keyring.
    let desktop_build = [
        ("build-essential", "/usr/bin/cc"),
        ("pkg-config", "/usr/bin/pkg-config"),
        ("libssl-dev", "/usr/include/openssl/ssl.h"),
        ("libwebkit2gtk-4.1-dev", "/usr/include/webkitgtk-4.1/webkit2/webkit2.h"),
        ("libxdo-dev", "/usr/include/xdo.h"),
        ("libayatana-appindicator3-dev", "/usr/include/libayatana-appindicator3-0.1"),
        ("librsvg2-dev", "/usr/include/librsvg-2.0"),
        ("libdbus-1-dev", "/usr/include/dbus-1.0"),
    ];
    // Running it with no screen: a virtual X server, a session bus, and
    // WebKit's WebDriver for tauri-driver.
    let desktop_headless = [
        ("xvfb", "/usr/bin/xvfb-run"),
        ("xauth", "/usr/bin/xauth"),
        ("dbus-x11", "/usr/bin/dbus-launch"),
        ("webkit2gtk-driver", "/usr/bin/WebKitWebDriver"),
    ];
    if purpose == Purpose::Desktop {
        return desktop_build.to_vec();
    }
    let mut wanted = vec![
        ("postgresql", "/usr/bin/psql"),
        ("redis-server", "/usr/bin/redis-server"),
        ("redis-tools", "/usr/bin/redis-cli"),
        ("nodejs", "/usr/bin/node"),
        ("npm", "/usr/bin/npm"),
        ("build-essential", "/usr/bin/cc"),
        ("pkg-config", "/usr/bin/pkg-config"),
        ("libssl-dev", "/usr/include/openssl/ssl.h"),
    ];
    let mut add = |more: &[(&'static str, &'static str)]| {
        for p in more {
            if !wanted.contains(p) {
                wanted.push(*p);
            }
        }
    };
    if matches!(purpose, Purpose::TestRust | Purpose::Test) {
        add(&desktop_build);
    }
    if purpose == Purpose::Test {
        add(&[("chromium", "/usr/bin/chromium")]);
        add(&desktop_headless);
    }
    wanted
}

fn ensure_debian_packages(purpose: Purpose) -> Result {
    let missing: Vec<&str> = wanted_packages(purpose)
        .into_iter()
        .filter(|(_, proof)| !Path::new(proof).exists() && !on_path(Path::new(proof).file_name().unwrap()))
        .map(|(package, _)| package)
        .collect();
    // PostgreSQL's server binaries live in a versioned directory.
    let mut missing = missing;
    if purpose != Purpose::Desktop && postgres_bin_dir().is_none() && !missing.contains(&"postgresql") {
        missing.push("postgresql");
    }
    if purpose != Purpose::Desktop && !python_venv_works() {
        missing.extend(["python3", "python3-venv"]);
    }
    if missing.is_empty() {
        println!("    system packages: present");
        return Ok(());
    }
    let install = format!("apt-get update && apt-get install -y --no-install-recommends {}", missing.join(" "));
    if !Path::new("/usr/bin/apt-get").exists() {
        return Err(format!(
            "missing system packages: {}. This setup installs them with apt on Debian; on other systems install them with your package manager, then run this command again",
            missing.join(", ")
        ));
    }
    if !is_root() {
        return Err(format!(
            "missing system packages: {}. Run this as root, then run this command again:\n    sudo sh -c '{install}'",
            missing.join(", ")
        ));
    }
    println!("    installing: {}", missing.join(" "));
    let apt = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd::run(&mut c)
    };
    apt(&["update"])?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    apt(&args)
}

fn ensure_wasm_target() -> Result {
    let installed = cmd::output(Command::new("rustup").args(["target", "list", "--installed"]))
        .ok_or("rustup not found: install Rust with rustup (https://rustup.rs is not reachable here; use your distribution's rustup package)")?;
    if installed.lines().any(|l| l.trim() == "wasm32-unknown-unknown") {
        println!("    wasm32 target: present");
        return Ok(());
    }
    println!("    adding the wasm32-unknown-unknown target");
    cmd::run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))
}

/// Tailwind, wasm-opt (npm binaryen: Debian's breaks hydration) and
/// Playwright, from the root package.json. Reinstalled when the lock file is
/// newer than what node_modules holds.
fn ensure_npm_packages() -> Result {
    let root = root();
    let lock = root.join("package-lock.json");
    let marker = root.join("node_modules/.package-lock.json");
    let stale = match (std::fs::metadata(&lock), std::fs::metadata(&marker)) {
        (Ok(l), Ok(m)) => l.modified().ok() > m.modified().ok(),
        _ => true,
    };
    if !stale && root.join("node_modules/.bin/tailwindcss").exists() {
        println!("    npm packages: present");
        return Ok(());
    }
    println!("    installing npm packages (npm ci)");
    cmd::run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&root))
}

fn ensure_cargo_leptos() -> Result {
    let have = cmd::output(cmd::cargo().args(["leptos", "--version"]));
    if have.as_deref().is_some_and(|v| v.split_whitespace().last() == Some(CARGO_LEPTOS_VERSION)) {
        println!("    cargo-leptos {CARGO_LEPTOS_VERSION}: present");
        return Ok(());
    }
    println!("    installing cargo-leptos {CARGO_LEPTOS_VERSION} (once; about 22 min on 2 cores)");
    cmd::run(cmd::cargo().args(["install", &format!("cargo-leptos@{CARGO_LEPTOS_VERSION}"), "--locked"]))
}

/// The wasm-bindgen CLI must equal the `wasm-bindgen` crate in Cargo.lock
/// exactly, or the generated JS does not match the wasm.
fn ensure_wasm_bindgen() -> Result {
    let wanted = locked_version("wasm-bindgen")?;
    let have = cmd::output(Command::new("wasm-bindgen").arg("--version"));
    if have.as_deref().is_some_and(|v| v.split_whitespace().nth(1) == Some(wanted.as_str())) {
        println!("    wasm-bindgen-cli {wanted}: present");
        return Ok(());
    }
    println!("    installing wasm-bindgen-cli {wanted} (matches Cargo.lock)");
    // Not --locked: the CLI's own lock file names a crate version the registry lacks.
    cmd::run(cmd::cargo().args(["install", "wasm-bindgen-cli", "--version", &format!("={wanted}")]))
}

fn locked_version(package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).map_err(|e| format!("cannot read Cargo.lock: {e}"))?;
    let needle = format!("name = \"{package}\"\nversion = \"");
    let start = lock.find(&needle).ok_or(format!("{package} is not in Cargo.lock"))? + needle.len();
    Ok(lock[start..].split('"').next().unwrap_or_default().to_owned())
}

pub fn is_root() -> bool {
    cmd::output(Command::new("id").arg("-u")).as_deref() == Some("0")
}

fn on_path(name: &std::ffi::OsStr) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false)
}

/// The newest installed PostgreSQL's server binaries (initdb, pg_ctl).
pub fn postgres_bin_dir() -> Option<std::path::PathBuf> {
    let mut versions: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}
